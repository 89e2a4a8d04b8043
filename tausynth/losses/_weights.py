"""Offline weights policy shared by the 2D (VGG16) and 3D (MedicalNet) feature extractors.

Never downloads: pretrained weights are used only when their file is already in the torch hub
cache (or given as a path); otherwise ``"auto"`` falls back to seeded random weights with one
warning per process.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import nn

from tausynth.errors import TausynthError

_WARNED: set[str] = set()


class PretrainedWeightsUnavailableWarning(UserWarning):
    """Pretrained feature-extractor weights are not cached; seeded random weights are used instead."""


def hub_checkpoint_path(filename: str) -> Path:
    """Return ``<torch hub dir>/checkpoints/<filename>``, where torch hub caches downloads.

    The hub dir is ``$TORCH_HOME/hub`` (``~/.cache/torch/hub`` by default), see
    :func:`torch.hub.get_dir`.
    """
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def warn_once(key: str, message: str) -> None:
    """Emit ``message`` as :class:`PretrainedWeightsUnavailableWarning` once per process per key."""
    if key in _WARNED:
        return
    _WARNED.add(key)
    warnings.warn(message, PretrainedWeightsUnavailableWarning, stacklevel=4)


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Load a state dict safely (``weights_only=True``), unwrapping ``{"state_dict": ...}``."""
    if not path.is_file():
        raise TausynthError(f"{path}: weights file not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or unsafe files
        raise TausynthError(f"{path}: not a loadable state dict ({type(exc).__name__}: {exc})") from None
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise TausynthError(f"{path}: expected a state dict of tensors, got {type(obj).__name__}")
    return dict(obj)


def load_into(module: nn.Module, state: Mapping[str, torch.Tensor], path: Path) -> None:
    """``module.load_state_dict(state, strict=True)``, reporting mismatches as one line naming ``path``."""
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())
        raise TausynthError(f"{path}: weights do not fit the network ({detail[:300]})") from None


def resolve_weights(
    weights: str | os.PathLike[str],
    *,
    pretrained_name: str,
    cache_file: Path,
    load_file: Callable[[Path], None],
    what: str,
) -> str:
    """Apply the weights policy; return the source actually used.

    Parameters
    ----------
    weights : str or os.PathLike
        ``pretrained_name`` (the cached file must exist), ``"random"`` (keep the seeded random
        initialization), ``"auto"`` (pretrained if cached, else random with one warning) or a path
        to a state dict.
    pretrained_name : str
        Name of the pretrained option, e.g. ``"imagenet"``.
    cache_file : pathlib.Path
        Where the pretrained file must be.
    load_file : callable
        Loads a state dict file into the network (raises :class:`TausynthError`).
    what : str
        The network's name for messages.

    Returns
    -------
    str
        ``pretrained_name``, ``"random"`` or ``"file:<path>"``.
    """
    allowed = (pretrained_name, "random", "auto")
    if isinstance(weights, os.PathLike) or (isinstance(weights, str) and weights not in allowed):
        path = Path(weights)
        if isinstance(weights, str) and not path.suffix and not path.exists():
            raise TausynthError(
                f"weights: {weights!r} is neither one of {', '.join(map(repr, allowed))} "
                "nor an existing state-dict file"
            )
        load_file(path)
        return f"file:{path}"
    if not isinstance(weights, str):
        raise TausynthError(f"weights: expected one of {', '.join(map(repr, allowed))} or a path, got {weights!r}")
    if weights == "random":
        return "random"
    if cache_file.is_file():
        load_file(cache_file)
        return pretrained_name
    if weights == pretrained_name:
        raise TausynthError(
            f"{what} {pretrained_name} weights are not cached at {cache_file} and nothing is downloaded; "
            "copy the file there (or set TORCH_HOME), or use weights='random' or a state-dict path"
        )
    warn_once(
        f"{what}:{cache_file}",
        f"{what} {pretrained_name} weights not found at {cache_file}; using seeded random weights "
        "(the perceptual loss then measures random-feature distances, not pretrained ones)",
    )
    return "random"


def run_features(features: nn.Module, x: torch.Tensor, autocast_dtype: torch.dtype | None) -> torch.Tensor:
    """Apply a frozen extractor under ``autocast_dtype``; ``None`` means exact float32 even inside a
    caller's autocast region."""
    if autocast_dtype is None:
        with torch.autocast(device_type=x.device.type, enabled=False):
            return features(x)
    with torch.autocast(device_type=x.device.type, dtype=autocast_dtype):
        return features(x)
