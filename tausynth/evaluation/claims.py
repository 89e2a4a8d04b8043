"""The paper's four claims as data, and verdicts computed from metric tables.

A verdict is never written by hand: each ``claimN`` function takes per-subject metric tables,
makes the paired comparisons the claim implies and applies one stated rule, shared by all claims:

* a comparison **supports** the claim when the paired two-sided Wilcoxon test over shared test
  subjects (metrics averaged over seeds per subject) gives ``p < alpha`` in the claimed direction
  and the relative improvement of the means reaches the claim's stated size (2 % SSIM and 3 % PSNR
  for claim 2; any improvement otherwise);
* it **contradicts** the claim when the test is significant in the opposite direction, or, for a
  claim with a stated size, when the upper end of the 95 % paired-bootstrap CI of the relative
  improvement is below that size (the data exclude the claimed effect). A contradiction needs
  enough subjects for the exact test to reach ``p < alpha`` at all (6 non-zero differences at
  0.05);
* the claim is **not reproduced** when at least one comparison contradicts it (the claim is a
  conjunction), **reproduced** when every required comparison supports it, and **inconclusive on
  this cohort** otherwise — including missing variants and too few subjects.

Metric tables are the per-subject outputs of the evaluation: one row per (variant, seed,
subject) with the variant columns ``model``, ``perceptual`` (``none``, ``2d``, ``2.5d``, ``3d``,
``cyclic``), ``normalization`` (``standardize``, ``minmax``), ``seed`` and ``subject_id``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

from tausynth.errors import TausynthError
from tausynth.evaluation.tables import bootstrap_ci, paired_test, subject_means

__all__ = [
    "ALPHA",
    "CLAIMS",
    "OUTCOMES",
    "U_NET_FAMILY",
    "Claim",
    "Verdict",
    "claim1",
    "claim2",
    "claim3",
    "claim4",
    "compare",
    "judge",
    "roi_error_table",
    "verdict_table",
]

Outcome = Literal["reproduced", "not reproduced", "inconclusive"]
OUTCOMES: tuple[str, ...] = ("reproduced", "not reproduced", "inconclusive")
ALPHA = 0.05
U_NET_FAMILY: tuple[str, ...] = ("unet", "unetr", "swinunetr")
GANS: tuple[str, ...] = ("pix2pix", "cyclegan")
AD_REGIONS: tuple[str, ...] = ("metatemporal", "braak1", "braak34", "braak56")
HIGHER_IS_BETTER: dict[str, bool] = {"ssim": True, "ssim_volume": True, "psnr": True, "mse": False, "mae": False,
                                     "nrmse": False}


@dataclass(frozen=True)
class Claim:
    """One claim of the paper, as stated in its abstracts."""

    number: int
    text: str
    source: str


CLAIMS: tuple[Claim, ...] = (
    Claim(1, "For U-Net-family models, the cyclic 2.5D perceptual loss beats the 2.5D and 3D perceptual "
             "losses on SSIM and PSNR.", "paper v1 abstract"),
    Claim(2, "Adding the cyclic 2.5D perceptual loss to CycleGAN and Pix2Pix improves SSIM by at least 2 % "
             "and PSNR by at least 3 %.", "paper v1 abstract"),
    Claim(3, "By-manufacturer standardization of tau-PET SUVR beats per-subject min–max normalization.",
          "paper v1–v3 abstracts"),
    Claim(4, "The cyclic loss improves regional SUVR agreement in AD-relevant regions.",
          "paper v3 abstract"),
)


@dataclass(frozen=True)
class Verdict:
    """A claim, the verdict computed for it, the rule used and the comparisons behind it."""

    claim: Claim
    outcome: Outcome
    criterion: str
    reason: str
    comparisons: pd.DataFrame = field(repr=False, compare=False)

    def __str__(self) -> str:
        return (f"Claim {self.claim.number}: {self.claim.text}\n"
                f"Verdict: {self.outcome} — {self.reason}\nCriterion: {self.criterion}")


def _metric_direction(metric: str, higher_is_better: Mapping[str, bool] | None) -> bool:
    table = {**HIGHER_IS_BETTER, **(higher_is_better or {})}
    if metric in table:
        return table[metric]
    if metric.startswith("abs_error"):
        return False
    raise TausynthError(f"direction of metric {metric!r} unknown; pass higher_is_better={{{metric!r}: True/False}}")


def rows_where(df: pd.DataFrame, **fixed: object) -> pd.DataFrame:
    """The rows of ``df`` whose columns have the ``fixed`` values (a column ``df`` lacks is not a filter).

    Examples
    --------
    >>> df = pd.DataFrame({"model": ["unet", "cyclegan"], "seed": [1, 1]})
    >>> list(rows_where(df, model="unet", plane="axial")["model"])
    ['unet']
    """
    for col, value in fixed.items():
        if col in df:
            df = df[df[col] == value]
    return df


def compare(
    df: pd.DataFrame,
    variant_col: str,
    baseline: object,
    variant: object,
    metrics: Sequence[str],
    by: Sequence[str] = (),
    groups: Sequence[tuple] | None = None,
    min_relative: Mapping[str, float] | None = None,
    higher_is_better: Mapping[str, bool] | None = None,
    alpha: float = ALPHA,
    n_boot: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Paired comparisons of ``variant`` against ``baseline`` per group of ``by`` and per metric, with a status.

    Parameters
    ----------
    df : pandas.DataFrame
        Metric table.
    variant_col : str
        Column holding ``baseline`` and ``variant``.
    metrics : sequence of str
    by : sequence of str
        Columns held fixed within a comparison.
    groups : sequence of tuple, optional
        The groups (values of ``by``) that must be compared; a group lacking either variant gives
        a ``missing`` row. Default: every group in which ``variant`` or ``baseline`` occurs.
    min_relative : mapping of str to float, optional
        Stated minimum relative improvement per metric (default 0).
    higher_is_better : mapping of str to bool, optional
        Direction of metrics not in the built-in table.

    Returns
    -------
    pandas.DataFrame
        One row per (group, metric): ``by`` columns, ``metric``, ``baseline``, ``variant``,
        ``status`` (``supports``, ``contradicts``, ``neutral``, ``insufficient``, ``missing``), the
        :func:`~tausynth.evaluation.tables.paired_test` fields, ``improvement`` (mean difference
        signed so that positive is better), ``relative_improvement``, ``ci_low``/``ci_high`` (95 %
        bootstrap CI of the relative improvement) and ``min_relative``.
    """
    by = list(by)
    min_relative = dict(min_relative or {})
    cols = [variant_col, *by, "subject_id", *metrics]
    missing_cols = [c for c in cols if c not in df]
    if missing_cols:
        raise TausynthError(f"metric table has no column(s) {', '.join(missing_cols)}")
    sub = df[df[variant_col].isin([baseline, variant])]
    sm = subject_means(sub, [*by, variant_col], metrics) if not sub.empty else sub
    if groups is None:
        groups = [tuple(k) for k in sub[by].drop_duplicates().itertuples(index=False)] if by else [()]
    rows = []
    for key in groups:
        key = tuple(key)
        g = sm
        for col, value in zip(by, key, strict=True):
            g = g[g[col] == value]
        b, v = g[g[variant_col] == baseline], g[g[variant_col] == variant]
        joined = b.merge(v, on="subject_id", suffixes=("_b", "_v"))
        for m in metrics:
            higher = _metric_direction(m, higher_is_better)
            need = float(min_relative.get(m, 0.0))
            row: dict[str, Any] = {**dict(zip(by, key, strict=True)), "metric": m, "baseline": baseline,
                                   "variant": variant, "min_relative": need}
            if joined.empty:
                rows.append({**row, "status": "missing", "n": 0})
                continue
            xb, xv = joined[f"{m}_b"].to_numpy(), joined[f"{m}_v"].to_numpy()
            test = paired_test(xb, xv)
            sign = 1.0 if higher else -1.0
            lo, hi = bootstrap_ci(xb, xv, "relative", n_boot=n_boot, seed=seed)
            if not higher:
                lo, hi = -hi, -lo
            row.update(test)
            row["improvement"] = sign * test["mean_diff"]
            row["relative_improvement"] = sign * test["relative_diff"]
            row["ci_low"], row["ci_high"] = lo, hi
            row["status"] = _status(row, need, alpha)
            rows.append(row)
    return pd.DataFrame(rows)


def _status(row: Mapping[str, Any], need: float, alpha: float) -> str:
    p, imp, rel = row["p_value"], row["improvement"], row["relative_improvement"]
    if not (row["n"] and math.isfinite(p)) or row["min_p"] >= alpha:
        return "insufficient"
    if p < alpha and imp > 0 and (need <= 0 or rel >= need):
        return "supports"
    if p < alpha and imp < 0:
        return "contradicts"
    if need > 0 and math.isfinite(row["ci_high"]) and row["ci_high"] < need:
        return "contradicts"
    return "neutral"


def judge(comparisons: pd.DataFrame) -> tuple[Outcome, str]:
    """Outcome and a one-line reason from the ``status`` column of :func:`compare` rows (module rule)."""
    if comparisons.empty:
        return "inconclusive", "no comparison could be made (the required variants were not evaluated)"

    def label(r: pd.Series) -> str:
        keys = [str(r[c]) for c in r.index if c in ("model", "perceptual", "normalization", "region")]
        return "/".join([*keys, f"{r['variant']} vs {r['baseline']}", str(r["metric"])])

    status = comparisons["status"]
    if (status == "contradicts").any():
        names = ", ".join(label(r) for _, r in comparisons[status == "contradicts"].iterrows())
        return "not reproduced", f"contradicted by {names}"
    if (status == "missing").any():
        names = ", ".join(label(r) for _, r in comparisons[status == "missing"].iterrows())
        return "inconclusive", f"missing runs for: {names}"
    if (status == "supports").all():
        return "reproduced", f"all {len(comparisons)} comparison(s) support it"
    weak = comparisons[status != "supports"]
    n_ins = int((weak["status"] == "insufficient").sum())
    detail = f"{len(weak)} of {len(comparisons)} comparison(s) not significant in the claimed direction"
    if n_ins:
        detail += f" ({n_ins} with too few subjects for p < alpha)"
    return "inconclusive", detail


def _rule(alpha: float, extra: str = "") -> str:
    return (f"paired two-sided Wilcoxon over shared test subjects (seed-averaged), p < {alpha:g}, in the "
            f"claimed direction{extra}; not reproduced if any comparison is significantly the other way"
            f"{' or its 95 % bootstrap CI excludes the stated size' if extra else ''}; inconclusive otherwise")


def _verdict(number: int, comparisons: pd.DataFrame, criterion: str) -> Verdict:
    outcome, reason = judge(comparisons)
    return Verdict(CLAIMS[number - 1], outcome, criterion, reason, comparisons)


def claim1(
    metrics: pd.DataFrame,
    family: Sequence[str] = U_NET_FAMILY,
    comparators: Sequence[str] = ("2.5d", "3d"),
    metric_names: Sequence[str] = ("ssim", "psnr"),
    fixed: Mapping[str, object] | None = None,
    alpha: float = ALPHA,
) -> Verdict:
    """Claim 1: cyclic beats 2.5D and 3D perceptual losses on SSIM and PSNR for U-Net-family models.

    Every family model that has a ``cyclic`` run must be compared with every comparator.
    ``fixed`` filters the table first (default ``{"normalization": "standardize"}`` when that
    column exists).
    """
    df = rows_where(metrics, **(fixed if fixed is not None else {"normalization": "standardize"}))
    df = df[df["model"].isin(family)]
    models = sorted(pd.unique(df.loc[df["perceptual"] == "cyclic", "model"]))
    parts = [compare(df, "perceptual", c, "cyclic", metric_names, by=["model"], groups=[(m,) for m in models],
                     alpha=alpha) for c in comparators] if models else []
    comps = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    crit = (f"for every U-Net-family model with a cyclic run ({', '.join(family)}), cyclic vs each of "
            f"{', '.join(comparators)} on {', '.join(metric_names)}: " + _rule(alpha))
    return _verdict(1, comps, crit)


def claim2(
    metrics: pd.DataFrame,
    models: Sequence[str] = GANS,
    baseline: str = "none",
    thresholds: Mapping[str, float] | None = None,
    fixed: Mapping[str, object] | None = None,
    alpha: float = ALPHA,
) -> Verdict:
    """Claim 2: adding the cyclic loss to each GAN improves SSIM by ≥ 2 % and PSNR by ≥ 3 % (relative, means)."""
    thresholds = dict(thresholds or {"ssim": 0.02, "psnr": 0.03})
    df = rows_where(metrics, **(fixed if fixed is not None else {"normalization": "standardize"}))
    comps = compare(df, "perceptual", baseline, "cyclic", list(thresholds), by=["model"],
                    groups=[(m,) for m in models], min_relative=thresholds, alpha=alpha)
    sizes = ", ".join(f"{m.upper()} ≥ {100 * t:g} %" for m, t in thresholds.items())
    crit = (f"for each of {', '.join(models)}, cyclic vs {baseline}: relative improvement of the mean "
            f"({sizes}) and " + _rule(alpha, extra=" with the stated size"))
    return _verdict(2, comps, crit)


def claim3(
    metrics: pd.DataFrame,
    metric_names: Sequence[str] = ("ssim", "psnr"),
    variant: str = "standardize",
    baseline: str = "minmax",
    by: Sequence[str] = ("model", "perceptual"),
    alpha: float = ALPHA,
) -> Verdict:
    """Claim 3: by-manufacturer standardization beats min–max normalization (same model and loss).

    Both variants must be scored in the same space (SUVR): the min–max model's predictions taken
    back to SUVR by the evaluation. Every (model, loss) evaluated with both normalizations is a
    required comparison.
    """
    if "normalization" not in metrics:
        raise TausynthError("metric table has no 'normalization' column; claim 3 compares normalizations")
    per = metrics.groupby(list(by))["normalization"].agg(lambda s: {variant, baseline} <= set(s))
    groups = [k if isinstance(k, tuple) else (k,) for k, ok in per.items() if ok]
    comps = compare(metrics, "normalization", baseline, variant, metric_names, by=by, groups=groups,
                    alpha=alpha) if groups else pd.DataFrame()
    crit = (f"for every ({', '.join(by)}) trained with both, {variant} vs {baseline} on "
            f"{', '.join(metric_names)} in SUVR space: " + _rule(alpha))
    return _verdict(3, comps, crit)


def roi_error_table(roi: pd.DataFrame, regions: Sequence[str] = AD_REGIONS) -> pd.DataFrame:
    """Wide per-subject absolute regional error ``abs_error_<region> = |synthetic − real|`` from a long ROI table.

    The variant columns (everything but ``region``, ``real``, ``synthetic``, ``difference``,
    ``n_voxels``) are kept as the index columns.
    """
    missing = [r for r in regions if r not in set(roi["region"])]
    if missing:
        raise TausynthError(f"ROI table has no values for region(s) {', '.join(missing)}")
    keys = [c for c in roi.columns if c not in ("region", "real", "synthetic", "difference", "n_voxels")]
    sub = roi[roi["region"].isin(regions)].assign(abs_error=lambda d: (d["synthetic"] - d["real"]).abs())
    wide = sub.pivot_table(index=keys, columns="region", values="abs_error", aggfunc="mean").reset_index()
    wide.columns = [c if c in keys else f"abs_error_{c}" for c in wide.columns]
    return wide


def claim4(
    roi: pd.DataFrame,
    regions: Sequence[str] = AD_REGIONS,
    baseline: str = "none",
    fixed: Mapping[str, object] | None = None,
    alpha: float = ALPHA,
) -> Verdict:
    """Claim 4: the cyclic loss lowers the per-subject absolute regional SUVR error in AD-relevant regions.

    ``roi`` is a long ROI table with the variant columns; every model with both a ``cyclic`` and a
    ``baseline`` run is compared in every region.
    """
    df = rows_where(roi, **(fixed if fixed is not None else {"normalization": "standardize"}))
    wide = roi_error_table(df, regions)
    names = [f"abs_error_{r}" for r in regions]
    per = wide.groupby("model")["perceptual"].agg(lambda s: {"cyclic", baseline} <= set(s))
    models = [m for m, ok in per.items() if ok]
    comps = compare(wide, "perceptual", baseline, "cyclic", names, by=["model"], groups=[(m,) for m in models],
                    alpha=alpha) if models else pd.DataFrame()
    crit = (f"for every model with cyclic and {baseline} runs, per-subject |synthetic − real| SUVR in "
            f"{', '.join(regions)} is lower with cyclic: " + _rule(alpha))
    return _verdict(4, comps, crit)


def verdict_table(verdicts: Sequence[Verdict]) -> pd.DataFrame:
    """One row per verdict: ``claim``, ``statement``, ``verdict``, ``reason``, ``criterion``."""
    return pd.DataFrame([
        {"claim": v.claim.number, "statement": v.claim.text, "verdict": v.outcome, "reason": v.reason,
         "criterion": v.criterion}
        for v in verdicts
    ])
