"""The 3D perceptual baseline: MedicalNet ResNet-10 features (Chen et al., "Med3D", 2019).

The network is MONAI's :class:`monai.networks.nets.ResNetFeatures` ``"resnet10"`` — the
MedicalNet layout (one input channel, conv1 stride 2, shortcut type B, no downsample bias, no
classifier) whose state dict matches MedicalNet's released checkpoints after removing their
``module.`` prefix. The loss follows MONAI's ``MedicalNetPerceptualSimilarity`` (what
``monai.losses.PerceptualLoss(spatial_dims=3, network_type="medicalnet_resnet10_23datasets")``
computes), without its download:

1. z-score each volume over all its voxels, as MedicalNet's training data were
   (``(x - mean) / std``);
2. take the last stage's feature map (layer4, 512 channels, 1/32 of the input size per axis);
3. unit-normalize the features across channels at every position;
4. sum the squared difference over channels, average over positions and the batch.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from monai.networks.nets import ResNetFeatures
from torch import nn

from tausynth.errors import TausynthError
from tausynth.losses._weights import (
    hub_checkpoint_path,
    load_into,
    read_state_dict,
    resolve_weights,
    run_features,
)
from tausynth.losses.perceptual import unit_channels

MEDICALNET_RESNET10_FILE = "resnet_10_23dataset.pth"
"""File name of MedicalNet's ResNet-10 (23 datasets) checkpoint, looked up in the torch hub cache."""


def medicalnet_cache_path() -> Path:
    """Where ``weights="medicalnet"`` expects the MedicalNet ResNet-10 checkpoint."""
    return hub_checkpoint_path(MEDICALNET_RESNET10_FILE)


class MedicalNetResNet10(ResNetFeatures):
    """Frozen eval-mode MedicalNet ResNet-10 returning the last stage's features.

    Attributes
    ----------
    weights_source : str
        ``"medicalnet"``, ``"random"`` or ``"file:<path>"``.
    """

    weights_source: str = "unknown"

    def __init__(self) -> None:
        super().__init__("resnet10", pretrained=False, spatial_dims=3, in_channels=1)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(inputs)[-1]

    def train(self, mode: bool = True) -> MedicalNetResNet10:  # noqa: ARG002 - frozen BatchNorm
        return super().train(False)


def resnet10_medicalnet(weights: str | os.PathLike[str] = "auto", *, seed: int = 0) -> MedicalNetResNet10:
    """MedicalNet ResNet-10 feature extractor, frozen and in eval mode; never downloads.

    Parameters
    ----------
    weights : {"auto", "medicalnet", "random"} or path, default="auto"
        ``"medicalnet"``: ``<torch.hub.get_dir()>/checkpoints/resnet_10_23dataset.pth`` (MedicalNet's
        release; a missing file is an error). A path: a MedicalNet checkpoint (``{"state_dict":
        {"module.conv1.weight": ...}}``) or a plain state dict. ``"random"``: MONAI's
        initialization under ``torch.manual_seed(seed)`` (the global RNG is left untouched).
        ``"auto"``: MedicalNet if cached, else random with one warning per process.
    seed : int, default=0

    Returns
    -------
    MedicalNetResNet10
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = MedicalNetResNet10()

    def load_file(path: Path) -> None:
        state = {k.removeprefix("module."): v for k, v in read_state_dict(path).items()}
        # MedicalNet's segmentation checkpoints also carry their decoder head; the encoder is all we use
        state = {k: v for k, v in state.items() if not k.startswith(("conv_seg.", "fc."))}
        load_into(net, state, path)

    net.weights_source = resolve_weights(
        weights, pretrained_name="medicalnet", cache_file=medicalnet_cache_path(), load_file=load_file,
        what="MedicalNet ResNet-10",
    )
    net.requires_grad_(False)
    return net.eval()


def zscore_volumes(x: torch.Tensor, eps: float) -> torch.Tensor:
    """Each volume of a batch z-scored over all its voxels (MedicalNet's input scaling); ``eps`` guards a flat one."""
    flat = x.flatten(1)
    mean = flat.mean(dim=1).view(-1, *([1] * (x.ndim - 1)))
    std = flat.std(dim=1).view(-1, *([1] * (x.ndim - 1)))
    return (x - mean) / (std + eps)


class MedicalNetPerceptualLoss(nn.Module):
    """3D perceptual loss on MedicalNet ResNet-10 layer4 features.

    Parameters
    ----------
    features : torch.nn.Module, optional
        A frozen 3D extractor ``(B, 1, X, Y, Z) -> (B, C, x, y, z)``; default
        :func:`resnet10_medicalnet` with ``weights``.
    weights : str or path, default="auto"
        See :func:`resnet10_medicalnet`.
    autocast_dtype : torch.dtype or None, default=None
        Autocast dtype of the feature branch; ``None`` is exact float32.
    seed : int, default=0
        Seed of the random network.

    Notes
    -----
    Each volume is z-scored per sample (MONAI z-scores over the whole batch; per sample keeps a
    sample's loss independent of the rest of the batch), with ``1e-8`` added to the std so constant
    volumes stay finite. No gradient flows into ``target``.
    """

    def __init__(
        self,
        features: nn.Module | None = None,
        *,
        weights: str | os.PathLike[str] = "auto",
        autocast_dtype: torch.dtype | None = None,
        seed: int = 0,
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        if autocast_dtype not in (None, torch.bfloat16, torch.float16):
            raise TausynthError(
                f"autocast_dtype: {autocast_dtype!r} is not one of None, torch.bfloat16, torch.float16"
            )
        net = features if features is not None else resnet10_medicalnet(weights, seed=seed)
        net.requires_grad_(False)
        self.features = net.eval()
        self.autocast_dtype = autocast_dtype
        self.eps = eps

    @property
    def weights_source(self) -> str:
        """Where the feature weights came from (``"custom"`` for an injected extractor without one)."""
        return getattr(self.features, "weights_source", "custom")

    def train(self, mode: bool = True) -> MedicalNetPerceptualLoss:
        super().train(mode)
        self.features.eval()
        return self

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        return run_features(self.features, x, self.autocast_dtype)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Return the 3D perceptual loss of ``(B, 1, X, Y, Z)`` volumes (a scalar tensor)."""
        if pred.ndim != 5 or pred.shape[1] != 1 or pred.shape != target.shape:
            raise ValueError(
                f"expected equal (B, 1, X, Y, Z) shapes, got pred {tuple(pred.shape)} and target {tuple(target.shape)}"
            )
        with torch.no_grad():
            ft = unit_channels(self._features(zscore_volumes(target.detach(), self.eps)).to(pred.dtype))
        fp = unit_channels(self._features(zscore_volumes(pred, self.eps)).to(pred.dtype))
        # a data-derived factor the network may carry (tausynth.training.features balances offline networks)
        return getattr(self.features, "loss_scale", 1.0) * ((fp - ft) ** 2).sum(dim=1).mean()
