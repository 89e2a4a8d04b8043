"""MONAI datasets and loaders from a manifest, with the official augmentation set and caching.

A sample is a dict with

- ``"t1"``, ``"pet"``, ``"mask"`` (and ``"labels"`` when the manifest has them): tensors of shape
  (1, X, Y, Z) in RAS voxel order, padded to a multiple of ``spatial_divisor``; float32 (labels
  int64). The T1 is normalized inside the mask (:func:`tausynth.data.preprocess.normalize_t1`);
  the PET is in the manifest's units unless ``pet_transform`` changes it; the mask is {0, 1}.
- ``"original_shape"``: int64 tensor (3,), the spatial shape before padding; ``"affine"``: float64
  tensor (4, 4), the RAS affine of that unpadded grid. :func:`crop_to_original` undoes the padding,
  and the result can be saved with ``"affine"``.
- ``"subject_id"``, ``"session"``, ``"manufacturer"``, ``"diagnosis"``, ``"split"``, ``"amyloid"``,
  ``"site"``, ``"scanner_model"``, ``"t1_path"``, ``"pet_path"``: strings (lists after collation).

The pipeline: load → channel first → RAS → grid check → mask (given, else derived) → T1
normalization → record shape/affine → pad (zeros, symmetric) → [cache boundary] → ``pet_transform``
→ augmentation (train only) → plain tensors. Caches hold everything before the boundary.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from monai.data import CacheDataset, DataLoader, Dataset, MetaTensor, PersistentDataset
from monai.transforms import (
    Compose,
    EnsureChannelFirstd,
    LoadImaged,
    MapTransform,
    Orientationd,
    Rand3DElasticd,
    RandAffined,
    RandFlipd,
    RandGaussianNoised,
    SpatialPad,
)

from tausynth.config import PADDING_MODES
from tausynth.data.manifest import load_manifest, split_frame
from tausynth.data.preprocess import T1_NORMALIZATIONS, derive_brain_mask, normalize_t1
from tausynth.errors import TausynthError
from tausynth.io import PathLike
from tausynth.vocabulary import CACHE_MODES

__all__ = [
    "CACHE_MODES",
    "META_KEYS",
    "AugmentationConfig",
    "build_dataset",
    "build_loader",
    "build_transforms",
    "crop_to_original",
    "grid_shape",
    "manifest_items",
]

#: Allowed values of ``cache``.
#: Text fields carried from the manifest into every sample.
META_KEYS: tuple[str, ...] = (
    "subject_id",
    "session",
    "manufacturer",
    "diagnosis",
    "split",
    "amyloid",
    "site",
    "scanner_model",
)
_CACHE_FORMAT = 1  # bump when the cached (pre-boundary) pipeline changes meaning

PetTransform = Callable[[np.ndarray, str], np.ndarray]


@dataclass(frozen=True)
class AugmentationConfig:
    """The official training augmentation; every component can be switched/tuned.

    Defaults are the official values: Rand3DElastic p 0.5, σ (4, 7), magnitude (50, 100);
    RandAffine p 0.5, rotation ±π/12 per axis, scale ±0.1; a flip of all three axes together
    p 0.5; Gaussian noise on the MRI only, p 1.0, std 0.1. The spatial ones use one random draw
    for T1, PET, mask and labels (bilinear for images, nearest for mask and labels).

    ``noise_sample_std=True`` draws each sample's noise std uniformly from [0, ``noise_std``]:
    MONAI's ``RandGaussianNoise`` behavior, and so the official code's (MONAI 1.3.2); ``False``
    uses ``noise_std`` exactly.

    ``padding_mode`` fills the voxels that the elastic and affine transforms pull in from outside
    the volume. The default ``"zeros"`` is what the official code passes. It has a cost with
    standardized PET: the background there is about -3, not 0, so zero padding puts a value at the
    moved borders that no real background voxel has. ``"reflection"`` (MONAI's own default) and
    ``"border"`` keep the background value there instead; both remain available.
    """

    elastic: bool = True
    elastic_prob: float = 0.5
    elastic_sigma: tuple[float, float] = (4.0, 7.0)
    elastic_magnitude: tuple[float, float] = (50.0, 100.0)
    affine: bool = True
    affine_prob: float = 0.5
    rotate_range: float = math.pi / 12
    scale_range: float = 0.1
    flip: bool = True
    flip_prob: float = 0.5
    noise: bool = True
    noise_prob: float = 1.0
    noise_std: float = 0.1
    noise_sample_std: bool = True
    padding_mode: str = "zeros"  # the official code; "border" and "reflection" also allowed

    def __post_init__(self) -> None:
        for name in ("elastic_prob", "affine_prob", "flip_prob", "noise_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise TausynthError(f"augmentation {name} must be in [0, 1], got {value!r}")
        for name in ("rotate_range", "scale_range", "noise_std"):
            if getattr(self, name) < 0:
                raise TausynthError(
                    f"augmentation {name} must be >= 0, got {getattr(self, name)!r}"
                )
        for name in ("elastic_sigma", "elastic_magnitude"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise TausynthError(
                    f"augmentation {name} must be (low, high) with 0 <= low <= high, got {(lo, hi)!r}"
                )
        if self.padding_mode not in PADDING_MODES:
            raise TausynthError(
                f"invalid augmentation padding_mode {self.padding_mode!r}; allowed: {', '.join(PADDING_MODES)}"
            )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> AugmentationConfig:
        """Build from a mapping (e.g. a YAML section); unknown keys are an error naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise TausynthError(
                f"unknown augmentation option(s) {unknown}; allowed: {', '.join(sorted(known))}"
            )
        kwargs = dict(values)
        for name in ("elastic_sigma", "elastic_magnitude"):
            if name in kwargs:
                kwargs[name] = tuple(float(v) for v in kwargs[name])
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """The options as plain values (for provenance)."""
        return asdict(self)


# --------------------------------------------------------------------------------------------------
# Transforms


def _numpy(t: torch.Tensor) -> np.ndarray:
    """A float32 numpy copy of a (Meta)Tensor."""
    plain = t.as_tensor() if isinstance(t, MetaTensor) else t
    return plain.detach().cpu().numpy().astype(np.float32, copy=True)


class _Pipeline(Compose):
    """A ``Compose`` that re-raises a user error (:class:`TausynthError`) as itself.

    MONAI wraps every exception raised inside a transform in ``RuntimeError("applying transform
    ...")``; the CLI must see the one-line user error instead.
    """

    def __call__(self, input_, start=0, end=None, threading=False, lazy=None):
        try:
            return super().__call__(input_, start=start, end=end, threading=threading, lazy=lazy)
        except RuntimeError as exc:
            cause: BaseException | None = exc
            while cause is not None and not isinstance(cause, TausynthError):
                cause = cause.__cause__
            if cause is None:
                raise
            raise cause from None


class CheckSameGridd(MapTransform):
    """Raise :class:`TausynthError` naming the subject and files if the images' shapes differ."""

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        shapes = {k: tuple(d[k].shape[1:]) for k in self.key_iterator(d)}
        if len(set(shapes.values())) > 1:
            detail = ", ".join(f"{k} {s}" for k, s in shapes.items())
            raise TausynthError(
                f"subject {d.get('subject_id', '?')}: images are on different grids ({detail}); "
                f"t1 {d.get('t1_path', '?')}; run `tausynth validate` on the manifest"
            )
        return d


class EnsureBrainMaskd(MapTransform):
    """Binarise ``mask_key`` (> 0.5), or derive it from the T1 when the sample has none."""

    def __init__(self, t1_key: str = "t1", mask_key: str = "mask") -> None:
        super().__init__([mask_key], allow_missing_keys=True)
        self.t1_key = t1_key
        self.mask_key = mask_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        t1 = d[self.t1_key]
        if self.mask_key in d:
            d[self.mask_key] = (d[self.mask_key] > 0.5).to(torch.float32)
        else:
            mask = derive_brain_mask(_numpy(t1[0]))
            out = t1.clone()
            out[0] = torch.from_numpy(mask.astype(np.float32))
            d[self.mask_key] = out
        return d


class NormalizeT1d(MapTransform):
    """Normalize the T1 inside the brain mask (:func:`tausynth.data.preprocess.normalize_t1`)."""

    def __init__(
        self, method: str = "percentile", t1_key: str = "t1", mask_key: str = "mask"
    ) -> None:
        super().__init__([t1_key])
        if method not in T1_NORMALIZATIONS:
            raise TausynthError(
                f"invalid T1 normalization {method!r}; allowed: {', '.join(T1_NORMALIZATIONS)}"
            )
        self.method = method
        self.t1_key = t1_key
        self.mask_key = mask_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        if self.method == "none":
            return d
        t1 = d[self.t1_key]
        try:
            norm = normalize_t1(_numpy(t1[0]), _numpy(d[self.mask_key][0]), self.method)
        except TausynthError as exc:
            raise TausynthError(
                f"subject {d.get('subject_id', '?')}, t1 {d.get('t1_path', '?')}: {exc}"
            ) from None
        out = t1.clone()
        out[0] = torch.from_numpy(norm)
        d[self.t1_key] = out
        return d


class RecordGeometryd(MapTransform):
    """Store the unpadded spatial shape (``"original_shape"``) and RAS affine (``"affine"``)."""

    def __init__(self, key: str = "t1") -> None:
        super().__init__([key])
        self.key = key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        img = d[self.key]
        d["original_shape"] = torch.tensor(tuple(img.shape[1:]), dtype=torch.int64)
        affine = img.affine if isinstance(img, MetaTensor) else torch.eye(4)
        d["affine"] = torch.as_tensor(affine, dtype=torch.float64).clone()
        return d


def _round_up(n: int, divisor: int) -> int:
    """The smallest multiple of ``divisor`` that is at least ``n``."""
    return -(-int(n) // divisor) * divisor


class PadToGridd(MapTransform):
    """Pad symmetrically to ``grid``, or to the next multiple of ``divisor`` on an axis where a scan is larger.

    One grid for every scan of a run lets scans of different sizes share a batch; a single symmetric
    pad (never two in a row) keeps :func:`crop_to_original` exact.
    """

    def __init__(self, keys: Sequence[str], divisor: int, grid: Sequence[int] | None = None) -> None:
        super().__init__(keys, allow_missing_keys=True)
        self.divisor = int(divisor)
        self.grid = tuple(int(g) for g in grid) if grid is not None else (0, 0, 0)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        shape = next(d[k] for k in self.key_iterator(d)).shape[1:]
        target = [max(g, _round_up(n, self.divisor)) for g, n in zip(self.grid, shape, strict=True)]
        pad = SpatialPad(spatial_size=target, method="symmetric", mode="constant")
        for key in self.key_iterator(d):
            d[key] = pad(d[key])
        return d


def grid_shape(df: pd.DataFrame, split: str = "train", divisor: int = 16) -> tuple[int, int, int]:
    """The run's grid: the largest RAS shape of ``split``'s T1 images per axis, up to a multiple of ``divisor``.

    Only the headers are read. Every scan of a run is padded to this grid (a larger one to the next
    multiple of ``divisor`` on that axis), so scans of different sizes batch together.

    Examples
    --------
    >>> import tempfile, nibabel as nib, numpy as np
    >>> folder = Path(tempfile.mkdtemp())
    >>> rows = []
    >>> for i, shape in enumerate([(30, 40, 20), (36, 38, 20)]):
    ...     nib.save(nib.Nifti1Image(np.zeros(shape, np.float32), np.eye(4)), folder / f"t1_{i}.nii")
    ...     rows.append({"t1": str(folder / f"t1_{i}.nii"), "split": "train"})
    >>> grid_shape(pd.DataFrame(rows), "train", divisor=16)
    (48, 48, 32)
    """
    import nibabel as nib

    part = split_frame(df, split)
    if part.empty:
        raise TausynthError(f"the manifest has no scans in split {split!r}")
    largest = np.zeros(3, dtype=int)
    for path in part["t1"]:
        img = nib.load(path)
        axes = nib.orientations.io_orientation(img.affine)[:, 0].astype(int)  # RAS axis of each stored axis
        ras = np.zeros(3, dtype=int)
        ras[axes] = img.shape[:3]
        largest = np.maximum(largest, ras)
    return tuple(_round_up(n, divisor) for n in largest)  # type: ignore[return-value]


class ApplyPetTransform:
    """Apply ``pet_transform(pet_array, manufacturer) -> array`` to the PET of a sample.

    Deliberately not a MONAI ``Transform``: cache-based datasets cache only up to the first
    random or non-``Transform`` step, so a re-fitted standardizer never meets a stale cache.
    The callable receives the padded 3D PET (float32 numpy, padding = 0) and the canonical
    manufacturer, and must return an array of the same shape.
    """

    def __init__(self, fn: PetTransform, pet_key: str = "pet") -> None:
        self.fn = fn
        self.pet_key = pet_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        pet = d[self.pet_key]
        arr = _numpy(pet[0])
        out = np.asarray(self.fn(arr, d["manufacturer"]), dtype=np.float32)
        if out.shape != arr.shape:
            raise TausynthError(
                f"subject {d.get('subject_id', '?')}: pet_transform returned shape {out.shape}, expected {arr.shape}"
            )
        new = pet.clone()
        new[0] = torch.from_numpy(out)
        d[self.pet_key] = new
        return d


class ToPlainTensord(MapTransform):
    """Drop MONAI metadata: image keys become plain tensors (float32; ``int_keys`` int64)."""

    def __init__(self, keys: Sequence[str], int_keys: Sequence[str] = ()) -> None:
        super().__init__(keys, allow_missing_keys=True)
        self.int_keys = set(int_keys)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            value = d[key]
            t = value.as_tensor() if isinstance(value, MetaTensor) else torch.as_tensor(value)
            d[key] = t.round().to(torch.int64) if key in self.int_keys else t.to(torch.float32)
        return d


def _augmentations(cfg: AugmentationConfig, keys: Sequence[str]) -> list[Callable]:
    modes = ["nearest" if k in ("mask", "labels") else "bilinear" for k in keys]
    out: list[Callable] = []
    if cfg.elastic:
        out.append(
            Rand3DElasticd(
                keys=list(keys),
                sigma_range=cfg.elastic_sigma,
                magnitude_range=cfg.elastic_magnitude,
                prob=cfg.elastic_prob,
                mode=modes,
                padding_mode=cfg.padding_mode,
            )
        )
    if cfg.affine:
        out.append(
            RandAffined(
                keys=list(keys),
                prob=cfg.affine_prob,
                rotate_range=(cfg.rotate_range,) * 3,
                scale_range=(cfg.scale_range,) * 3,
                mode=modes,
                padding_mode=cfg.padding_mode,
            )
        )
    if cfg.flip:
        out.append(RandFlipd(keys=list(keys), prob=cfg.flip_prob, spatial_axis=(0, 1, 2)))
    if cfg.noise:
        out.append(
            RandGaussianNoised(
                keys=["t1"], prob=cfg.noise_prob, std=cfg.noise_std, sample_std=cfg.noise_sample_std
            )
        )
    return out


def build_transforms(
    *,
    augment: bool,
    augmentation: AugmentationConfig | Mapping[str, Any] | None = None,
    pet_transform: PetTransform | None = None,
    spatial_divisor: int = 16,
    t1_normalization: str = "percentile",
    include_labels: bool = False,
    grid: Sequence[int] | None = None,
) -> Compose:
    """The sample pipeline as a MONAI ``Compose`` (see the module docstring for the order).

    Parameters
    ----------
    augment : bool
        Append the augmentation set (train only).
    augmentation : AugmentationConfig or mapping, optional
        Which augmentations and their parameters; default: the official set.
    pet_transform : callable, optional
        ``(pet_array, manufacturer) -> array``, e.g. by-manufacturer SUVR standardization.
    spatial_divisor : int, default=16
        Pad each spatial dimension to a multiple of this (16 for U-Net/UNETR, 32 for SwinUNETR).
    t1_normalization : {"percentile", "zscore", "none"}, default="percentile"
        See :func:`tausynth.data.preprocess.normalize_t1`; idempotent on preprocessed data.
    include_labels : bool, default=False
        Load ``"labels"`` too.
    grid : sequence of three ints, optional
        Pad every sample to this shape (a multiple of ``spatial_divisor``; see :func:`grid_shape`);
        ``None`` pads each to its own next multiple.
    """
    if int(spatial_divisor) != spatial_divisor or spatial_divisor < 1:
        raise TausynthError(f"spatial_divisor must be a positive integer, got {spatial_divisor!r}")
    if t1_normalization not in T1_NORMALIZATIONS:
        raise TausynthError(
            f"invalid T1 normalization {t1_normalization!r}; allowed: {', '.join(T1_NORMALIZATIONS)}"
        )
    if grid is not None and (len(grid) != 3 or any(int(g) < 1 or int(g) % int(spatial_divisor) for g in grid)):
        raise TausynthError(f"grid must be three positive multiples of {int(spatial_divisor)}, got {list(grid)}")
    cfg = (
        augmentation
        if isinstance(augmentation, AugmentationConfig)
        else AugmentationConfig.from_mapping(augmentation or {})
    )
    keys = ["t1", "pet", "mask", *(["labels"] if include_labels else [])]
    optional = [k for k in keys if k in ("mask", "labels")]
    steps: list[Callable] = [
        LoadImaged(keys=["t1", "pet"], reader="NibabelReader", image_only=True),
        LoadImaged(keys=optional, reader="NibabelReader", image_only=True, allow_missing_keys=True),
        EnsureChannelFirstd(keys=keys, channel_dim="no_channel", allow_missing_keys=True),
        Orientationd(keys=keys, axcodes="RAS", labels=None, allow_missing_keys=True),
        CheckSameGridd(keys=keys, allow_missing_keys=True),
        EnsureBrainMaskd(),
        NormalizeT1d(t1_normalization),
        RecordGeometryd(),
        PadToGridd(keys, int(spatial_divisor), grid),
    ]
    if pet_transform is not None:
        steps.append(ApplyPetTransform(pet_transform))
    if augment:
        steps.extend(_augmentations(cfg, keys))
    steps.append(ToPlainTensord(keys=keys, int_keys=["labels"]))
    return _Pipeline(steps)


# --------------------------------------------------------------------------------------------------
# Datasets and loaders


def manifest_items(df: pd.DataFrame, *, include_labels: bool = False) -> list[dict[str, str]]:
    """One MONAI data dict per manifest row: image paths plus :data:`META_KEYS` text fields.

    A row without a mask gets none (the pipeline derives it); ``labels`` is added when asked.
    """
    items = []
    for rec in df.to_dict("records"):
        item = {k: ("" if pd.isna(rec.get(k, "")) else str(rec.get(k, ""))) for k in META_KEYS}
        item.update(
            t1=str(rec["t1"]), pet=str(rec["pet"]), t1_path=str(rec["t1"]), pet_path=str(rec["pet"])
        )
        mask = rec.get("mask", "")
        if isinstance(mask, str) and mask:
            item["mask"] = mask
        if include_labels:
            item["labels"] = str(rec["labels"])
        items.append(item)
    return items


def _file_stamp(path: str) -> list[Any]:
    try:
        st = os.stat(path)
    except OSError:
        return [path, None, None]
    return [path, st.st_size, st.st_mtime_ns]


def _cache_hasher(signature: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], bytes]:
    """Cache key = the item, each file's size and mtime, and the cached pipeline's settings.

    MONAI's default key hashes the item only, so edited images or a changed divisor would silently
    reuse stale cache entries.
    """

    def hasher(item: Mapping[str, Any]) -> bytes:
        stamps = {
            k: _file_stamp(item[k])
            for k in ("t1", "pet", "mask", "labels")
            if isinstance(item.get(k), str)
        }
        payload = json.dumps(
            {"item": dict(item), "files": stamps, "pipeline": dict(signature)}, sort_keys=True
        )
        return hashlib.sha256(payload.encode()).hexdigest().encode()

    return hasher


def build_dataset(
    manifest_df: pd.DataFrame | PathLike,
    split: str,
    *,
    augment: bool,
    cache: str = "none",
    cache_dir: PathLike | None = None,
    pet_transform: PetTransform | None = None,
    spatial_divisor: int = 16,
    augmentation: AugmentationConfig | Mapping[str, Any] | None = None,
    t1_normalization: str = "percentile",
    include_labels: bool | None = None,
    seed: int | None = None,
    cache_workers: int = 1,
    grid: Sequence[int] | None = None,
) -> Dataset:
    """A MONAI dataset of one split of a manifest.

    Parameters
    ----------
    manifest_df : pandas.DataFrame or path
        A frame from :func:`tausynth.data.manifest.load_manifest`, or the manifest's path.
    split : {"train", "val", "test"}
    augment : bool
        Apply the augmentation set (meant for the training split only).
    cache : {"none", "memory", "disk"}, default="none"
        ``"memory"``: MONAI ``CacheDataset`` (everything before the cache boundary, in RAM);
        ``"disk"``: MONAI ``PersistentDataset`` in ``cache_dir`` (keyed by the item, its files' size
        and mtime, and the pipeline settings; loaded with ``weights_only=True``).
    cache_dir : path, optional
        Required for ``cache="disk"``.
    pet_transform : callable, optional
        ``(pet_array, manufacturer) -> array``, applied after the cache (never cached).
    spatial_divisor : int, default=16
        Pad to a multiple of this: 16 for U-Net/UNETR, 32 for SwinUNETR.
    augmentation : AugmentationConfig or mapping, optional
        The augmentation components and parameters; default: the official set.
    t1_normalization : {"percentile", "zscore", "none"}, default="percentile"
    include_labels : bool, optional
        ``None``: load labels when every row of the split has them; ``True``: require them.
    seed : int, optional
        Seed the random transforms (``Compose.set_random_state``) for a reproducible sequence.
        A :func:`build_loader` re-seeds them from its own ``seed``.
    cache_workers : int, default=1
        Threads that fill the memory cache.
    grid : sequence of three ints, optional
        The run's grid (:func:`grid_shape`): every sample is padded to it, so scans of different
        sizes batch. ``None``: each sample is padded to its own next multiple of ``spatial_divisor``.

    Returns
    -------
    monai.data.Dataset
        Indexing returns one sample dict (see the module docstring).
    """
    if cache not in CACHE_MODES:
        raise TausynthError(f"invalid cache {cache!r}; allowed: {', '.join(CACHE_MODES)}")
    if cache == "disk" and cache_dir is None:
        raise TausynthError("cache='disk' needs a cache_dir")
    df = manifest_df if isinstance(manifest_df, pd.DataFrame) else load_manifest(manifest_df)
    part = split_frame(df, split)
    if part.empty:
        raise TausynthError(f"the manifest has no scans in split {split!r}")
    has_labels = [
        isinstance(v, str) and bool(v) for v in part.get("labels", pd.Series([""] * len(part)))
    ]
    if include_labels is None:
        include_labels = all(has_labels)
    elif include_labels and not all(has_labels):
        missing = ", ".join(
            str(s) for s, ok in zip(part["subject_id"], has_labels, strict=True) if not ok
        )
        raise TausynthError(
            f"include_labels=True but these subjects have no labels in split {split!r}: {missing}"
        )

    transform = build_transforms(
        augment=augment,
        augmentation=augmentation,
        pet_transform=pet_transform,
        spatial_divisor=spatial_divisor,
        t1_normalization=t1_normalization,
        include_labels=include_labels,
        grid=grid,
    )
    if seed is not None:
        transform.set_random_state(seed=int(seed))
    items = manifest_items(part, include_labels=include_labels)
    if cache == "none":
        return Dataset(items, transform=transform)
    if cache == "memory":
        return CacheDataset(
            items, transform=transform, cache_rate=1.0, num_workers=cache_workers, progress=False
        )
    from tausynth import __version__

    signature = {
        "format": _CACHE_FORMAT,
        "tausynth": __version__,
        "spatial_divisor": int(spatial_divisor),
        "t1_normalization": t1_normalization,
        "include_labels": bool(include_labels),
        "grid": None if grid is None else [int(g) for g in grid],
    }
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    return PersistentDataset(
        items, transform=transform, cache_dir=cache_dir, hash_func=_cache_hasher(signature)
    )


def build_loader(
    source: torch.utils.data.Dataset | pd.DataFrame | PathLike,
    split: str | None = None,
    *,
    batch_size: int = 1,
    shuffle: bool = False,
    num_workers: int = 0,
    seed: int | None = None,
    sampler: torch.utils.data.Sampler | None = None,
    drop_last: bool = False,
    pin_memory: bool = False,
    **dataset_kwargs: Any,
) -> DataLoader:
    """A MONAI ``DataLoader`` over a dataset, or over one split of a manifest.

    Parameters
    ----------
    source : monai.data.Dataset, pandas.DataFrame or path
        A dataset from :func:`build_dataset`, or a manifest (frame or path) plus ``split`` and
        ``dataset_kwargs`` (``augment=...`` etc.) to build one.
    batch_size, shuffle, num_workers, drop_last, pin_memory
        As for :class:`torch.utils.data.DataLoader`.
    seed : int, optional
        Seeds the loader's generator, which orders the shuffle and seeds the random transforms (of
        the dataset, or of each worker), so a run is reproducible for a fixed ``num_workers``.
    sampler : torch.utils.data.Sampler, optional
        E.g. a ``DistributedSampler`` under DDP (then ``shuffle`` must be False).
    """
    if isinstance(source, torch.utils.data.Dataset):
        if split is not None or dataset_kwargs:
            raise TausynthError(
                "build_loader: split and dataset options only apply to a manifest source"
            )
        dataset = source
    else:
        if split is None:
            raise TausynthError("build_loader: a manifest source needs a split")
        dataset = build_dataset(source, split, **dataset_kwargs)
    generator = torch.Generator().manual_seed(int(seed)) if seed is not None else None
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else False,
        sampler=sampler,
        num_workers=num_workers,
        drop_last=drop_last,
        pin_memory=pin_memory,
        generator=generator,
    )


def crop_to_original(
    x: torch.Tensor | np.ndarray, original_shape: Sequence[int] | torch.Tensor
) -> torch.Tensor | np.ndarray:
    """Undo the symmetric padding of a sample: cut the last three axes back to ``original_shape``.

    Works for (..., X, Y, Z) arrays or tensors, e.g. a model output (B, 1, X, Y, Z) of one-size
    batches or a single (1, X, Y, Z) sample. Mirrors MONAI's symmetric ``DivisiblePad`` (the
    smaller half of the padding goes first).
    """
    original = [
        int(s)
        for s in (
            original_shape.tolist() if isinstance(original_shape, torch.Tensor) else original_shape
        )
    ]
    if len(original) != 3:
        raise TausynthError(f"original_shape must have three values, got {original}")
    current = list(x.shape[-3:])
    if any(o > c for o, c in zip(original, current, strict=True)):
        raise TausynthError(f"cannot crop shape {tuple(current)} to the larger {tuple(original)}")
    starts = [(c - o) // 2 for c, o in zip(current, original, strict=True)]
    index = (..., *(slice(s, s + o) for s, o in zip(starts, original, strict=True)))
    return x[index]
