"""Perceptual losses: the cyclic 2.5D loss (Algorithm 1) batched over slices, and its baselines.

Algorithm 1 of the paper, as the official code computes it, for one plane of a ``(B, 1, X, Y, Z)``
prediction and target:

1. take every slice along the plane's axis (sagittal = dim 2, coronal = dim 3, axial = dim 4),
   background slices included;
2. min–max scale each ``(B, 1, H, W)`` slice tensor to ``[0, 1]`` with the min and max taken jointly
   over the whole batch slice and ``1e-8`` added to the denominator (no ImageNet mean/std);
3. repeat it to three channels and pass it through VGG16 up to relu4_3 (``features[:23]``);
4. the slice loss is ``mse_loss`` of the two feature maps; the plane loss is the mean over slices.

The official code loops over slices in Python; :class:`SlicePerceptualLoss` stacks the slices
into the batch dimension (in chunks of ``max_slices_per_chunk`` slices) and gives the same value.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable
from torchvision.models.vgg import cfgs, make_layers

from tausynth.errors import TausynthError
from tausynth.losses._weights import (
    hub_checkpoint_path,
    load_into,
    read_state_dict,
    resolve_weights,
    run_features,
)
from tausynth.losses.schedule import PLANES
from tausynth.vocabulary import PERCEPTUAL_MODES, SLICE_SCALINGS, check_choice

PLANE_AXES: dict[str, int] = {"sagittal": 2, "coronal": 3, "axial": 4}
"""Axis of a ``(B, 1, X, Y, Z)`` RAS tensor along which each plane's slices are taken."""

"""Perceptual terms: none, one fixed plane, mean of the three planes, the scheduled plane, 3D."""

VGG16_IMAGENET_FILE = "vgg16-397923af.pth"
"""File name of torchvision's ``VGG16_Weights.IMAGENET1K_V1`` in the torch hub cache."""

VGG_RELU4_3 = 23
"""``features[:23]`` ends with relu4_3 (modules 0–22)."""

CHUNK_PIXELS: dict[str, int] = {"cpu": 2**16, "cuda": 2**20}
"""Default chunk budget in image pixels (slices × B × H × W) per device type (others: the CPU value).

The CPU value is the fastest in ``benchmarks/perceptual_speed.py`` on 2 threads; larger chunks
slow the CPU down (the activations leave the caches), smaller ones pay per-call overhead."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg16_cache_path() -> Path:
    """Where torchvision looks for (and would download) the ImageNet VGG16 weights."""
    return hub_checkpoint_path(VGG16_IMAGENET_FILE)


class FrozenFeatures(nn.Sequential):
    """A frozen, eval-mode feature extractor that records where its weights came from.

    Attributes
    ----------
    weights_source : str
        ``"imagenet"``, ``"medicalnet"``, ``"random"`` or ``"file:<path>"``.
    """

    weights_source: str = "unknown"

    def train(self, mode: bool = True) -> FrozenFeatures:  # noqa: ARG002 - stays in eval mode
        return super().train(False)


def _vgg_state_from_file(path: Path) -> dict[str, torch.Tensor]:
    state = read_state_dict(path)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    if any(k.startswith("features.") for k in state):  # a whole torchvision VGG16
        state = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
    return {k: v for k, v in state.items() if int(k.split(".", 1)[0]) < VGG_RELU4_3}


def vgg16_relu4_3(weights: str | os.PathLike[str] = "auto", *, seed: int = 0) -> FrozenFeatures:
    """VGG16 ``features[:23]`` (conv1_1 … relu4_3), frozen and in eval mode.

    Never downloads anything.

    Parameters
    ----------
    weights : {"auto", "imagenet", "random"} or path, default="auto"
        ``"imagenet"``: torchvision's ``IMAGENET1K_V1`` from the torch hub cache
        (``<torch.hub.get_dir()>/checkpoints/vgg16-397923af.pth``); a missing file is an error.
        ``"random"``: torchvision's VGG initialization (Kaiming normal, fan-out; zero biases) drawn
        from a generator seeded with ``seed``, so every process gets the same network.
        A path: a state dict of a whole VGG16 (``features.N.*`` keys) or of ``features[:23]``.
        ``"auto"``: ImageNet if cached, else random with one
        :class:`PretrainedWeightsUnavailableWarning` per process.
    seed : int, default=0
        Seed of the random initialization.

    Returns
    -------
    FrozenFeatures
        The network; ``.weights_source`` is ``"imagenet"``, ``"random"`` or ``"file:<path>"``.

    Raises
    ------
    TausynthError
        If ``weights="imagenet"`` and the file is not cached, or a weights file does not fit.
    """
    with torch.random.fork_rng(devices=[]):  # nn.Conv2d's own init draws from the global RNG
        net = FrozenFeatures(*list(make_layers(cfgs["D"], batch_norm=False))[:VGG_RELU4_3])
    gen = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", generator=gen)
            nn.init.zeros_(m.bias)

    def load_file(path: Path) -> None:
        try:
            state = _vgg_state_from_file(path)
        except ValueError:
            raise TausynthError(f"{path}: not a VGG16 state dict (unexpected keys)") from None
        load_into(net, state, path)

    net.weights_source = resolve_weights(
        weights, pretrained_name="imagenet", cache_file=vgg16_cache_path(), load_file=load_file, what="VGG16"
    )
    net.requires_grad_(False)
    return net.eval()


def unit_channels(f: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Each location's feature vector (dim 1) divided by its length (LPIPS's normalization)."""
    return f / torch.sqrt((f * f).sum(dim=1, keepdim=True) + eps)


def _freeze(module: nn.Module) -> nn.Module:
    module.requires_grad_(False)
    return module.eval()


def _check_pair(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.ndim != 5 or pred.shape[1] != 1:
        raise ValueError(f"expected tensors of shape (B, 1, X, Y, Z), got pred {tuple(pred.shape)}")
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")


def _check_autocast(dtype: torch.dtype | None) -> torch.dtype | None:
    if dtype not in (None, torch.bfloat16, torch.float16):
        raise TausynthError(f"autocast_dtype: {dtype!r} is not one of None, torch.bfloat16, torch.float16")
    return dtype


class SlicePerceptualLoss(nn.Module):
    """Algorithm 1 for one plane, batched over slices.

    Parameters
    ----------
    features : torch.nn.Module, optional
        A 2D feature extractor taking ``(N, 3, H, W)``; it is frozen and kept in eval mode.
        Default: :func:`vgg16_relu4_3` with ``weights``.
    weights : str or path, default="auto"
        Weights policy of the default VGG16 (ignored when ``features`` is given).
    max_slices_per_chunk : int or None, default=None
        How many slices (each ``B`` images) go through the network at once; with
        ``eager_backward`` this bounds the memory of the feature branch. ``None``: as many slices
        as fit in :data:`CHUNK_PIXELS` image pixels for the input's device (at least one). The
        value does not change the result beyond float rounding.
    autocast_dtype : torch.dtype or None, default=None
        Run the feature branch under ``torch.autocast`` with this dtype (e.g. ``torch.bfloat16`` on
        CUDA or on CPUs with bf16 support). ``None``: exact float32, as the paper.
    per_sample_scaling : bool, default=False
        Beyond the paper: min–max scale each sample's slice separately instead of jointly over the
        batch (the paper's joint scaling makes a sample's loss depend on the other samples).
    imagenet_norm : bool, default=False
        Beyond the paper: apply ImageNet mean/std after min–max scaling, as VGG16 was trained with.
    scaling : {"slice", "volume"}, default="slice"
        ``"slice"``: Algorithm 1, each prediction and target slice by its own min and max.
        ``"volume"`` (beyond the paper): every prediction and target slice by the min and max of the
        target *volume* (per sample), one fixed affine map. The paper's scaling makes the term blind
        to each slice's intensity level, and its gradient piles onto each predicted slice's two
        extreme voxels, scaled by one over that slice's range (the loss chapter measures it); with
        ``"volume"`` the term compares intensities on one scale. ``per_sample_scaling`` does not apply.
    unit_features : bool, default=False
        Beyond the paper: divide each location's relu4_3 feature vector by its length before
        comparing, and sum the squared difference over channels (LPIPS's normalization, and that of
        the 3D term). The term then compares feature directions, not magnitudes; a balanced offline
        network carries its factor as ``loss_scale``.
    skip_empty_slices : bool, default=False
        Beyond the paper: drop slices whose target is constant over the whole batch slice (pure
        background) and average over the rest (0 if none is left). The paper keeps them, so
        background slices dilute the loss and pull the prediction's background towards flat.
    slices_per_step : int or None, default=None
        Beyond the paper, for CPU budgets: each call uses this many slice indices drawn uniformly
        without replacement (from ``torch``'s global generator, so a seeded, checkpointed run stays
        reproducible) and averages their per-slice losses — an unbiased estimate of the paper's
        mean over all slices at a fraction of the cost. ``None``: every slice, as the paper.
    eps : float, default=1e-8
        Added to the min–max denominator.
    seed : int, default=0
        Seed of the random VGG16 when no pretrained weights are used.
    channels_last : bool, default=True
        Feed the extractor channels-last tensors (same values; faster convolutions on CPU and on
        CUDA tensor cores). Turn off for an injected extractor that needs contiguous NCHW input.
    eager_backward : bool, default=True
        When a gradient is needed, compute each chunk's input gradient right after its forward pass
        and free its activations, so memory is bounded by one chunk rather than by the whole plane
        (same values and gradients). The result then supports one backward pass only (no
        double backward); set False for plain autograd. Not used with ``float16`` autocast, whose
        gradients must be scaled by the caller's ``GradScaler`` to avoid underflow.

    Notes
    -----
    The target branch runs without autograd: no gradient flows into ``target``.
    """

    def __init__(
        self,
        features: nn.Module | None = None,
        *,
        weights: str | os.PathLike[str] = "auto",
        max_slices_per_chunk: int | None = None,
        autocast_dtype: torch.dtype | None = None,
        per_sample_scaling: bool = False,
        imagenet_norm: bool = False,
        scaling: str = "slice",
        unit_features: bool = False,
        skip_empty_slices: bool = False,
        slices_per_step: int | None = None,
        eps: float = 1e-8,
        seed: int = 0,
        channels_last: bool = True,
        eager_backward: bool = True,
    ) -> None:
        super().__init__()
        if max_slices_per_chunk is not None and (
            isinstance(max_slices_per_chunk, bool)
            or not isinstance(max_slices_per_chunk, int)
            or max_slices_per_chunk < 1
        ):
            raise TausynthError(
                f"max_slices_per_chunk: expected a positive integer or None (automatic), got {max_slices_per_chunk!r}"
            )
        if slices_per_step is not None and (
            isinstance(slices_per_step, bool) or not isinstance(slices_per_step, int) or slices_per_step < 1
        ):
            raise TausynthError(f"slices_per_step: expected a positive integer or None (all slices), got {slices_per_step!r}")
        self.slices_per_step = slices_per_step
        self.features = _freeze(features if features is not None else vgg16_relu4_3(weights, seed=seed))
        self.max_slices_per_chunk = max_slices_per_chunk
        self.autocast_dtype = _check_autocast(autocast_dtype)
        self.per_sample_scaling = bool(per_sample_scaling)
        self.imagenet_norm = bool(imagenet_norm)
        self.scaling = check_choice("scaling", scaling, SLICE_SCALINGS)
        self.unit_features = bool(unit_features)
        self.skip_empty_slices = bool(skip_empty_slices)
        self.eps = float(eps)
        self.channels_last = bool(channels_last)
        self.eager_backward = bool(eager_backward)
        self.register_buffer("_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @property
    def weights_source(self) -> str:
        """Where the feature weights came from (``"custom"`` for an injected extractor without one)."""
        return getattr(self.features, "weights_source", "custom")

    def train(self, mode: bool = True) -> SlicePerceptualLoss:
        super().train(mode)
        self.features.eval()  # frozen extractor: BatchNorm/Dropout inside it must not switch
        return self

    def _scale(self, s: torch.Tensor) -> torch.Tensor:
        # s: (S, B, 1, H, W); one min and max per slice index (per sample if per_sample_scaling)
        dims = (2, 3, 4) if self.per_sample_scaling else (1, 2, 3, 4)
        return self._rescale(s, s.amin(dim=dims, keepdim=True), s.amax(dim=dims, keepdim=True))

    def _rescale(self, s: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
        return (s - lo) / (hi - lo + self.eps)

    @staticmethod
    def _volume_range(target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # per sample, shaped to broadcast against (S, B, 1, H, W) slice stacks
        flat = target.detach().flatten(1)
        shape = (1, -1, 1, 1, 1)
        return flat.amin(dim=1).view(shape), flat.amax(dim=1).view(shape)

    def _to_rgb(self, s: torch.Tensor) -> torch.Tensor:
        x = s.reshape(-1, 1, *s.shape[-2:]).expand(-1, 3, -1, -1)
        if self.imagenet_norm:
            x = (x - self._mean.to(x.dtype)) / self._std.to(x.dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        return run_features(self.features, x, self.autocast_dtype)

    def _chunk_size(self, slices: torch.Tensor) -> int:
        """Slices per chunk for ``slices`` of shape (S, B, 1, H, W)."""
        if self.max_slices_per_chunk is not None:
            return self.max_slices_per_chunk
        budget = CHUNK_PIXELS.get(slices.device.type, CHUNK_PIXELS["cpu"])
        return max(1, budget // slices[0].numel())

    def _chunk_loss(self, p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Sum over the chunk's slices of the per-slice feature MSE; ``p``, ``t``: (k, B, 1, H, W)."""
        with torch.no_grad():
            ft = self._features(self._to_rgb(t))
        fp = self._features(self._to_rgb(p))
        if self.unit_features:
            # squared distance of unit feature vectors, summed over channels (LPIPS, and the 3D term);
            # a balanced offline network carries its factor as loss_scale
            d = (unit_channels(fp.to(p.dtype)) - unit_channels(ft.to(p.dtype))).pow(2).sum(dim=1).mean()
            return getattr(self.features, "loss_scale", 1.0) * d * p.shape[0]
        # every slice has the same number of feature elements, so the sum of the k per-slice means
        # is k times the chunk mean
        return F.mse_loss(fp.to(p.dtype), ft.to(p.dtype)) * p.shape[0]

    def forward(self, pred: torch.Tensor, target: torch.Tensor, plane: str) -> torch.Tensor:
        """Return the perceptual loss of ``plane`` (a scalar tensor in ``pred``'s dtype).

        Parameters
        ----------
        pred, target : torch.Tensor
            ``(B, 1, X, Y, Z)`` volumes.
        plane : {"axial", "coronal", "sagittal"}
        """
        check_choice("plane", plane, PLANES)
        _check_pair(pred, target)
        axis = PLANE_AXES[plane]
        sp = pred.movedim(axis, 0)  # (S, B, 1, H, W): slice index first, as torch.unbind(dim=axis)
        # "volume": one map, from the target volume, for every slice of both
        volume_range = self._volume_range(target) if self.scaling == "volume" else None
        with torch.no_grad():
            st = target.detach().movedim(axis, 0)
            keep = None
            if self.skip_empty_slices:
                flat = st.flatten(1)
                keep = (flat.amax(dim=1) - flat.amin(dim=1)) > 0
                st = st[keep]
            st = self._scale(st) if volume_range is None else self._rescale(st, *volume_range)
        if keep is not None:
            sp = sp[keep]
        if self.slices_per_step is not None and self.slices_per_step < sp.shape[0]:
            pick = torch.randperm(sp.shape[0])[: self.slices_per_step].sort().values.to(sp.device)
            sp, st = sp[pick], st[pick]
        n_slices = sp.shape[0]
        if n_slices == 0:
            return pred.sum() * 0.0
        sp = self._scale(sp) if volume_range is None else self._rescale(sp, *volume_range)
        chunk = self._chunk_size(sp)
        # float16 leaves the gradient to the caller's GradScaler, so it needs plain autograd
        eager = self.eager_backward and self.autocast_dtype is not torch.float16
        if eager and torch.is_grad_enabled() and sp.requires_grad:
            return _EagerChunkGrad.apply(sp, st, self, chunk)
        total = sum(self._chunk_loss(sp[s : s + chunk], st[s : s + chunk]) for s in range(0, n_slices, chunk))
        return total / n_slices


class _EagerChunkGrad(torch.autograd.Function):
    """Feature-branch loss whose input gradient is computed chunk by chunk during the forward pass.

    Each chunk's activations are freed before the next chunk runs, so memory stays at one chunk
    instead of growing with the number of slices; backward only scales the stored gradient.
    """

    @staticmethod
    def forward(ctx, sp: torch.Tensor, st: torch.Tensor, loss: SlicePerceptualLoss, chunk: int) -> torch.Tensor:  # type: ignore[override]
        n_slices = sp.shape[0]
        grad = torch.empty_like(sp)
        total = sp.new_zeros(())
        for s in range(0, n_slices, chunk):
            with torch.enable_grad():
                x = sp[s : s + chunk].detach().requires_grad_(True)
                value = loss._chunk_loss(x, st[s : s + chunk])
                (g,) = torch.autograd.grad(value, x)
            grad[s : s + chunk] = g
            total = total + value.detach()
        ctx.save_for_backward(grad / n_slices)
        return total / n_slices

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:  # type: ignore[override]
        (grad,) = ctx.saved_tensors
        return grad_out * grad, None, None, None


class PerceptualLoss(nn.Module):
    """The perceptual term of the total loss, in one of the paper's modes.

    Parameters
    ----------
    mode : {"none", "2d", "2.5d", "cyclic", "3d"}, default="cyclic"
        ``"none"``: always 0. ``"2d"``: Algorithm 1 on the fixed ``plane``. ``"2.5d"``: mean of the
        three planes at every step. ``"cyclic"``: the plane passed to :meth:`forward` (from the
        schedule, :func:`tausynth.losses.schedule.plane_at_epoch`). ``"3d"``: MedicalNet ResNet-10
        features (:class:`tausynth.losses.medicalnet.MedicalNetPerceptualLoss`).
    plane : {"axial", "coronal", "sagittal"}, default="axial"
        The plane of ``"2d"`` mode.
    weights : str or path, default="auto"
        Weights policy of the extractor: VGG16 (``"imagenet"``) for the 2D modes, ResNet-10
        (``"medicalnet"``) for ``"3d"``; see :func:`vgg16_relu4_3` and
        :func:`tausynth.losses.medicalnet.resnet10_medicalnet`.
    features : torch.nn.Module, optional
        Inject a frozen extractor instead (2D for the slice modes, 3D for ``"3d"``).
    **slice_options
        Passed to :class:`SlicePerceptualLoss` (``max_slices_per_chunk``, ``autocast_dtype``,
        ``per_sample_scaling``, ``imagenet_norm``, ``scaling``, ``unit_features``, ``skip_empty_slices``, ``eps``, ``seed``,
        ``channels_last``, ``eager_backward``); for
        ``"3d"`` only ``autocast_dtype`` and ``seed`` apply.
    """

    def __init__(
        self,
        mode: str = "cyclic",
        *,
        plane: str = "axial",
        weights: str | os.PathLike[str] = "auto",
        features: nn.Module | None = None,
        **slice_options: object,
    ) -> None:
        super().__init__()
        self.mode = check_choice("mode", mode, PERCEPTUAL_MODES)
        self.plane = check_choice("plane", plane, PLANES)
        self.net: nn.Module | None
        if mode == "none":
            self.net = None
        elif mode == "3d":
            from tausynth.losses.medicalnet import MedicalNetPerceptualLoss

            unknown = set(slice_options) - {"autocast_dtype", "seed"}
            if unknown:
                raise TausynthError(f"perceptual options {sorted(unknown)} do not apply to mode '3d'")
            self.net = MedicalNetPerceptualLoss(features, weights=weights, **slice_options)  # type: ignore[arg-type]
        else:
            self.net = SlicePerceptualLoss(features, weights=weights, **slice_options)  # type: ignore[arg-type]

    @property
    def weights_source(self) -> str | None:
        """Source of the extractor's weights, for provenance (``None`` in mode ``"none"``)."""
        return None if self.net is None else self.net.weights_source

    def forward(self, pred: torch.Tensor, target: torch.Tensor, plane: str | None = None) -> torch.Tensor:
        """Return the perceptual loss (a scalar tensor).

        Parameters
        ----------
        pred, target : torch.Tensor
            ``(B, 1, X, Y, Z)`` volumes.
        plane : {"axial", "coronal", "sagittal"}, optional
            The schedule's current plane; required in ``"cyclic"`` mode and ignored otherwise, so a
            trainer can pass it whatever the mode.
        """
        if self.net is None:
            _check_pair(pred, target)
            return pred.new_zeros(())
        if self.mode == "3d":
            return self.net(pred, target)
        if self.mode == "2d":
            return self.net(pred, target, self.plane)
        if self.mode == "2.5d":
            return sum(self.net(pred, target, p) for p in PLANES) / len(PLANES)
        if plane is None:
            raise TausynthError("plane: mode 'cyclic' needs the schedule's current plane, got None")
        return self.net(pred, target, plane)
