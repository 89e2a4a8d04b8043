"""In-domain pretraining of VGG16 ``features[:23]`` on the training split's PET slices.

Without ImageNet weights, a perceptual network can still learn what PET slices look like from
the training data itself. Two objectives, both on the slices the loss sees (every plane, each
min–max scaled to ``[0, 1]``, three channels), with a light head on relu4_3 that is thrown away:

``"labels"``
    Supervised: a 1×1 convolution on relu4_3, upsampled 8× to the slice, predicts the atlas label
    of every pixel (cross-entropy). The features learn anatomy: where each region is and its
    boundaries.
``"denoise"``
    Self-supervised: the slice with Gaussian noise goes in, a 1×1 convolution on relu4_3,
    upsampled 8×, must give back the clean slice (MSE). Needs no labels.

The network starts from the seeded random VGG16, is trained with Adam in a fixed order drawn from
``seed``, and is then calibrated to unit activation variance
(:func:`~tausynth.losses.calibration.calibrate_unit_variance`) so that its feature magnitude
matches the calibrated random network's and the comparison between them is about the features,
not their scale.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tausynth.errors import TausynthError
from tausynth.losses.perceptual import FrozenFeatures, vgg16_relu4_3

__all__ = ["INDOMAIN_OBJECTIVES", "PretrainConfig", "PretrainResult", "pretrain_vgg16"]

INDOMAIN_OBJECTIVES: tuple[str, ...] = ("labels", "denoise")
"""Objectives of the in-domain pretraining."""

RELU4_3_STRIDE = 8
"""relu4_3 is three 2× max-poolings below the input."""


@dataclass(frozen=True)
class PretrainConfig:
    """Settings of the in-domain pretraining (recorded in provenance and in the cache key)."""

    objective: str = "labels"
    steps: int = 300
    batch_size: int = 32
    lr: float = 1e-4
    noise_std: float = 0.1
    seed: int = 0
    autocast: bool = True  # bf16 autocast (CPU with AMX/AVX-512 bf16, or CUDA)

    def __post_init__(self) -> None:
        if self.objective not in INDOMAIN_OBJECTIVES:
            allowed = ", ".join(map(repr, INDOMAIN_OBJECTIVES))
            raise TausynthError(f"in-domain objective: {self.objective!r} is not one of {allowed}")
        if self.steps < 1 or self.batch_size < 1 or not self.lr > 0:
            raise TausynthError(f"in-domain pretraining: steps, batch_size and lr must be positive, got {self}")


@dataclass
class PretrainResult:
    """What :func:`pretrain_vgg16` made: the network and its record."""

    features: FrozenFeatures
    config: PretrainConfig
    loss_curve: list[float] = field(default_factory=list)
    seconds: float = 0.0
    n_slices: int = 0
    n_classes: int = 0

    def record(self) -> dict[str, Any]:
        """JSON-ready summary for provenance (the loss curve is every 10th step's running mean)."""
        return {"config": asdict(self.config), "loss_curve": self.loss_curve, "seconds": round(self.seconds, 1),
                "n_slices": self.n_slices, "n_classes": self.n_classes}


def _label_classes(label_sets: list[torch.Tensor]) -> tuple[torch.Tensor, int]:
    ids = torch.unique(torch.cat([lab.flatten() for lab in label_sets]))
    return ids, int(ids.numel())


def _batches(
    planes: list[tuple[torch.Tensor, torch.Tensor | None]], cfg: PretrainConfig, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One batch from one plane (slices of a batch share their size); plane chosen by slice count."""
    counts = torch.tensor([float(p[0].shape[0]) for p in planes])
    k = int(torch.multinomial(counts, 1, generator=gen))
    images, labels = planes[k]
    pick = torch.randint(images.shape[0], (cfg.batch_size,), generator=gen)
    return images[pick], None if labels is None else labels[pick]


def pretrain_vgg16(
    slices: dict[str, tuple[torch.Tensor, torch.Tensor | None]],
    config: PretrainConfig | None = None,
    *,
    log: Any = None,
) -> PretrainResult:
    """Train VGG16 ``features[:23]`` on ``slices`` with the configured objective; return it frozen.

    Parameters
    ----------
    slices : dict
        ``plane -> (images, labels)`` from :func:`tausynth.losses.slices.plane_slices`; ``labels``
        are required for the ``"labels"`` objective.
    config : PretrainConfig, optional
    log : callable, optional
        Receives a progress line every 100 steps.

    Returns
    -------
    PretrainResult
        ``features.weights_source`` is ``"indomain-<objective>"``; the network is not yet calibrated.
    """
    cfg = config or PretrainConfig()
    planes = list(slices.values())
    if cfg.objective == "labels" and any(lab is None for _, lab in planes):
        raise TausynthError("in-domain objective 'labels' needs label maps (the manifest's labels column)")
    start = time.perf_counter()
    net = vgg16_relu4_3("random", seed=cfg.seed)
    net.requires_grad_(True)
    n_classes = 0
    if cfg.objective == "labels":
        ids, n_classes = _label_classes([lab for _, lab in planes])  # type: ignore[misc]
        planes = [(img, torch.bucketize(lab, ids)) for img, lab in planes]  # type: ignore[arg-type]
        head: nn.Module = nn.Conv2d(512, n_classes, 1)
    else:
        head = nn.Conv2d(512, 1, 1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        head.reset_parameters()
    params = [*net.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    curve: list[float] = []
    running = 0.0
    net.train()
    for step in range(cfg.steps):
        images, labels = _batches(planes, cfg, gen)
        x = images
        if cfg.objective == "denoise":
            x = (images + cfg.noise_std * torch.randn(images.shape, generator=gen)).clamp(0, 1)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.autocast):
            out = head(net(x.expand(-1, 3, -1, -1)))
        out = F.interpolate(out.float(), size=images.shape[-2:], mode="bilinear", align_corners=False)
        loss = F.cross_entropy(out, labels) if cfg.objective == "labels" else F.mse_loss(out, images)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        running += float(loss.detach())
        if (step + 1) % 10 == 0:
            curve.append(running / 10)
            running = 0.0
        if log is not None and (step + 1) % 100 == 0:
            log(f"in-domain VGG16 ({cfg.objective}): step {step + 1}/{cfg.steps}, loss {curve[-1]:.4f}")
    net.requires_grad_(False)
    net.eval()
    net.weights_source = f"indomain-{cfg.objective}"
    n_slices = sum(int(img.shape[0]) for img, _ in planes)
    return PretrainResult(net, cfg, curve, time.perf_counter() - start, n_slices, n_classes)
