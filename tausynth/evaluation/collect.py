"""Evaluate many runs at once for the ROI and results chapters, reusing what is up to date.

:func:`collect_runs` takes run folders (found by :mod:`tausynth.evaluation.discovery`), has each
one's predictions and evaluation made or reused (:mod:`tausynth.evaluation.cache`), and
concatenates the tables with the variant columns ``run``, ``model``, ``perceptual``,
``normalization``, ``seed``: what :mod:`tausynth.evaluation.claims` and the E1–E4 tables
(:mod:`tausynth.evaluation.experiments`) consume. :func:`collect_baselines` does the same for the
trivial baselines.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from tausynth.errors import TausynthError
from tausynth.evaluation.agreement import POSITIVITY_CUT
from tausynth.evaluation.cache import (
    STAMP,
    TABLES,
    baseline_evaluation,
    ensure_predictions,
    evaluate_cached,
)
from tausynth.evaluation.discovery import (
    evaluation_dir,
    find_runs,
    perceptual_shares,
    resolve_runs,
    run_manifest,
    run_provenance,
    run_status,
)
from tausynth.evaluation.evaluate import SUVR_KINDS, RunEvaluation, run_variant
from tausynth.io import PathLike, file_lock

__all__ = [
    "STAMP",
    "TABLES",
    "VARIANT_COLUMNS",
    "Collection",
    "claim_verdicts",
    "collect_baselines",
    "collect_runs",
    "ensure_predictions",
    "evaluate_cached",
    "evaluation_dir",
    "find_runs",
    "resolve_runs",
    "run_manifest",
    "run_status",
    "suvr_metrics",
]
# ensure_predictions … run_status live in discovery and cache; they stay importable from here,
# where the chapters have always found them.

Log = Callable[[str], None] | None

VARIANT_COLUMNS: tuple[str, ...] = ("run", "model", "perceptual", "normalization", "seed")
"""Columns that identify a variant in every collected table."""
_PARTS = ("metrics", "roi", "agreement", "positivity", "staging")


class Collection(NamedTuple):
    """Tables of several evaluated runs, each with the variant columns.

    Attributes
    ----------
    metrics : pandas.DataFrame
        Per-subject voxel metrics, one row per (run, subject, prediction kind).
    roi : pandas.DataFrame
        Per-subject regional SUVR, one row per (run, subject, region).
    agreement, positivity : pandas.DataFrame
        Per-run agreement statistics per region and group; tau-positivity κ per group.
    staging : pandas.DataFrame
        Per-run imaging Braak stage of each subject from real and synthetic PET.
    runs : pandas.DataFrame
        One row per run: variant columns, ``path``, ``status``, ``epochs_done``, ``max_epochs``,
        ``perceptual_weights``, ``n_subjects``, ``predictions`` (``"reused"``/``"predicted"``)
        and ``evaluation`` (``"cached"``/``"evaluated"``).
    """

    metrics: pd.DataFrame
    roi: pd.DataFrame
    agreement: pd.DataFrame
    positivity: pd.DataFrame
    staging: pd.DataFrame
    runs: pd.DataFrame


def _with_variant(table: pd.DataFrame, variant: dict[str, Any]) -> pd.DataFrame:
    if table.empty:
        return table
    out = table.copy()
    for pos, (col, value) in enumerate((c, variant[c]) for c in VARIANT_COLUMNS):
        if col in out:
            out[col] = value
        else:
            out.insert(pos, col, value)
    return out


def _add_tables(parts: dict[str, list[pd.DataFrame]], ev: RunEvaluation, variant: dict[str, Any]) -> None:
    """Append one evaluation's five collected tables, each with the variant columns, to ``parts``."""
    for part, table in zip(_PARTS, (ev.per_subject, ev.per_region, ev.agreement, ev.positivity, ev.staging), strict=True):
        parts[part].append(_with_variant(table, variant))


def _concat(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def collect_runs(
    run_dirs: Sequence[PathLike],
    manifest: PathLike | None = None,
    split: str = "test",
    cut_point: float = POSITIVITY_CUT,
    force: bool = False,
    log: Log = print,
) -> Collection:
    """Predict where needed, evaluate each run (or reuse its cache) and concatenate the tables.

    Parameters
    ----------
    run_dirs : sequence of path
        Run folders (e.g. :func:`find_runs` of ``runs/<profile>``).
    manifest : path, optional
        Evaluate every run on this manifest; default each run's training manifest.
    split, cut_point, force, log
        See :func:`evaluate_cached`.

    Returns
    -------
    Collection

    Raises
    ------
    TausynthError
        With no runs, duplicate run names, or for the first run that cannot be evaluated
        (the message names it).
    """
    paths = [Path(p) for p in run_dirs]
    if not paths:
        raise TausynthError("no runs to collect; train some first (`tausynth train`) or pass run folders")
    names = [p.name for p in paths]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise TausynthError(f"run names must be unique (they key the tables): {', '.join(dupes)}")
    parts: dict[str, list[pd.DataFrame]] = {k: [] for k in _PARTS}
    runs = []
    for path in paths:
        variant = run_variant(path)
        try:
            ev, source = evaluate_cached(path, manifest, split, cut_point, force=force, log=log)
        except TausynthError as exc:
            raise TausynthError(f"run {path}: {exc}") from None
        prov = run_provenance(path)
        _add_tables(parts, ev, variant)
        schedule = prov.get("schedule", {}) if isinstance(prov.get("schedule"), dict) else {}
        runs.append({**variant, "path": str(path), "status": prov.get("status", "unknown"),
                     "epochs_done": prov.get("epochs_done"), "max_epochs": schedule.get("max_epochs"),
                     "steps_done": prov.get("steps_done"), "stop_reason": prov.get("stop_reason"),
                     "wall_seconds": prov.get("wall_seconds"),
                     "perceptual_weights": prov.get("perceptual_weights"),
                     **perceptual_shares(path),
                     "n_subjects": int(ev.per_subject["subject_id"].nunique()), **source})
    return Collection(**{k: _concat(v) for k, v in parts.items()}, runs=pd.DataFrame(runs))


def collect_baselines(
    manifest: PathLike,
    split: str = "test",
    out: PathLike = "baselines",
    cut_point: float = POSITIVITY_CUT,
    names: Sequence[str] | None = None,
    log: Log = print,
) -> Collection:
    """Write (or reuse) the trivial baselines' predictions and evaluate them like runs.

    See :mod:`tausynth.evaluation.baselines`. The variant columns read ``run = "baseline-<name>"``,
    ``model = <name>``, ``perceptual = normalization = "n/a"``, ``seed = 0``, so claim functions,
    which select standardization runs, never mistake a baseline for a model.
    """
    from tausynth.data.manifest import load_manifest
    from tausynth.evaluation.baselines import baseline_predictions, baseline_variant

    tables = baseline_predictions(manifest, split, out, names, log=log)
    frame = load_manifest(manifest)
    parts: dict[str, list[pd.DataFrame]] = {k: [] for k in _PARTS}
    runs = []
    # one evaluator at a time: the ROI and results chapters ask for the same baselines at once
    with file_lock(Path(out) / ".evaluation.lock"):
        for name, table in tables.items():
            variant = baseline_variant(name)
            folder = Path(out) / name / split
            ev = baseline_evaluation(folder, table, frame, variant, cut_point)
            _add_tables(parts, ev, variant)
            runs.append({**variant, "path": str(folder), "status": "baseline",
                         "n_subjects": int(ev.per_subject["subject_id"].nunique()),
                         "predictions": "baseline", "evaluation": "evaluated"})
    return Collection(**{k: _concat(v) for k, v in parts.items()}, runs=pd.DataFrame(runs))


def suvr_metrics(metrics: pd.DataFrame) -> pd.DataFrame:
    """The per-subject rows scored in SUVR space: ``kind == "suvr"`` and, for min–max runs, the oracle inverse.

    One row per (run, subject), as the claims need: a min–max run contributes its
    ``suvr_oracle`` rows (an upper bound, flagged by ``oracle``), never its min–max-space rows.
    """
    if metrics.empty:
        return metrics
    return metrics[metrics["kind"].isin(SUVR_KINDS)].reset_index(drop=True)


def claim_verdicts(collection: Collection, alpha: float | None = None) -> list[Any]:
    """The four claims' verdicts (:mod:`tausynth.evaluation.claims`) from a :class:`Collection`.

    Claims 1–3 use :func:`suvr_metrics`; claim 4 the regional table. Nothing here decides an
    outcome: it only hands the right tables to ``claim1`` … ``claim4``.
    """
    from tausynth.evaluation import claims

    kw = {} if alpha is None else {"alpha": alpha}

    def nothing(number: int, why: str) -> Any:
        outcome, reason = claims.judge(pd.DataFrame())
        return claims.Verdict(claims.CLAIMS[number - 1], outcome, why, reason, pd.DataFrame())

    m = suvr_metrics(collection.metrics)
    usable = not m.empty and {"model", "perceptual", "normalization"} <= set(m.columns)
    verdicts = [fn(m, **kw) if usable else nothing(n, "no evaluated runs")
                for n, fn in ((1, claims.claim1), (2, claims.claim2), (3, claims.claim3))]
    roi = collection.roi
    # claim4 compares standardization runs; guard here because its pivot raises on an empty selection
    std = roi[roi["normalization"] == "standardize"] if "normalization" in roi else roi
    if std.empty or not set(claims.AD_REGIONS) <= set(std["region"]):
        verdicts.append(nothing(4, "no regional SUVR of standardization runs in the AD-relevant regions"))
    else:
        # an all-missing column (e.g. no true stage for real data) must not drop rows as a pivot key
        verdicts.append(claims.claim4(roi.dropna(axis=1, how="all"), **kw))
    return verdicts
