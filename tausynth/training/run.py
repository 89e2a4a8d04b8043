"""Run folders and provenance: ``runs/<profile>/<run_name>/`` is never overwritten silently.

A run folder holds ``config.yaml`` (the resolved configuration), ``provenance.json``,
``metrics.csv``, ``checkpoints/`` (``final_model.pt`` after every epoch, ``best_since_switch.pt``,
``interrupted.pt`` after a Ctrl-C) and, after ``tausynth predict``, ``predictions/``.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from tausynth.config import Config, dump_config, from_dict
from tausynth.errors import TausynthError
from tausynth.io import PathLike, atomic_write_text

__all__ = [
    "RESUMABLE_FIELDS",
    "RunPaths",
    "config_differences",
    "default_run_name",
    "environment_record",
    "git_commit",
    "prepare_run_dir",
    "read_provenance",
    "read_run_config",
    "run_dir_for",
    "write_provenance",
]

#: Fields that may change when a run is resumed (training is extended or time-bounded differently).
RESUMABLE_FIELDS = ("training.max_epochs", "training.max_minutes")


@dataclass(frozen=True)
class RunPaths:
    """The files of one run folder (``root`` may be given as a string)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def provenance(self) -> Path:
        return self.root / "provenance.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.csv"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def final(self) -> Path:
        """Written after every epoch; used for resuming and for testing (as the official code)."""
        return self.checkpoints / "final_model.pt"

    @property
    def best(self) -> Path:
        """The best validation loss since the last plane switch."""
        return self.checkpoints / "best_since_switch.pt"

    @property
    def interrupted(self) -> Path:
        return self.checkpoints / "interrupted.pt"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"

    @property
    def predictions(self) -> Path:
        return self.root / "predictions"

    def predictions_table(self, split: str) -> Path:
        """``predictions/<split>/predictions.csv``: the file table ``tausynth predict`` writes."""
        return self.predictions / split / "predictions.csv"


def default_run_name(cfg: Config) -> str:
    """``<model>-<loss>-<normalization>-s<seed>``, e.g. ``unet-cyclic-standardize-s42``."""
    return f"{cfg.model.name}-{cfg.loss.perceptual}-{cfg.normalization}-s{cfg.training.seed}"


def run_dir_for(cfg: Config, runs_root: PathLike = "runs", run_name: str | None = None) -> Path:
    """``<runs_root>/<profile>/<run_name or default_run_name(cfg)>``."""
    name = run_name or default_run_name(cfg)
    if not name or "/" in name or name in (".", ".."):
        raise TausynthError(f"invalid run name {name!r}")
    return Path(runs_root) / cfg.profile / name


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_differences(a: Config, b: Config) -> list[str]:
    """Dotted names of the fields where ``a`` and ``b`` differ."""
    fa, fb = _flatten(a.to_dict()), _flatten(b.to_dict())
    return sorted(k for k in set(fa) | set(fb) if fa.get(k) != fb.get(k))


def read_run_config(run_dir: PathLike) -> Config:
    """The resolved configuration stored in a run folder."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise TausynthError(f"{run_dir}: not a run folder (no config.yaml)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return from_dict(Config, data)
    except (yaml.YAMLError, TausynthError) as exc:
        raise TausynthError(f"{path}: unreadable run config ({exc})") from None


def needs_restart(run_dir: PathLike, cfg: Config) -> bool:
    """True when ``run_dir`` holds a run whose config differs from ``cfg`` beyond the resumable fields.

    The book uses this to retrain a page whose profile changed instead of failing on the old folder.
    """
    paths = RunPaths(Path(run_dir))
    if not paths.config.is_file():
        return False
    diff = config_differences(read_run_config(paths.root), cfg)
    return any(d not in RESUMABLE_FIELDS for d in diff)


def prepare_run_dir(run_dir: PathLike, cfg: Config, *, resume: bool = False, overwrite: bool = False) -> str:
    """Create or reopen a run folder; return ``"new"`` or ``"resume"``.

    Parameters
    ----------
    run_dir : path
    cfg : Config
        The resolved configuration of this run.
    resume : bool
        Continue the run stored there (its config must equal ``cfg`` except for
        :data:`RESUMABLE_FIELDS`); a folder without a checkpoint starts from scratch.
    overwrite : bool
        Delete an existing run folder first.

    Raises
    ------
    TausynthError
        If the folder holds a run and neither ``resume`` nor ``overwrite`` is given, or
        ``resume`` is given with a different configuration (the message names the fields).
    """
    if resume and overwrite:
        raise TausynthError("--resume and --overwrite exclude each other")
    paths = RunPaths(Path(run_dir))
    if paths.config.is_file():
        if overwrite:
            shutil.rmtree(paths.root)
        else:
            old = read_run_config(paths.root)
            diff = config_differences(old, cfg)
            if not resume:
                if diff:
                    raise TausynthError(
                        f"run directory {paths.root} exists with a different config (differs in: "
                        f"{', '.join(diff)}); pass --overwrite to replace it, or choose another run name"
                    )
                raise TausynthError(
                    f"run directory {paths.root} already holds a run with this config; "
                    "pass --resume to continue it or --overwrite to start again"
                )
            fixed = [d for d in diff if d not in RESUMABLE_FIELDS]
            if fixed:
                raise TausynthError(
                    f"cannot resume {paths.root}: its config differs in {', '.join(fixed)} "
                    f"(only {', '.join(RESUMABLE_FIELDS)} may change); pass --overwrite to start again"
                )
            if diff:
                atomic_write_text(paths.config, dump_config(cfg))
            return "resume" if paths.final.is_file() else "new"
    elif paths.root.exists() and any(p.name != "checkpoints" for p in paths.root.iterdir()):
        # never delete a folder we did not create, even with --overwrite
        raise TausynthError(f"{paths.root} exists and is not a tausynth run folder; choose another run name")
    paths.checkpoints.mkdir(parents=True, exist_ok=True)
    atomic_write_text(paths.config, dump_config(cfg))
    return "new"


@contextlib.contextmanager
def run_lock(run_dir: PathLike) -> Iterator[None]:
    """Hold a run folder for this process; a second trainer of the same folder gets one line naming the holder.

    An advisory lock on ``.<name>.lock`` beside the folder (so ``--overwrite`` never deletes it),
    released when the process ends, however it ends.

    Raises
    ------
    TausynthError
        When another process holds the folder (the message gives its PID).
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no concurrent trainers to guard against
        yield
        return
    run_dir = Path(run_dir)
    lock = run_dir.parent / f".{run_dir.name}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise TausynthError(f"{run_dir} is in use by process {holder}; wait for it to end or stop it first") from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def git_commit(path: PathLike | None = None) -> dict[str, Any] | None:
    """The git commit of the source tree holding ``path`` (default: this package), or ``None``."""
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if head.returncode != 0:
            return None
        status = subprocess.run(
            ["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip())}


def environment_record(device: str) -> dict[str, Any]:
    """Versions of the software stack and the device, for ``provenance.json``."""
    import monai
    import numpy
    import torch

    from tausynth import __version__

    record: dict[str, Any] = {
        "tausynth_version": __version__,
        "git": git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "monai": monai.__version__,
        "numpy": numpy.__version__,
        "device": device,
        "torch_threads": torch.get_num_threads(),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        record["device_name"] = torch.cuda.get_device_name(torch.device(device))
    return record


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_provenance(run_dir: PathLike, record: dict[str, Any]) -> Path:
    """Write ``provenance.json`` atomically."""
    path = RunPaths(Path(run_dir)).provenance
    atomic_write_text(path, json.dumps(record, indent=2, default=str) + "\n")
    return path


def read_provenance(run_dir: PathLike) -> dict[str, Any]:
    """Read a run's ``provenance.json``."""
    path = RunPaths(Path(run_dir)).provenance
    if not path.is_file():
        raise TausynthError(f"{path}: provenance not found (has this run started?)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise TausynthError(f"{path}: corrupt provenance ({exc.msg})") from None
