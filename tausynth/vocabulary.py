"""The allowed values of the package's string options, and their check: one home for each list.

Configuration fields, function arguments and manifest columns take their values from here, and
:func:`check_choice` refuses anything else with one line naming the option, the value and what is
allowed (in MONAI's manner). Modules that used to define these lists import them from here.
"""

from __future__ import annotations

from tausynth.errors import TausynthError

__all__ = [
    "CACHE_MODES",
    "DIAGNOSES",
    "MANUFACTURERS",
    "MODELS",
    "NORMALIZATIONS",
    "PERCEPTUAL_MODES",
    "PLANES",
    "SLICE_SCALINGS",
    "SPLITS",
    "check_choice",
]

#: The perceptual plane order of Algorithm 2: axial first, then coronal, then sagittal.
PLANES: tuple[str, str, str] = ("axial", "coronal", "sagittal")
#: ``loss.perceptual``: no perceptual term, one plane, three planes, the paper's cycle, or a 3D network.
PERCEPTUAL_MODES: tuple[str, ...] = ("none", "2d", "2.5d", "cyclic", "3d")
#: How the 2D perceptual term scales a slice to [0, 1]: by its own min and max (Algorithm 1), or by
#: the target volume's (beyond the paper).
SLICE_SCALINGS: tuple[str, ...] = ("slice", "volume")
#: ``normalization``: by-manufacturer SUVR standardization (the paper) or per-subject min–max.
NORMALIZATIONS: tuple[str, ...] = ("standardize", "minmax")
#: ``model.name``.
MODELS: tuple[str, ...] = ("unet", "unetr", "swinunetr", "pix2pix", "cyclegan")
#: ``data.cache``: where preprocessed samples are kept between epochs.
CACHE_MODES: tuple[str, ...] = ("none", "memory", "disk")
#: PET scanner manufacturers (a manifest's aliases are normalized to these).
MANUFACTURERS: tuple[str, ...] = ("Siemens", "GE", "Philips")
#: Diagnoses, in the order tables and figures show them.
DIAGNOSES: tuple[str, ...] = ("CN", "MCI", "AD")
#: Data splits.
SPLITS: tuple[str, ...] = ("train", "val", "test")


def check_choice(name: str, value: object, allowed: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``allowed``; else raise one line naming both.

    Examples
    --------
    >>> check_choice("plane", "axial", PLANES)
    'axial'
    >>> check_choice("plane", "oblique", PLANES)
    Traceback (most recent call last):
    ...
    tausynth.errors.TausynthError: plane: 'oblique' is not one of 'axial', 'coronal', 'sagittal'
    """
    if not isinstance(value, str) or value not in allowed:
        raise TausynthError(f"{name}: {value!r} is not one of {', '.join(map(repr, allowed))}")
    return value
