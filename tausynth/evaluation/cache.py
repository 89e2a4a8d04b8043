"""Predictions and evaluations reused while everything they depend on is unchanged.

Predictions (``<run>/predictions/<split>/predictions.csv``) are reused when they were written
from the run's current ``final_model.pt`` (its SHA-256 is in the table) for exactly the scans of
the split in the manifest, from the same image files. An evaluation folder (``<run>/evaluation``
for the test split, ``<run>/evaluation/<split>`` otherwise) is reused when its ``evaluation.json``
stamp matches (split, manifest content, each image's size and time, positivity cut-point,
predictions table content, and :func:`tausynth.digest.source_digest` of the package) and its CSVs
are newer than the final checkpoint; otherwise it is recomputed. A baseline's evaluation is
reused on the same terms (its predictions, its recipe, the cut-point and the package).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from tausynth.digest import source_digest
from tausynth.errors import TausynthError
from tausynth.evaluation.agreement import POSITIVITY_CUT
from tausynth.evaluation.discovery import evaluation_dir, final_checkpoint, run_manifest
from tausynth.evaluation.evaluate import (
    RunEvaluation,
    evaluate_predictions,
    evaluate_run,
    run_variant,
)
from tausynth.io import PathLike, atomic_write_text, file_sha256
from tausynth.training.run import RunPaths

__all__ = ["STAMP", "TABLES", "baseline_evaluation", "ensure_predictions", "evaluate_cached", "read_table"]

Log = Callable[[str], None] | None

TABLES: tuple[str, ...] = ("per_subject", "per_region", "agreement", "positivity", "off_target", "staging", "summary")
"""The CSV tables of an evaluation folder (a table with no rows is not written)."""
STAMP = "evaluation.json"
_STRING_COLUMNS = ("subject_id", "session", "diagnosis", "manufacturer", "run", "model", "perceptual",
                   "normalization", "kind", "space", "region", "group", "icc_form", "pearson_note")


def _scan_key(subject_id: object, session: object) -> tuple[str, str]:
    return str(subject_id), "" if pd.isna(session) else str(session)


def _keys(frame: pd.DataFrame) -> set[tuple[str, str]]:
    ses = frame["session"] if "session" in frame else pd.Series([""] * len(frame), index=frame.index)
    return {_scan_key(s, x) for s, x in zip(frame["subject_id"], ses, strict=True)}


def read_table(path: Path) -> pd.DataFrame:
    """A CSV table of an evaluation folder, its identifier columns read as text (an empty session is "")."""
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
    final = final_checkpoint(run_dir)
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


def _reuse(out: Path, key: dict[str, Any], newer_than: Path | None = None) -> RunEvaluation | None:
    """The evaluation in ``out`` if its stamp has ``key`` and all its tables exist (and are newer than
    ``newer_than``, the checkpoint they were computed from); ``None`` when it must be recomputed."""
    stamp = out / STAMP
    if not stamp.is_file():
        return None
    try:
        record = json.loads(stamp.read_text(encoding="utf-8"))
    except ValueError:
        return None
    if not isinstance(record, dict) or record.get("key") != key:
        return None
    written = [out / f"{name}.csv" for name in record.get("tables", [])]
    oldest = newer_than.stat().st_mtime if newer_than is not None else -math.inf
    if not written or not all(p.is_file() and p.stat().st_mtime >= oldest for p in written):
        return None
    tables = {name: read_table(out / f"{name}.csv") if name in record["tables"] else pd.DataFrame() for name in TABLES}
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
    final = final_checkpoint(run_dir)
    if not force and (hit := _reuse(out_dir, key, newer_than=final)) is not None:
        return hit, {"predictions": predicted, "evaluation": "cached"}
    ev = evaluate_run(run_dir, manifest_path, split, out=out_dir, cut_point=cut_point, check_files=False)
    record = {"key": key, "tables": [p.stem for p in ev.files if p.suffix == ".csv"]}
    atomic_write_text(out_dir / STAMP, json.dumps(record, indent=2) + "\n")
    return ev, {"predictions": predicted, "evaluation": "evaluated"}


def baseline_evaluation(
    folder: Path, table: pd.DataFrame, frame: pd.DataFrame, variant: dict[str, Any], cut_point: float
) -> RunEvaluation:
    """A baseline's evaluation, reused from ``folder/evaluation`` while its predictions and ``cut_point`` are unchanged."""
    out = folder / "evaluation"
    key = {"baseline": file_sha256(folder / "baseline.json"), "predictions": file_sha256(folder / "predictions.csv"),
           "cut_point": float(cut_point), "code": source_digest()}
    if (hit := _reuse(out, key)) is not None:
        return hit
    ev = evaluate_predictions(table, frame, variant=variant, cut_point=cut_point)
    written = []
    for name in TABLES:
        df: pd.DataFrame = getattr(ev, name)
        if not df.empty:
            atomic_write_text(out / f"{name}.csv", df.to_csv(index=False))
            written.append(name)
    atomic_write_text(out / STAMP, json.dumps({"key": key, "tables": written}, indent=2) + "\n")
    return ev


