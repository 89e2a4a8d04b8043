"""Agreement between synthetic and measured regional SUVR across subjects.

For one region and a group of subjects (paired values ``real``, ``synthetic``):

``pearson_r``, ``pearson_p``
    Pearson correlation (scipy). Between-subject signal: a model that predicts the cohort mean
    everywhere has a good MAE and SSIM but ``r = NaN`` (constant prediction), reported as NaN.
``icc``
    Intraclass correlation, **ICC(2,1) by default**: two-way random effects, absolute agreement,
    single measurement (Shrout & Fleiss 1979 case 2; McGraw & Wong 1996 ICC(A,1)). Absolute
    agreement penalises a systematic offset between synthetic and measured SUVR, which a
    consistency ICC(3,1) would ignore; ``ICC(1,1)`` and ``ICC(3,1)`` are available.
``mae``
    Mean absolute difference (SUVR).
``bias``, ``sd_diff``, ``loa_low``, ``loa_high``
    Bland–Altman (1986): mean of ``synthetic − real``, its SD (ddof 1) and the 95 % limits of
    agreement ``bias ± 1.96·sd_diff``.

Tau positivity: a subject is positive when its meta-temporal SUVR is **greater than**
:data:`POSITIVITY_CUT` = 1.27 (the synthetic cohort's positivity rule, inside the
1.19–1.32 range of flortaucipir meta-temporal cut-points of Jack et al. 2017 summarised by
Weigand et al. 2022). Agreement of positivity is Cohen's κ (1960).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from tausynth.errors import TausynthError

__all__ = [
    "ICC_FORMS",
    "LOA_Z",
    "POSITIVITY_CUT",
    "BlandAltman",
    "PearsonResult",
    "agreement_stats",
    "agreement_table",
    "bland_altman",
    "cohens_kappa",
    "icc",
    "pearson",
    "positivity_agreement",
    "positivity_table",
]

ICC_FORMS = ("ICC(1,1)", "ICC(2,1)", "ICC(3,1)")
"""Allowed ``icc`` forms (Shrout & Fleiss 1979 single-measure forms)."""
POSITIVITY_CUT = 1.27
"""Default meta-temporal SUVR cut-point: positive when SUVR > 1.27 (the synthetic cohort's rule; Jack 2017 range 1.19–1.32)."""
LOA_Z = 1.96
"""Normal quantile of the Bland–Altman 95 % limits of agreement."""
ALL = "all"
"""Group label of the whole cohort in the tables."""


def _pair(real: Iterable[float], synthetic: Iterable[float]) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(list(real) if not isinstance(real, np.ndarray) else real, dtype=np.float64).ravel()
    b = np.asarray(list(synthetic) if not isinstance(synthetic, np.ndarray) else synthetic, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise TausynthError(f"paired values differ in length: {a.size} real, {b.size} synthetic")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise TausynthError("paired values contain NaN or infinite entries")
    return a, b


@dataclass(frozen=True)
class PearsonResult:
    """Pearson correlation; ``r`` and ``p`` are NaN with a ``note`` when undefined."""

    r: float
    p: float
    n: int
    note: str = ""


def pearson(real: Iterable[float], synthetic: Iterable[float]) -> PearsonResult:
    """Pearson correlation of paired values; NaN (not an exception) for constant input or n < 3.

    Examples
    --------
    >>> round(pearson([1, 2, 3], [2, 4, 6]).r, 12)
    1.0
    >>> pearson([1, 2, 3], [1, 1, 1]).note
    'constant synthetic values'
    """
    a, b = _pair(real, synthetic)
    n = a.size
    if n < 3:
        return PearsonResult(math.nan, math.nan, n, f"n = {n} < 3")
    for what, v in (("real", a), ("synthetic", b)):
        if np.ptp(v) == 0:
            return PearsonResult(math.nan, math.nan, n, f"constant {what} values")
    res = stats.pearsonr(a, b)
    r = float(np.clip(res.statistic, -1.0, 1.0))
    return PearsonResult(r, float(res.pvalue), n)


def icc(ratings: np.ndarray | Sequence[Sequence[float]], form: str = "ICC(2,1)") -> float:
    """Single-measure intraclass correlation of an (n targets × k raters) table (Shrout & Fleiss 1979).

    ``ICC(1,1)`` one-way random; ``ICC(2,1)`` two-way random, absolute agreement; ``ICC(3,1)``
    two-way mixed, consistency. Returns NaN when undefined (no variance) or unstable: with fewer than
    3 targets the mean squares have one degree of freedom and the ratio can take any value (the same
    minimum as :func:`pearson`).

    Examples
    --------
    Shrout & Fleiss (1979), Table 2 (6 targets, 4 judges):

    >>> x = [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]
    >>> [round(icc(x, f), 2) for f in ICC_FORMS]
    [0.17, 0.29, 0.71]
    """
    if form not in ICC_FORMS:
        raise TausynthError(f"ICC form {form!r} not allowed; use one of {', '.join(ICC_FORMS)}")
    x = np.asarray(ratings, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 2:
        raise TausynthError(f"ICC needs an (n targets × k >= 2 raters) table, got shape {x.shape}")
    n, k = x.shape
    if n < 3:
        return math.nan
    grand = x.mean()
    ss_rows = k * float(((x.mean(axis=1) - grand) ** 2).sum())
    ss_cols = n * float(((x.mean(axis=0) - grand) ** 2).sum())
    ss_total = float(((x - grand) ** 2).sum())
    ss_err = ss_total - ss_rows - ss_cols
    bms = ss_rows / (n - 1)
    jms = ss_cols / (k - 1)
    ems = ss_err / ((n - 1) * (k - 1))
    wms = (ss_cols + ss_err) / (n * (k - 1))
    if form == "ICC(1,1)":
        num, den = bms - wms, bms + (k - 1) * wms
    elif form == "ICC(2,1)":
        num, den = bms - ems, bms + (k - 1) * ems + k * (jms - ems) / n
    else:
        num, den = bms - ems, bms + (k - 1) * ems
    scale = max(abs(bms), abs(jms), abs(ems), abs(wms))
    if scale == 0 or abs(den) <= 1e-12 * scale:
        return math.nan
    return float(num / den)


@dataclass(frozen=True)
class BlandAltman:
    """Bland–Altman statistics of ``synthetic − real``."""

    bias: float
    sd_diff: float
    loa_low: float
    loa_high: float
    n: int


def bland_altman(real: Iterable[float], synthetic: Iterable[float], z: float = LOA_Z) -> BlandAltman:
    """Bias (mean of ``synthetic − real``), SD of the differences (ddof 1) and ``bias ± z·SD``.

    With a single pair the SD and limits are NaN.

    Examples
    --------
    >>> ba = bland_altman([1, 2, 3, 4], [1.1, 2.3, 2.8, 4.2])
    >>> round(ba.bias, 6), round(ba.loa_low, 5), round(ba.loa_high, 5)
    (0.1, -0.32341, 0.52341)
    """
    a, b = _pair(real, synthetic)
    if a.size == 0:
        raise TausynthError("Bland–Altman needs at least one pair")
    d = b - a
    bias = float(d.mean())
    sd = float(d.std(ddof=1)) if d.size > 1 else math.nan
    return BlandAltman(bias, sd, bias - z * sd, bias + z * sd, int(d.size))


def cohens_kappa(rater_a: Iterable[object], rater_b: Iterable[object]) -> float:
    """Cohen's κ of two raters' categorical labels.

    κ = (p_o − p_e) / (1 − p_e). When both raters use a single, identical category (p_e = 1) κ is
    0/0; it is returned as 1.0 when the observed agreement is perfect (the only way p_e can be 1).

    Examples
    --------
    The 2×2 textbook table (yes/yes 20, yes/no 5, no/yes 10, no/no 15): p_o = 0.7, p_e = 0.5.

    >>> a = ["y"] * 25 + ["n"] * 25
    >>> b = ["y"] * 20 + ["n"] * 5 + ["y"] * 10 + ["n"] * 15
    >>> round(cohens_kappa(a, b), 6)
    0.4
    """
    a = np.asarray(list(rater_a), dtype=object)
    b = np.asarray(list(rater_b), dtype=object)
    if a.shape != b.shape:
        raise TausynthError(f"rater label lists differ in length: {a.size} and {b.size}")
    n = a.size
    if n == 0:
        return math.nan
    cats = sorted(set(a.tolist()) | set(b.tolist()), key=str)
    po = float(np.mean(a == b))
    pe = sum(float(np.mean(a == c)) * float(np.mean(b == c)) for c in cats)
    if pe >= 1.0:
        return 1.0 if po == 1.0 else math.nan
    return (po - pe) / (1.0 - pe)


def positivity_agreement(
    real: Iterable[float], synthetic: Iterable[float], cut_point: float = POSITIVITY_CUT
) -> dict[str, Any]:
    """Tau positivity (SUVR > ``cut_point``) of real and synthetic values: κ, agreement and counts."""
    a, b = _pair(real, synthetic)
    pa, pb = a > cut_point, b > cut_point
    return {
        "cut_point": float(cut_point), "n": int(a.size), "kappa": cohens_kappa(pa, pb),
        "percent_agreement": float(np.mean(pa == pb)) * 100.0 if a.size else math.nan,
        "n_pos_real": int(pa.sum()), "n_pos_synthetic": int(pb.sum()),
        "n_false_pos": int((~pa & pb).sum()), "n_false_neg": int((pa & ~pb).sum()),
    }


def agreement_stats(real: Iterable[float], synthetic: Iterable[float], icc_form: str = "ICC(2,1)") -> dict[str, Any]:
    """All agreement statistics of one region and group (see the module docstring)."""
    a, b = _pair(real, synthetic)
    pr = pearson(a, b)
    ba = bland_altman(a, b) if a.size else BlandAltman(math.nan, math.nan, math.nan, math.nan, 0)
    return {
        "n": int(a.size), "real_mean": float(a.mean()) if a.size else math.nan,
        "synthetic_mean": float(b.mean()) if b.size else math.nan,
        "pearson_r": pr.r, "pearson_p": pr.p, "pearson_note": pr.note,
        "icc": icc(np.column_stack([a, b]), icc_form) if a.size else math.nan, "icc_form": icc_form,
        "mae": float(np.mean(np.abs(b - a))) if a.size else math.nan,
        **{k: v for k, v in asdict(ba).items() if k != "n"},
    }


def _groups(df: pd.DataFrame, by: str | None) -> list[tuple[str, pd.DataFrame]]:
    out = [(ALL, df)]
    if by is not None:
        if by not in df:
            raise TausynthError(f"column {by!r} not in the ROI table; columns: {', '.join(map(str, df.columns))}")
        for g, sub in df.groupby(by, sort=True):
            out.append((str(g), sub))
    return out


def agreement_table(
    frame: pd.DataFrame,
    by: str | None = "diagnosis",
    regions: Sequence[str] | None = None,
    icc_form: str = "ICC(2,1)",
) -> pd.DataFrame:
    """Agreement statistics per region, overall (group ``"all"``) and per value of ``by``.

    Parameters
    ----------
    frame : pandas.DataFrame
        Long ROI table (:func:`tausynth.evaluation.roi.roi_frame`): ``subject_id, region, real,
        synthetic`` and the ``by`` column.
    by : str or None, default="diagnosis"
    regions : sequence of str, optional
        Regions to include, in this order (default: all, in order of appearance).
    icc_form : str, default="ICC(2,1)"

    Returns
    -------
    pandas.DataFrame
        One row per (region, group): ``region, group, n`` and the columns of :func:`agreement_stats`.
    """
    for col in ("region", "real", "synthetic"):
        if col not in frame:
            raise TausynthError(f"ROI table has no {col!r} column")
    names = list(regions) if regions is not None else list(pd.unique(frame["region"]))
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        for region in names:
            sub = frame[frame["region"] == region]
            if sub.empty:
                raise TausynthError(f"region {region!r} has no values in the ROI table")
            for group, g in _groups(sub, by):
                rows.append({"region": region, "group": group,
                             **agreement_stats(g["real"].to_numpy(), g["synthetic"].to_numpy(), icc_form)})
    return pd.DataFrame(rows)


def positivity_table(
    frame: pd.DataFrame,
    region: str = "metatemporal",
    cut_point: float = POSITIVITY_CUT,
    by: str | None = "diagnosis",
) -> pd.DataFrame:
    """Tau-positivity agreement (κ at ``region`` SUVR > ``cut_point``), overall and per value of ``by``."""
    sub = frame[frame["region"] == region]
    if sub.empty:
        raise TausynthError(f"region {region!r} has no values in the ROI table; positivity needs it")
    return pd.DataFrame([
        {"region": region, "group": group, **positivity_agreement(g["real"], g["synthetic"], cut_point)}
        for group, g in _groups(sub, by)
    ])
