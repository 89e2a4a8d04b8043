"""Per-epoch metrics (``metrics.csv``), TensorBoard when installed, and progress bars."""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tausynth.io import PathLike, atomic_write_text

__all__ = ["MetricsLog", "progress_bar", "tensorboard_writer"]

#: The first columns of ``metrics.csv``; loss components follow (``train_*``, ``val_*``).
LEADING_COLUMNS = ("epoch", "plane", "phase_start", "lr", "steps", "samples")
TRAILING_COLUMNS = ("best_val", "improved", "patience_counter", "seconds")


class MetricsLog:
    """One row per completed epoch, rewritten atomically after each epoch.

    On resume, rows of epochs at or after the checkpoint's epoch are dropped (they belong to an
    epoch whose checkpoint was never written), so the file always matches the checkpoint.
    """

    def __init__(self, path: PathLike, resume_epoch: int = 0) -> None:
        self.path = Path(path)
        self.rows: list[dict[str, Any]] = []
        if resume_epoch > 0 and self.path.is_file():
            with self.path.open(newline="", encoding="utf-8") as fh:
                self.rows = [r for r in csv.DictReader(fh) if int(r["epoch"]) < resume_epoch]

    def append(self, row: Mapping[str, Any]) -> None:
        """Add an epoch's row and rewrite the file."""
        self.rows.append(dict(row))
        self.write()

    def columns(self) -> list[str]:
        seen: list[str] = []
        for row in self.rows:
            seen.extend(k for k in row if k not in seen)
        middle = sorted(k for k in seen if k not in LEADING_COLUMNS + TRAILING_COLUMNS)
        train = [k for k in middle if k.startswith("train_")]
        val = [k for k in middle if k.startswith("val_")]
        rest = [k for k in middle if k not in train and k not in val]
        return [*LEADING_COLUMNS, *train, *val, *rest, *TRAILING_COLUMNS]

    def write(self) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.columns(), extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({k: _fmt(v) for k, v in row.items()})
        atomic_write_text(self.path, buf.getvalue())


def _fmt(value: Any) -> Any:
    if isinstance(value, float):
        return repr(value)
    return value


def tensorboard_writer(log_dir: PathLike) -> tuple[Any | None, str]:
    """A ``SummaryWriter`` if TensorBoard is installed; else ``None``. Also returns a status line."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None, "not installed (skipped)"
    return SummaryWriter(log_dir=str(log_dir)), f"written to {log_dir}"


def progress_bar(iterable: Iterable[Any], *, total: int, desc: str, enabled: bool, leave: bool = False) -> Any:
    """A tqdm bar on stderr, or the plain iterable when disabled (other ranks, ``progress=False``)."""
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=leave, file=sys.stderr, dynamic_ncols=True)
