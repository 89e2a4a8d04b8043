"""The results chapter's tables: one per paper comparison (E1–E4), baselines and limitations.

Every function takes the tables of :func:`tausynth.evaluation.collect.collect_runs` and returns a
:class:`pandas.DataFrame` (or text built from numbers); none of them decides a claim — that is
:mod:`tausynth.evaluation.claims`. A variant that the profile did not train is shown as
:data:`NOT_RUN` instead of being dropped, so a reader sees the whole design.

E1
    U-Net family (U-Net, UNETR, SwinUNETR) × perceptual term (none, 2D, 2.5D, 3D, cyclic 2.5D),
    by-manufacturer standardization; mean ± SD over test subjects per metric, and paired
    comparisons of cyclic against every other term per model.
E2
    Pix2Pix and CycleGAN with and without the cyclic loss: means, relative change and the
    paper's stated size (SSIM ≥ 2 %, PSNR ≥ 3 %), paired test.
E3
    Standardization against min–max per (model, loss): both in SUVR space (the min–max run
    through the **oracle** inverse, an upper bound) and the min–max run in its own space.
E4
    Regional agreement per run in the AD-relevant regions (Pearson r, ICC, MAE, Bland–Altman),
    tau-positivity κ at the stated cut-point.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from tausynth.data.manifest import scan_label
from tausynth.errors import TausynthError
from tausynth.evaluation.claims import AD_REGIONS, ALPHA, GANS, U_NET_FAMILY, compare, rows_where
from tausynth.evaluation.collect import Collection, suvr_metrics
from tausynth.evaluation.tables import format_mean_sd, rank_subjects, seed_spread, summary_table
from tausynth.io import PathLike, load_nifti
from tausynth.training.run import RunPaths

__all__ = [
    "E1_LOSSES",
    "NOT_RUN",
    "baseline_comparison",
    "baseline_summary",
    "best_worst_cases",
    "budget_table",
    "e1_tables",
    "e1_tests",
    "e2_table",
    "e3_table",
    "e4_summary",
    "e4_table",
    "limitations",
    "pick_reference_run",
    "seed_table",
    "variant_grid",
]

NOT_RUN = "not run in this profile"
E1_LOSSES: tuple[str, ...] = ("none", "2d", "2.5d", "3d", "cyclic")
E2_SIZES: dict[str, float] = {"ssim": 0.02, "psnr": 0.03}
_TEST_COLUMNS = ("n", "mean_baseline", "mean_variant", "improvement", "relative_improvement", "p_value", "min_p",
                 "status")


def variant_grid(
    metrics: pd.DataFrame,
    metric: str,
    rows: tuple[str, Sequence[object]],
    cols: tuple[str, Sequence[object]],
    fixed: Mapping[str, object] | None = None,
    digits: int = 3,
) -> pd.DataFrame:
    """A rows × columns grid of ``"mean ± SD"`` of ``metric`` over (seed-averaged) test subjects.

    Parameters
    ----------
    metrics : pandas.DataFrame
        Per-subject metric table with the variant columns.
    metric : str
    rows, cols : (column, values)
        Variant column and the values to show, in order; values missing from the table are
        shown as :data:`NOT_RUN`. Values present but not listed are appended.
    fixed : mapping, optional
        Filter applied first (e.g. ``{"normalization": "standardize"}``).
    """
    (rcol, rvals), (ccol, cvals) = rows, cols
    df = rows_where(metrics, **dict(fixed or {}))
    if not df.empty:
        missing = [c for c in (rcol, ccol, metric, "subject_id") if c not in df]
        if missing:
            raise TausynthError(f"metric table has no column(s) {', '.join(missing)}")
    present = df[[rcol, ccol]].drop_duplicates() if not df.empty else pd.DataFrame(columns=[rcol, ccol])
    rvals = [*rvals, *sorted(set(present[rcol]) - set(rvals), key=str)]
    cvals = [*cvals, *sorted(set(present[ccol]) - set(cvals), key=str)]
    cells = {}
    if not df.empty:
        table = summary_table(df, [rcol, ccol], [metric], digits=digits)
        cells = {(r[rcol], r[ccol]): f"{r[metric]} (n={r['n_subjects']})" for _, r in table.iterrows()}
    grid = pd.DataFrame([[cells.get((r, c), NOT_RUN) for c in cvals] for r in rvals],
                        index=pd.Index(rvals, name=rcol), columns=pd.Index(cvals, name=ccol))
    return grid


def e1_tables(
    metrics: pd.DataFrame, metric_names: Sequence[str] = ("ssim", "psnr"), normalization: str = "standardize"
) -> dict[str, pd.DataFrame]:
    """E1: one grid per metric, U-Net family (rows) × perceptual term (columns), SUVR space."""
    m = suvr_metrics(metrics)
    m = m[m["model"].isin(U_NET_FAMILY)] if not m.empty else m
    return {name: variant_grid(m, name, ("model", U_NET_FAMILY), ("perceptual", E1_LOSSES),
                               fixed={"normalization": normalization}) for name in metric_names}


def _tidy(comps: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    if comps.empty:
        return comps
    cols = [*keys, "metric", "baseline", "variant", *[c for c in _TEST_COLUMNS if c in comps]]
    return comps[cols].reset_index(drop=True)


def e1_tests(
    metrics: pd.DataFrame,
    metric_names: Sequence[str] = ("ssim", "psnr"),
    normalization: str = "standardize",
    alpha: float = ALPHA,
) -> pd.DataFrame:
    """E1 paired comparisons: for every U-Net-family model with a cyclic run, cyclic against each other term present.

    Columns: ``model, metric, baseline`` (the other term), ``variant`` (cyclic), ``n`` (shared
    subjects), means, ``improvement`` (positive = cyclic better), ``relative_improvement``,
    ``p_value`` (two-sided Wilcoxon), ``min_p`` (the smallest p the exact test can reach with n
    pairs) and ``status`` (see :func:`tausynth.evaluation.claims.compare`).
    """
    m = rows_where(suvr_metrics(metrics), normalization=normalization)
    if m.empty:
        return pd.DataFrame()
    m = m[m["model"].isin(U_NET_FAMILY)]
    parts = []
    for model in sorted(set(m.loc[m["perceptual"] == "cyclic", "model"])):
        sub = m[m["model"] == model]
        for other in [p for p in E1_LOSSES if p != "cyclic" and p in set(sub["perceptual"])]:
            parts.append(compare(sub, "perceptual", other, "cyclic", metric_names, by=["model"], alpha=alpha))
    return _tidy(pd.concat(parts, ignore_index=True), ["model"]) if parts else pd.DataFrame()


def e2_table(
    metrics: pd.DataFrame,
    models: Sequence[str] = GANS,
    sizes: Mapping[str, float] | None = None,
    normalization: str = "standardize",
    alpha: float = ALPHA,
) -> pd.DataFrame:
    """E2: each GAN without and with the cyclic loss, per metric.

    Columns: ``model, metric, none, cyclic`` (mean ± SD or :data:`NOT_RUN`), ``relative change
    (%)`` of the means, ``claimed (%)`` (the paper's stated size), ``n`` (shared subjects),
    ``p_value`` and ``status``.
    """
    sizes = dict(sizes or E2_SIZES)
    m = rows_where(suvr_metrics(metrics), normalization=normalization)
    rows = []
    for model in models:
        sub = m[m["model"] == model] if not m.empty else m
        for metric, size in sizes.items():
            row: dict[str, Any] = {"model": model, "metric": metric}
            for loss in ("none", "cyclic"):
                v = sub[sub["perceptual"] == loss] if not sub.empty else sub
                if v.empty:
                    row[loss] = NOT_RUN
                else:
                    s = summary_table(v, [], [metric]).iloc[0]
                    row[loss] = s[metric]
            row["claimed (%)"] = 100 * size
            if NOT_RUN in (row["none"], row["cyclic"]):
                row.update({"relative change (%)": math.nan, "n": 0, "p_value": math.nan, "status": "missing"})
            else:
                c = compare(sub, "perceptual", "none", "cyclic", [metric], min_relative={metric: size},
                            alpha=alpha).iloc[0]
                row.update({"relative change (%)": 100 * c["relative_improvement"], "n": int(c["n"]),
                            "p_value": c["p_value"], "status": c["status"]})
            rows.append(row)
    return pd.DataFrame(rows, columns=["model", "metric", "none", "cyclic", "relative change (%)", "claimed (%)",
                                       "n", "p_value", "status"])


def e3_table(
    metrics: pd.DataFrame,
    metric_names: Sequence[str] = ("ssim", "psnr"),
    alpha: float = ALPHA,
) -> pd.DataFrame:
    """E3: by-manufacturer standardization against min–max, per (model, loss) and metric.

    Columns: ``model, perceptual, metric``, ``standardize (SUVR)``, ``minmax (SUVR, oracle)``
    (the min–max prediction put back to SUVR with the *real* PET's min and max: an upper bound
    no deployed model can reach), ``minmax (own space)`` (its [0, 1] space, data range 1),
    ``n``, ``p_value`` and ``status`` of the paired test of the two SUVR columns.
    """
    if metrics.empty or "normalization" not in metrics:
        return pd.DataFrame()
    pairs = metrics[["model", "perceptual"]].drop_duplicates()
    rows = []
    for _, (model, loss) in pairs.sort_values(["model", "perceptual"]).iterrows():
        sub = metrics[(metrics["model"] == model) & (metrics["perceptual"] == loss)]
        norms = set(sub["normalization"])
        if not norms & {"standardize", "minmax"}:
            continue
        for metric in metric_names:
            row: dict[str, Any] = {"model": model, "perceptual": loss, "metric": metric}
            for col, norm, kind in (("standardize (SUVR)", "standardize", "suvr"),
                                    ("minmax (SUVR, oracle)", "minmax", "suvr_oracle"),
                                    ("minmax (own space)", "minmax", "minmax")):
                v = sub[(sub["normalization"] == norm) & (sub["kind"] == kind)]
                row[col] = summary_table(v, [], [metric]).iloc[0][metric] if not v.empty else NOT_RUN
            if {"standardize", "minmax"} <= norms:
                c = compare(suvr_metrics(sub), "normalization", "minmax", "standardize", [metric], alpha=alpha).iloc[0]
                row.update({"n": int(c["n"]), "p_value": c["p_value"], "status": c["status"]})
            else:
                row.update({"n": 0, "p_value": math.nan, "status": "missing"})
            rows.append(row)
    return pd.DataFrame(rows)


def e4_table(
    agreement: pd.DataFrame,
    positivity: pd.DataFrame | None = None,
    regions: Sequence[str] = AD_REGIONS,
    group: str = "all",
    digits: int = 3,
) -> pd.DataFrame:
    """E4: regional agreement of each run in the AD-relevant regions, for one diagnosis ``group``.

    Columns: the variant columns, ``region``, ``n``, ``pearson_r``, ``icc`` (form in
    ``icc_form``), ``mae``, ``bias``, ``limits of agreement`` and, when ``positivity`` is given,
    ``kappa`` and ``cut_point`` of the meta-temporal tau-positivity agreement (same for every region of
    a run).
    """
    if agreement.empty:
        return pd.DataFrame()
    a = agreement[(agreement["group"] == group) & agreement["region"].isin(regions)].copy()
    a["region"] = pd.Categorical(a["region"], categories=list(regions), ordered=True)

    def loa(r: pd.Series) -> str:
        if not (math.isfinite(r["loa_low"]) and math.isfinite(r["loa_high"])):
            return "n/a (n < 2)"
        return f"[{r['loa_low']:+.{digits}f}, {r['loa_high']:+.{digits}f}]"

    a["limits of agreement"] = a.apply(loa, axis=1) if not a.empty else []
    keys = [c for c in ("run", "model", "perceptual", "normalization", "seed") if c in a]
    cols = [*keys, "region", "n", "pearson_r", "icc", "icc_form", "mae", "bias", "limits of agreement"]
    out = a[cols]
    if positivity is not None and not positivity.empty:
        k = positivity[positivity["group"] == group][[*keys, "kappa", "cut_point"]]
        out = out.merge(k, on=keys, how="left")
    return out.sort_values([*keys, "region"]).reset_index(drop=True)


def seed_table(
    metrics: pd.DataFrame, by: Sequence[str] = ("model", "perceptual", "normalization"),
    metric_names: Sequence[str] = ("ssim", "psnr"),
) -> pd.DataFrame:
    """Spread between training seeds (per-seed cohort means) of the variants trained with several seeds; empty otherwise."""
    m = suvr_metrics(metrics)
    if m.empty or "seed" not in m:
        return pd.DataFrame()
    counts = m.groupby(list(by))["seed"].nunique()
    several = counts[counts > 1].index
    if len(several) == 0:
        return pd.DataFrame()
    keep = m.set_index(list(by)).index.isin(several)
    table = seed_spread(m[keep], list(by), list(metric_names))
    return table[[*by, "n_seeds", *[f"{x}_seeds" for x in metric_names]]]


def baseline_comparison(
    metrics: pd.DataFrame,
    baselines: pd.DataFrame,
    metric_names: Sequence[str] = ("ssim", "psnr", "mae"),
    alpha: float = ALPHA,
) -> pd.DataFrame:
    """Each run against each trivial baseline on the subjects they share (SUVR space).

    Columns: ``run``, ``baseline`` (``baseline-mean-image``, ``baseline-t1-linear``), ``metric``,
    run and baseline means, ``improvement`` (positive = the run is better), ``n``, ``p_value``
    and ``status`` (``supports`` = significantly better than the baseline).
    """
    m, b = suvr_metrics(metrics), suvr_metrics(baselines)
    if m.empty or b.empty:
        return pd.DataFrame()
    rows = []
    for run in sorted(set(m["run"])):
        for base in sorted(set(b["run"])):
            both = pd.concat([m[m["run"] == run], b[b["run"] == base]], ignore_index=True)
            rows.append(compare(both, "run", base, run, metric_names, alpha=alpha))
    out = pd.concat(rows, ignore_index=True).rename(
        columns={"variant": "run", "mean_variant": "run_mean", "mean_baseline": "baseline_mean"})
    return out[["run", "baseline", "metric", "run_mean", "baseline_mean", "improvement", "n", "p_value", "status"]]


def baseline_summary(comparison: pd.DataFrame) -> pd.DataFrame:
    """One row per run, one column per baseline: the metrics on which the run is significantly better or worse.

    ``comparison`` is :func:`baseline_comparison`'s table (one row per run, baseline and metric).

    Examples
    --------
    >>> rows = [("u", "baseline-mean-image", m, s) for m, s in (("ssim", "neutral"), ("psnr", "supports"),
    ...                                                          ("mae", "contradicts"))]
    >>> table = pd.DataFrame(rows, columns=["run", "baseline", "metric", "status"])
    >>> baseline_summary(table).loc["u", "vs mean-image"]
    'better: PSNR; worse: MAE'
    """
    if comparison.empty:
        return pd.DataFrame()

    def verdict(group: pd.DataFrame) -> str:
        parts = []
        for status, word in (("supports", "better"), ("contradicts", "worse")):
            metrics = [m.upper() for m in group.loc[group["status"] == status, "metric"]]
            if metrics:
                parts.append(f"{word}: {', '.join(metrics)}")
        return "; ".join(parts) or "no significant difference"

    out = comparison.groupby(["run", "baseline"], sort=True)[["metric", "status"]].apply(verdict).unstack("baseline")
    out.columns = [f"vs {c.removeprefix('baseline-')}" for c in out.columns]
    out.columns.name = None
    return out


def e4_summary(e4: pd.DataFrame) -> pd.DataFrame:
    """E4 in one row per run: Pearson r of synthetic and real SUVR per region, and the positivity κ.

    ``e4`` is :func:`e4_table`'s table.

    Examples
    --------
    >>> e4 = pd.DataFrame({"run": ["u", "u"], "region": ["braak1", "metatemporal"], "pearson_r": [0.1, 0.5],
    ...                    "kappa": [0.2, 0.2]})
    >>> e4_summary(e4).round(2).to_dict("index")
    {'u': {'r braak1': 0.1, 'r metatemporal': 0.5, 'κ tau-positive': 0.2}}
    >>> list(e4_summary(e4.assign(pearson_r=float("nan"))).columns)  # too few subjects for r
    ['r braak1', 'r metatemporal', 'κ tau-positive']
    """
    if e4.empty:
        return pd.DataFrame()
    regions = list(dict.fromkeys(e4["region"].astype(str)))
    # a pivot, not pivot_table: r is NaN with too few subjects, and such a region keeps its column
    out = e4.assign(region=e4["region"].astype(str)).drop_duplicates(["run", "region"]).pivot(
        index="run", columns="region", values="pearson_r").reindex(columns=regions)
    out.columns = [f"r {c}" for c in out.columns]
    if "kappa" in e4:
        out["κ tau-positive"] = e4.groupby("run")["kappa"].first()
    out.columns.name = None
    return out


def limitations(collection: Collection, alpha: float = ALPHA, baselines: pd.DataFrame | None = None) -> list[str]:
    """Sentences, each computed from the collection, on why verdicts may be inconclusive here.

    Covers the number of test subjects and the smallest p-value the exact Wilcoxon test can reach
    with it, the training length actually done (and which runs stopped at a time bound), the
    perceptual-loss weights used, whether the data are the synthetic phantom and, given the
    trivial baselines' per-subject ``baselines`` metrics, which runs do not beat them on mean SSIM.
    """
    notes = []
    m = suvr_metrics(collection.metrics)
    if m.empty:
        return ["No run has been evaluated, so there is nothing to compare."]
    n = m.groupby("run")["subject_id"].nunique()
    lo, hi = int(n.min()), int(n.max())
    min_p = 2.0 ** (1 - lo) if lo else 1.0
    count = f"{lo}" if lo == hi else f"{lo}–{hi}"
    reach = ("so no paired test can reach significance however large the effect" if min_p >= alpha
             else "enough for significance only with a consistent effect")
    notes.append(f"Each run is scored on {count} test subject(s). With {lo} pairs the smallest two-sided p-value "
                 f"an exact Wilcoxon test can give is {min_p:.3g} (alpha = {alpha:g}), {reach}.")
    runs = collection.runs
    if {"epochs_done", "max_epochs"} <= set(runs.columns) and runs["epochs_done"].notna().any():
        done = runs["epochs_done"].dropna().astype(int)
        span = f"{done.min()}" if done.min() == done.max() else f"{done.min()}–{done.max()}"
        planned = runs["max_epochs"].dropna().astype(int)
        cap = f" of at most {planned.max()}" if len(planned) else ""
        notes.append(f"Training lasted {span} epoch(s){cap} per run; the paper trains up to 1000 epochs with early "
                     f"stopping, so short runs compare networks far from convergence.")
    if "stop_reason" in runs and (runs["stop_reason"] == "time_limit").any():
        bounded = runs[runs["stop_reason"] == "time_limit"]
        parts = [f"{r['run']} ({int(r['epochs_done'])} epoch(s), {int(r['steps_done'])} steps)"
                 if pd.notna(r.get("steps_done")) and pd.notna(r.get("epochs_done")) else str(r["run"])
                 for _, r in bounded.iterrows()]
        notes.append(f"Stopped at their time bound (`training.max_minutes`): {', '.join(parts)}.")
    if baselines is not None and not baselines.empty:
        bc = baseline_comparison(collection.metrics, baselines)
        worse = bc[(bc["metric"] == "ssim") & (bc["improvement"] <= 0)]
        if not worse.empty:
            which = "; ".join(f"{run} (SSIM {g['run_mean'].iloc[0]:.3f} vs "
                              + ", ".join(f"{b.removeprefix('baseline-')} {v:.3f}" for b, v in zip(g["baseline"], g["baseline_mean"], strict=True))
                              + ")" for run, g in worse.groupby("run", sort=True))
            notes.append(f"Not better than every trivial baseline on mean SSIM: {which}. "
                         "These networks did not learn more than the average brain in this training budget.")
        else:
            notes.append("Every run beats both trivial baselines on mean SSIM.")
    if "perceptual_weights" in runs and (runs["perceptual_weights"] == "random").any():
        k = int((runs["perceptual_weights"] == "random").sum())
        notes.append(f"{k} run(s) used a seeded, uncalibrated *random* feature network for the perceptual loss: "
                     "its features are tiny, so the term is a vanishing part of the loss, not the paper's.")
    if "perceptual_weights" in runs:
        offline = runs[runs["perceptual_weights"].astype(str).str.match(r"^(calibrated|indomain)")]
        if not offline.empty:
            kinds = ", ".join(sorted(set(offline["perceptual_weights"].astype(str))))
            notes.append(f"{len(offline)} run(s) used an offline perceptual network ({kinds}) because the pretrained "
                         "weights were not cached: their perceptual term has a real magnitude but measures other "
                         "features than the paper's ImageNet VGG16 (see the loss chapter).")
    notes.extend(_perceptual_share_notes(runs))
    roi = collection.roi
    if not roi.empty and "braak" in roi and roi["braak"].notna().all():
        notes.append("The data are the synthetic phantom cohort (its true Braak stages are known), not ADNI: "
                     "the verdicts test this code on this cohort, not the paper's numbers.")
    return notes


PERCEPTUAL_SHARE_FLOOR = 0.01
"""A run whose perceptual term stayed below this share of its training loss trained, in effect, without it."""


def _perceptual_share_notes(runs: pd.DataFrame) -> list[str]:
    """Which runs with a perceptual term kept it below :data:`PERCEPTUAL_SHARE_FLOOR` of the loss."""
    if "perceptual_share_min" not in runs or "perceptual" not in runs:
        return []
    with_term = runs[(runs["perceptual"] != "none") & runs["perceptual_share_last"].notna()]
    if with_term.empty:
        return []
    low = with_term[with_term["perceptual_share_last"] < PERCEPTUAL_SHARE_FLOOR]
    span = (f"{100 * with_term['perceptual_share_last'].min():.1f}–{100 * with_term['perceptual_share_last'].max():.1f} %")
    if low.empty:
        return [f"The perceptual term is a real part of every run's loss: its weighted share of the training loss at the "
                f"last epoch is {span} across the {len(with_term)} run(s) that have one (floor {100 * PERCEPTUAL_SHARE_FLOOR:g} %)."]
    which = ", ".join(f"{r['run']} ({100 * r['perceptual_share_last']:.3g} %)" for _, r in low.iterrows())
    return [f"**Flagged:** the perceptual term stayed below {100 * PERCEPTUAL_SHARE_FLOOR:g} % of the training loss in "
            f"{which}: these runs trained, in effect, on MSE and SSIM alone, so comparing them with the no-perceptual "
            "run tests nothing."]


def pick_reference_run(runs: pd.DataFrame, requested: str = "") -> str:
    """Name of the run used for per-subject and per-region figures.

    ``requested`` (a run name or folder) if given, else the U-Net cyclic standardization run with
    the lowest seed, else the first run.
    """
    if runs.empty:
        raise TausynthError("no runs to choose a reference run from")
    if requested:
        name = Path(str(requested)).name
        if name not in set(runs["run"]):
            raise TausynthError(f"reference run {requested!r} is not among the runs: {', '.join(runs['run'])}")
        return name
    pref = runs[(runs["model"] == "unet") & (runs["perceptual"] == "cyclic") & (runs["normalization"] == "standardize")]
    if pref.empty:
        return str(runs.iloc[0]["run"])
    return str(pref.sort_values(["seed", "run"]).iloc[0]["run"])


def _prediction_rows(run_dir: Path, split: str, manifest: PathLike | None) -> tuple[dict[str, str], dict[str, Any]]:
    """Each subject's synthetic SUVR file, and its manifest row, keyed by ``"id"`` or ``"id (session)"``."""
    from tausynth.data.manifest import load_manifest
    from tausynth.evaluation.collect import run_manifest

    table = pd.read_csv(RunPaths(run_dir).predictions_table(split), dtype={"subject_id": str, "session": str},
                        keep_default_na=False)
    table = table[table["kind"].isin(("suvr", "suvr_oracle"))]
    frame = load_manifest(run_manifest(run_dir, manifest))
    pred_of = {scan_label(r["subject_id"], r["session"]): r["path"] for _, r in table.iterrows()}
    rows = {scan_label(str(r["subject_id"]), str(r["session"])): r for _, r in frame.iterrows()}
    return pred_of, rows


def subject_case(
    run_dir: PathLike, subject: str, title: str, split: str = "test", manifest: PathLike | None = None,
) -> dict[str, Any]:
    """One subject of a run as a case for the figures and viewers: real and synthetic SUVR, T1, affine, mask, title.

    The case also names its ``subject`` and the ``paths`` of the T1, real and synthetic PET files.

    ``subject`` is the id, or ``"id (session)"`` for a subject with several scans.
    """
    run_dir = Path(run_dir)
    return _case(run_dir.name, *_prediction_rows(run_dir, split, manifest), subject, title)


def _case(run: str, pred_of: dict[str, str], rows: dict[str, Any], subject: str, title: str) -> dict[str, Any]:
    if subject not in pred_of or subject not in rows:
        raise TausynthError(f"run {run}: no prediction or manifest row for subject {subject}")
    row = rows[subject]
    real, affine, _ = load_nifti(row["pet"])
    case: dict[str, Any] = {"real": real, "synthetic": load_nifti(pred_of[subject])[0], "t1": load_nifti(row["t1"])[0],
                            "affine": affine, "title": title, "subject": subject,
                            "paths": {"t1": row["t1"], "real": row["pet"], "synthetic": pred_of[subject]}}
    if isinstance(row.get("mask", ""), str) and row.get("mask", ""):
        case["mask"] = load_nifti(row["mask"])[0] > 0.5
    return case


def best_worst_cases(
    run_dir: PathLike,
    metrics: pd.DataFrame,
    metric: str = "ssim",
    k: int = 1,
    split: str = "test",
    manifest: PathLike | None = None,
    higher_is_better: bool = True,
) -> list[dict[str, Any]]:
    """The ``k`` best- and ``k`` worst-predicted subjects of a run, as cases (:func:`subject_case`) for
    :func:`tausynth.plotting.evaluation.plot_subject_slices` and :func:`tausynth.plotting.viewers.subject_viewers`.
    """
    run_dir = Path(run_dir)
    m = suvr_metrics(metrics)
    m = m[m["run"] == run_dir.name]
    if m.empty:
        raise TausynthError(f"run {run_dir.name}: no per-subject SUVR metrics to rank")
    best, worst = rank_subjects(m, metric, k=k, higher_is_better=higher_is_better)
    pred_of, rows = _prediction_rows(run_dir, split, manifest)
    cases = []
    for tag, subjects in (("best", best), ("worst", worst)):
        for sid in subjects:
            score = float(m.loc[m["subject_id"] == sid, metric].mean())
            diagnosis = rows[sid].get("diagnosis", "") if sid in rows else ""
            title = f"{tag}: {sid} ({diagnosis})\n{metric} {format_mean_sd(score, math.nan)}"
            cases.append(_case(run_dir.name, pred_of, rows, sid, title))
    return cases


def budget_table(live: Collection, study: Collection, region: str = "metatemporal") -> pd.DataFrame:
    """The runs trained both live and in a study, side by side: what a larger budget changes.

    Runs are matched by name (model, loss, normalization, seed). Columns: ``run``, ``source``
    (``"live"``/``"study"``), ``steps_done``, mean ``ssim``, ``psnr``, ``mae`` over test subjects
    (SUVR space) and the ``region``'s Pearson ``r``.
    """
    from tausynth.evaluation.tracking import tracking_table

    shared = sorted(set(live.runs.get("run", [])) & set(study.runs.get("run", [])))
    rows = []
    for source, col in (("live", live), ("study", study)):
        m = suvr_metrics(col.metrics)
        track = tracking_table(col.agreement, region=region).set_index("run")
        for run in shared:
            steps = col.runs.loc[col.runs["run"] == run, "steps_done"]
            means = m[m["run"] == run][["ssim", "psnr", "mae"]].mean()
            rows.append({"run": run, "source": source, "steps_done": steps.iloc[0] if len(steps) else math.nan,
                         **means.to_dict(), "r": track["pearson_r"].get(run, math.nan)})
    out = pd.DataFrame(rows, columns=["run", "source", "steps_done", "ssim", "psnr", "mae", "r"])
    return out.sort_values(["run", "source"]).reset_index(drop=True)
