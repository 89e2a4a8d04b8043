"""Evaluate many runs at once for the ROI and results chapters, reusing what is up to date.

:func:`collect_runs` takes run folders, writes any missing predictions (``predict_run``),
evaluates each run (:func:`tausynth.evaluation.evaluate.evaluate_run`) unless its cached CSVs are
current, and concatenates the tables with the variant columns ``run``, ``model``,
``perceptual``, ``normalization``, ``seed``: what :mod:`tausynth.evaluation.claims` and the
E1–E4 tables (:mod:`tausynth.evaluation.experiments`) consume.

Caches
------
Predictions (``<run>/predictions/<split>/predictions.csv``) are reused when they were written
from the run's current ``final_model.pt`` (its SHA-256 is in the table) for exactly the scans of
the split in the manifest. An evaluation folder (``<run>/evaluation`` for the test split,
``<run>/evaluation/<split>`` otherwise) is reused when its ``evaluation.json`` stamp matches
(split, manifest path and content, positivity cut-point, predictions table content, evaluation
code) and its CSVs are newer than the final checkpoint; otherwise it is recomputed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from tausynth.digest import source_digest
from tausynth.errors import TausynthError
from tausynth.evaluation.agreement import POSITIVITY_CUT
from tausynth.evaluation.evaluate import (
    SUVR_KINDS,
    RunEvaluation,
    evaluate_predictions,
    evaluate_run,
    run_variant,
)
from tausynth.io import PathLike, atomic_write_text, file_lock, file_sha256
from tausynth.training.run import RunPaths

__all__ = [
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

Log = Callable[[str], None] | None

VARIANT_COLUMNS: tuple[str, ...] = ("run", "model", "perceptual", "normalization", "seed")
"""Columns that identify a variant in every collected table."""
TABLES: tuple[str, ...] = ("per_subject", "per_region", "agreement", "positivity", "off_target", "staging", "summary")
"""The CSV tables of an evaluation folder (a table with no rows is not written)."""
STAMP = "evaluation.json"
_STRING_COLUMNS = ("subject_id", "session", "diagnosis", "manufacturer", "run", "model", "perceptual",
                   "normalization", "kind", "space", "region", "group", "icc_form", "pearson_note")


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


def evaluation_dir(run_dir: PathLike, split: str = "test") -> Path:
    """``<run>/evaluation`` for the test split (``evaluate_run``'s default), ``<run>/evaluation/<split>`` otherwise."""
    base = Path(run_dir) / "evaluation"
    return base if split == "test" else base / split


def _provenance(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "provenance.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return {}


def run_status(run_dir: PathLike) -> str:
    """``provenance.json``'s status (``finished``, ``paused``, ``running``, ``interrupted``) or ``"unknown"``."""
    return str(_provenance(Path(run_dir)).get("status", "unknown"))


def find_runs(folder: PathLike, finished_only: bool = True) -> list[Path]:
    """Run folders (holding ``config.yaml``) directly under ``folder``, sorted by name.

    Parameters
    ----------
    folder : path
        Typically ``runs/<profile>``; a missing folder gives an empty list.
    finished_only : bool, default=True
        Keep only runs whose provenance status is ``finished`` (stopped by max epochs, early
        stopping or the time limit) and which have a final checkpoint.
    """
    root = Path(folder)
    if not root.is_dir():
        return []
    runs = sorted(p for p in root.iterdir() if (p / "config.yaml").is_file())
    if finished_only:
        runs = [p for p in runs if run_status(p) == "finished" and (p / "checkpoints" / "final_model.pt").is_file()]
    return runs


def resolve_runs(
    runs: Sequence[PathLike] | str | None, profile: str, runs_root: PathLike = "runs"
) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The run folders a chapter should use, and the discovered ones it skips (with their status).

    Parameters
    ----------
    runs : sequence of path, str or None
        Explicit run folders (used as given). A string is read as YAML (``"[a, b]"``, as
        ``papermill -p`` passes lists) or as comma-separated folders. Empty or ``None``: every
        finished run under ``<runs_root>/<profile>``.
    profile : str
    runs_root : path, default="runs"
    """
    import yaml

    if isinstance(runs, str):
        try:
            parsed = yaml.safe_load(runs)
        except yaml.YAMLError:
            parsed = None
        runs = parsed if isinstance(parsed, list) else [r.strip() for r in runs.split(",") if r.strip()]
    if runs:
        return [Path(str(r)) for r in runs], []
    folder = Path(runs_root) / profile
    chosen = find_runs(folder)
    skipped = [(p, run_status(p)) for p in find_runs(folder, finished_only=False) if p not in chosen]
    return chosen, skipped


def run_manifest(run_dir: PathLike, manifest: PathLike | None = None) -> Path:
    """The manifest to evaluate a run on: ``manifest`` if given, else the one it was trained on."""
    if manifest is not None:
        path = Path(manifest)
    else:
        data = _provenance(Path(run_dir)).get("data", {})
        if not isinstance(data, dict) or not data.get("manifest"):
            raise TausynthError(f"{Path(run_dir) / 'provenance.json'}: no data manifest recorded; pass a manifest")
        path = Path(data["manifest"])
    if not path.is_file():
        raise TausynthError(f"{path}: manifest not found (evaluating {run_dir})")
    return path.resolve()


def _final_checkpoint(run_dir: Path) -> Path:
    path = run_dir / "checkpoints" / "final_model.pt"
    if not path.is_file():
        raise TausynthError(f"{path}: not found; train the run first (`tausynth train`)")
    return path


def _scan_key(subject_id: object, session: object) -> tuple[str, str]:
    return str(subject_id), "" if pd.isna(session) else str(session)


def _keys(frame: pd.DataFrame) -> set[tuple[str, str]]:
    ses = frame["session"] if "session" in frame else pd.Series([""] * len(frame), index=frame.index)
    return {_scan_key(s, x) for s, x in zip(frame["subject_id"], ses, strict=True)}


def _read_table(path: Path) -> pd.DataFrame:
    header = pd.read_csv(path, nrows=0).columns
    strings = [c for c in _STRING_COLUMNS if c in header]
    df = pd.read_csv(path, dtype=dict.fromkeys(strings, str))
    for c in strings:
        df[c] = df[c].fillna("")
    return df


def ensure_predictions(
    run_dir: PathLike, manifest: PathLike | None = None, split: str = "test", log: Log = print
) -> tuple[pd.DataFrame, str]:
    """The run's predictions of ``split``, written first (``predict_run``) when missing or stale.

    Returns
    -------
    (pandas.DataFrame, str)
        The predictions table and ``"reused"`` or ``"predicted"``.
    """
    from tausynth.data.manifest import load_manifest, split_frame
    from tausynth.training import predict_run

    run_dir = Path(run_dir)
    final = _final_checkpoint(run_dir)
    manifest_path = run_manifest(run_dir, manifest)
    table_path = RunPaths(run_dir).predictions_table(split)
    why = f"no predictions of split {split!r} yet"
    if table_path.is_file():
        table = pd.read_csv(table_path, dtype={"subject_id": str, "session": str}, keep_default_na=False)
        wanted = split_frame(load_manifest(manifest_path), split)
        if "checkpoint_sha256" in table:
            stale = set(table["checkpoint_sha256"]) != {file_sha256(final)}
        else:  # a table without the checkpoint's hash: fall back on the file times
            stale = table_path.stat().st_mtime < final.stat().st_mtime
        if stale:
            why = "its predictions come from an older checkpoint"
        elif _keys(table) != _keys(wanted):
            why = f"its predictions cover other scans than the {split} split of {manifest_path}"
        elif "pet" in table and {str(Path(p).resolve()) for p in table["pet"]} != {str(Path(p).resolve()) for p in wanted["pet"]}:
            why = f"its predictions name other PET files than {manifest_path}"
        elif changed := _changed_inputs(table, wanted):
            why = f"{changed} changed since its predictions were made"
        else:
            return table, "reused"
    if log is not None:
        log(f"{run_dir.name}: {why}; predicting them first")
    table = predict_run(run_dir, manifest_path, split, log=log)
    return table, "predicted"


def _changed_inputs(table: pd.DataFrame, wanted: pd.DataFrame) -> str | None:
    """The first input (T1 or PET) of ``wanted`` whose path or bytes differ from what ``table`` was
    predicted from, named; ``None`` when all match (or the table predates the input hashes)."""
    if not {"t1", "t1_sha256", "pet_sha256"} <= set(table.columns):
        return None
    made = {_scan_key(r.subject_id, r.session): r for r in table.itertuples()}
    for row in wanted.itertuples():
        old = made.get(_scan_key(row.subject_id, row.session))
        if old is None:
            continue  # different scans are reported by the caller
        if Path(old.t1).resolve() != Path(row.t1).resolve():
            return f"the T1 of {row.subject_id} ({row.t1})"
        for column in ("t1", "pet"):
            if file_sha256(getattr(row, column)) != getattr(old, f"{column}_sha256"):
                return f"the {column.upper()} file {getattr(row, column)}"
    return None


def _input_stamps(manifest: Path, split: str) -> list[list[Any]]:
    """Size and modification time of every image the evaluation of ``split`` reads (a file replaced in place counts)."""
    from tausynth.data.manifest import EVALUATION_COLUMNS, load_manifest, split_frame

    stamps = []
    for file in split_frame(load_manifest(manifest), split)[list(EVALUATION_COLUMNS)].to_numpy().ravel():
        if file:
            st = Path(file).stat()
            stamps.append([Path(file).name, st.st_size, st.st_mtime_ns])
    return stamps


def _stamp_key(manifest: Path, split: str, cut_point: float, predictions: Path) -> dict[str, Any]:
    # content, not paths: the manifest's bytes, each image's size and time, the predictions' table
    return {"split": split, "manifest_sha256": file_sha256(manifest), "inputs": _input_stamps(manifest, split),
            "cut_point": float(cut_point), "predictions_sha256": file_sha256(predictions), "code": source_digest()}


def _cached(out: Path, key: dict[str, Any], final: Path) -> RunEvaluation | None:
    stamp = out / STAMP
    if not stamp.is_file():
        return None
    try:
        record = json.loads(stamp.read_text(encoding="utf-8"))
    except ValueError:
        return None
    if record.get("key") != key:
        return None
    written = [out / f"{name}.csv" for name in record.get("tables", [])]
    if not written or not all(p.is_file() and p.stat().st_mtime >= final.stat().st_mtime for p in written):
        return None
    tables = {name: _read_table(out / f"{name}.csv") if name in record["tables"] else pd.DataFrame() for name in TABLES}
    return RunEvaluation(**tables, files=written)


def evaluate_cached(
    run_dir: PathLike,
    manifest: PathLike | None = None,
    split: str = "test",
    cut_point: float = POSITIVITY_CUT,
    out: PathLike | None = None,
    force: bool = False,
    log: Log = print,
) -> tuple[RunEvaluation, dict[str, str]]:
    """Evaluate one run (predicting first if needed) or reuse its current evaluation folder.

    Parameters
    ----------
    run_dir : path
    manifest : path, optional
        Default: the manifest the run was trained on.
    split : str, default="test"
    cut_point : float, default=1.27
        Meta-temporal tau-positivity cut-point (SUVR > cut_point is positive).
    out : path, optional
        Default :func:`evaluation_dir`.
    force : bool, default=False
        Recompute even when the cache is current.
    log : callable, optional

    Returns
    -------
    (RunEvaluation, dict)
        The tables (variant columns in ``per_subject`` and ``per_region``) and
        ``{"predictions": "reused"|"predicted", "evaluation": "cached"|"evaluated"}``.
    """
    from tausynth.data.manifest import EVALUATION_COLUMNS, SPLITS, validate_manifest

    run_dir = Path(run_dir)
    if split not in SPLITS:
        raise TausynthError(f"invalid split {split!r}; allowed: {', '.join(SPLITS)}")
    if not math.isfinite(float(cut_point)):
        raise TausynthError(f"positivity cut-point must be a finite SUVR, got {cut_point!r}")
    run_variant(run_dir)  # a clear error for a folder that is not a run, before any work
    manifest_path = run_manifest(run_dir, manifest)
    validate_manifest(manifest_path, columns=EVALUATION_COLUMNS, splits=(split,))  # a bad file: one line, now
    _, predicted = ensure_predictions(run_dir, manifest_path, split, log)
    out_dir = Path(out) if out is not None else evaluation_dir(run_dir, split)
    key = _stamp_key(manifest_path, split, cut_point, RunPaths(run_dir).predictions_table(split))
    final = _final_checkpoint(run_dir)
    if not force and (hit := _cached(out_dir, key, final)) is not None:
        return hit, {"predictions": predicted, "evaluation": "cached"}
    ev = evaluate_run(run_dir, manifest_path, split, out=out_dir, cut_point=cut_point, check_files=False)
    record = {"key": key, "tables": [p.stem for p in ev.files if p.suffix == ".csv"]}
    atomic_write_text(out_dir / STAMP, json.dumps(record, indent=2) + "\n")
    return ev, {"predictions": predicted, "evaluation": "evaluated"}


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
    parts: dict[str, list[pd.DataFrame]] = {k: [] for k in ("metrics", "roi", "agreement", "positivity", "staging")}
    runs = []
    for path in paths:
        variant = run_variant(path)
        try:
            ev, source = evaluate_cached(path, manifest, split, cut_point, force=force, log=log)
        except TausynthError as exc:
            raise TausynthError(f"run {path}: {exc}") from None
        prov = _provenance(path)
        parts["metrics"].append(_with_variant(ev.per_subject, variant))
        parts["roi"].append(_with_variant(ev.per_region, variant))
        parts["agreement"].append(_with_variant(ev.agreement, variant))
        parts["positivity"].append(_with_variant(ev.positivity, variant))
        parts["staging"].append(_with_variant(ev.staging, variant))
        schedule = prov.get("schedule", {}) if isinstance(prov.get("schedule"), dict) else {}
        runs.append({**variant, "path": str(path), "status": prov.get("status", "unknown"),
                     "epochs_done": prov.get("epochs_done"), "max_epochs": schedule.get("max_epochs"),
                     "steps_done": prov.get("steps_done"), "stop_reason": prov.get("stop_reason"),
                     "wall_seconds": prov.get("wall_seconds"),
                     "perceptual_weights": prov.get("perceptual_weights"),
                     **perceptual_shares(path),
                     "n_subjects": int(ev.per_subject["subject_id"].nunique()), **source})
    return Collection(**{k: _concat(v) for k, v in parts.items()}, runs=pd.DataFrame(runs))


def perceptual_shares(run_dir: PathLike) -> dict[str, float]:
    """The perceptual term's share of the training loss at the run's first and last epoch, and its minimum.

    Keys ``perceptual_share_first``, ``perceptual_share_last``, ``perceptual_share_min``; NaN when
    ``metrics.csv`` has no ``train_share_perceptual`` column (a run trained before it was recorded).
    """
    path = Path(run_dir) / "metrics.csv"
    keys = ("perceptual_share_first", "perceptual_share_last", "perceptual_share_min")
    if not path.is_file():
        return dict.fromkeys(keys, math.nan)
    m = pd.read_csv(path)
    if "train_share_perceptual" not in m or m.empty:
        return dict.fromkeys(keys, math.nan)
    share = m.sort_values("epoch")["train_share_perceptual"].astype(float)
    return dict(zip(keys, (float(share.iloc[0]), float(share.iloc[-1]), float(share.min())), strict=True))


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
    parts: dict[str, list[pd.DataFrame]] = {k: [] for k in ("metrics", "roi", "agreement", "positivity", "staging")}
    runs = []
    # one evaluator at a time: the ROI and results chapters ask for the same baselines at once
    with file_lock(Path(out) / ".evaluation.lock"):
        for name, table in tables.items():
            variant = baseline_variant(name)
            folder = Path(out) / name / split
            ev = _baseline_evaluation(folder, table, frame, variant, cut_point)
            parts["metrics"].append(_with_variant(ev.per_subject, variant))
            parts["roi"].append(_with_variant(ev.per_region, variant))
            parts["agreement"].append(_with_variant(ev.agreement, variant))
            parts["positivity"].append(_with_variant(ev.positivity, variant))
            parts["staging"].append(_with_variant(ev.staging, variant))
            runs.append({**variant, "path": str(folder), "status": "baseline",
                         "n_subjects": int(ev.per_subject["subject_id"].nunique()),
                         "predictions": "baseline", "evaluation": "evaluated"})
    return Collection(**{k: _concat(v) for k, v in parts.items()}, runs=pd.DataFrame(runs))


def _baseline_evaluation(
    folder: Path, table: pd.DataFrame, frame: pd.DataFrame, variant: dict[str, Any], cut_point: float
) -> RunEvaluation:
    """A baseline's evaluation, reused from ``folder/evaluation`` while its predictions and ``cut_point`` are unchanged."""
    out = folder / "evaluation"
    key = {"baseline": file_sha256(folder / "baseline.json"), "predictions": file_sha256(folder / "predictions.csv"),
           "cut_point": float(cut_point), "code": source_digest()}
    stamp = out / STAMP
    if stamp.is_file():
        try:
            record = json.loads(stamp.read_text(encoding="utf-8"))
        except ValueError:
            record = {}
        if record.get("key") == key and all((out / f"{n}.csv").is_file() for n in record.get("tables", [])):
            return RunEvaluation(**{n: _read_table(out / f"{n}.csv") if n in record["tables"] else pd.DataFrame()
                                    for n in TABLES})
    ev = evaluate_predictions(table, frame, variant=variant, cut_point=cut_point)
    written = []
    for name in TABLES:
        df: pd.DataFrame = getattr(ev, name)
        if not df.empty:
            atomic_write_text(out / f"{name}.csv", df.to_csv(index=False))
            written.append(name)
    atomic_write_text(stamp, json.dumps({"key": key, "tables": written}, indent=2) + "\n")
    return ev


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
