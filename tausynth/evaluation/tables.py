"""Result tables: mean ± SD over test subjects, paired Wilcoxon tests, seed spread.

Input is a *metric table*: one row per (variant, seed, subject) with the variant columns (for
example ``model``, ``perceptual``, ``normalization``), ``seed``, ``subject_id`` and numeric metric
columns (``ssim``, ``psnr``, … or a regional absolute error).

Conventions
-----------
* A subject scored under several seeds counts once: its metrics are averaged over seeds first
  ("seed-averaged subject values"); means, SDs and paired tests use those. The spread between
  seeds is reported separately by :func:`seed_spread` (per-seed cohort means, their SD and range).
* Paired tests compare two variants on the subjects they share (inner join on ``subject_id``):
  two-sided Wilcoxon signed-rank test (scipy, exact for small samples, zero differences
  dropped), with differences taken as ``variant − baseline``.
* Non-finite values (e.g. ``psnr = inf`` for a perfect prediction) are kept in the means (which
  then read ``inf``) but pairs with a non-finite difference are dropped from tests and counted in
  ``n_dropped``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from tausynth.errors import TausynthError

__all__ = [
    "bootstrap_ci",
    "format_mean_sd",
    "paired_test",
    "rank_subjects",
    "seed_spread",
    "subject_means",
    "summary_table",
]

SUBJECT = "subject_id"
SEED = "seed"


def _require(df: pd.DataFrame, columns: Iterable[str], what: str = "metric table") -> None:
    missing = [c for c in columns if c not in df]
    if missing:
        raise TausynthError(f"{what} has no column(s) {', '.join(map(repr, missing))}; columns: {', '.join(map(str, df.columns))}")


def format_mean_sd(mean: float, sd: float, digits: int = 3) -> str:
    """``"mean ± sd"`` with ``digits`` decimals; ``"inf"``/``"nan"`` spelled out, SD omitted when NaN."""
    if not math.isfinite(mean):
        return str(mean)
    if not math.isfinite(sd):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"


def subject_means(
    df: pd.DataFrame, by: Sequence[str], metrics: Sequence[str], subject_col: str = SUBJECT, seed_col: str = SEED
) -> pd.DataFrame:
    """Seed-averaged subject values: the mean of each metric over seeds per (``by``…, subject)."""
    by = list(by)
    _require(df, [*by, subject_col, *metrics])
    out = df.groupby([*by, subject_col], sort=True, dropna=False)[list(metrics)].mean().reset_index()
    if seed_col in df:
        n = df.groupby([*by, subject_col], sort=True, dropna=False)[seed_col].nunique().to_numpy()
        out["n_seeds"] = n
    return out


def summary_table(
    df: pd.DataFrame,
    by: Sequence[str],
    metrics: Sequence[str],
    digits: int = 3,
    subject_col: str = SUBJECT,
    seed_col: str = SEED,
) -> pd.DataFrame:
    """Mean ± SD (ddof 1) over test subjects of each metric, per group of ``by``.

    Columns: the ``by`` columns, ``n_subjects``, ``n_seeds``, then for every metric ``<m>_mean``,
    ``<m>_sd`` and ``<m>`` (the formatted ``"mean ± sd"`` string).
    """
    sm = subject_means(df, by, metrics, subject_col, seed_col)
    seeds: dict[tuple, int] = {}
    if seed_col in df:
        counts = df.groupby(list(by), sort=False, dropna=False)[seed_col].nunique() if by else None
        seeds = {(k if isinstance(k, tuple) else (k,)): int(v) for k, v in counts.items()} if by else {(): int(df[seed_col].nunique())}
    rows = []
    for key, g in sm.groupby(list(by), sort=False, dropna=False) if by else [((), sm)]:
        key = key if isinstance(key, tuple) else (key,)
        row: dict[str, Any] = dict(zip(by, key, strict=True))
        row["n_subjects"] = int(g[subject_col].nunique())
        row["n_seeds"] = seeds.get(key, 1)
        for m in metrics:
            v = g[m].to_numpy(dtype=np.float64)
            mean = float(v.mean())
            sd = float(v.std(ddof=1)) if v.size > 1 and np.isfinite(v).all() else math.nan
            row[f"{m}_mean"], row[f"{m}_sd"], row[m] = mean, sd, format_mean_sd(mean, sd, digits)
        rows.append(row)
    return pd.DataFrame(rows)


def seed_spread(
    df: pd.DataFrame, by: Sequence[str], metrics: Sequence[str], seed_col: str = SEED, digits: int = 3
) -> pd.DataFrame:
    """Spread between training seeds: per seed the cohort mean, then its mean, SD, min and max over seeds.

    Columns: the ``by`` columns, ``n_seeds`` and, per metric, ``<m>_seed_mean``, ``<m>_seed_sd``,
    ``<m>_seed_min``, ``<m>_seed_max`` and ``<m>_seeds`` (formatted ``"mean ± sd [min, max]"``).
    """
    _require(df, [*by, seed_col, *metrics])
    per_seed = df.groupby([*by, seed_col], sort=True, dropna=False)[list(metrics)].mean().reset_index()
    rows = []
    for key, g in per_seed.groupby(list(by), sort=False, dropna=False) if by else [((), per_seed)]:
        key = key if isinstance(key, tuple) else (key,)
        row: dict[str, Any] = dict(zip(by, key, strict=True))
        row["n_seeds"] = int(g[seed_col].nunique())
        for m in metrics:
            v = g[m].to_numpy(dtype=np.float64)
            sd = float(v.std(ddof=1)) if v.size > 1 else math.nan
            row[f"{m}_seed_mean"], row[f"{m}_seed_sd"] = float(v.mean()), sd
            row[f"{m}_seed_min"], row[f"{m}_seed_max"] = float(v.min()), float(v.max())
            row[f"{m}_seeds"] = f"{format_mean_sd(float(v.mean()), sd, digits)} [{v.min():.{digits}f}, {v.max():.{digits}f}]"
        rows.append(row)
    return pd.DataFrame(rows)


def paired_test(baseline: Sequence[float], variant: Sequence[float]) -> dict[str, Any]:
    """Two-sided Wilcoxon signed-rank test of paired values, differences ``variant − baseline``.

    Returns
    -------
    dict
        ``n`` (pairs used), ``n_dropped`` (non-finite pairs), ``mean_baseline``, ``mean_variant``,
        ``mean_diff``, ``median_diff``, ``relative_diff`` (``mean_diff / |mean_baseline|``),
        ``statistic``, ``p_value`` (1.0 when all differences are zero, NaN without pairs) and
        ``min_p`` (the smallest two-sided p-value the exact test can reach with this many
        non-zero differences, ``2 / 2**n``: when it is above the significance level no result
        can be significant).
    """
    a = np.asarray(baseline, dtype=np.float64)
    b = np.asarray(variant, dtype=np.float64)
    if a.shape != b.shape:
        raise TausynthError(f"paired samples differ in length: {a.size} and {b.size}")
    with np.errstate(invalid="ignore"):  # inf - inf (two perfect PSNRs) is a dropped pair, not a warning
        d = b - a
    ok = np.isfinite(d)
    a, b, d = a[ok], b[ok], d[ok]
    n_nonzero = int(np.count_nonzero(d))
    out: dict[str, Any] = {
        "n": int(d.size), "n_dropped": int((~ok).sum()),
        "mean_baseline": float(a.mean()) if a.size else math.nan,
        "mean_variant": float(b.mean()) if b.size else math.nan,
        "mean_diff": float(d.mean()) if d.size else math.nan,
        "median_diff": float(np.median(d)) if d.size else math.nan,
        "min_p": min(1.0, 2.0 ** (1 - n_nonzero)) if n_nonzero else 1.0,
    }
    base = abs(out["mean_baseline"])
    out["relative_diff"] = out["mean_diff"] / base if d.size and base > 0 else math.nan
    if d.size == 0:
        out["statistic"], out["p_value"] = math.nan, math.nan
    elif n_nonzero == 0:
        out["statistic"], out["p_value"] = 0.0, 1.0
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # scipy notes the normal approximation with ties
            res = stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided")
        out["statistic"], out["p_value"] = float(res.statistic), float(res.pvalue)
    return out


def bootstrap_ci(
    baseline: Sequence[float],
    variant: Sequence[float],
    statistic: Literal["difference", "relative"] = "relative",
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean paired difference or the relative difference of means.

    Subjects are resampled with replacement (pairs kept together); ``"relative"`` is
    ``(mean(variant) − mean(baseline)) / |mean(baseline)|``. Deterministic for a given ``seed``.
    Returns ``(nan, nan)`` for fewer than 2 finite pairs.
    """
    if statistic not in ("difference", "relative"):
        raise TausynthError(f"statistic {statistic!r} not allowed; use 'difference' or 'relative'")
    a = np.asarray(baseline, dtype=np.float64)
    b = np.asarray(variant, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if a.size < 2:
        return math.nan, math.nan
    idx = np.random.default_rng(seed).integers(0, a.size, size=(n_boot, a.size))
    ma, mb = a[idx].mean(axis=1), b[idx].mean(axis=1)
    if statistic == "difference":
        values = mb - ma
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            values = (mb - ma) / np.abs(ma)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.nanquantile(values, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def rank_subjects(
    df: pd.DataFrame, metric: str, k: int = 1, higher_is_better: bool = True, subject_col: str = SUBJECT
) -> tuple[list[str], list[str]]:
    """The ``k`` best- and ``k`` worst-predicted subjects by a per-subject metric (seed-averaged).

    Ties are broken by subject id so the choice is deterministic. Returns ``(best, worst)``, best
    first in each list.
    """
    _require(df, [subject_col, metric])
    means = df.groupby(subject_col)[metric].mean()
    sign = -1.0 if higher_is_better else 1.0
    best = sorted(means.index, key=lambda s: (sign * means[s], str(s)))
    worst = sorted(means.index, key=lambda s: (-sign * means[s], str(s)))
    k = max(0, min(int(k), len(best)))
    return [str(s) for s in best[:k]], [str(s) for s in worst[:k]]
