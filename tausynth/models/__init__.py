"""Models: U-Net, UNETR, SwinUNETR, Pix2Pix and CycleGAN from one factory, :func:`build`.

See :mod:`tausynth.models.factory` for the architectures, their spatial constraints and the
MONAI 1.3.2 → 1.5+ SwinUNETR differences; :mod:`tausynth.models.gan` for the GAN objectives;
:mod:`tausynth.models.padding` for the pad-run-crop wrapper every image-to-image network wears.
"""

from tausynth.models.factory import (
    D_NORMS,
    KINDS,
    MODEL_NAMES,
    SWINUNETR_MIN_SIZE,
    SupervisedModel,
    build,
    describe,
    generator_of,
    output_layer,
    predict_pet,
    unet_kwargs,
)
from tausynth.models.gan import (
    GAN_MODES,
    CycleGAN,
    GANLoss,
    GeneratorStep,
    PatchGAN,
    Pix2Pix,
    frozen,
)
from tausynth.models.padding import SpatialPadCrop, padded_shape, symmetric_pad_widths

__all__ = [
    "D_NORMS",
    "GAN_MODES",
    "KINDS",
    "MODEL_NAMES",
    "SWINUNETR_MIN_SIZE",
    "CycleGAN",
    "GANLoss",
    "GeneratorStep",
    "PatchGAN",
    "Pix2Pix",
    "SpatialPadCrop",
    "SupervisedModel",
    "build",
    "describe",
    "frozen",
    "generator_of",
    "output_layer",
    "padded_shape",
    "predict_pet",
    "symmetric_pad_widths",
    "unet_kwargs",
]
