"""Label-set masks and regional means: the one implementation every regional value of the book uses.

A region is a set of FreeSurfer label IDs (``tausynth.data.atlas.roi_sets``). Its mask is the voxels
with one of those labels, restricted to grey matter (``gm >= gm_min``, the synthetic cohort's
"GM ribbon" rule) when a GM map is given, except for regions measured on their labels alone (the
basal ganglia, the thalamus and the choroid plexus, whose grey-matter fraction is low by anatomy).
Its mean is voxel-weighted, accumulated in float64.

What happens with a region that has no voxel is a choice of the caller: the SUVR chapter and the
evaluation refuse it (``empty="error"``), the phantom generator records NaN (``empty="nan"``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from tausynth.errors import TausynthError, subject_prefix

__all__ = ["EMPTY_POLICIES", "GM_MIN", "MISSING_POLICIES", "label_mask", "region_mean", "region_masks", "region_means"]

#: Grey-matter fraction a voxel needs when a GM map is given.
GM_MIN = 0.5
#: ``missing``: what to do with label IDs of a region that the label map lacks.
MISSING_POLICIES = ("error", "ignore")
#: ``empty``: what to do with a region that has no voxel.
EMPTY_POLICIES = ("error", "nan")



def label_mask(labels: np.ndarray, ids: Iterable[int]) -> np.ndarray:
    """``np.isin(labels, ids)``, through a lookup table when the labels are small non-negative integers (faster).

    Examples
    --------
    >>> label_mask(np.array([0, 17, 53, 17]), [17, 53]).tolist()
    [False, True, True, True]
    """
    ids = np.asarray(sorted({int(i) for i in ids}), dtype=np.int64)
    if labels.dtype.kind not in "iu" or ids.size == 0 or ids.min() < 0 or labels.size == 0:
        return np.isin(labels, ids)
    top = int(max(labels.max(), ids.max())) + 1
    if labels.min() < 0 or top > 1 << 16:
        return np.isin(labels, ids)
    lut = np.zeros(top, dtype=bool)
    lut[ids] = True
    return lut[labels]


def region_masks(
    labels: np.ndarray,
    regions: Mapping[str, Iterable[int]],
    gm: np.ndarray | None = None,
    gm_min: float = GM_MIN,
    label_only: Iterable[str] = (),
    missing: str = "error",
    empty: str = "error",
    subject: object | None = None,
) -> dict[str, np.ndarray]:
    """Boolean voxel mask of every region (label in the region, and GM where a GM map is given).

    Parameters
    ----------
    labels : numpy.ndarray
        Integer label map (FreeSurfer IDs); float arrays are rounded.
    regions : mapping of str to iterable of int
        Region name to label IDs.
    gm : numpy.ndarray, optional
        Grey-matter fraction on the same grid.
    gm_min : float, default=0.5
        A voxel counts when ``gm >= gm_min`` (ignored without ``gm``).
    label_only : iterable of str, default=()
        Regions measured on their labels alone even when ``gm`` is given.
    missing : {"error", "ignore"}, default="error"
        A region with label IDs absent from the map raises, or is measured on the IDs present.
    empty : {"error", "nan"}, default="error"
        A region without a voxel raises, or keeps an empty mask (its mean is NaN).
    subject : object, optional
        Subject identifier for error messages.

    Raises
    ------
    TausynthError
        On mismatched shapes, an unknown policy, a region without label IDs, an absent label
        (``missing="error"``) or an empty region (``empty="error"``).
    """
    for option, value, allowed in (("missing", missing, MISSING_POLICIES), ("empty", empty, EMPTY_POLICIES)):
        if value not in allowed:
            raise TausynthError(f"{option}={value!r} not allowed; use one of {', '.join(allowed)}")
    lab = np.asarray(labels)
    if lab.dtype.kind == "f":
        lab = np.rint(lab).astype(np.int64)
    ribbon = None
    if gm is not None:
        g = np.asarray(gm)
        if g.shape != lab.shape:
            raise TausynthError(f"{subject_prefix(subject)}GM map shape {g.shape} does not match the label map shape {lab.shape}")
        ribbon = g >= gm_min
    present = set(np.unique(lab).tolist()) if missing == "error" else set()
    label_only = set(label_only)
    out: dict[str, np.ndarray] = {}
    for name, ids in regions.items():
        ids = sorted({int(i) for i in ids})
        if not ids:
            raise TausynthError(f"{subject_prefix(subject)}region {name!r} has no label IDs")
        absent = [i for i in ids if i not in present] if missing == "error" else []
        if absent:
            raise TausynthError(
                f"{subject_prefix(subject)}region {name!r}: label(s) {', '.join(map(str, absent))} absent from the label map")
        sel = label_mask(lab, ids)
        gm_rule = ribbon is not None and name not in label_only
        if gm_rule:
            sel &= ribbon
        if empty == "error" and not sel.any():
            extra = f" with GM >= {gm_min:g}" if gm_rule else ""
            raise TausynthError(f"{subject_prefix(subject)}region {name!r} is empty (no voxel{extra} with labels {ids})")
        out[name] = sel
    return out


def region_means(volume: np.ndarray, masks: Mapping[str, np.ndarray], subject: object | None = None) -> dict[str, float]:
    """Voxel-weighted mean of ``volume`` in each mask of :func:`region_masks` (float64; NaN for an empty mask)."""
    vol = np.asarray(volume)
    out = {}
    for name, sel in masks.items():
        if sel.shape != vol.shape:
            raise TausynthError(f"{subject_prefix(subject)}image shape {vol.shape} does not match the label map shape {sel.shape}")
        out[name] = float(np.mean(vol[sel], dtype=np.float64)) if sel.any() else float("nan")
    return out


def region_mean(
    volume: np.ndarray,
    labels: np.ndarray,
    label_ids: Iterable[int],
    gm: np.ndarray | None = None,
    gm_min: float = GM_MIN,
    name: str | None = None,
) -> float:
    """Voxel-weighted mean of ``volume`` over one label set (its IDs absent from the map are ignored).

    Raises
    ------
    TausynthError
        If no voxel belongs to the region (after the GM restriction) or shapes differ.

    Examples
    --------
    >>> labels = np.array([[[1006, 1006, 17]]])
    >>> region_mean(np.array([[[1.0, 3.0, 9.0]]]), labels, [1006, 2006])
    2.0
    """
    ids = list(label_ids)
    what = name or f"labels {sorted({int(i) for i in ids})}"
    masks = region_masks(labels, {what: ids}, gm, gm_min, missing="ignore", empty="error")
    return region_means(volume, masks)[what]
