"""Checkpoints: atomic writes, ``torch.load(weights_only=True)``, every state needed to resume exactly.

A checkpoint is one ``torch.save`` file holding only tensors and plain Python values (so it loads
with ``weights_only=True``, which never unpickles arbitrary objects):

``format``, ``format_version``, ``tausynth_version``
    What wrote it.
``model_name``, ``kind``
    The model (checked when loading into another model).
``model``, ``optimizers``, ``schedulers``, ``scaler``
    State dicts (``optimizers``/``schedulers`` keyed ``"g"`` and, for GANs, ``"d"``).
``state``
    :class:`~tausynth.training.state.TrainingState` as a dict: completed epochs, plane, best loss
    since the last switch, patience counter, steps.
``rng``
    Python, NumPy, torch CPU (and CUDA) generator states.
``normalization``, ``standardizer``
    ``"standardize"`` with the fitted statistics (``ManufacturerStandardizer.to_dict()``) or
    ``"minmax"`` with ``None``.
``config``
    The resolved run configuration as YAML text.
``complete``, ``step_in_epoch``
    ``False`` for a checkpoint written mid-epoch on Ctrl-C (not used for resuming).
"""

from __future__ import annotations

import pickle
import random
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tausynth.errors import TausynthError
from tausynth.io import PathLike, atomic_path

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "capture_rng",
    "load_checkpoint",
    "restore_rng",
    "save_checkpoint",
]

CHECKPOINT_FORMAT = "tausynth-checkpoint"
CHECKPOINT_VERSION = 1
_REQUIRED = ("model_name", "kind", "model", "state", "config", "normalization")


def capture_rng() -> dict[str, Any]:
    """Current Python, NumPy and torch (CPU, CUDA) random states, as weights-only-safe values."""
    np_state = np.random.get_state()
    out: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "kind": str(np_state[0]),
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def restore_rng(rng: dict[str, Any]) -> None:
    """Restore states captured by :func:`capture_rng`."""
    version, internal, gauss = rng["python"]
    random.setstate((version, tuple(internal), gauss))
    n = rng["numpy"]
    np.random.set_state(
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])


def save_checkpoint(path: PathLike, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (plus the format fields) atomically: a temp file, then a rename.

    A crash mid-write leaves the previous checkpoint intact.
    """
    from tausynth import __version__

    missing = [k for k in _REQUIRED if k not in payload]
    if missing:
        raise ValueError(f"checkpoint payload misses {missing}")
    data = {"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION, "tausynth_version": __version__}
    data.update(payload)
    path = Path(path)
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(data, tmp)
    return path


def load_checkpoint(
    path: PathLike, *, model_name: str | None = None, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)`` and check what it is.

    Parameters
    ----------
    path : path
        A file written by :func:`save_checkpoint`.
    model_name : str, optional
        Raise if the checkpoint belongs to another model.
    map_location : str or torch.device, default="cpu"

    Raises
    ------
    TausynthError
        One line naming the file: missing, corrupt or truncated, not a tausynth checkpoint, of
        another format version, or of another model.
    """
    path = Path(path)
    if not path.is_file():
        raise TausynthError(f"{path}: checkpoint not found")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, pickle.UnpicklingError) as exc:
        detail = " ".join(str(exc).split())
        blocked = re.search(r"(?:unsupported|Unsupported global:) GLOBAL ([\w.]+)", detail)
        if blocked:  # weights_only refused a pickled callable: say which, whatever the message's length
            raise TausynthError(f"{path}: refused to load {blocked.group(1)} (not plain weights; "
                                "loaded with weights_only=True)") from None
        raise TausynthError(f"{path}: corrupt or unreadable checkpoint ({type(exc).__name__}: {detail[:160]})") from None
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise TausynthError(f"{path}: not a tausynth checkpoint")
    if data.get("format_version") != CHECKPOINT_VERSION:
        raise TausynthError(
            f"{path}: checkpoint format_version {data.get('format_version')!r} is not supported "
            f"(expected {CHECKPOINT_VERSION})"
        )
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise TausynthError(f"{path}: checkpoint is incomplete (missing {', '.join(missing)})")
    if model_name is not None and data["model_name"] != model_name:
        raise TausynthError(
            f"{path}: checkpoint is from model {data['model_name']!r}, not {model_name!r}"
        )
    return data


def load_model_state(model: torch.nn.Module, state: dict[str, torch.Tensor], path: PathLike) -> None:
    """``model.load_state_dict(state, strict=True)``; a mismatch is one line naming ``path``."""
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:200]
        raise TausynthError(f"{path}: checkpoint weights do not fit the model ({detail})") from None
