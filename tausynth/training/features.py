"""The perceptual network of a run: which weights, made from which data, and their record.

``loss.weights`` picks the feature source of the 2D (VGG16 relu4_3) and 3D (MedicalNet ResNet-10)
terms. Nothing is ever downloaded:

``"imagenet"`` / ``"medicalnet"``
    The published weights, from the torch hub cache (an error when absent).
``"calibrated"``
    The seeded random network, each convolution scaled to unit output variance on the training
    split (:func:`~tausynth.losses.calibration.calibrate_unit_variance`): features of order one.
    With ``loss.perceptual_balance = r`` one more factor sets the term's size against the rest of
    the loss for the "average brain": on training subjects, ``γ·L_perc(mean image, x)`` equals
    ``r·[α·MSE + β·(1 − SSIM)](mean image, x)`` in the run's normalized space (:func:`balance_factor`).
``"indomain"`` (2D only)
    VGG16 pretrained on the training split's slices (:mod:`tausynth.losses.indomain`), then
    calibrated and balanced the same way; cached under ``<root>/data/<profile>/features`` keyed by the slices' content and
    the pretraining settings, and shared by every run that trains on the same split.
``"random"``
    The seeded default initialization as it is: tiny relu4_3 features, a perceptual term of ~1e-5
    (kept to show that collapse).
``"auto"``
    The published weights when cached, else :data:`OFFLINE_DEFAULT` with one visible warning.
A path
    A state dict file.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from tausynth import __version__
from tausynth.config import Config, check_weights_for_mode, perceptual_kind
from tausynth.data.dataset import build_dataset
from tausynth.data.manifest import split_frame
from tausynth.errors import TausynthError
from tausynth.io import atomic_path, atomic_write_text, file_lock
from tausynth.losses._weights import read_state_dict, warn_once
from tausynth.losses.calibration import calibrate_unit_variance, conv_layers
from tausynth.losses.indomain import PretrainConfig, pretrain_vgg16
from tausynth.losses.medicalnet import medicalnet_cache_path, resnet10_medicalnet
from tausynth.losses.perceptual import vgg16_cache_path, vgg16_relu4_3
from tausynth.losses.slices import plane_slices
from tausynth.training.engine import build_loss
from tausynth.training.inputs import PetNormalizer

__all__ = ["OFFLINE_DEFAULT", "FeatureSource", "build_perceptual_features", "state_sha256"]

OFFLINE_DEFAULT = "calibrated"
"""What ``"auto"`` uses when the published weights are not cached. Chosen by measurement on the
demo's U-Net: as good downstream as the in-domain network (test SSIM 0.764 against 0.759 at unit
variance), made in about a second instead of a minute of pretraining, and it needs no labels."""

SEED = 0
"""Seed of the random networks (every run of a book shares one network)."""

OFFLINE_FORMAT = "offline-features-v2"
"""Part of the offline networks' cache key: bump it when what they are changes."""

CALIBRATION_SLICES = 16
"""Slices per plane the 2D calibration uses (evenly spaced over the training split)."""

CALIBRATION_VOLUMES = 8
"""Training volumes the 3D calibration and the balance use."""

OFFLINE_SUBJECTS = 32
"""Training subjects (evenly spaced over the split) whose PET makes a calibrated network: the 2D
calibration's slices, the mean image and the volumes of the balance. Loading all 280 of the demo
took about a minute per network, for scales that are ratios of standard deviations."""


@dataclass
class FeatureSource:
    """A run's frozen perceptual network (``None`` without a perceptual term) and its provenance."""

    features: nn.Module | None
    record: dict[str, Any] = field(default_factory=dict)


def state_sha256(module: nn.Module) -> str:
    """SHA-256 of a module's state dict (names, shapes, float32 bytes), for provenance."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(tensor.shape)).encode())
        h.update(tensor.detach().float().contiguous().numpy().tobytes())
    return h.hexdigest()


def _resolve_auto(mode: str) -> str:
    if mode == "3d":
        name, cached = "medicalnet", medicalnet_cache_path()
    else:
        name, cached = "imagenet", vgg16_cache_path()
    if cached.is_file():
        return name
    warn_once(
        f"auto:{mode}",
        f"{'MedicalNet' if mode == '3d' else 'ImageNet VGG16'} weights are not in the torch hub cache; "
        f"the perceptual term uses {OFFLINE_DEFAULT!r} features (a seeded random network scaled to "
        "unit activation variance on the training split) instead",
    )
    return OFFLINE_DEFAULT


def _training_volumes(
    frame: pd.DataFrame, *, labels: bool, transform: Callable[..., Any] | None = None, limit: int | None = None
) -> tuple[list[torch.Tensor], list[torch.Tensor] | None]:
    """The training split's PET volumes (SUVR, or ``transform``-ed; no padding), and their labels;
    ``limit``: at most that many, evenly spaced over the split."""
    ds = build_dataset(frame, "train", augment=False, cache="none", pet_transform=transform, spatial_divisor=1,
                       include_labels=True if labels else None)
    n = len(ds) if limit is None else min(limit, len(ds))
    samples = [ds[i] for i in torch.linspace(0, len(ds) - 1, n).round().long().unique().tolist()]
    vols = [s["pet"] for s in samples]
    labs = [s["labels"] for s in samples] if labels else None
    return vols, labs


def _calibration_batches(slices: dict[str, tuple[torch.Tensor, Any]]) -> list[torch.Tensor]:
    out = []
    for images, _ in slices.values():
        pick = torch.linspace(0, images.shape[0] - 1, min(CALIBRATION_SLICES, images.shape[0])).long()
        out.append(images[pick].expand(-1, 3, -1, -1).contiguous())
    return out


def _calibrate(net: nn.Module, batches: list[torch.Tensor]) -> tuple[list[float], float]:
    """Calibrate ``net`` in place; its scales (rounded for the record) and the seconds it took."""
    start = time.perf_counter()
    # bf16 where the CPU has it: the scales are ratios of standard deviations, robust to its rounding
    with torch.autocast("cpu", dtype=torch.bfloat16):
        scales = calibrate_unit_variance(net, batches)
    return [round(s, 6) for s in scales], round(time.perf_counter() - start, 1)


def _network(mode: str, weights: str) -> nn.Module:
    """The mode's frozen network with ``weights`` (``"random"`` is the seeded skeleton every offline one starts from)."""
    return resnet10_medicalnet(weights, seed=SEED) if mode == "3d" else vgg16_relu4_3(weights, seed=SEED)


def _save_network(path: Path, net: nn.Module, record: dict[str, Any]) -> None:
    """A cached network: its record (``.json``) first, then its weights, each written atomically."""
    atomic_write_text(path.with_suffix(".json"), json.dumps(record, indent=1) + "\n")
    with atomic_path(path) as tmp:
        torch.save(net.state_dict(), tmp)


def _load_network(path: Path, mode: str) -> tuple[nn.Module, dict[str, Any]]:
    """A network saved by :func:`_save_network` (loaded with ``weights_only=True``), and its record."""
    net = _network(mode, "random")
    net.load_state_dict(read_state_dict(path))
    meta = path.with_suffix(".json")
    return net, json.loads(meta.read_text(encoding="utf-8")) if meta.is_file() else {}


def _slices_key(slices: dict[str, tuple[torch.Tensor, torch.Tensor | None]], pre: PretrainConfig) -> str:
    h = hashlib.sha256(f"indomain-v1|{__version__}|{_source_digest()}|{pre}".encode())
    for plane, (images, labels) in slices.items():
        h.update(plane.encode())
        h.update(images.numpy().tobytes())
        if labels is not None:
            h.update(labels.numpy().tobytes())
    return h.hexdigest()[:16]


def _indomain(frame: pd.DataFrame, pre: PretrainConfig, cache_dir: Path, log: Callable[[str], None]) -> FeatureSource:
    vols, labs = _training_volumes(frame, labels=pre.objective == "labels")
    slices = plane_slices(vols, labels=labs)
    key = _slices_key(slices, pre)
    path = cache_dir / f"vgg16-indomain-{pre.objective}-{key}.pt"
    record: dict[str, Any] = {"source": "indomain", "cache_file": path.name, "cache_key": key}
    # its own lock: the caller holds the offline networks' lock while this runs
    with file_lock(cache_dir / ".lock-pretraining"):
        if path.is_file():
            net, record["pretraining"] = _load_network(path, "2d")
            record["cached"] = True
        else:
            log(f"pretraining an in-domain VGG16 ({pre.objective}) on {sum(s[0].shape[0] for s in slices.values())} training slices")
            result = pretrain_vgg16(slices, pre, log=log)
            net = result.features
            scales, seconds = _calibrate(net, _calibration_batches(slices))
            record["pretraining"] = {**result.record(), "calibration_scales": scales, "calibration_seconds": seconds}
            _save_network(path, net, record["pretraining"])
            record["cached"] = False
    net.weights_source = f"indomain-{pre.objective}"
    net.requires_grad_(False)
    return FeatureSource(net.eval(), record)


def _calibrated_3d(vols: list[torch.Tensor]) -> FeatureSource:
    from tausynth.losses.medicalnet import zscore_volumes

    net = _network("3d", "random")
    pick = torch.linspace(0, len(vols) - 1, min(CALIBRATION_VOLUMES, len(vols))).long().tolist()
    # z-scored as the MedicalNet term feeds its network
    scales, seconds = _calibrate(net, [zscore_volumes(torch.stack([vols[i] for i in pick]), 1e-8)])
    record = {"source": "calibrated", "calibration_scales": scales, "calibration_volumes": len(pick),
              "calibration_seconds": seconds}
    return FeatureSource(net, record)


@torch.no_grad()
def balance_factor(cfg: Config, features: nn.Module, volumes: list[torch.Tensor]) -> dict[str, float]:
    """Loss factor ``f`` with ``γ·f·L_perc(M, x) = r·[α·MSE(M, x) + β·(1 − SSIM(M, x))]``, ``r`` =
    ``cfg.loss.perceptual_balance``, summed over training ``volumes``, ``M`` their mean.

    So for the "average brain" the perceptual term is ``r`` times the rest of the paper's loss (a
    share of ``r / (1 + r)``), whatever the intensity space. ``volumes`` are normalized training
    PETs on one grid; ``L_perc`` is the 2.5D term (the mean of the three planes' Algorithm 1) for
    the 2D network, the MedicalNet term for the ``"3d"`` mode; SSIM is the run's own.
    """
    lc = cfg.loss
    mode = "3d" if lc.perceptual == "3d" else "2.5d"
    # the run's loss with this network, on all slices (no random slice subset) and the 2.5D term
    loss = build_loss(replace(cfg, loss=replace(lc, perceptual=mode, slices_per_step=None)), torch.bfloat16, features)
    mean = torch.stack(volumes).mean(0)[None]
    pick = torch.linspace(0, len(volumes) - 1, min(CALIBRATION_VOLUMES, len(volumes))).long().tolist()
    others = perc = 0.0
    for i in pick:
        terms = loss(mean, volumes[i][None]).as_floats()
        others += lc.alpha * terms["mse"] + lc.beta * terms["ssim_loss"]
        perc += terms["perceptual"]
    if not perc > 0:
        raise TausynthError("balance: the perceptual term of the mean training image is 0 (identical training PETs?)")
    assert lc.perceptual_balance is not None
    return {"factor": lc.perceptual_balance * others / (lc.gamma * perc), "other_terms_mean_image": others / len(pick),
            "perceptual_mean_image_before": perc / len(pick), "subjects": len(pick)}


def _carries_scale(cfg: Config) -> bool:
    """Whether the term's features are unit-normalized (MedicalNet's; VGG16's with ``loss.unit_features``),
    so that only a factor on the loss (``loss_scale``), not on the weights, changes its size."""
    return cfg.loss.perceptual == "3d" or cfg.loss.unit_features


def _apply_balance(net: nn.Module, unit: bool, factor: float) -> None:
    """Scale the term by ``factor``: the last convolution by its square root for VGG16 (ReLU commutes
    with a positive factor, the feature MSE scales with its square); unit-normalized features cancel
    that, so their loss carries the factor (``loss_scale``)."""
    if unit:
        net.loss_scale = float(factor)
        return
    last = conv_layers(net)[-1]
    last.weight.mul_(factor**0.5)
    if last.bias is not None:
        last.bias.mul_(factor**0.5)


def build_perceptual_features(
    cfg: Config,
    frame: pd.DataFrame,
    normalizer: PetNormalizer | None = None,
    *,
    root: str | os.PathLike[str] = ".",
    log: Callable[[str], None] = print,
) -> FeatureSource:
    """The frozen feature network of ``cfg``'s perceptual term, made from ``frame``'s training split.

    Parameters
    ----------
    cfg : Config
        ``loss.perceptual`` and ``loss.weights`` choose the network.
    frame : pandas.DataFrame
        The run's manifest (its ``train`` split calibrates or pretrains the network).
    normalizer : PetNormalizer, optional
        The run's PET normalization (the balance is computed in its space); default: fitted on
        ``frame`` as ``cfg.normalization``.
    root : path, default="."
        The in-domain cache is ``<root>/data/<profile>/features``.
    log : callable, default=print
        Receives a line when a network is pretrained.

    Returns
    -------
    FeatureSource
        ``features`` is ``None`` in mode ``"none"``. ``record`` holds ``source`` (the weights
        actually used), ``requested``, ``sha256`` of the weights, the calibration scales or the
        pretraining configuration and loss curve, and ``balance`` (the factor and its reference values).
    """
    mode, weights = cfg.loss.perceptual, str(cfg.loss.weights)
    if mode == "none":
        return FeatureSource(None, {"source": None})
    check_weights_for_mode(mode, weights)  # also checked when the config loads; a caller may build one by hand
    used = _resolve_auto(mode) if weights == "auto" else weights
    if used in ("calibrated", "indomain"):
        normalizer = normalizer or PetNormalizer.fit(cfg.normalization, frame)
        source = _cached_offline(cfg, frame, normalizer, used, Path(root) / "data" / cfg.profile / "features", log)
    else:
        net = _network(mode, used)
        source = FeatureSource(net, {"source": net.weights_source})
    assert source.features is not None
    source.record.update(requested=weights, sha256=state_sha256(source.features))
    return source


def _source_digest() -> str:
    """Hash of the modules that make an offline network: a code change never reuses a stale one."""
    pkg = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for rel in ("training/features.py", "losses/calibration.py", "losses/indomain.py", "losses/slices.py",
                "losses/perceptual.py", "losses/medicalnet.py"):
        h.update((pkg / rel).read_bytes())
    return h.hexdigest()[:16]


def _offline_key(cfg: Config, frame: pd.DataFrame, normalizer: PetNormalizer, used: str) -> str:
    """What an offline network depends on: the training PETs (path, size, mtime), the normalization,
    the loss settings that shape it, and the code version."""
    stamps = []
    for path in split_frame(frame, "train")["pet"]:
        st = os.stat(path)
        stamps.append([str(path), st.st_size, st.st_mtime_ns])
    lc = cfg.loss
    parts = [OFFLINE_FORMAT, __version__, _source_digest(), used, perceptual_kind(lc.perceptual), stamps, normalizer.kind, normalizer.to_dict(),
             lc.alpha, lc.beta, lc.gamma, lc.ssim_range, lc.ssim_data_range, lc.perceptual_balance,
             lc.indomain_objective, lc.indomain_steps, lc.slice_scaling, lc.unit_features]
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _cached_offline(
    cfg: Config, frame: pd.DataFrame, normalizer: PetNormalizer, used: str, cache_dir: Path, log: Callable[[str], None]
) -> FeatureSource:
    """A calibrated (and balanced) offline network, made once per training data and settings and shared
    by every run (and the loss chapter) through ``cache_dir``."""
    mode = cfg.loss.perceptual
    key = _offline_key(cfg, frame, normalizer, used)
    path = cache_dir / f"{perceptual_kind(mode)}-{used}-{key}.pt"
    with file_lock(cache_dir / ".lock"):  # two runs never make the same network at once
        if path.is_file():
            net, record = _load_network(path, mode)
            record = {**record, "cached": True}
        else:
            source = _make_offline(cfg, frame, normalizer, used, cache_dir, log)
            net, record = source.features, {**source.record, "cache_file": path.name}
            _save_network(path, net, record)
            record = {**record, "cached": False}
    if "balance" in record and _carries_scale(cfg):
        net.loss_scale = float(record["balance"]["factor"])
    net.weights_source = "calibrated" if used == "calibrated" else f"indomain-{cfg.loss.indomain_objective}"
    net.requires_grad_(False)
    return FeatureSource(net.eval(), record)


def _make_offline(
    cfg: Config, frame: pd.DataFrame, normalizer: PetNormalizer, used: str, cache_dir: Path, log: Callable[[str], None]
) -> FeatureSource:
    mode = cfg.loss.perceptual
    volumes, _ = _training_volumes(frame, labels=False, transform=normalizer.transform, limit=OFFLINE_SUBJECTS)
    if used == "calibrated" and mode == "3d":
        source = _calibrated_3d(volumes)
    elif used == "calibrated":
        net = _network(mode, "random")
        scales, seconds = _calibrate(net, _calibration_batches(plane_slices(volumes)))
        source = FeatureSource(net, {"source": "calibrated", "calibration_scales": scales,
                                     "calibration_slices_per_plane": CALIBRATION_SLICES,
                                     "calibration_seconds": seconds})
    else:
        pre = PretrainConfig(objective=cfg.loss.indomain_objective, steps=cfg.loss.indomain_steps)
        source = _indomain(frame, pre, cache_dir, log)
    assert source.features is not None
    if cfg.loss.perceptual_balance is not None:
        balance = balance_factor(cfg, source.features, volumes)
        _apply_balance(source.features, _carries_scale(cfg), balance["factor"])
        source.record["balance"] = {k: round(v, 6) for k, v in balance.items()}
    return source
