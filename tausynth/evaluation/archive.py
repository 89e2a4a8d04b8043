"""A study's lightweight record: the tables the book reads, without images or weights.

Layout of an archive folder (``archive/<profile>/``)::

    archive.json                 what was archived, when, from which commit; runs not finished
    runs/<run>/config.yaml       each run's resolved configuration
    runs/<run>/provenance.json   its provenance (environment, schedule, perceptual network, timing)
    runs/<run>/metrics.csv       its per-epoch training record (losses and their shares)
    tables/<table>.csv           the runs' test-split tables: metrics (per subject), roi (per subject
                                 and region), agreement, positivity, staging, runs
    baselines/<table>.csv        the same tables for the trivial baselines

:func:`load_archive` gives back two :class:`~tausynth.evaluation.collect.Collection` objects,
so every table function of the book works on an archive as on live runs.
"""

from __future__ import annotations

import datetime as _dt
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from tausynth.errors import TausynthError
from tausynth.evaluation.collect import Collection
from tausynth.io import PathLike, atomic_path, atomic_write_text
from tausynth.training.run import git_commit

__all__ = ["ARCHIVE_TABLES", "RUN_FILES", "load_archive", "write_archive"]

ARCHIVE_TABLES: tuple[str, ...] = ("metrics", "roi", "agreement", "positivity", "staging", "runs")
"""The tables of a :class:`~tausynth.evaluation.collect.Collection`, one CSV each."""
RUN_FILES: tuple[str, ...] = ("config.yaml", "provenance.json", "metrics.csv")
"""What each run contributes besides its rows in the tables."""


def _write_tables(collection: Collection, folder: Path) -> None:
    for name in ARCHIVE_TABLES:
        table: pd.DataFrame = getattr(collection, name)
        if name == "runs" and "path" in table:
            table = table.assign(path=table["path"].map(lambda p: f"runs/{Path(str(p)).name}"))
        with atomic_path(folder / f"{name}.csv") as tmp:
            table.to_csv(tmp, index=False, float_format="%.6g")


def write_archive(
    runs: Collection,
    baselines: Collection,
    run_dirs: Sequence[PathLike],
    dest: PathLike,
    info: dict[str, Any] | None = None,
) -> Path:
    """Write the archive of ``run_dirs`` (tables from ``runs``) and the ``baselines`` to ``dest``.

    A run folder already in ``dest`` but not among ``run_dirs`` is removed, so the archive never
    mixes two studies.

    Returns
    -------
    pathlib.Path
        ``dest``.
    """
    out = Path(dest)
    names = {Path(d).name for d in run_dirs}
    if (out / "runs").is_dir():
        for stale in (out / "runs").iterdir():
            if stale.is_dir() and stale.name not in names:
                shutil.rmtree(stale)
    for d in map(Path, run_dirs):
        for f in RUN_FILES:
            if (d / f).is_file():
                target = out / "runs" / d.name / f
                target.parent.mkdir(parents=True, exist_ok=True)
                with atomic_path(target) as tmp:
                    shutil.copyfile(d / f, tmp)
    _write_tables(runs, out / "tables")
    _write_tables(baselines, out / "baselines")
    source = git_commit(Path(run_dirs[0]).resolve().parent) or {}
    record = {**(info or {}), "runs": sorted(names), "commit": source.get("commit", "unknown"),
              "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"), "format": 1}
    atomic_write_text(out / "archive.json", json.dumps(record, indent=2) + "\n")
    return out


def _read_tables(folder: Path) -> Collection:
    tables = {}
    for name in ARCHIVE_TABLES:
        path = folder / f"{name}.csv"
        if not path.is_file():
            raise TausynthError(f"{path}: missing archive table (an archive has {', '.join(ARCHIVE_TABLES)})")
        try:
            tables[name] = pd.read_csv(path, dtype={"subject_id": str, "session": str}, keep_default_na=False,
                                       na_values=["", "nan", "NaN"])
        except pd.errors.EmptyDataError:  # an empty table (e.g. no staging regions) is written as one blank line
            tables[name] = pd.DataFrame()
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise TausynthError(f"{path}: not a readable CSV table ({exc})") from None
    return Collection(**tables)


def load_archive(folder: PathLike) -> tuple[Collection, Collection, dict[str, Any]]:
    """Read an archive: the runs' tables, the baselines' tables and ``archive.json``.

    Raises
    ------
    TausynthError
        If the folder, a table or ``archive.json`` is missing or unreadable (the message names it).
    """
    root = Path(folder)
    stamp = root / "archive.json"
    if not stamp.is_file():
        raise TausynthError(f"{root}: not a study archive (no archive.json); make one with `tausynth study archive`")
    try:
        info = json.loads(stamp.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise TausynthError(f"{stamp}: not valid JSON ({exc})") from None
    return _read_tables(root / "tables"), _read_tables(root / "baselines"), info
