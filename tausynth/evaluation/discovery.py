"""Where a chapter's runs are and what state they are in: run folders, their status and manifest.

Only reads run folders; nothing here evaluates or writes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from tausynth.errors import TausynthError
from tausynth.io import PathLike
from tausynth.training.run import RunPaths, read_provenance

__all__ = [
    "evaluation_dir",
    "final_checkpoint",
    "find_runs",
    "is_finished",
    "perceptual_shares",
    "resolve_runs",
    "run_manifest",
    "run_provenance",
    "run_status",
]


def evaluation_dir(run_dir: PathLike, split: str = "test") -> Path:
    """``<run>/evaluation`` for the test split (``evaluate_run``'s default), ``<run>/evaluation/<split>`` otherwise."""
    base = Path(run_dir) / "evaluation"
    return base if split == "test" else base / split


def run_provenance(run_dir: PathLike) -> dict[str, Any]:
    """The run's ``provenance.json`` as a dict; empty when it is missing or unreadable (a run not started)."""
    try:
        return read_provenance(run_dir)
    except TausynthError:  # missing or corrupt: a run that has not started, for discovery's purposes
        return {}


def run_status(run_dir: PathLike) -> str:
    """``provenance.json``'s status (``finished``, ``paused``, ``running``, ``interrupted``) or ``"unknown"``."""
    return str(run_provenance(run_dir).get("status", "unknown"))


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
    runs = sorted(p for p in root.iterdir() if RunPaths(p).config.is_file())
    return [p for p in runs if is_finished(p)] if finished_only else runs


def is_finished(run_dir: PathLike) -> bool:
    """Whether the run has stopped for good (max epochs, early stopping or its time limit) with a final checkpoint."""
    return run_status(run_dir) == "finished" and RunPaths(run_dir).final.is_file()


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
        data = run_provenance(run_dir).get("data", {})
        if not isinstance(data, dict) or not data.get("manifest"):
            raise TausynthError(f"{Path(run_dir) / 'provenance.json'}: no data manifest recorded; pass a manifest")
        path = Path(data["manifest"])
    if not path.is_file():
        raise TausynthError(f"{path}: manifest not found (evaluating {run_dir})")
    return path.resolve()


def final_checkpoint(run_dir: PathLike) -> Path:
    """The run's ``final_model.pt``; one line naming it when the run has not finished."""
    path = RunPaths(run_dir).final
    if not path.is_file():
        raise TausynthError(f"{path}: not found; train the run first (`tausynth train`)")
    return path


def perceptual_shares(run_dir: PathLike) -> dict[str, float]:
    """The perceptual term's share of the training loss at the run's first and last epoch, and its minimum.

    Keys ``perceptual_share_first``, ``perceptual_share_last``, ``perceptual_share_min``; NaN when
    ``metrics.csv`` has no ``train_share_perceptual`` column (a run trained before it was recorded).
    """
    path = RunPaths(run_dir).metrics
    keys = ("perceptual_share_first", "perceptual_share_last", "perceptual_share_min")
    if not path.is_file():
        return dict.fromkeys(keys, math.nan)
    m = pd.read_csv(path)
    if "train_share_perceptual" not in m or m.empty:
        return dict.fromkeys(keys, math.nan)
    share = m.sort_values("epoch")["train_share_perceptual"].astype(float)
    return dict(zip(keys, (float(share.iloc[0]), float(share.iloc[-1]), float(share.min())), strict=True))


