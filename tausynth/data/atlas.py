"""Region table, ROI sets and the phantom's MNI label map (FreeSurfer IDs).

The synthetic cohort needs a Desikan–Killiany/aseg-like label map in MNI space but the book may not
ship an atlas volume. Every region is an ellipsoid (centroid and 3×3
covariance, measured once on FreeSurfer's ``cvs_avg35_inMNI152`` aparc+aseg) and each voxel of
nilearn's bundled ICBM152 2009a template goes to the nearest ellipsoid in Mahalanobis distance,
gated by its tissue class. The build takes a few seconds and is cached as an ``.npz`` file.

ROI sets are *parameters*: :func:`roi_sets` returns a fresh ``dict`` that callers may edit, and the
reference region is a small dataclass (:class:`ReferenceRegion`).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from scipy import ndimage

from tausynth.io import atomic_path

__all__ = [
    "REGIONS",
    "Region",
    "RegionKind",
    "ReferenceRegion",
    "PhantomTemplate",
    "TEMPLATE_VERSION",
    "GRID_SHAPE",
    "GRID_AFFINE",
    "cache_dir",
    "roi_sets",
    "reference_region",
    "reference_mask",
    "region_by_id",
    "region_by_name",
    "world_coordinates",
    "build_template",
    "load_template",
]

RegionKind = Literal[
    "cortex", "mtl", "deep_gm", "cerebellum_gm", "cerebellum_wm", "ventricle", "choroid", "brainstem"
]


@dataclass(frozen=True)
class Region:
    """One row of the region table.

    Attributes
    ----------
    name : str
        Desikan–Killiany / aseg name (without hemisphere prefix).
    lh_id, rh_id : int
        FreeSurferColorLUT IDs of the left and right structure (equal for the midline brainstem).
    kind : str
        Tissue role used by the label-map builder and the generators.
    braak : int or None
        Braak stage (1–6) of the region, ``None`` for regions without tau.
    centroid : tuple of float
        Centroid of the *left* region in MNI mm (the brainstem's is unmirrored).
    cov : tuple of float
        Covariance (xx, yy, zz, xy, xz, yz) in mm² of the left region.
    amplitude : float or None
        Tau amplitude A_r (full-involvement grey-matter excess is 1.4·A_r SUVR).
    """

    name: str
    lh_id: int
    rh_id: int
    kind: RegionKind
    braak: int | None
    centroid: tuple[float, float, float]
    cov: tuple[float, float, float, float, float, float]
    amplitude: float | None = None

    @property
    def ids(self) -> tuple[int, ...]:
        """The label IDs of this region (one for the brainstem, two otherwise)."""
        return (self.lh_id,) if self.lh_id == self.rh_id else (self.lh_id, self.rh_id)

    def covariance(self) -> np.ndarray:
        """Return the 3×3 covariance matrix (mm²)."""
        xx, yy, zz, xy, xz, yz = self.cov
        return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]], dtype=np.float64)


def _r(name, lh, rh, kind, braak, c, cov, amp=None) -> Region:  # noqa: ANN001 - table shorthand
    return Region(name, lh, rh, kind, braak, tuple(map(float, c)), tuple(map(float, cov)), amp)


#: The 48-row region table (left centroids, 2 mm MNI).
REGIONS: tuple[Region, ...] = (
    _r("entorhinal", 1006, 2006, "cortex", 1, (-22.9, -4.5, -34.0), (17.4, 46.0, 19.8, 0.0, 2.9, -12.2), 1.5),
    _r("hippocampus", 17, 53, "mtl", 2, (-26.0, -22.2, -14.1), (34.8, 114.6, 69.7, -3.6, 9.1, -81.4), 0.5),
    _r("parahippocampal", 1016, 2016, "cortex", 3, (-22.6, -31.5, -15.9), (39.6, 61.3, 48.9, -18.6, 20.2, -51.1), 1.2),
    _r("fusiform", 1007, 2007, "cortex", 3, (-35.4, -40.3, -23.1), (54.2, 626.5, 144.2, 50.0, -22.6, -271.6), 1.7),
    _r("lingual", 1013, 2013, "cortex", 3, (-12.6, -69.7, -5.1), (63.9, 181.0, 37.9, -63.3, 9.5, 26.0), 0.9),
    _r("amygdala", 18, 54, "mtl", 3, (-23.7, -4.3, -19.6), (18.5, 7.8, 27.3, -0.0, 3.5, -7.6), 1.2),
    _r("middletemporal", 1015, 2015, "cortex", 4, (-59.0, -23.1, -13.1), (45.6, 509.1, 200.2, 65.9, -42.7, -290.8), 1.7),
    _r("caudalanteriorcingulate", 1002, 2002, "cortex", 4, (-6.1, 19.4, 26.9), (5.0, 83.3, 31.3, -2.6, 0.2, -37.3), 0.5),
    _r("rostralanteriorcingulate", 1026, 2026, "cortex", 4, (-6.3, 36.1, 3.7), (7.8, 50.0, 66.8, -7.3, -8.4, 18.6), 0.5),
    _r("posteriorcingulate", 1023, 2023, "cortex", 4, (-6.4, -19.1, 36.6), (11.5, 145.9, 20.6, 7.3, -3.5, -3.0), 1.1),
    _r("isthmuscingulate", 1010, 2010, "cortex", 4, (-8.0, -45.4, 17.4), (16.2, 32.8, 123.0, 4.5, 22.9, 30.4), 1.3),
    _r("insula", 1035, 2035, "cortex", 4, (-36.1, 0.4, -1.5), (15.1, 160.5, 101.9, 9.2, -2.5, -58.2), 0.8),
    _r("inferiortemporal", 1009, 2009, "cortex", 4, (-51.4, -32.4, -23.2), (59.2, 501.3, 191.1, 76.8, -43.2, -282.9), 2.0),
    _r("temporalpole", 1033, 2033, "cortex", 4, (-29.5, 13.9, -36.8), (32.6, 30.8, 24.8, -17.5, -2.8, -3.5), 1.2),
    _r("superiorfrontal", 1028, 2028, "cortex", 5, (-11.0, 29.0, 44.4), (47.5, 518.5, 368.2, 29.8, -33.8, -350.8), 0.9),
    _r("lateralorbitofrontal", 1012, 2012, "cortex", 5, (-23.4, 31.3, -18.1), (86.4, 166.3, 30.4, 38.2, -29.1, 2.8), 0.8),
    _r("medialorbitofrontal", 1014, 2014, "cortex", 5, (-6.6, 35.4, -16.4), (16.5, 270.8, 51.7, 19.6, -8.1, 17.6), 0.7),
    _r("frontalpole", 1032, 2032, "cortex", 5, (-7.7, 65.5, -10.1), (11.5, 7.4, 33.8, 0.8, 3.4, 10.6), 0.5),
    _r("caudalmiddlefrontal", 1003, 2003, "cortex", 5, (-36.9, 11.6, 48.3), (48.5, 72.6, 80.9, -9.1, 19.9, -9.6), 1.0),
    _r("rostralmiddlefrontal", 1027, 2027, "cortex", 5, (-32.7, 47.2, 17.9), (85.6, 172.6, 288.4, 73.3, -36.7, -154.6), 1.0),
    _r("parsopercularis", 1018, 2018, "cortex", 5, (-48.2, 16.9, 12.7), (44.2, 36.5, 71.2, -10.9, 2.4, 6.2), 0.9),
    _r("parsorbitalis", 1019, 2019, "cortex", 5, (-43.2, 39.1, -12.7), (21.0, 75.4, 14.7, 16.4, -3.4, -3.2), 0.8),
    _r("parstriangularis", 1020, 2020, "cortex", 5, (-47.8, 34.3, 4.2), (35.3, 44.8, 53.3, 1.5, -6.8, -11.2), 0.9),
    _r("lateraloccipital", 1011, 2011, "cortex", 5, (-33.1, -85.8, 0.9), (157.6, 123.4, 145.9, -111.8, -10.4, 5.7), 1.4),
    _r("supramarginal", 1031, 2031, "cortex", 5, (-55.2, -33.0, 32.2), (70.5, 103.2, 107.6, -2.5, -0.8, -29.1), 1.3),
    _r("inferiorparietal", 1008, 2008, "cortex", 5, (-44.7, -64.4, 34.5), (76.3, 149.3, 148.4, -60.3, 15.3, 38.3), 1.7),
    _r("superiortemporal", 1030, 2030, "cortex", 5, (-53.7, -8.6, -4.7), (74.6, 378.5, 204.3, 93.2, -82.3, -251.1), 1.0),
    _r("superiorparietal", 1029, 2029, "cortex", 5, (-22.7, -64.0, 51.3), (97.8, 276.5, 207.0, -100.6, -16.3, 156.2), 1.3),
    _r("precuneus", 1025, 2025, "cortex", 5, (-9.0, -57.8, 37.8), (32.8, 88.6, 267.2, 4.3, 36.5, 43.7), 1.6),
    _r("bankssts", 1001, 2001, "cortex", 5, (-53.2, -41.8, 7.9), (33.8, 31.2, 34.4, -4.8, 0.6, -10.3), 1.5),
    _r("transversetemporal", 1034, 2034, "cortex", 5, (-44.2, -21.1, 7.7), (23.3, 31.0, 14.5, -20.4, 10.0, -13.8), 0.6),
    _r("pericalcarine", 1021, 2021, "cortex", 6, (-11.0, -80.4, 5.8), (25.4, 120.8, 25.9, -18.6, -1.2, 37.8), 0.6),
    _r("postcentral", 1022, 2022, "cortex", 6, (-45.0, -21.8, 45.4), (250.1, 126.8, 450.3, -136.8, 262.8, -204.0), 0.6),
    _r("cuneus", 1005, 2005, "cortex", 6, (-6.1, -81.5, 17.8), (27.6, 109.8, 69.0, -22.3, -7.3, 22.0), 0.9),
    _r("precentral", 1024, 2024, "cortex", 6, (-40.4, -6.8, 44.1), (226.5, 120.4, 462.6, -128.3, 257.7, -173.8), 0.5),
    _r("paracentral", 1017, 2017, "cortex", 6, (-6.9, -26.2, 57.0), (17.9, 103.9, 79.9, 8.6, 20.7, -14.1), 0.6),
    _r("putamen", 12, 51, "deep_gm", None, (-26.0, 1.5, -0.9), (29.1, 83.3, 40.0, 30.1, -9.0, -14.1)),
    _r("pallidum", 13, 52, "deep_gm", None, (-20.2, -4.1, -1.1), (19.8, 37.0, 17.1, 21.0, -3.0, -1.9)),
    _r("caudate", 11, 50, "deep_gm", None, (-13.5, 7.7, 10.1), (13.7, 162.7, 73.2, 16.2, -13.8, -80.8)),
    _r("thalamus", 10, 49, "deep_gm", None, (-11.6, -18.4, 6.5), (33.3, 81.0, 33.3, 23.2, -4.2, 5.3)),
    _r("ventraldc", 28, 60, "deep_gm", None, (-11.6, -14.7, -9.8), (50.0, 52.3, 17.3, 21.4, -7.0, -5.1)),
    _r("accumbens", 26, 58, "deep_gm", None, (-9.2, 11.9, -6.9), (7.6, 24.2, 10.4, -4.9, 3.6, 5.6)),
    _r("choroidplexus", 31, 63, "choroid", None, (-16.1, -20.2, 8.0), (150.2, 373.3, 94.6, 172.7, 81.8, 23.0)),
    _r("lateralventricle", 4, 43, "ventricle", None, (-12.7, -13.2, 14.5), (68.7, 528.1, 49.0, 159.5, 8.2, -14.9)),
    _r("inflatvent", 5, 44, "ventricle", None, (-28.0, -11.1, -18.1), (20.1, 59.2, 33.2, -0.7, 11.8, -37.0)),
    _r("cerebellumcortex", 8, 47, "cerebellum_gm", None, (-23.7, -61.2, -36.7), (202.1, 182.4, 171.5, -14.3, 40.5, -10.2)),
    _r("cerebellumwm", 7, 46, "cerebellum_wm", None, (-20.8, -55.4, -36.0), (85.8, 148.3, 34.9, 16.1, 22.7, -0.2)),
    _r("brainstem", 16, 16, "brainstem", None, (0.5, -30.4, -32.6), (49.9, 66.1, 244.9, -0.9, 0.9, 59.8)),
)

CEREBRAL_WM: tuple[int, int] = (2, 41)
CSF_LABEL: int = 24

_BY_NAME: dict[str, Region] = {r.name: r for r in REGIONS}
_BY_ID: dict[int, Region] = {i: r for r in REGIONS for i in r.ids}


def region_by_id(label: int) -> Region:
    """Return the :class:`Region` owning FreeSurfer ID ``label`` (KeyError if unknown)."""
    return _BY_ID[int(label)]


def region_by_name(name: str) -> Region:
    """Return the :class:`Region` called ``name`` (table spelling, e.g. ``"entorhinal"``)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown region {name!r}; known: {', '.join(_BY_NAME)}") from None


def _ids(*names: str) -> tuple[int, ...]:
    return tuple(sorted(i for n in names for i in _BY_NAME[n].ids))


def _braak_ids(*stages: int) -> tuple[int, ...]:
    return tuple(sorted(i for r in REGIONS if r.braak in stages for i in r.ids))


def roi_sets() -> dict[str, tuple[int, ...]]:
    """Return a fresh dict of named ROI sets (FreeSurfer label IDs), free for the caller to modify.

    Keys: ``braak1`` … ``braak6``, ``braak34``, ``braak56`` (unions), ``metatemporal`` (Jack et al.
    2017: amygdala, entorhinal, fusiform, inferior/middle temporal, parahippocampal),
    ``entorhinal``, ``inferiortemporal``, ``hippocampus``, ``amygdala``, the off-target structures
    ``putamen``, ``pallidum``, ``caudate``, ``thalamus``, ``ventraldc``, ``choroid``, and
    ``whole_cerebellum``, ``cerebellar_cortex``, ``ventricles`` (lateral + inferior lateral
    ventricles + choroid plexus). The inferior cerebellar reference is not a pure label set; see
    :class:`ReferenceRegion`.

    Returns
    -------
    dict of str to tuple of int
    """
    sets = {f"braak{k}": _braak_ids(k) for k in range(1, 7)}
    sets.update(
        braak34=_braak_ids(3, 4),
        braak56=_braak_ids(5, 6),
        metatemporal=_ids(
            "amygdala", "entorhinal", "fusiform", "inferiortemporal", "middletemporal", "parahippocampal"
        ),
        entorhinal=_ids("entorhinal"),
        inferiortemporal=_ids("inferiortemporal"),
        hippocampus=_ids("hippocampus"),
        amygdala=_ids("amygdala"),
        putamen=_ids("putamen"),
        pallidum=_ids("pallidum"),
        caudate=_ids("caudate"),
        thalamus=_ids("thalamus"),
        ventraldc=_ids("ventraldc"),
        choroid=_ids("choroidplexus"),
        whole_cerebellum=_ids("cerebellumcortex", "cerebellumwm"),
        cerebellar_cortex=_ids("cerebellumcortex"),
        ventricles=_ids("lateralventricle", "inflatvent", "choroidplexus"),
    )
    return sets


@dataclass(frozen=True)
class ReferenceRegion:
    """Inferior cerebellar grey matter, the flortaucipir reference region (UCB/ADNI style).

    A voxel belongs to it when its label is in ``labels``, its MNI ``z <= z_max_mm``, ``|x| >=
    abs_x_min_mm`` (excludes the vermis) and its grey-matter fraction is ``> gm_min``.
    """

    labels: tuple[int, ...] = (8, 47)
    z_max_mm: float = -36.0
    abs_x_min_mm: float = 6.0
    gm_min: float = 0.5


def reference_region() -> ReferenceRegion:
    """Return the default :class:`ReferenceRegion` (use ``dataclasses.replace`` to change it)."""
    return ReferenceRegion()


def world_coordinates(shape: tuple[int, int, int], affine: np.ndarray) -> tuple[np.ndarray, ...]:
    """Return the 1-D world coordinates (mm) of each axis of an axis-aligned grid."""
    return tuple(affine[k, k] * np.arange(shape[k]) + affine[k, 3] for k in range(3))


def reference_mask(
    labels: np.ndarray, gm: np.ndarray, affine: np.ndarray, region: ReferenceRegion | None = None
) -> np.ndarray:
    """Boolean inferior-cerebellar-GM mask of a label map on an axis-aligned grid.

    Parameters
    ----------
    labels : numpy.ndarray
        FreeSurfer label map.
    gm : numpy.ndarray
        Grey-matter fraction on the same grid.
    affine : numpy.ndarray of shape (4, 4)
        Diagonal voxel-to-MNI affine of the grid.
    region : ReferenceRegion, optional
        Definition; default :func:`reference_region`.
    """
    region = region or reference_region()
    x, _, z = world_coordinates(labels.shape, affine)
    return (
        np.isin(labels, region.labels)
        & (z[None, None, :] <= region.z_max_mm)
        & (np.abs(x)[:, None, None] >= region.abs_x_min_mm)
        & (gm > region.gm_min)
    )


# --------------------------------------------------------------------------------------------
# Template grid and label map
# --------------------------------------------------------------------------------------------

GRID_SHAPE: tuple[int, int, int] = (80, 96, 80)
GRID_AFFINE: np.ndarray = np.array(
    [[2.0, 0, 0, -78.0], [0, 2.0, 0, -112.0], [0, 0, 2.0, -72.0], [0, 0, 0, 1.0]]
)
_CROP = (slice(10, 90), slice(11, 107), slice(0, 80))

# Builder thresholds; part of the cache key below.
_BUILD = {
    "gm_min": 0.30,
    "gm_d2_max": 16.0,
    "deep_d2_max": 2.5,
    "cbwm_d2_max": 9.0,
    "csf_min": 0.3,
    "lv_d2_max": 9.0,
    "ilv_d2_max": 6.0,
    "cp_d2_max": 4.0,
    "cp_box_y": (-45.0, -18.0),
    "cp_box_z": (-5.0, 25.0),
    "cp_ilv_y_max": -12.0,
    "bs_d2_max": 4.0,
    "bs_z_max": -8.0,
}
_GM_STRUCTURE_KINDS = ("cortex", "mtl", "cerebellum_gm", "deep_gm")
_DEEP_CLAIM = ("putamen", "pallidum", "thalamus", "caudate")


def _table_digest() -> str:
    payload = json.dumps(
        {"regions": [list(map(str, (r.name, r.lh_id, r.rh_id, r.kind, r.braak, r.centroid, r.cov))) for r in REGIONS],
         "build": {k: str(v) for k, v in _BUILD.items()}, "crop": str(_CROP)},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


#: Cache key of the template build; changes whenever the table or the builder thresholds change.
TEMPLATE_VERSION: str = f"phantom-template-v1-{_table_digest()}"


@dataclass(frozen=True)
class PhantomTemplate:
    """The phantom's template anatomy on the 2 mm grid (80×96×80, origin (−78, −112, −72) mm).

    Attributes
    ----------
    gm, wm, csf : numpy.ndarray (float32)
        Tissue fractions (nilearn ICBM152 2009a GM/WM probability maps inside the brain mask;
        ``csf = clip(mask − gm − wm, 0, 1)``).
    mask : numpy.ndarray (float32)
        Brain mask (0/1).
    labels : numpy.ndarray (int16)
        FreeSurfer label map (0 outside the brain).
    dist_out : numpy.ndarray (float32)
        Distance (mm) from each voxel outside the mask to the mask (0 inside).
    affine : numpy.ndarray of shape (4, 4)
    version : str
    """

    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    mask: np.ndarray
    labels: np.ndarray
    dist_out: np.ndarray
    affine: np.ndarray = field(default_factory=lambda: GRID_AFFINE.copy())
    version: str = TEMPLATE_VERSION

    def __post_init__(self) -> None:
        # The template is shared (memoised); make accidental in-place edits fail loudly.
        for name in _ARRAYS:
            getattr(self, name).flags.writeable = False

    @property
    def shape(self) -> tuple[int, int, int]:
        """Grid shape."""
        return self.labels.shape  # type: ignore[return-value]

    def reference_mask(self, region: ReferenceRegion | None = None) -> np.ndarray:
        """Inferior cerebellar GM mask of the template (see :func:`reference_mask`)."""
        return reference_mask(self.labels, self.gm, self.affine, region)


_ARRAYS = ("gm", "wm", "csf", "mask", "labels", "dist_out")


def _load_nilearn_tissues() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from nilearn import datasets

    def get(loader) -> np.ndarray:  # noqa: ANN001
        img = loader(resolution=2)
        if img.shape != (99, 117, 95) or not np.allclose(img.affine[:3, 3], (-98, -134, -72)):
            raise RuntimeError(f"unexpected nilearn template geometry from {loader.__name__}: {img.shape}")
        return np.asarray(img.get_fdata(dtype=np.float32))[_CROP]

    gm = get(datasets.load_mni152_gm_template)
    wm = get(datasets.load_mni152_wm_template)
    mask = (get(datasets.load_mni152_brain_mask) > 0.5).astype(np.float32)
    return gm, wm, mask


def _mahalanobis_d2(points: np.ndarray, region: Region) -> np.ndarray:
    diff = points - np.asarray(region.centroid)
    inv = np.linalg.inv(region.covariance())
    return np.einsum("ni,ij,nj->n", diff, inv, diff)


def build_template() -> PhantomTemplate:
    """Build the template anatomy and label map from nilearn's bundled ICBM152 2009a maps.

    Nearest-ellipsoid assignment gated by tissue class). Nothing
    is downloaded. Takes a few seconds; use :func:`load_template` for the cached version.

    Returns
    -------
    PhantomTemplate
    """
    gm, wm, mask = _load_nilearn_tissues()
    gm = gm * mask
    wm = wm * mask
    csf = np.clip(mask - gm - wm, 0.0, 1.0)
    inside = mask > 0
    tissue = np.argmax(np.stack([csf, gm, wm]), axis=0)  # 0 CSF, 1 GM, 2 WM

    idx = np.argwhere(inside)
    xs, ys, zs = world_coordinates(GRID_SHAPE, GRID_AFFINE)
    world = np.stack([xs[idx[:, 0]], ys[idx[:, 1]], zs[idx[:, 2]]], axis=1)
    mirrored = world.copy()
    mirrored[:, 0] = -np.abs(mirrored[:, 0])
    left = world[:, 0] < 0
    g = gm[inside]
    c = csf[inside]
    cls = tissue[inside]
    b = _BUILD

    d2 = {r.name: _mahalanobis_d2(world if r.kind == "brainstem" else mirrored, r) for r in REGIONS}

    def hemi(region: Region, sel: np.ndarray) -> np.ndarray:
        return np.where(left[sel], region.lh_id, region.rh_id)

    lab = np.zeros(len(idx), dtype=np.int16)
    # 3. grey-matter structures: nearest ellipsoid among them
    gm_regions = [r for r in REGIONS if r.kind in _GM_STRUCTURE_KINDS]
    stack = np.stack([d2[r.name] for r in gm_regions])
    best = np.argmin(stack, axis=0)
    best_d2 = stack[best, np.arange(len(idx))]
    sel = (g >= b["gm_min"]) & (cls != 0) & (best_d2 < b["gm_d2_max"])
    lh_ids = np.array([r.lh_id for r in gm_regions])
    rh_ids = np.array([r.rh_id for r in gm_regions])
    lab[sel] = np.where(left[sel], lh_ids[best[sel]], rh_ids[best[sel]])
    # 4. deep nuclei claim remaining non-CSF voxels close to their centre
    deep = [_BY_NAME[n] for n in _DEEP_CLAIM]
    dstack = np.stack([d2[r.name] for r in deep])
    dbest = np.argmin(dstack, axis=0)
    sel = (lab == 0) & (cls != 0) & (dstack[dbest, np.arange(len(idx))] < b["deep_d2_max"])
    lab[sel] = np.where(
        left[sel], np.array([r.lh_id for r in deep])[dbest[sel]], np.array([r.rh_id for r in deep])[dbest[sel]]
    )
    # 5. white matter: cerebellar if inside its ellipsoid, else cerebral
    cbwm = _BY_NAME["cerebellumwm"]
    sel = (lab == 0) & (cls == 2)
    is_cb = d2[cbwm.name] < b["cbwm_d2_max"]
    lab[sel & is_cb] = hemi(cbwm, sel & is_cb)
    lab[sel & ~is_cb] = np.where(left[sel & ~is_cb], CEREBRAL_WM[0], CEREBRAL_WM[1])
    # 6. ventricles among CSF voxels
    csf_sel = (lab == 0) & (cls == 0) & (c > b["csf_min"])
    lv, ilv = _BY_NAME["lateralventricle"], _BY_NAME["inflatvent"]
    in_lv = csf_sel & (d2[lv.name] < b["lv_d2_max"])
    in_ilv = csf_sel & (d2[ilv.name] < b["ilv_d2_max"])
    in_lv &= ~(in_ilv & (d2[ilv.name] / b["ilv_d2_max"] < d2[lv.name] / b["lv_d2_max"]))
    in_ilv &= ~in_lv
    lab[in_lv] = hemi(lv, in_lv)
    lab[in_ilv] = hemi(ilv, in_ilv)
    # 7. choroid plexus: atrium part of the ellipsoid + posterior inferior horn (bleeds into hippocampus)
    cp = _BY_NAME["choroidplexus"]
    y, z = world[:, 1], world[:, 2]
    box = (b["cp_box_y"][0] < y) & (y < b["cp_box_y"][1]) & (b["cp_box_z"][0] < z) & (z < b["cp_box_z"][1])
    ventricle_or_csf = (cls == 0) & ((lab == 0) | np.isin(lab, lv.ids))
    sel = (ventricle_or_csf & (d2[cp.name] < b["cp_d2_max"]) & box) | (np.isin(lab, ilv.ids) & (y < b["cp_ilv_y_max"]))
    lab[sel] = hemi(cp, sel)
    lab[lab == 0] = CSF_LABEL
    # 8. brainstem (unmirrored ellipsoid), never over hippocampus/amygdala
    bs = _BY_NAME["brainstem"]
    keep = np.isin(lab, _ids("hippocampus", "amygdala"))
    sel = (d2[bs.name] < b["bs_d2_max"]) & (z < b["bs_z_max"]) & ~keep
    lab[sel] = bs.lh_id

    labels = np.zeros(GRID_SHAPE, dtype=np.int16)
    labels[inside] = lab
    dist_out = ndimage.distance_transform_edt(~inside, sampling=2.0).astype(np.float32)
    return PhantomTemplate(
        gm=gm.astype(np.float32),
        wm=wm.astype(np.float32),
        csf=csf.astype(np.float32),
        mask=mask.astype(np.float32),
        labels=labels,
        dist_out=dist_out,
    )


def cache_dir() -> Path:
    """Folder for tausynth's caches: ``$TAUSYNTH_CACHE``, else ``$XDG_CACHE_HOME/tausynth``, else
    ``~/.cache/tausynth``."""
    if env := os.environ.get("TAUSYNTH_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tausynth"


def _checksum(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in _ARRAYS:
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}:{a.dtype}:{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


_EXPECTED_DTYPES = {"gm": np.float32, "wm": np.float32, "csf": np.float32, "mask": np.float32,
                    "labels": np.int16, "dist_out": np.float32}


def _read_cache(path: Path) -> PhantomTemplate | None:
    """Return the cached template, or None if the file is missing, stale or corrupt."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            if str(npz["version"]) != TEMPLATE_VERSION:
                return None
            arrays = {name: np.array(npz[name]) for name in _ARRAYS}
            stored = str(npz["checksum"])
    except Exception:  # a truncated/corrupt zip raises many types; any failure means "rebuild"
        return None
    for name, arr in arrays.items():
        if arr.shape != GRID_SHAPE or arr.dtype != _EXPECTED_DTYPES[name]:
            return None
    if _checksum(arrays) != stored:
        return None
    return PhantomTemplate(**arrays)


def _write_cache(path: Path, tpl: PhantomTemplate) -> None:
    arrays = {name: getattr(tpl, name) for name in _ARRAYS}
    try:
        with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, version=np.array(TEMPLATE_VERSION), checksum=np.array(_checksum(arrays)), **arrays)
    except OSError as exc:  # an unwritable cache only costs time
        warnings.warn(f"tausynth: could not write template cache {path}: {exc}", RuntimeWarning, stacklevel=3)


_MEMO: dict[str, PhantomTemplate] = {}


def load_template(cache: bool = True) -> PhantomTemplate:
    """Return the phantom template, built once and cached.

    Looks in memory, then in ``cache_dir()/<TEMPLATE_VERSION>.npz`` (verified: version string,
    shapes, dtypes and a SHA-256 of the arrays; a stale or corrupt file is rebuilt and replaced
    atomically), else builds it with :func:`build_template`.

    Parameters
    ----------
    cache : bool, default=True
        Use the on-disk cache. ``False`` always rebuilds (and writes nothing).
    """
    if not cache:
        return build_template()
    path = cache_dir() / f"{TEMPLATE_VERSION}.npz"
    key = str(path)
    if key in _MEMO:
        return _MEMO[key]
    tpl = _read_cache(path)
    if tpl is None:
        tpl = build_template()
        _write_cache(path, tpl)
    _MEMO[key] = tpl
    return tpl
