"""One factory for the five models of the paper: ``build(name, config)``.

============  ===========  ====================================================================
name          kind         network
============  ===========  ====================================================================
unet          supervised   MONAI ``UNet`` as the official code: PReLU, instance norm, no
                           residual units, linear output; ``channels``/``strides``/``dropout``
                           from the config (paper: 64…1024, strides 2, dropout 0.2)
unetr         supervised   MONAI ``UNETR`` (ViT patches of 16³), built for the padded data shape
swinunetr     supervised   MONAI ``SwinUNETR`` (patch 2, windows 7, 4 stages)
pix2pix       pix2pix      U-Net generator (as ``unet``) + conditional MONAI ``PatchDiscriminator``
cyclegan      cyclegan     two U-Net generators + two unconditional ``PatchDiscriminator``
============  ===========  ====================================================================

Every result has ``.name``, ``.kind`` (``"supervised"``, ``"pix2pix"`` or ``"cyclegan"``) and
``.divisor``; GANs also have ``.generator`` (MRI → PET). Every network that maps an image to an
image is wrapped in :class:`~tausynth.models.padding.SpatialPadCrop`, so any input shape works
and the output shape always equals the input shape. :func:`predict_pet` predicts uniformly, and
:func:`describe` records what was built (with the MONAI and torch versions) for provenance.

Spatial constraints (MONAI 1.6.1)
---------------------------------
* ``unet``: each dimension divisible by ``prod(strides)`` (16 for the paper's 4 strides of 2),
  and not all equal to it: a 1³ bottleneck fails under instance norm ("Expected more than 1
  spatial element"), e.g. the paper's U-Net on 16³. Inputs are padded to at least
  ``2 * prod(strides)`` per dimension, which real data (≥ 40 voxels) always exceed anyway.
* ``unetr``: the ViT's position embedding is sized for one ``img_size``, each dimension a multiple
  of 16; we build it for the data shape padded to 16 (``spatial_shape``), and pad every input to
  exactly that shape.
* ``swinunetr``: each dimension divisible by 32 (``patch_size ** 5``), **and** larger than 32: at
  32³ the bottleneck is 1³ and instance norm fails the same way, so inputs are padded to at least
  64 per dimension (40×48×40 → 64³). Its 2³ bottleneck meets a torch CPU bfloat16 bug (wrong
  weight gradients of a 3³ convolution on a 2³ input); every built model carries the guard of
  :mod:`tausynth.models.precision`, which runs such convolutions in float32.

SwinUNETR: MONAI 1.3.2 (the official code's version) → 1.5+
------------------------------------------------------------
Checked against the installed MONAI 1.6.1 source (``monai/networks/nets/swin_unetr.py``) and
MONAI's issue tracker (#4757, #7324, #8284 fixed by #8285; PR #8212, #8248 / PR #8249, PR #8430):

* ``img_size`` was deprecated in 1.3 and **removed in 1.5** (at 1.6.1 passing it is a
  ``TypeError``); the input size is checked in ``forward()`` instead. It is never passed here.
* The 3D ``PatchMerging`` (``downsample="merging"``, the default) of MONAI ≤ 1.4 gathered only 6
  distinct of the 8 voxels of each 2×2×2 block (``x2``/``x5`` and ``x3``/``x6`` duplicated).
  MONAI 1.5 fixed the indices, so the same weights compute a different function: a SwinUNETR
  checkpoint trained with 1.3.2 loads without error but is **not** the same model at 1.5+.
* ``patch_norm`` (LayerNorm after the patch embedding) is an argument since 1.5, default
  ``False``: the behavior of 1.3.2, which had no such argument (PR #8212 added it with default
  ``True`` during the 1.5 development cycle; PR #8249 restored ``False`` before the release).
  1.5+ also adds ``patch_size``, ``window_size``, ``qkv_bias``, ``mlp_ratio``, ``norm_layer``,
  flash attention and Hyena options, all left at their defaults here.

So results with SwinUNETR are comparable with the paper's only up to this version change; the
MONAI version is recorded by :func:`describe`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import monai
import torch
from monai.networks.nets import UNETR, SwinUNETR, UNet
from torch import nn

from tausynth.config import plain_data
from tausynth.errors import TausynthError
from tausynth.models.gan import CycleGAN, PatchGAN, Pix2Pix, check_gan_mode
from tausynth.models.padding import SpatialPadCrop
from tausynth.models.precision import guard_small_input_convs
from tausynth.vocabulary import MODELS

__all__ = [
    "D_NORMS",
    "KINDS",
    "MODEL_NAMES",
    "SWINUNETR_MIN_SIZE",
    "SupervisedModel",
    "build",
    "describe",
    "generator_of",
    "output_layer",
    "predict_pet",
    "unet_kwargs",
]

MODEL_NAMES = MODELS  # the factory's name for the vocabulary's list
KINDS = {
    "unet": "supervised",
    "unetr": "supervised",
    "swinunetr": "supervised",
    "pix2pix": "pix2pix",
    "cyclegan": "cyclegan",
}
D_NORMS = ("instance", "batch")
UNETR_PATCH = 16
SWINUNETR_DIVISOR = 32
SWINUNETR_MIN_SIZE = 64

# Defaults of the optional config attributes (used when the config object lacks them).
DEFAULTS: dict[str, Any] = {
    "channels": (64, 128, 256, 512, 1024),
    "strides": (2, 2, 2, 2),
    "dropout": 0.2,
    "feature_size": None,  # None: MONAI's default of each model (UNETR 16, SwinUNETR 24)
    "hidden_size": 768,
    "mlp_dim": 3072,
    "num_heads": 12,
    "depths": (2, 2, 2, 2),
    "swin_num_heads": (3, 6, 12, 24),
    "window_size": 7,
    "use_checkpoint": False,
    "gan_mode": "lsgan",
    "lambda_l1": 100.0,
    "lambda_cycle": 10.0,
    "lambda_identity": 0.5,
    "d_channels": 64,
    "d_num_layers": 3,
    "d_norm": "instance",
}


class SupervisedModel(SpatialPadCrop):
    """A padded image-to-image network trained with a supervised loss (``kind = "supervised"``)."""

    kind = "supervised"


def _opt(config: object, key: str) -> Any:
    value = getattr(config, key, None) if config is not None else None
    return DEFAULTS[key] if value is None else value


def _positive_int(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise TausynthError(f"model.{key}: expected a positive integer, got {value!r}")
    return value


def _int_tuple(key: str, value: Any) -> tuple[int, ...]:
    if not isinstance(value, Sequence) or isinstance(value, str) or not value:
        raise TausynthError(
            f"model.{key}: expected a non-empty list of positive integers, got {value!r}"
        )
    return tuple(_positive_int(key, v) for v in value)


def _dropout(config: object) -> float:
    value = _opt(config, "dropout")
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise TausynthError(f"model.dropout: expected a number in [0, 1], got {value!r}")
    return float(value)


def unet_kwargs(config: object) -> dict[str, Any]:
    """MONAI ``UNet`` arguments: the official code's, with ``channels``/``strides``/``dropout`` from ``config``."""
    channels = _int_tuple("channels", _opt(config, "channels"))
    strides = _int_tuple("strides", _opt(config, "strides"))
    if len(channels) < 2 or len(strides) != len(channels) - 1:
        raise TausynthError(
            f"model.strides: expected len(channels) - 1 = {len(channels) - 1} values, got {len(strides)} "
            f"(channels {list(channels)}, strides {list(strides)})"
        )
    return {
        "spatial_dims": 3,
        "in_channels": 1,
        "out_channels": 1,
        "channels": channels,
        "strides": strides,
        "dropout": _dropout(config),
    }


def _unet(config: object) -> tuple[SupervisedModel, dict[str, Any]]:
    kwargs = unet_kwargs(config)
    divisor = math.prod(kwargs["strides"])
    # 2 * divisor: a 1-voxel bottleneck fails under instance norm.
    return SupervisedModel(UNet(**kwargs), divisor=divisor, min_size=2 * divisor), kwargs


def _build_unet(
    config: object, spatial_shape: tuple[int, ...] | None
) -> tuple[nn.Module, dict[str, Any]]:
    model, kwargs = _unet(config)
    return model, {"net": {"class": "monai.networks.nets.UNet", "kwargs": kwargs}}


def _build_unetr(
    config: object, spatial_shape: tuple[int, ...] | None
) -> tuple[nn.Module, dict[str, Any]]:
    if spatial_shape is None:
        raise TausynthError(
            "model 'unetr' needs the data's spatial shape (its ViT is built for one image size): "
            "pass spatial_shape=(X, Y, Z) or a full Config with data.shape"
        )
    img_size = tuple(math.ceil(s / UNETR_PATCH) * UNETR_PATCH for s in spatial_shape)
    hidden, heads = (
        _positive_int("hidden_size", _opt(config, "hidden_size")),
        _positive_int("num_heads", _opt(config, "num_heads")),
    )
    if hidden % heads:
        raise TausynthError(
            f"model.hidden_size: {hidden} is not divisible by model.num_heads {heads}"
        )
    feature_size = _opt(config, "feature_size")
    kwargs = {
        "in_channels": 1,
        "out_channels": 1,
        "img_size": img_size,
        "feature_size": 16 if feature_size is None else _positive_int("feature_size", feature_size),
        "hidden_size": hidden,
        "mlp_dim": _positive_int("mlp_dim", _opt(config, "mlp_dim")),
        "num_heads": heads,
        "dropout_rate": _dropout(config),
        "spatial_dims": 3,
    }
    model = SupervisedModel(UNETR(**kwargs), divisor=UNETR_PATCH, fixed_shape=img_size)
    return model, {"net": {"class": "monai.networks.nets.UNETR", "kwargs": kwargs}}


def _build_swinunetr(
    config: object, spatial_shape: tuple[int, ...] | None
) -> tuple[nn.Module, dict[str, Any]]:
    feature_size = _opt(config, "feature_size")
    feature_size = 24 if feature_size is None else _positive_int("feature_size", feature_size)
    if feature_size % 12:
        raise TausynthError(
            f"model.feature_size: SwinUNETR needs a multiple of 12, got {feature_size}"
        )
    depths = _int_tuple("depths", _opt(config, "depths"))
    heads = _int_tuple("swin_num_heads", _opt(config, "swin_num_heads"))
    if len(depths) != 4 or len(heads) != 4:
        raise TausynthError(
            f"model.depths and model.swin_num_heads: SwinUNETR needs 4 values each, got {list(depths)} and {list(heads)}"
        )
    for stage, h in enumerate(heads):
        if (feature_size * 2**stage) % h:
            raise TausynthError(
                f"model.swin_num_heads: stage {stage} has {feature_size * 2**stage} features, not divisible by {h} heads"
            )
    window_size = _positive_int("window_size", _opt(config, "window_size"))
    use_checkpoint = _opt(config, "use_checkpoint")
    if not isinstance(use_checkpoint, bool):
        raise TausynthError(f"model.use_checkpoint: expected true or false, got {use_checkpoint!r}")
    kwargs = {
        "in_channels": 1,
        "out_channels": 1,
        "feature_size": feature_size,
        "depths": depths,
        "num_heads": heads,
        "window_size": window_size,
        "drop_rate": _dropout(config),
        "use_checkpoint": use_checkpoint,
        "spatial_dims": 3,
    }
    model = SupervisedModel(
        SwinUNETR(**kwargs), divisor=SWINUNETR_DIVISOR, min_size=SWINUNETR_MIN_SIZE
    )
    return model, {"net": {"class": "monai.networks.nets.SwinUNETR", "kwargs": kwargs}}


def _discriminator(config: object, in_channels: int) -> tuple[PatchGAN, dict[str, Any]]:
    norm = _opt(config, "d_norm")
    if norm not in D_NORMS:
        raise TausynthError(f"model.d_norm: unknown value {norm!r} (allowed: {', '.join(D_NORMS)})")
    kwargs = {
        "spatial_dims": 3,
        "channels": _positive_int("d_channels", _opt(config, "d_channels")),
        "in_channels": in_channels,
        "out_channels": 1,
        "num_layers_d": _positive_int("d_num_layers", _opt(config, "d_num_layers")),
        "norm": norm.upper(),
    }
    return PatchGAN(**kwargs), {
        "class": "tausynth.models.gan.PatchGAN(monai PatchDiscriminator)",
        "kwargs": kwargs,
    }


def _gan_options(config: object) -> tuple[str, float, float, float]:
    mode = _opt(config, "gan_mode")
    try:
        check_gan_mode(mode)
    except TausynthError as exc:
        raise TausynthError(f"model.{exc}") from None
    weights = []
    for key in ("lambda_l1", "lambda_cycle", "lambda_identity"):
        value = _opt(config, key)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise TausynthError(f"model.{key}: expected a non-negative number, got {value!r}")
        weights.append(float(value))
    return mode, weights[0], weights[1], weights[2]


def _build_pix2pix(
    config: object, spatial_shape: tuple[int, ...] | None
) -> tuple[nn.Module, dict[str, Any]]:
    mode, lambda_l1, _, _ = _gan_options(config)
    generator, g_kwargs = _unet(config)
    # Conditional discriminator: it judges the (MRI, PET) pair, as in Pix2Pix.
    discriminator, d_record = _discriminator(config, in_channels=2)
    model = Pix2Pix(generator, discriminator, gan_mode=mode, lambda_l1=lambda_l1)
    record = {
        "generator": {"class": "monai.networks.nets.UNet", "kwargs": g_kwargs},
        "discriminator": d_record,
        "gan_mode": mode,
        "lambda_l1": lambda_l1,
    }
    return model, record


def _build_cyclegan(
    config: object, spatial_shape: tuple[int, ...] | None
) -> tuple[nn.Module, dict[str, Any]]:
    mode, _, lambda_cycle, lambda_identity = _gan_options(config)
    g_mri2pet, g_kwargs = _unet(config)
    g_pet2mri, _ = _unet(config)
    d_pet, d_record = _discriminator(config, in_channels=1)
    d_mri, _ = _discriminator(config, in_channels=1)
    model = CycleGAN(g_mri2pet, g_pet2mri, d_pet, d_mri, mode, lambda_cycle, lambda_identity)
    record = {
        "generators": {"class": "monai.networks.nets.UNet", "kwargs": g_kwargs},
        "discriminators": d_record,
        "gan_mode": mode,
        "lambda_cycle": lambda_cycle,
        "lambda_identity": lambda_identity,
    }
    return model, record


_BUILDERS: dict[
    str, Callable[[object, tuple[int, ...] | None], tuple[nn.Module, dict[str, Any]]]
] = {
    "unet": _build_unet,
    "unetr": _build_unetr,
    "swinunetr": _build_swinunetr,
    "pix2pix": _build_pix2pix,
    "cyclegan": _build_cyclegan,
}


def _check_shape(spatial_shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(spatial_shape)
    if len(shape) != 3 or any(
        isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape
    ):
        raise TausynthError(
            f"spatial_shape: expected three positive integers, got {spatial_shape!r}"
        )
    return shape


def build(
    name: str, config: object = None, *, spatial_shape: Sequence[int] | None = None
) -> nn.Module:
    """Build one of the paper's models.

    Parameters
    ----------
    name : {"unet", "unetr", "swinunetr", "pix2pix", "cyclegan"}
        Which model.
    config : object, optional
        A :class:`tausynth.config.ModelConfig`, a full :class:`tausynth.config.Config` (its
        ``model`` section is used, and ``data.shape`` as the default ``spatial_shape``), or any
        object with some of the attributes below; a missing attribute takes its default:
        ``channels`` (64, 128, 256, 512, 1024), ``strides`` (2, 2, 2, 2), ``dropout`` 0.2 (used by
        every network: U-Net dropout, UNETR ``dropout_rate``, SwinUNETR ``drop_rate``);
        ``feature_size`` (UNETR 16, SwinUNETR 24), ``hidden_size`` 768, ``mlp_dim`` 3072,
        ``num_heads`` 12 (UNETR); ``depths`` (2, 2, 2, 2), ``swin_num_heads`` (3, 6, 12, 24),
        ``window_size`` 7, ``use_checkpoint`` False (SwinUNETR); ``gan_mode`` "lsgan", ``lambda_l1`` 100,
        ``lambda_cycle`` 10, ``lambda_identity`` 0.5, ``d_channels`` 64, ``d_num_layers`` 3,
        ``d_norm`` "instance" (GANs).
    spatial_shape : sequence of 3 int, optional
        The data's spatial shape; required by ``unetr`` (built for it, padded to 16).

    Returns
    -------
    nn.Module
        With ``.name``, ``.kind``, ``.divisor`` and, for GANs, ``.generator``. Its forward maps an
        MRI ``(B, 1, X, Y, Z)`` of any shape (within ``unetr``'s built shape) to a PET of the same
        shape.

    Raises
    ------
    TausynthError
        Unknown ``name`` or an invalid config value (the message names the field).

    Examples
    --------
    >>> from tausynth.config import load_profile
    >>> cfg = load_profile("smoke")
    >>> model = build(cfg.model.name, cfg)
    >>> model.kind, model.divisor
    ('supervised', 4)
    """
    if name not in _BUILDERS:
        raise TausynthError(f"unknown model {name!r} (allowed: {', '.join(MODEL_NAMES)})")
    model_config = getattr(config, "model", config)
    if spatial_shape is None:
        spatial_shape = getattr(getattr(config, "data", None), "shape", None)
    shape = None if spatial_shape is None else _check_shape(spatial_shape)
    model, record = _BUILDERS[name](model_config, shape)
    guard_small_input_convs(model)  # a torch CPU bf16 bug, see tausynth.models.precision
    model.name = name
    model._build_record = {
        "name": name,
        "kind": KINDS[name],
        "spatial_shape": shape,
        "networks": record,
    }
    return model


def generator_of(model: nn.Module) -> nn.Module:
    """The MRI → PET network of ``model``: ``model.generator`` for GANs, ``model`` itself otherwise."""
    return (
        model.generator
        if getattr(model, "kind", "supervised") in ("pix2pix", "cyclegan")
        else model
    )


def predict_pet(model: nn.Module, mri: torch.Tensor) -> torch.Tensor:
    """Predict PET from MRI ``(B, 1, X, Y, Z)`` with any model from :func:`build`, without gradients.

    The model's train/eval mode is left as it is: call ``model.eval()`` first for inference
    (dropout off, norms in eval mode).
    """
    with torch.no_grad():
        return generator_of(model)(mri)


def output_layer(model: nn.Module) -> nn.Conv3d | nn.ConvTranspose3d:
    """The last layer of the MRI → PET network of ``model``: its only 3D convolution with one output channel.

    Raises
    ------
    TausynthError
        When the network has no such layer or more than one.
    """
    net = generator_of(model)
    found = [
        m for m in net.modules()
        if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d)) and m.out_channels == 1
    ]
    if len(found) != 1:
        raise TausynthError(
            f"{getattr(model, 'name', type(model).__name__)}: expected one output convolution with 1 channel, found {len(found)}"
        )
    return found[0]


def describe(model: nn.Module) -> dict[str, Any]:
    """A JSON-serialisable record of a model from :func:`build`, for ``provenance.json``.

    Keys: ``name``, ``kind``, ``divisor``, ``spatial_shape``, ``parameters`` (trainable count),
    ``networks`` (each network's class and constructor arguments), ``monai_version``,
    ``torch_version``.
    """
    record = dict(
        getattr(model, "_build_record", {"name": None, "kind": getattr(model, "kind", None)})
    )
    record["divisor"] = int(getattr(model, "divisor", 1))
    record["parameters"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    record["monai_version"] = monai.__version__
    record["torch_version"] = torch.__version__
    return plain_data(record)
