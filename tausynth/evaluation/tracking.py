"""Does a run's synthetic tau track the subject's real tau? One verdict per run, in words.

A synthesis model can score well on voxel metrics by predicting the cohort's average brain; that
image carries no subject's disease. What a tau-PET reader needs is between-subject agreement in
the Alzheimer-relevant regions. For each run (and baseline) this module reports, on one region
(meta-temporal by default):

* Pearson r between synthetic and real regional SUVR across test subjects, with its p-value;
* the synthetic and real means of AD and CN subjects;
* the linearly weighted Cohen's κ between the synthetic PET's imaging Braak stage and the true
  stage (the cohort's neuropathological stage where known, else the real PET's imaging stage);

and a verdict: ``tracks`` (r > 0 with p < α, and the synthetic AD mean above the CN mean),
``anti-correlated`` (r < 0 with p < α), or ``does not track``. The regional-regression baseline
(:mod:`tausynth.evaluation.regional`) gives the bound the sentences name.

Examples
--------
>>> import pandas as pd
>>> agreement = pd.DataFrame({
...     "run": ["a"] * 3, "region": ["metatemporal"] * 3, "group": ["all", "AD", "CN"], "n": [20, 5, 8],
...     "pearson_r": [0.6, 0.5, 0.1], "pearson_p": [0.005, 0.4, 0.8],
...     "real_mean": [1.5, 2.1, 1.2], "synthetic_mean": [1.4, 1.6, 1.3]})
>>> table = tracking_table(agreement)
>>> table.loc[0, "verdict"]
'tracks'
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import cohen_kappa_score

from tausynth.evaluation.claims import ALPHA

__all__ = ["BOUND_RUN", "TRACKING_VERDICTS", "TRACKING_FLOOR", "tracking_sentences", "tracking_table", "variant_tracking"]

BOUND_RUN = "baseline-regional-regression"
"""The run whose regional r bounds what the T1 carries about tau."""
TRACKING_VERDICTS: tuple[str, ...] = ("tracks", "anti-correlated", "does not track")
"""The possible verdicts, in the order of :func:`tracking_table`'s rule."""
TRACKING_FLOOR = 0.5
"""A variant meets the study's bar when its mean r is at least this, or within
:data:`TRACKING_MARGIN` of the regional-regression bound, whichever is lower."""
TRACKING_MARGIN = 0.15


def _group_mean(rows: pd.DataFrame, group: str, column: str) -> float:
    hit = rows.loc[rows["group"] == group, column]
    return float(hit.iloc[0]) if len(hit) else math.nan


def _stage_kappa(staging: pd.DataFrame | None, run: str) -> float:
    if staging is None or staging.empty or "run" not in staging:
        return math.nan
    s = staging[staging["run"] == run]
    truth = "stage_true" if "stage_true" in s and s["stage_true"].notna().all() else "stage_real"
    s = s.dropna(subset=[truth, "stage_synthetic"])
    if len(s) < 2:
        return math.nan
    a, b = s[truth].astype(int).to_numpy(), s["stage_synthetic"].astype(int).to_numpy()
    if len(np.union1d(a, b)) < 2:
        return math.nan  # one stage for everybody: κ is 0/0
    return float(cohen_kappa_score(a, b, weights="linear"))


def _verdict(r: float, p: float, ad: float, cn: float, alpha: float) -> str:
    if math.isfinite(r) and math.isfinite(p) and p < alpha:
        if r > 0 and (not (math.isfinite(ad) and math.isfinite(cn)) or ad > cn):
            return "tracks"
        if r < 0:
            return "anti-correlated"
    return "does not track"


def tracking_table(
    agreement: pd.DataFrame,
    staging: pd.DataFrame | None = None,
    region: str = "metatemporal",
    alpha: float = ALPHA,
) -> pd.DataFrame:
    """One row per run: r, p, AD and CN means (synthetic and real), staging κ, and the verdict.

    Parameters
    ----------
    agreement : pandas.DataFrame
        Regional agreement rows with a ``run`` column (``Collection.agreement``).
    staging : pandas.DataFrame, optional
        Staging rows with a ``run`` column (``Collection.staging``); without it κ is NaN.
    region : str, default="metatemporal"
    alpha : float, default=0.05
        Significance level of the verdict.

    Returns
    -------
    pandas.DataFrame
        Columns ``run``, ``n``, ``pearson_r``, ``pearson_p``, ``synthetic_AD``, ``synthetic_CN``,
        ``real_AD``, ``real_CN``, ``stage_kappa``, ``verdict``.
    """
    columns = ["run", "n", "pearson_r", "pearson_p", "synthetic_AD", "synthetic_CN", "real_AD", "real_CN",
               "stage_kappa", "verdict"]
    if agreement.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for run, a in agreement[agreement["region"] == region].groupby("run", sort=True):
        overall = a[a["group"] == "all"]
        if overall.empty:
            continue
        r, p = float(overall["pearson_r"].iloc[0]), float(overall["pearson_p"].iloc[0])
        ad, cn = _group_mean(a, "AD", "synthetic_mean"), _group_mean(a, "CN", "synthetic_mean")
        rows.append({"run": run, "n": int(overall["n"].iloc[0]), "pearson_r": r, "pearson_p": p,
                     "synthetic_AD": ad, "synthetic_CN": cn, "real_AD": _group_mean(a, "AD", "real_mean"),
                     "real_CN": _group_mean(a, "CN", "real_mean"), "stage_kappa": _stage_kappa(staging, str(run)),
                     "verdict": _verdict(r, p, ad, cn, alpha)})
    return pd.DataFrame(rows, columns=columns)


def _fmt(x: float, spec: str = ".2f") -> str:
    return format(x, spec) if math.isfinite(x) else "n/a"


def tracking_sentences(table: pd.DataFrame, region_label: str = "meta-temporal", runs: Sequence[str] | None = None) -> list[str]:
    """One sentence per run of :func:`tracking_table`, naming the regional-regression bound.

    Examples
    --------
    >>> t = pd.DataFrame([{"run": "unet", "n": 20, "pearson_r": -0.5, "pearson_p": 0.02, "synthetic_AD": 1.1,
    ...     "synthetic_CN": 1.2, "real_AD": 2.0, "real_CN": 1.2, "stage_kappa": 0.0, "verdict": "anti-correlated"}])
    >>> tracking_sentences(t)[0].split(":")[0]
    '`unet` is anti-correlated with the real tau'
    """
    bound = table[table["run"] == BOUND_RUN]
    bound_text = (f" (the regional-regression bound from the T1 alone: r = {_fmt(bound['pearson_r'].iloc[0])})"
                  if len(bound) else "")
    out = []
    for _, row in table.iterrows():
        if runs is not None and row["run"] not in runs:
            continue
        head = {"tracks": "tracks the real tau", "anti-correlated": "is anti-correlated with the real tau",
                "does not track": "does not track the real tau"}[row["verdict"]]
        p = row["pearson_p"]
        out.append(
            f"`{row['run']}` {head}: {region_label} r = {_fmt(row['pearson_r'])} "
            f"(p = {_fmt(p, '.2g')}, n = {row['n']}){bound_text if row['run'] != BOUND_RUN else ''}; "
            f"synthetic SUVR AD {_fmt(row['synthetic_AD'])} vs CN {_fmt(row['synthetic_CN'])} "
            f"(real {_fmt(row['real_AD'])} vs {_fmt(row['real_CN'])}); "
            f"Braak-stage weighted κ = {_fmt(row['stage_kappa'])}."
        )
    return out


def variant_tracking(
    table: pd.DataFrame, runs: pd.DataFrame, by: Sequence[str] = ("model", "perceptual", "normalization")
) -> pd.DataFrame:
    """The seed spread of each variant's r, against the bar set by the regional-regression bound.

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`tracking_table` of the runs (the bound's row, when present, sets the bar).
    runs : pandas.DataFrame
        ``Collection.runs``: the variant columns of each run.
    by : sequence of str
        The columns that make a variant (the seed is what varies within one).

    Returns
    -------
    pandas.DataFrame
        One row per variant: ``n_seeds``, ``r_mean``, ``r_sd``, ``r_min``, ``r_max``, ``r_seeds``
        (each seed's r), ``tracks`` (seeds whose verdict is *tracks*), ``bar`` (min of
        :data:`TRACKING_FLOOR` and bound − :data:`TRACKING_MARGIN`), ``meets_bar`` and ``oracle``
        (a min–max variant's SUVR needs the real PET's range, so its r is an upper bound, not a
        result: ``meets_bar`` is False for it).
    """
    bound = table.loc[table["run"] == BOUND_RUN, "pearson_r"]
    bar = min(TRACKING_FLOOR, float(bound.iloc[0]) - TRACKING_MARGIN) if len(bound) else TRACKING_FLOOR
    merged = table.merge(runs[["run", *by, "seed"]], on="run", how="inner")
    rows = []
    for key, g in merged.groupby(list(by), sort=True):
        g = g.sort_values("seed")
        r = g["pearson_r"].astype(float)
        rows.append({**dict(zip(by, key, strict=True)), "n_seeds": len(g), "r_mean": r.mean(),
                     "r_sd": r.std(ddof=1) if len(g) > 1 else math.nan, "r_min": r.min(), "r_max": r.max(),
                     "r_seeds": ", ".join(f"s{s}: {v:.2f}" for s, v in zip(g["seed"], r, strict=True)),
                     "tracks": int((g["verdict"] == "tracks").sum()), "bar": bar})
        oracle = "normalization" in g and bool((g["normalization"] == "minmax").any())
        rows[-1].update(meets_bar=bool(r.mean() >= bar) and not oracle, oracle=oracle)
    return pd.DataFrame(rows)
