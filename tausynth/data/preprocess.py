"""Preprocessing of real paired T1w MRI / tau-PET scans into model-ready volumes.

The pipeline (:func:`preprocess_pair`), in order:

1. **3D, RAS.** Each image is squeezed to 3D (trailing singleton dimensions only) and reoriented to
   the closest canonical (RAS+) voxel order with :func:`nibabel.as_closest_canonical`; the loss
   maps planes to array axes assuming RAS (sagittal = X, coronal = Y, axial = Z).
2. **Common grid.** The PET must already be **co-registered** to its T1 (rigidly, in world
   coordinates), as the official code assumes; this module does not register. When the PET's
   voxel grid differs from the T1's it is resampled onto the T1 grid (trilinear; a spline could
   overshoot into negative uptake). A given mask or label image on another grid is resampled with
   nearest neighbour.
3. **Brain mask.** The given mask (e.g. FreeSurfer's ``brainmask.mgz`` > 0, SynthStrip, HD-BET), else
   one derived from the (skull-stripped) T1 by :func:`derive_brain_mask`.
4. **T1 intensity normalization** (:func:`normalize_t1`), by default a robust min–max: the 0.5th and
   99.5th percentiles of the brain-mask voxels map to 0 and 1, values are clipped to [0, 1] and the
   outside of the mask is set to 0 (skull stripping by the mask). Why: T1w intensities are in
   arbitrary, scanner-dependent units, so a per-image scale is needed; percentiles ignore the few
   extreme voxels (vessels, residual non-brain) that break plain min–max; a bounded [0, 1] range
   gives the official Gaussian-noise augmentation (std 0.1) a fixed meaning (a tenth of the brain's
   intensity range), and keeps the background at 0, the minimum, which is also the value of padding.
   It is idempotent, so already-normalized data pass through unchanged. A z-score variant is
   available (``"zscore"``). The PET is left in its units; SUVR and by-manufacturer standardization
   are :mod:`tausynth.suvr`'s job.
5. **Crop and pad.** All images are cut to the brain mask's bounding box (plus ``margin`` voxels),
   and the box is grown symmetrically to the next multiple of ``divisible`` (16 for U-Net/UNETR,
   32 for SwinUNETR), zero-filled where it leaves the image. The affine follows the box, so outputs
   stay in the same world space as the inputs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import nibabel as nib
import nibabel.processing
import numpy as np
from scipy import ndimage

from tausynth.errors import TausynthError
from tausynth.io import PathLike, atomic_write_text, save_nifti

__all__ = [
    "T1_NORMALIZATIONS",
    "brain_bounding_box",
    "derive_brain_mask",
    "divisible_box",
    "extract_box",
    "load_image",
    "normalize_t1",
    "preprocess_pair",
    "reorient_to_ras",
    "resample_to_reference",
    "same_grid",
    "to_3d",
]

#: Allowed values of ``t1_normalization``.
T1_NORMALIZATIONS: tuple[str, ...] = ("percentile", "zscore", "none")


def load_image(path: PathLike) -> nib.Nifti1Image:
    """Load a NIfTI image (header and affine), raising :class:`TausynthError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise TausynthError(f"{path}: file not found")
    try:
        img = nib.load(str(path))
        img.get_fdata(dtype=np.float32)  # read now so that a corrupt file fails here, by name
    except Exception as exc:  # nibabel raises many types for corrupt files
        raise TausynthError(
            f"{path}: not a readable NIfTI image ({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
        img = nib.Nifti1Image(np.asanyarray(img.dataobj), img.affine)
    return img


def to_3d(img: nib.Nifti1Image, name: str = "image") -> nib.Nifti1Image:
    """Drop trailing singleton dimensions (e.g. a one-frame PET stored as X×Y×Z×1).

    Raises
    ------
    TausynthError
        If the image has several frames or fewer than three dimensions: dynamic PET must be
        summed/averaged into one static frame first.
    """
    shape = img.shape
    if len(shape) < 3 or any(s != 1 for s in shape[3:]):
        raise TausynthError(
            f"{name}: expected a 3D image, got shape {tuple(shape)}; combine PET frames into one static image first"
        )
    if len(shape) == 3:
        return img
    data = np.asanyarray(img.dataobj).reshape(shape[:3])
    return nib.Nifti1Image(data, img.affine, header=img.header)


def reorient_to_ras(img: nib.Nifti1Image) -> nib.Nifti1Image:
    """Return ``img`` with its voxel axes permuted/flipped to the closest RAS+ orientation."""
    return nib.as_closest_canonical(img)


def same_grid(a: nib.Nifti1Image, b: nib.Nifti1Image, tolerance: float = 1e-3) -> bool:
    """Whether two images share a spatial shape and affines within ``tolerance`` (max abs diff)."""
    if tuple(a.shape[:3]) != tuple(b.shape[:3]):
        return False
    return float(np.max(np.abs(np.asarray(a.affine) - np.asarray(b.affine)))) <= tolerance


def resample_to_reference(
    img: nib.Nifti1Image, reference: nib.Nifti1Image, *, order: int = 1, tolerance: float = 1e-3
) -> nib.Nifti1Image:
    """Resample ``img`` onto ``reference``'s voxel grid, or return it unchanged if already there.

    Parameters
    ----------
    img, reference : nibabel.Nifti1Image
        Both in the same world space (co-registered).
    order : int, default=1
        Spline order: 1 (trilinear) for intensities, 0 (nearest) for masks and labels.
    tolerance : float, default=1e-3
        Grids whose affines differ by at most this much are treated as identical.
    """
    if same_grid(img, reference, tolerance):
        return img
    return nibabel.processing.resample_from_to(
        img, (tuple(reference.shape[:3]), reference.affine), order=order, mode="constant", cval=0.0
    )


def derive_brain_mask(t1: np.ndarray, threshold_fraction: float = 0.05) -> np.ndarray:
    """Derive a brain mask from a skull-stripped T1.

    Voxels above ``threshold_fraction`` × the 99th percentile of the positive voxels are kept, then
    the largest 26-connected component, then its holes are filled (ventricles, dark CSF). This
    assumes the T1 is skull-stripped with a near-zero background, as the official code recommends;
    for a T1 with skull, provide a mask instead (FreeSurfer, SynthStrip, HD-BET).

    Returns
    -------
    numpy.ndarray of uint8
        {0, 1}, the shape of ``t1``.
    """
    t1 = np.asarray(t1)
    positive = t1[np.isfinite(t1) & (t1 > 0)]
    if positive.size == 0:
        raise TausynthError("cannot derive a brain mask: the T1 has no positive voxel")
    above = np.nan_to_num(t1, nan=0.0) > threshold_fraction * float(np.percentile(positive, 99))
    labels, n = ndimage.label(above, structure=np.ones((3, 3, 3), dtype=bool))
    if n == 0:
        raise TausynthError("cannot derive a brain mask: no voxel above the threshold")
    largest = labels == (int(np.argmax(np.bincount(labels.ravel())[1:])) + 1)
    return ndimage.binary_fill_holes(largest).astype(np.uint8)


def normalize_t1(
    t1: np.ndarray,
    mask: np.ndarray,
    method: str = "percentile",
    *,
    lower: float = 0.5,
    upper: float = 99.5,
) -> np.ndarray:
    """Normalize T1 intensities using the brain-mask voxels; the outside of the mask becomes 0.

    Parameters
    ----------
    t1 : numpy.ndarray
    mask : numpy.ndarray
        Brain mask (non-zero = brain), the shape of ``t1``.
    method : {"percentile", "zscore", "none"}, default="percentile"
        ``"percentile"``: the ``lower`` and ``upper`` percentiles (nearest rank) of the brain voxels
        map to 0 and 1, then clip to [0, 1] (the default, see the module docstring for why). ``"zscore"``:
        subtract the brain mean, divide by the brain standard deviation. ``"none"``: values kept.
    lower, upper : float
        Percentiles for ``"percentile"``.

    Returns
    -------
    numpy.ndarray of float32
    """
    if method not in T1_NORMALIZATIONS:
        raise TausynthError(
            f"invalid T1 normalization {method!r}; allowed: {', '.join(T1_NORMALIZATIONS)}"
        )
    if not 0 <= lower < upper <= 100:
        raise TausynthError(
            f"T1 normalization percentiles must satisfy 0 <= lower < upper <= 100, got {lower}, {upper}"
        )
    t1 = np.asarray(t1, dtype=np.float32)
    brain = np.asarray(mask) > 0
    if brain.shape != t1.shape:
        raise TausynthError(f"brain mask shape {brain.shape} differs from the T1 shape {t1.shape}")
    if not brain.any():
        raise TausynthError("the brain mask is empty")
    values = t1[brain]
    if not np.all(np.isfinite(values)):
        bad = int((~np.isfinite(values)).sum())
        raise TausynthError(f"cannot normalize the T1: {bad} voxel(s) inside the brain mask are NaN or Inf")
    if method == "none":
        out = t1.copy()
    elif method == "percentile":
        # Nearest-rank percentiles (lower/higher): after clipping, the same ranks are exactly 0 and 1,
        # which makes the normalization exactly idempotent.
        lo = np.percentile(values, lower, method="lower")
        hi = np.percentile(values, upper, method="higher")
        if not hi > lo:
            raise TausynthError(
                "cannot normalize the T1: its intensity is constant inside the brain mask"
            )
        out = np.clip((t1 - lo) / (hi - lo), 0.0, 1.0)
    else:
        mean, std = float(values.mean()), float(values.std())
        if not std > 0:
            raise TausynthError(
                "cannot normalize the T1: its intensity is constant inside the brain mask"
            )
        out = (t1 - mean) / std
    out = np.where(brain, out, 0.0)
    return out.astype(np.float32)


def brain_bounding_box(mask: np.ndarray, margin: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(start, stop)`` voxel indices of the mask's bounding box grown by ``margin``.

    ``stop`` is exclusive. The box may extend past the image when ``margin`` reaches an edge;
    :func:`extract_box` zero-fills there.
    """
    nonzero = np.argwhere(np.asarray(mask) > 0)
    if nonzero.size == 0:
        raise TausynthError("the brain mask is empty: nothing to crop to")
    start = nonzero.min(axis=0) - int(margin)
    stop = nonzero.max(axis=0) + 1 + int(margin)
    return start.astype(int), stop.astype(int)


def divisible_box(
    start: np.ndarray, stop: np.ndarray, divisible: int
) -> tuple[np.ndarray, tuple[int, ...]]:
    """Grow a box symmetrically to the next multiple of ``divisible`` per axis.

    Returns
    -------
    start : numpy.ndarray
        The new first voxel (may be negative).
    shape : tuple of int
        Each a multiple of ``divisible``.
    """
    if int(divisible) != divisible or divisible < 1:
        raise TausynthError(f"divisible must be a positive integer, got {divisible!r}")
    size = np.asarray(stop) - np.asarray(start)
    target = -(-size // divisible) * divisible
    new_start = np.asarray(start) - (target - size) // 2
    return new_start.astype(int), tuple(int(t) for t in target)


def extract_box(
    data: np.ndarray, affine: np.ndarray, start, shape, fill: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Cut ``data[start:start + shape]``, zero-filling (``fill``) where the box leaves the image.

    One operation for both cropping and padding, so a single affine update (the world position of
    the new first voxel) covers both; MONAI's crop/pad transforms do not update a nibabel affine.

    Returns
    -------
    data : numpy.ndarray
        Of ``shape``, ``data``'s dtype.
    affine : numpy.ndarray
        ``affine`` with its translation moved to voxel ``start``.
    """
    start = np.asarray(start, dtype=int)
    shape = np.asarray(shape, dtype=int)
    out = np.full(tuple(shape), fill, dtype=data.dtype)
    src_lo = np.maximum(start, 0)
    src_hi = np.minimum(start + shape, data.shape[:3])
    if np.all(src_hi > src_lo):
        dst_lo = src_lo - start
        dst_hi = dst_lo + (src_hi - src_lo)
        out[tuple(slice(a, b) for a, b in zip(dst_lo, dst_hi, strict=True))] = data[
            tuple(slice(a, b) for a, b in zip(src_lo, src_hi, strict=True))
        ]
    new_affine = np.array(affine, dtype=np.float64, copy=True)
    new_affine[:3, 3] = new_affine[:3, :3] @ start + new_affine[:3, 3]
    return out, new_affine


def _prepared(path: PathLike) -> nib.Nifti1Image:
    return reorient_to_ras(to_3d(load_image(path), name=str(path)))


def preprocess_pair(
    t1_path: PathLike,
    pet_path: PathLike,
    mask_path: PathLike | None,
    out_dir: PathLike,
    divisible: int = 16,
    *,
    margin: int = 2,
    t1_normalization: str = "percentile",
    label_images: Mapping[str, PathLike] | None = None,
    affine_tolerance: float = 1e-3,
    overwrite: bool = False,
) -> dict[str, Path]:
    """Preprocess one co-registered T1w / PET pair (see the module docstring for the steps).

    Parameters
    ----------
    t1_path, pet_path : path
        The T1w MRI and the tau PET, already co-registered to it (same world space).
    mask_path : path or None
        A brain mask; ``None`` derives one from the skull-stripped T1 (:func:`derive_brain_mask`).
    out_dir : path
        Output folder; receives ``t1.nii.gz``, ``pet.nii.gz``, ``mask.nii.gz``, one
        ``<name>.nii.gz`` per label image and ``preprocess.json`` (what was done, for provenance).
    divisible : int, default=16
        Output shape multiple: 16 for U-Net and UNETR, 32 for SwinUNETR.
    margin : int, default=2
        Voxels kept around the brain's bounding box.
    t1_normalization : {"percentile", "zscore", "none"}, default="percentile"
        See :func:`normalize_t1`.
    label_images : mapping of str to path, optional
        Extra label-like images on the T1's world space (e.g. ``{"labels": aparc+aseg,
        "refmask": ...}``), resampled with nearest neighbour and cropped like the T1.
    affine_tolerance : float, default=1e-3
        Grids closer than this are not resampled.
    overwrite : bool, default=False
        Replace existing outputs; otherwise existing outputs are an error.

    Returns
    -------
    dict of str to pathlib.Path
        ``"t1"``, ``"pet"``, ``"mask"``, each label image's name, and ``"record"`` (the JSON).
    """
    if t1_normalization not in T1_NORMALIZATIONS:
        raise TausynthError(
            f"invalid T1 normalization {t1_normalization!r}; allowed: {', '.join(T1_NORMALIZATIONS)}"
        )
    labels_in = dict(label_images or {})
    reserved = {"t1", "pet", "mask", "record"}
    if clash := sorted(reserved & labels_in.keys()):
        raise TausynthError(f"label image name(s) {clash} are reserved; use another name")
    out_dir = Path(out_dir)
    outputs = {name: out_dir / f"{name}.nii.gz" for name in ("t1", "pet", "mask", *labels_in)}
    outputs["record"] = out_dir / "preprocess.json"
    existing = [str(p) for p in outputs.values() if p.exists()]
    if existing and not overwrite:
        raise TausynthError(
            f"{out_dir}: outputs exist ({', '.join(existing)}); pass overwrite=True to replace them"
        )

    t1_raw = to_3d(load_image(t1_path), name=str(t1_path))
    t1_img = reorient_to_ras(t1_raw)
    pet_img = _prepared(pet_path)
    pet_resampled = not same_grid(pet_img, t1_img, affine_tolerance)
    pet_img = resample_to_reference(pet_img, t1_img, order=1, tolerance=affine_tolerance)

    t1 = t1_img.get_fdata(dtype=np.float32)
    pet = pet_img.get_fdata(dtype=np.float32)
    for name, arr, path in (("T1", t1, t1_path), ("PET", pet, pet_path)):
        if not np.all(np.isfinite(arr)):
            raise TausynthError(f"{path}: the {name} contains NaN or Inf voxels")

    if mask_path is not None:
        mask_img = resample_to_reference(
            _prepared(mask_path), t1_img, order=0, tolerance=affine_tolerance
        )
        mask = (np.nan_to_num(mask_img.get_fdata(dtype=np.float32)) > 0).astype(np.uint8)
        if not mask.any():
            raise TausynthError(f"{mask_path}: the brain mask is empty")
        mask_source = str(mask_path)
    else:
        mask = derive_brain_mask(t1)
        mask_source = "derived from the T1 (derive_brain_mask, threshold 5% of the 99th percentile)"

    labels = {}
    for name, path in labels_in.items():
        img = resample_to_reference(_prepared(path), t1_img, order=0, tolerance=affine_tolerance)
        labels[name] = np.rint(np.nan_to_num(img.get_fdata(dtype=np.float32))).astype(np.int32)

    t1_norm = normalize_t1(t1, mask, t1_normalization)
    start, stop = brain_bounding_box(mask, margin=margin)
    box_start, box_shape = divisible_box(start, stop, divisible)

    out_dir.mkdir(parents=True, exist_ok=True)
    out_affine = t1_img.affine
    for name, arr, dtype in (
        ("t1", t1_norm, np.float32),
        ("pet", pet, np.float32),
        ("mask", mask, np.uint8),
        *((name, arr, np.int32) for name, arr in labels.items()),
    ):
        cut, out_affine = extract_box(arr, t1_img.affine, box_start, box_shape)
        save_nifti(outputs[name], cut, out_affine, dtype=dtype)

    record = {
        "inputs": {
            "t1": str(t1_path),
            "pet": str(pet_path),
            "mask": None if mask_path is None else str(mask_path),
            **{k: str(v) for k, v in labels_in.items()},
        },
        "input_orientation": "".join(nib.aff2axcodes(t1_raw.affine)),
        "orientation": "RAS",
        "input_shape": [int(s) for s in t1.shape],
        "pet_resampled_to_t1": pet_resampled,
        "pet_assumed_coregistered_to_t1": True,
        "mask": mask_source,
        "t1_normalization": t1_normalization,
        "box_start_voxel": [int(s) for s in box_start],
        "output_shape": list(box_shape),
        "divisible": int(divisible),
        "margin": int(margin),
        "output_affine": np.asarray(out_affine).tolist(),
    }
    atomic_write_text(outputs["record"], json.dumps(record, indent=2) + "\n")
    return outputs
