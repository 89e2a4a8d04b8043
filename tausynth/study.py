"""A study: a profile's whole run list, trained without the book, then archived as tables.

The book trains its demo runs live. A study is the larger batch behind the book's archived results
(the ``study`` profile: the loss ablation with three seeds, both normalizations, every model). It is
long (up to about two hours on a 2-core CPU), so it is built to survive being stopped:

* each run trains in its own process (``jobs`` at a time, the cores shared between them) with
  ``resume=True``: an interrupted run continues from its last epoch, a finished one is reused;
* :func:`archive_study` collects whatever runs have finished, evaluates them and the baselines on
  the test split and writes the lightweight record (:mod:`tausynth.evaluation.archive`) that the
  results chapter reads. No images or weights go into it.

Examples
--------
From the shell (what the README gives)::

    nice tausynth study run --profile study --jobs 2     # resumable; rerun to continue
    tausynth study archive --profile study                # -> archive/study/
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import pandas as pd

from tausynth.config import Config, load_profile, merge_overrides
from tausynth.errors import TausynthError
from tausynth.io import PathLike
from tausynth.runlist import RunSpec, load_runs

__all__ = ["archive_study", "run_config", "run_study", "study_run_dirs"]

Log = Callable[[str], None]


def run_config(spec: RunSpec, profile: str) -> Config:
    """The resolved configuration of one run-list entry (as the book's training page makes it)."""
    overrides: dict[str, Any] = {"model": {"name": spec.model}, "loss": {"perceptual": spec.loss},
                                 "normalization": spec.normalization, "training": {"seed": spec.seed}}
    return load_profile(profile, merge_overrides(overrides, spec.overrides))


def study_run_dirs(profile: str, root: PathLike = ".", runs: PathLike | None = None) -> list[Path]:
    """The run folders of a profile's run list, in its order (existing or not)."""
    return [Path(root) / "runs" / profile / spec.name for spec in load_runs(profile, runs)]


def _train_one(spec: RunSpec, profile: str, root: str, manifest: str, threads: int) -> tuple[str, str, float]:
    """Worker: train (or resume, or reuse) one run; returns (name, status, seconds)."""
    import torch

    from tausynth.training import read_provenance, train

    torch.set_num_threads(threads)
    run_dir = Path(root) / "runs" / profile / spec.name
    start = time.perf_counter()
    train(run_config(spec, profile), run_dir, manifest=manifest, resume=True, progress=False, log=lambda _: None)
    status = str(read_provenance(run_dir).get("status", "unknown"))
    return spec.name, status, time.perf_counter() - start


def run_study(
    profile: str = "study",
    root: PathLike = ".",
    jobs: int = 2,
    runs: PathLike | None = None,
    log: Log = print,
) -> dict[str, str]:
    """Train every run of the profile's run list, ``jobs`` at a time; finished runs are reused.

    Parameters
    ----------
    profile : str, default="study"
    root : path
        Project root: the cohort goes to ``data/<profile>/cohort``, runs to ``runs/<profile>/``.
    jobs : int, default=2
        Runs trained at a time; each gets ``cores // jobs`` threads.
    runs : path, optional
        A YAML file whose ``runs:`` replace the profile's (:func:`tausynth.runlist.load_runs`).
    log : callable
        Receives one line per finished run.

    Returns
    -------
    dict of str to str
        Run name to its provenance status (``"finished"``, or ``"paused"`` for a run stopped by
        its time limit).
    """
    from tausynth.book import threads_per_job
    from tausynth.data.cohort import ensure_cohort

    if jobs < 1:
        raise TausynthError(f"jobs must be at least 1, got {jobs}")
    # every variant's first seed before any second one: a study cut short still covers every variant
    specs = sorted(load_runs(profile, runs), key=lambda s: s.seed)
    manifest = str(ensure_cohort(Path(root), profile, log))
    threads = threads_per_job(jobs)
    statuses: dict[str, str] = {}
    context = multiprocessing.get_context("spawn")  # a fresh interpreter per worker: no forked torch state
    env_threads = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            futures = {pool.submit(_train_one, s, profile, str(root), manifest, threads): s for s in specs}
            for future in as_completed(futures):
                try:
                    name, status, seconds = future.result()
                except TausynthError as exc:
                    raise TausynthError(f"study {profile}, run {futures[future].name}: {exc}") from None
                statuses[name] = status
                log(f"run {name:38s} {status:14s} {seconds:7.1f} s  ({len(statuses)}/{len(specs)})")
    finally:
        if env_threads is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = env_threads
    return statuses


def archive_study(
    profile: str = "study",
    root: PathLike = ".",
    dest: PathLike | None = None,
    split: str = "test",
    runs: PathLike | None = None,
    log: Log = print,
) -> Path:
    """Evaluate the profile's finished runs and the baselines, and write the archive.

    Runs not finished yet are left out, and the archive's ``archive.json`` lists them, so an
    archive made while a study still runs says what it lacks.

    Returns
    -------
    pathlib.Path
        The archive folder (default ``<root>/archive/<profile>``).
    """
    from tausynth.evaluation import collect
    from tausynth.evaluation.archive import write_archive
    from tausynth.evaluation.discovery import is_finished
    dirs = study_run_dirs(profile, root, runs)
    done = [d for d in dirs if is_finished(d)]
    missing = [d.name for d in dirs if d not in done]
    if not done:
        raise TausynthError(f"study {profile}: no finished run under {Path(root) / 'runs' / profile}; run `tausynth study run` first")
    col = collect.collect_runs(done, split=split, log=lambda _: None)
    manifest = collect.run_manifest(done[0], None)
    base = collect.collect_baselines(manifest, split, out=Path(root) / "runs" / profile / "baselines", log=None)
    out = Path(dest) if dest is not None else Path(root) / "archive" / profile
    hours = float(pd.to_numeric(col.runs["wall_seconds"], errors="coerce").sum()) / 3600
    info = {"profile": profile, "split": split, "missing_runs": missing, "training_hours": hours}
    write_archive(col, base, done, out, info)
    log(f"archive {out}: {len(done)} run(s), {len(missing)} not finished")
    return out

