"""Synthetic paired T1w MRI + [18F]flortaucipir SUVR cohort (the "phantom").

A cohort of subjects with a diagnosis, amyloid status,
age, sex and a continuous Braak stage; per subject a warped and atrophied copy of the ICBM152
template anatomy, a tau-PET model with off-target binding, scanner PSF, noise, 8 mm
harmonization, inferior-cerebellar reference normalization and an explicit per-manufacturer SUVR
distortion, and a T1w model. Images are produced on the 2 mm grid (80×96×80) and,
on request, as 2×2×2 block means on the 4 mm grid (40×48×40).

Randomness: the cohort is sampled from ``numpy.random.default_rng(seed)``; subject ``i``
draws everything else from ``numpy.random.default_rng(seed * 100003 + i)``. That generator is split
into independent child streams (anatomy, tau, PET, MRI) and every draw happens whatever the
manufacturer, so re-scanning a subject on another manufacturer (``manufacturer=...``, the
"travelling subjects" experiment) changes only the manufacturer-specific parts: PSF width,
SUVR distortion and MPRAGE contrasts.

In-memory API: :func:`sample_cohort`, :func:`simulate_subject`, :func:`measure_rois`.
On-disk API: :func:`write_cohort` (NIfTI + ``manifest.csv`` + ``subjects.csv``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
import shutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import ndimage

from tausynth.data import atlas
from tausynth.data import manifest as manifest_schema
from tausynth.data.regions import label_mask, region_masks, region_means
from tausynth.errors import TausynthError
from tausynth.io import PathLike, atomic_write_text, save_nifti
from tausynth.vocabulary import DIAGNOSES, SPLITS

__all__ = [
    "DIAGNOSES",
    "MANIFEST_COLUMNS",
    "MANUFACTURERS",
    "ROI_TABLE",
    "ManufacturerModel",
    "SubjectImages",
    "SubjectParams",
    "SyntheticSubject",
    "block_mean",
    "block_mode",
    "canonical_manufacturer",
    "manufacturer_models",
    "measure_rois",
    "sample_cohort",
    "simulate_subject",
    "write_cohort",
]

#: Target split fractions (train, val, test).
SPLIT_FRACTIONS: tuple[float, float, float] = (0.70, 0.15, 0.15)

#: Column order of ``manifest.csv``: the manifest schema's own order.
MANIFEST_COLUMNS: tuple[str, ...] = manifest_schema.COLUMNS
#: ROIs reported per subject (``pet_<name>`` / ``gt_<name>`` columns of ``subjects.csv``).
ROI_TABLE: tuple[str, ...] = (
    "braak1", "braak34", "braak56", "metatemporal", "inferiortemporal", "hippocampus", "putamen", "choroid",
)
#: ROIs measured on their labels only (no GM >= 0.5 restriction).
LABEL_ONLY_ROIS: tuple[str, ...] = ("putamen", "choroid")
IMAGE_KEYS: tuple[str, ...] = ("t1", "pet", "pet_gt", "labels", "mask", "refmask")

VOXEL_ML_2MM = 0.008
GRID4_AFFINE = np.array([[4.0, 0, 0, -77.0], [0, 4.0, 0, -111.0], [0, 0, 4.0, -71.0], [0, 0, 0, 1.0]])


# --------------------------------------------------------------------------------------------
# Manufacturers (the distortions are assumptions, modelled on inter-scanner calibration studies)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ManufacturerModel:
    """Per-manufacturer scanner model.

    Attributes
    ----------
    share : float
        Share of scans in a default cohort.
    fwhm_mm : float
        Mean native PET resolution f_m (per-scan value is f_m + N(0, 0.4²)).
    gain, bias, tilt : float
        SUVR distortion ``[1 + gain·(SUVR − 1)]·(1 + bias)·(1 + tilt·(z − 10 mm)/60 mm)``.
    t1_gm, t1_csf : float
        MPRAGE grey-matter and CSF intensities relative to white matter (= 1).
    """

    share: float
    fwhm_mm: float
    gain: float
    bias: float
    tilt: float
    t1_gm: float
    t1_csf: float


_MANUFACTURERS: dict[str, ManufacturerModel] = {
    "Siemens": ManufacturerModel(0.50, 5.0, 1.00, 0.00, 0.00, 0.66, 0.22),
    "GE": ManufacturerModel(0.30, 6.0, 0.92, -0.03, +0.02, 0.70, 0.28),
    "Philips": ManufacturerModel(0.20, 7.0, 0.88, +0.06, -0.02, 0.68, 0.25),
}
#: Canonical manufacturer names, in table order.
MANUFACTURERS: tuple[str, ...] = tuple(_MANUFACTURERS)


def manufacturer_models() -> dict[str, ManufacturerModel]:
    """Return a fresh copy of the manufacturer table (canonical name -> :class:`ManufacturerModel`)."""
    return dict(_MANUFACTURERS)


def canonical_manufacturer(name: str) -> str:
    """Return the canonical spelling (``Siemens``, ``GE``, ``Philips``) of a manufacturer name.

    Uses the manifest's normalization table (``SIEMENS``, ``GE MEDICAL SYSTEMS``, ...), so the
    generator accepts exactly what a manifest accepts. Raises :class:`TausynthError` naming the
    allowed values.
    """
    return manifest_schema.normalize_manufacturer(str(name))


# --------------------------------------------------------------------------------------------
# Cohort sampling
# --------------------------------------------------------------------------------------------

_DX_P = (0.40, 0.35, 0.25)
_AMYLOID_P = {"CN": 0.30, "MCI": 0.55, "AD": 0.90}
_AGE = {"CN": (73.0, 7.0), "MCI": (74.0, 8.0), "AD": (76.0, 8.0)}
_AGE_RANGE = (55.0, 92.0)
# P(Braak group 0, I–II, III–IV, V–VI | dx, amyloid)
_GROUP_P = {
    ("CN", "A-"): (0.65, 0.33, 0.02, 0.0),
    ("MCI", "A-"): (0.55, 0.40, 0.05, 0.0),
    ("AD", "A-"): (0.45, 0.45, 0.10, 0.0),
    ("CN", "A+"): (0.25, 0.45, 0.25, 0.05),
    ("MCI", "A+"): (0.10, 0.30, 0.40, 0.20),
    ("AD", "A+"): (0.0, 0.05, 0.25, 0.70),
}
_CONFOUND_AD_SHARES = (0.2, 0.3, 0.5)

Assignment = Literal["stratified", "random"]


@dataclass(frozen=True)
class SubjectParams:
    """Subject-level attributes (one row of :func:`sample_cohort`)."""

    subject_id: str
    diagnosis: str
    amyloid: str
    age: float
    sex: str
    stage_cont: float
    braak: int
    manufacturer: str
    split: str = "train"

    @classmethod
    def from_any(cls, obj: SubjectParams | Mapping[str, Any] | pd.Series) -> SubjectParams:
        """Build from a dataclass, a mapping or a DataFrame row; validates the values."""
        if isinstance(obj, SubjectParams):
            p = obj
        else:
            get = obj.get
            missing = [f.name for f in dataclasses.fields(cls) if f.name != "split" and get(f.name) is None]
            if missing:
                raise TausynthError(f"subject parameters lack field(s): {', '.join(missing)}")
            p = cls(
                subject_id=str(get("subject_id")), diagnosis=str(get("diagnosis")), amyloid=str(get("amyloid")),
                age=float(get("age")), sex=str(get("sex")), stage_cont=float(get("stage_cont")),
                braak=int(get("braak")), manufacturer=str(get("manufacturer")), split=str(get("split", "train")),
            )
        _check_choice("diagnosis", p.diagnosis, DIAGNOSES)
        _check_choice("amyloid", p.amyloid, ("A+", "A-"))
        _check_choice("sex", p.sex, ("F", "M"))
        if not 0.0 <= p.stage_cont < 7.0:
            raise TausynthError(f"stage_cont={p.stage_cont} outside [0, 7)")
        return dataclasses.replace(p, manufacturer=canonical_manufacturer(p.manufacturer))


def _check_choice(field: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise TausynthError(f"{field}={value!r} is not allowed; choose one of {', '.join(allowed)}")


def _check_int(name: str, value: int, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise TausynthError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _systematic(k: int, shares: Sequence[float], rng: np.random.Generator) -> np.ndarray:
    """Systematic sampling of ``k`` category indices with the given shares (random offset)."""
    cum = np.cumsum(shares)
    cum[-1] = 1.0
    pos = (rng.random() + np.arange(k)) / k
    return np.searchsorted(cum, pos, side="right")


def _assign_splits(diagnosis: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Train/val/test by largest-deficit quota along the list ordered by diagnosis (random within)."""
    order = np.concatenate([rng.permutation(np.flatnonzero(diagnosis == dx)) for dx in DIAGNOSES])
    target = np.asarray(SPLIT_FRACTIONS)
    counts = np.zeros(3)
    out = np.empty(len(diagnosis), dtype=object)
    for p, i in enumerate(order):
        k = int(np.argmax(target * (p + 1) - counts))
        counts[k] += 1
        out[i] = SPLITS[k]
    return out


def sample_cohort(n: int, seed: int, confound: bool = False, assignment: Assignment = "stratified") -> pd.DataFrame:
    """Sample the subject-level attributes of a synthetic cohort.

    Parameters
    ----------
    n : int
        Number of subjects (>= 1).
    seed : int
        Cohort seed (>= 0). Demographics of subject ``i`` do not depend on ``n``.
    confound : bool, default=False
        Send AD subjects to Siemens/GE/Philips with shares 0.2/0.3/0.5 (others 0.6/0.3/0.1, which
        keeps the overall 50/30/20 shares): the standardization pitfall.
    assignment : {"stratified", "random"}, default="stratified"
        Manufacturer assignment. ``"stratified"`` uses systematic sampling of the cumulative shares
        (random offset, random order) inside each diagnosis × amyloid × Braak-group stratum, so
        the case-mix is the same on every manufacturer; ``"random"`` draws independently.

    Returns
    -------
    pandas.DataFrame
        One row per subject: ``subject_id`` (``sub-0000`` …), ``diagnosis`` (CN/MCI/AD),
        ``amyloid`` (A+/A-), ``age`` (years, 0.1 precision), ``sex`` (F/M), ``stage_cont``
        (continuous Braak stage in [0, 7), 1e-4 precision), ``braak`` (⌊stage_cont⌋),
        ``manufacturer`` and ``split``. Splits are train/val/test ≈ 70/15/15, stratified by
        diagnosis (quota allocation along the subjects ordered by diagnosis, random order
        within); every split is non-empty when ``n >= 5``.
    """
    n = _check_int("n", n, 1)
    seed = _check_int("seed", seed, 0)
    _check_choice("assignment", assignment, ("stratified", "random"))
    demo_rng, assign_rng, split_rng = np.random.default_rng(seed).spawn(3)

    rows = []
    for i in range(n):
        u = demo_rng.random(6)  # fixed number of draws per subject -> prefix-stable demographics
        z_age = demo_rng.standard_normal()
        dx = DIAGNOSES[int(np.searchsorted(np.cumsum(_DX_P), u[0], side="right"))]
        amyloid = "A+" if u[1] < _AMYLOID_P[dx] else "A-"
        mean, sd = _AGE[dx]
        age = round(float(np.clip(mean + sd * z_age, *_AGE_RANGE)), 1)
        sex = "F" if u[2] < 0.5 else "M"
        cum = np.cumsum(_GROUP_P[(dx, amyloid)])
        group = min(int(np.searchsorted(cum, u[3] * cum[-1], side="right")), 3)
        base = 0 if group == 0 else 2 * group - 1 + int(u[4] < 0.5)
        stage = min(round(base + float(u[5]), 4), base + 0.9999)  # rounding must not change the stage
        rows.append((f"sub-{i:04d}", dx, amyloid, age, sex, stage, int(math.floor(stage)), group))
    df = pd.DataFrame(rows, columns=["subject_id", "diagnosis", "amyloid", "age", "sex", "stage_cont", "braak", "_group"])

    default_shares = [_MANUFACTURERS[m].share for m in MANUFACTURERS]
    ad_shares = np.asarray(_CONFOUND_AD_SHARES)
    other_shares = (np.asarray(default_shares) - _DX_P[2] * ad_shares) / (1 - _DX_P[2])

    def shares_for(dx: str) -> Sequence[float]:
        if not confound:
            return default_shares
        return ad_shares if dx == "AD" else other_shares

    manu = np.empty(n, dtype=object)
    if assignment == "stratified":
        for (dx, _, _), idx in sorted(df.groupby(["diagnosis", "amyloid", "_group"]).indices.items()):
            picks = _systematic(len(idx), shares_for(dx), assign_rng)
            manu[np.asarray(idx)[assign_rng.permutation(len(idx))]] = [MANUFACTURERS[k] for k in picks]
    else:
        for i, dx in enumerate(df["diagnosis"]):
            manu[i] = MANUFACTURERS[int(assign_rng.choice(3, p=np.asarray(shares_for(dx)) / np.sum(shares_for(dx))))]
    df["manufacturer"] = manu.astype(str)
    df["split"] = _assign_splits(df["diagnosis"].to_numpy(), split_rng).astype(str)
    return df.drop(columns="_group")


# --------------------------------------------------------------------------------------------
# Random fields
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _smoothing_sd(sigma: float, truncate: float = 4.0) -> float:
    """SD of unit white noise after ``ndimage.gaussian_filter(sigma)`` in 3-D (away from borders)."""
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1)
    w = np.exp(-0.5 * (x / sigma) ** 2)
    w /= w.sum()
    return float(np.sum(w**2) ** 1.5)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """White noise smoothed with a Gaussian of ``sigma`` voxels, scaled to unit SD."""
    noise = rng.standard_normal(shape, dtype=np.float32)
    out = ndimage.gaussian_filter(noise, sigma, mode="wrap")
    out *= np.float32(1.0 / _smoothing_sd(sigma))
    return out


@functools.lru_cache(maxsize=16)
def _interp_matrix(n: int, spacing: int) -> np.ndarray:
    """Linear-interpolation weights (n × n_coarse) from coarse points at voxel k·spacing."""
    n_coarse = -(-(n - 1) // spacing) + 1
    pos = np.arange(n) / spacing
    k0 = np.minimum(np.floor(pos).astype(int), n_coarse - 2)
    frac = pos - k0
    m = np.zeros((n, n_coarse), dtype=np.float32)
    m[np.arange(n), k0] = 1 - frac
    m[np.arange(n), k0 + 1] = frac
    return m


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int, int], spacing: int) -> np.ndarray:
    """Zero-mean unit-SD smooth field: noise on a coarse grid (``spacing`` voxels), Gaussian
    σ = 0.8 grid cell, trilinear upsampling."""
    mats = [_interp_matrix(n, spacing) for n in shape]
    coarse = rng.standard_normal(tuple(m.shape[1] for m in mats))
    coarse = ndimage.gaussian_filter(coarse, 0.8, mode="nearest")
    coarse = ((coarse - coarse.mean()) / coarse.std()).astype(np.float32)
    out = np.tensordot(mats[0], coarse, axes=(1, 0))  # (X, cy, cz)
    out = np.tensordot(out, mats[1], axes=(1, 1))  # (X, cz, Y)
    out = np.tensordot(out, mats[2], axes=(1, 1))  # (X, Y, Z)
    return np.ascontiguousarray(out, dtype=np.float32)


def _fwhm_to_sigma_vox(fwhm_mm: float, voxel_mm: float = 2.0) -> float:
    return fwhm_mm / (2.0 * math.sqrt(2.0 * math.log(2.0))) / voxel_mm


def _blur(img: np.ndarray, fwhm_mm: float) -> np.ndarray:
    if fwhm_mm <= 0:
        return img.copy()
    return ndimage.gaussian_filter(img, _fwhm_to_sigma_vox(fwhm_mm), mode="constant")


# --------------------------------------------------------------------------------------------
# Tau model
# --------------------------------------------------------------------------------------------

_N_LABELS = 2036  # label IDs go up to 2035
_TAU_REGIONS: tuple[atlas.Region, ...] = tuple(r for r in atlas.REGIONS if r.braak is not None)
_ATROPHY_MTL = ("entorhinal", "amygdala")
_ATROPHY_K_HIGH = ("entorhinal", "amygdala", "parahippocampal")
# Deep grey nuclei: uptake applies to their GM + WM fraction. (mean, SD) of the true SUVR.
_NUCLEI = {
    "putamen": (1.35, 0.12), "pallidum": (1.45, 0.15), "caudate": (1.15, 0.08),
    "thalamus": (1.25, 0.09), "ventraldc": (1.35, 0.10),
}
_AGE_SLOPE_NUCLEI = ("putamen", "pallidum")
_T1_BRIGHTENING = {"thalamus": 0.08, "pallidum": 0.14, "putamen": 0.03, "brainstem": 0.10}
_DEFORM_CENTRE = np.array([0.0, -18.0, 10.0])
_VENTRICLE_CENTRES = ((12.0, 6.0, 14.0), (18.0, -28.0, 14.0))
_HORN_CENTRE = (28.0, -14.0, -16.0)


def _involvement(stage: float, braak: int) -> float:
    """φ_r(s): ramps from 0 to 1 during the region's stage, then keeps growing slowly."""
    x = stage - braak
    return float(np.clip(x, 0.0, 1.0) + 0.15 * max(x - 1.0, 0.0))


@dataclass(frozen=True)
class _TauDraws:
    """Subject-level random quantities of the tau model (drawn whatever the manufacturer)."""

    kappa_z: float
    eps_z: np.ndarray  # per tau region
    h_z: float
    u_gm: float
    u_wm_z: float
    sup_cb: float
    nuclei_z: np.ndarray
    cp_z: float


def _draw_tau(rng: np.random.Generator) -> _TauDraws:
    return _TauDraws(
        kappa_z=float(rng.standard_normal()),
        eps_z=rng.standard_normal(len(_TAU_REGIONS)),
        h_z=float(rng.standard_normal()),
        u_gm=float(rng.normal(1.25, 0.04)),
        u_wm_z=float(rng.standard_normal()),
        sup_cb=float(1.0 + max(0.0, rng.normal(0.07, 0.03))),
        nuclei_z=rng.standard_normal(len(_NUCLEI)),
        cp_z=float(rng.standard_normal()),
    )


@dataclass(frozen=True)
class _AnatDraws:
    head_z: float
    nu: float
    v_z: float
    a_z: np.ndarray  # (2, n tau regions) left/right GM-loss noise
    ah_z: np.ndarray  # (2,) hippocampal loss noise


def _draw_anat(rng: np.random.Generator) -> _AnatDraws:
    return _AnatDraws(
        head_z=float(rng.standard_normal()),
        nu=float(rng.normal(0.0, 0.04)),
        v_z=float(rng.standard_normal()),
        a_z=rng.standard_normal((2, len(_TAU_REGIONS))),
        ah_z=rng.standard_normal(2),
    )


# --------------------------------------------------------------------------------------------
# Subject simulation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubjectImages:
    """The images of one subject at one resolution (arrays in RAS voxel order, MNI space).

    ``t1``, ``pet`` (observed SUVR), ``pet_gt`` (ground-truth SUVR) are float32; ``labels`` int16
    FreeSurfer IDs; ``mask`` and ``refmask`` uint8 (brain, inferior cerebellar GM reference).
    """

    resolution: int
    affine: np.ndarray
    t1: np.ndarray
    pet: np.ndarray
    pet_gt: np.ndarray
    labels: np.ndarray
    mask: np.ndarray
    refmask: np.ndarray


@dataclass(frozen=True)
class SyntheticSubject:
    """One simulated scan.

    Attributes
    ----------
    params : SubjectParams
        Subject attributes, ``manufacturer`` being the scanner actually simulated.
    index : int
        Position in the cohort (part of the RNG seed).
    native_fwhm_mm : float
        Native PET resolution of this scan before harmonization to 8 mm.
    images : dict of int to SubjectImages
        Keyed by resolution in mm (2 and/or 4).
    roi : dict of str to float
        ``pet_<roi>`` / ``gt_<roi>`` SUVR for :data:`ROI_TABLE` and ``hippocampus_gm_ml``,
        ``metatemporal_gm_ml``, ``ventricles_csf_ml``; all measured on the 2 mm grid.
    """

    params: SubjectParams
    index: int
    native_fwhm_mm: float
    images: dict[int, SubjectImages]
    roi: dict[str, float]

    def __getitem__(self, resolution: int) -> SubjectImages:
        if resolution not in self.images:
            raise KeyError(f"resolution {resolution} mm not generated; have {sorted(self.images)}")
        return self.images[resolution]


class _Grid:
    """Template-derived constants reused by every subject (built once per template)."""

    def __init__(self, tpl: atlas.PhantomTemplate) -> None:
        self.tpl = tpl
        self.shape = tpl.shape
        x, y, z = (c.astype(np.float32) for c in atlas.world_coordinates(tpl.shape, tpl.affine))
        self.x, self.y, self.z = x[:, None, None], y[None, :, None], z[None, None, :]
        self.origin = tpl.affine[:3, 3].astype(np.float32)
        self.voxel = np.float32(tpl.affine[0, 0])
        self.rois = atlas.roi_sets()
        self.cb_gm_ids = atlas.region_by_name("cerebellumcortex").ids
        self.superior_cb = self.z > -30.0  # superior cerebellar GM: off-target FTP binding
        self.z_norm = (self.z - 10.0) / 60.0  # axial coordinate of the manufacturer tilt
        self.dist_far = np.float32(tpl.dist_out.max() + 10.0)


@functools.lru_cache(maxsize=2)
def _grid_for(version: str, cache_key: str) -> _Grid:
    return _Grid(atlas.load_template())


def _grid() -> _Grid:
    return _grid_for(atlas.TEMPLATE_VERSION, str(atlas.cache_dir()))


def _gaussian_bump(g: _Grid, centre: Sequence[float], sigma: float, amp: float, src: list[np.ndarray]) -> None:
    """src −= amp·(x − c)·exp(−|x − c|²/2σ²), evaluated only where the bump is non-negligible."""
    if amp == 0.0:
        return
    cx, cy, cz = (np.float32(v) for v in centre)
    r = 4.0 * sigma
    sl = []
    for coord, c in ((g.x, cx), (g.y, cy), (g.z, cz)):
        flat = coord.reshape(-1)
        inside = np.flatnonzero(np.abs(flat - c) <= r)
        if inside.size == 0:
            return
        sl.append(slice(inside[0], inside[-1] + 1))
    dx = g.x[sl[0]] - cx
    dy = g.y[:, sl[1]] - cy
    dz = g.z[:, :, sl[2]] - cz
    w = np.exp((dx * dx + dy * dy + dz * dz) * np.float32(-0.5 / sigma**2)) * np.float32(amp)
    region = (sl[0], sl[1], sl[2])
    src[0][region] -= w * dx
    src[1][region] -= w * dy
    src[2][region] -= w * dz


def _warp(vol: np.ndarray, coords: np.ndarray, order: int = 1, cval: float = 0.0) -> np.ndarray:
    """Sample ``vol`` at voxel coordinates ``coords`` (3, X, Y, Z); trilinear or nearest."""
    return ndimage.map_coordinates(vol, coords, order=order, mode="constant", cval=cval, prefilter=False)


def _check_resolution(resolution: int | Iterable[int]) -> tuple[int, ...]:
    res = (resolution,) if isinstance(resolution, int | np.integer) else tuple(resolution)
    bad = [r for r in res if r not in (2, 4)]
    if bad or not res:
        raise TausynthError(f"resolution {resolution!r} not supported; allowed: 2, 4 (mm) or a tuple of them")
    return tuple(sorted(set(int(r) for r in res)))


def block_mean(img: np.ndarray) -> np.ndarray:
    """2×2×2 block means (float32) of an array with even dimensions."""
    x, y, z = img.shape
    b = img.astype(np.float64, copy=False).reshape(x // 2, 2, y // 2, 2, z // 2, 2)
    return b.mean(axis=(1, 3, 5)).astype(np.float32)


def block_mode(labels: np.ndarray) -> np.ndarray:
    """2×2×2 block mode of a label map; ties go to the smallest label."""
    x, y, z = labels.shape
    b = labels.reshape(x // 2, 2, y // 2, 2, z // 2, 2).transpose(0, 2, 4, 1, 3, 5).reshape(-1, 8)
    counts = (b[:, :, None] == b[:, None, :]).sum(axis=2)
    key = counts.astype(np.int64) * 65536 - b.astype(np.int64)
    out = b[np.arange(len(b)), np.argmax(key, axis=1)]
    return out.reshape(x // 2, y // 2, z // 2).astype(labels.dtype)


def measure_rois(
    image: np.ndarray,
    labels: np.ndarray,
    gm: np.ndarray | None = None,
    rois: Mapping[str, Sequence[int]] | None = None,
    names: Sequence[str] = ROI_TABLE,
    gm_min: float = 0.5,
    label_only: Sequence[str] = LABEL_ONLY_ROIS,
) -> dict[str, float]:
    """Mean of ``image`` in each ROI (voxel-weighted = volume-weighted over its regions).

    A voxel counts when its label is in the ROI and ``gm >= gm_min`` (the "GM ribbon" rule of
    the GM-ribbon rule); ROIs named in ``label_only`` (and all ROIs when ``gm`` is None) use the
    label alone. An empty ROI gives NaN.

    Parameters
    ----------
    image, labels : numpy.ndarray
        Image and FreeSurfer label map on the same grid.
    gm : numpy.ndarray, optional
        Grey-matter fraction on that grid.
    rois : mapping of str to sequence of int, optional
        ROI sets; default :func:`tausynth.data.atlas.roi_sets`.
    names : sequence of str
        ROIs to measure.
    """
    return region_means(image, _roi_masks(labels, gm, rois, names, gm_min, label_only))


def _roi_masks(
    labels: np.ndarray,
    gm: np.ndarray | None,
    rois: Mapping[str, Sequence[int]] | None,
    names: Sequence[str],
    gm_min: float,
    label_only: Sequence[str],
) -> dict[str, np.ndarray]:
    """The masks of the named ROIs (an ROI without a voxel keeps an empty mask: its value is NaN)."""
    rois = atlas.roi_sets() if rois is None else rois
    unknown = [n for n in names if n not in rois]
    if unknown:
        raise TausynthError(f"unknown ROI(s) {', '.join(unknown)}; known: {', '.join(sorted(rois))}")
    return region_masks(labels, {n: rois[n] for n in names}, gm, gm_min, label_only, missing="ignore", empty="nan")


@dataclass(frozen=True)
class _Regional:
    """Per-region (left, right) tau excess and GM-loss fractions, ventricular expansion."""

    delta_lr: np.ndarray  # (2, n tau regions) Δ_r in SUVR
    a_lr: np.ndarray  # (2, n tau regions) GM-loss fraction (hippocampus: a_h)
    a_hip: np.ndarray  # (2,)
    v: float


def _regional_model(p: SubjectParams, tau: _TauDraws, anat: _AnatDraws) -> _Regional:
    """Regional tau and the tau-coupled atrophy / ventricular expansion."""
    age, s = p.age, p.stage_cont
    kappa = math.exp(0.25 * tau.kappa_z) * (1.0 if p.amyloid == "A+" else 0.6)
    h = math.exp(0.08 * tau.h_z)
    phi = np.array([_involvement(s, r.braak) for r in _TAU_REGIONS])
    inv = phi * kappa * np.exp(0.12 * tau.eps_z)  # Δ_r / (1.4·A_r), before asymmetry
    amp = np.array([r.amplitude for r in _TAU_REGIONS])
    inv_lr = np.stack([inv * h, inv / h])  # left, right
    delta_lr = 1.4 * amp * inv_lr
    g_age = 0.08 + 0.006 * (age - 70.0)
    m_r = np.array([2.0 if r.name in _ATROPHY_MTL else 1.0 for r in _TAU_REGIONS])
    k_r = np.array([0.18 if r.name in _ATROPHY_K_HIGH else 0.08 for r in _TAU_REGIONS])
    a_lr = np.clip(g_age * m_r + anat.nu + k_r * inv_lr + 0.04 * anat.a_z, -0.05, 0.45)
    names = [r.name for r in _TAU_REGIONS]
    erc, hip = names.index("entorhinal"), names.index("hippocampus")
    phi_iv = min(_involvement(s, 4), 1.0)
    a_hip = np.clip(
        0.006 * (age - 70.0) + 0.20 * inv_lr[:, erc] + 0.08 * phi_iv + 1.5 * anat.nu + 0.05 * anat.ah_z, -0.08, 0.40
    )
    a_lr[:, hip] = a_hip
    v = float(np.clip(0.22 + 0.010 * (age - 70.0) + 0.45 * min(s, 6.0) / 6.0 + 1.5 * anat.nu + 0.08 * anat.v_z, 0.0, 0.7))
    return _Regional(delta_lr=delta_lr, a_lr=a_lr, a_hip=a_hip, v=v)


@dataclass(frozen=True)
class _Anatomy:
    """Warped, atrophied subject anatomy on the 2 mm grid."""

    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    bmask: np.ndarray  # warped brain-mask fraction
    labels: np.ndarray
    dist: np.ndarray  # warped distance outside the brain (mm)
    mask: np.ndarray  # bmask >= 0.5
    refmask: np.ndarray


def _subject_anatomy(g: _Grid, p: SubjectParams, anat: _AnatDraws, reg: _Regional, rng: np.random.Generator) -> _Anatomy:
    """Deform the template and convert GM to CSF by the regional loss fractions."""
    tpl, shape = g.tpl, g.shape
    # backward map, target mm -> template mm
    head = (1.0 + 0.03 * anat.head_z) * (1.02 if p.sex == "M" else 0.98)
    u_rand = [_smooth_field(rng, shape, 6) * np.float32(1.2) for _ in range(3)]
    c = _DEFORM_CENTRE.astype(np.float32)
    inv_head = np.float32(1.0 / head)
    src = [
        np.broadcast_to(c[k] + (coord - c[k]) * inv_head, shape) - u_rand[k]
        for k, coord in enumerate((g.x, g.y, g.z))
    ]
    for sign in (-1.0, 1.0):
        for cx, cy, cz in _VENTRICLE_CENTRES:
            _gaussian_bump(g, (sign * cx, cy, cz), 13.0, reg.v, src)
        hemi = 0 if sign < 0 else 1
        horn = (sign * _HORN_CENTRE[0], _HORN_CENTRE[1], _HORN_CENTRE[2])
        _gaussian_bump(g, horn, 9.0, 0.8 * float(reg.a_hip[hemi]), src)
    coords = np.stack([(src[k] - g.origin[k]) / g.voxel for k in range(3)])
    del src, u_rand

    gm = _warp(tpl.gm, coords)
    wm = _warp(tpl.wm, coords)
    bmask = _warp(tpl.mask, coords)
    # the template's CSF is exactly mask − GM − WM and trilinear warping is linear: no 4th warp
    csf = np.maximum(bmask - gm - wm, 0.0)
    labels = _warp(tpl.labels, coords, order=0).astype(np.int16)
    dist = _warp(tpl.dist_out, coords, cval=float(g.dist_far))
    del coords

    a_lut = np.zeros(_N_LABELS, dtype=np.float32)
    for k, r in enumerate(_TAU_REGIONS):
        a_lut[r.lh_id], a_lut[r.rh_id] = reg.a_lr[0, k], reg.a_lr[1, k]
    a_map = ndimage.gaussian_filter(a_lut[labels], 0.7, mode="constant")
    loss = np.maximum(gm * a_map, -csf)  # a < 0 (hypertrophy) may not make CSF negative
    gm -= loss
    csf += loss
    refmask = atlas.reference_mask(labels, gm, tpl.affine)
    if not refmask.any():  # pragma: no cover - would need an absurd deformation
        raise RuntimeError(f"subject {p.subject_id}: empty reference region")
    return _Anatomy(gm=gm, wm=wm, csf=csf, bmask=bmask, labels=labels, dist=dist, mask=bmask >= 0.5, refmask=refmask)


def _uptake_tables(p: SubjectParams, tau: _TauDraws, reg: _Regional) -> tuple[np.ndarray, ...]:
    """Label -> true SUVR of the GM, WM and CSF compartments, and label -> tau excess."""
    gm_lut = np.full(_N_LABELS, tau.u_gm, dtype=np.float32)
    wm_lut = np.full(_N_LABELS, 1.25 + 0.07 * tau.u_wm_z + 0.002 * (p.age - 70.0), dtype=np.float32)
    csf_lut = np.full(_N_LABELS, 0.45, dtype=np.float32)
    delta_lut = np.zeros(_N_LABELS, dtype=np.float32)
    for k, r in enumerate(_TAU_REGIONS):
        delta_lut[r.lh_id], delta_lut[r.rh_id] = reg.delta_lr[0, k], reg.delta_lr[1, k]
    for (name, (mean, sd)), z in zip(_NUCLEI.items(), tau.nuclei_z, strict=True):
        value = mean + sd * z + (0.006 * (p.age - 75.0) if name in _AGE_SLOPE_NUCLEI else 0.0)
        ids = list(atlas.region_by_name(name).ids)
        gm_lut[ids] = wm_lut[ids] = value
    acc = list(atlas.region_by_name("accumbens").ids)  # ventral striatum: caudate-like uptake
    gm_lut[acc] = wm_lut[acc] = gm_lut[atlas.region_by_name("caudate").lh_id]
    cerebellum = atlas.region_by_name("cerebellumcortex").ids + atlas.region_by_name("cerebellumwm").ids
    gm_lut[list(cerebellum)] = 1.0  # inferior value; the superior part is set per voxel
    wm_lut[list(cerebellum)] = 1.15
    cp_value = math.exp(math.log(2.4) + 0.25 * tau.cp_z)
    csf_lut[list(atlas.region_by_name("choroidplexus").ids)] = 0.45 + 0.6 * (cp_value - 0.45)  # 60 % fill
    return gm_lut, wm_lut, csf_lut, delta_lut


def _true_pet(
    g: _Grid, p: SubjectParams, tau: _TauDraws, reg: _Regional, a: _Anatomy,
    r_tau: np.random.Generator, r_pet: np.random.Generator,
) -> np.ndarray:
    """PET_true = G·u_GM + W·u_WM + C·u_CSF + meninges shell, on the subject's tissue maps."""
    gm_lut, wm_lut, csf_lut, delta_lut = _uptake_tables(p, tau, reg)
    labels = a.labels
    texture = _smooth_noise(r_tau, g.shape, 2.0)
    u_gm = gm_lut[labels] + delta_lut[labels] * (1.0 + 0.15 * texture)
    u_gm[label_mask(labels, g.cb_gm_ids) & g.superior_cb] = tau.sup_cb
    pet_true = a.gm * u_gm + a.wm * wm_lut[labels] + a.csf * csf_lut[labels]
    # meninges/skull shell 0–6 mm outside the brain: spills into cortex after blurring
    shell_f = float(r_pet.uniform(0.6, 1.6))
    n3 = _smooth_noise(r_pet, g.shape, 3.0)
    shell = (a.dist <= 6.0) * (1.0 - a.bmask)
    pet_true += shell * (0.35 + shell_f * np.maximum(n3 - 0.8, 0.0))
    return pet_true


def _scan_pet(
    g: _Grid, m: ManufacturerModel, pet_true: np.ndarray, a: _Anatomy, rng: np.random.Generator, dose_scale: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """Scanner model: observed SUVR, ground-truth SUVR and the native FWHM (mm)."""
    s_global = math.exp(math.log(1.3) + 0.2 * float(rng.standard_normal())) * dose_scale
    physio = 1.0 + 0.02 * _smooth_field(rng, g.shape, 20)
    fwhm = float(np.clip(m.fwhm_mm + 0.4 * float(rng.standard_normal()), 3.5, 8.0))
    n1 = _smooth_noise(rng, g.shape, 1.0)
    activity = _blur(pet_true * np.float32(s_global) * physio, fwhm)
    # Poisson-like noise whose SD scales with S, so SUVR does not depend on S
    activity += np.float32(0.06) * np.sqrt(np.maximum(activity, 0.0) * np.float32(s_global)) * n1
    activity = _blur(activity, math.sqrt(max(64.0 - fwhm**2, 0.0)))
    suvr_h = activity / activity[a.refmask].mean(dtype=np.float64)
    pet = (1.0 + m.gain * (suvr_h - 1.0)) * (1.0 + m.bias) * (1.0 + m.tilt * g.z_norm)
    pet = (pet * a.mask).astype(np.float32)
    gt = _blur(pet_true, 8.0)
    gt = (gt / gt[a.refmask].mean(dtype=np.float64) * a.mask).astype(np.float32)
    return pet, gt, fwhm


def _t1w(g: _Grid, m: ManufacturerModel, p: SubjectParams, a: _Anatomy, rng: np.random.Generator) -> np.ndarray:
    """Tissue-mixture MPRAGE with deep-GM brightening, WM hypointensities, bias and Rician noise."""
    mu_gm = m.t1_gm + 0.015 * float(rng.standard_normal())
    mu_csf = m.t1_csf + 0.02 * float(rng.standard_normal())
    bright = np.zeros(_N_LABELS, dtype=np.float32)
    for name, value in _T1_BRIGHTENING.items():
        bright[list(atlas.region_by_name(name).ids)] = value
    t1 = a.wm + (np.float32(mu_gm) + bright[a.labels]) * a.gm + np.float32(mu_csf) * a.csf
    hypo = _smooth_noise(rng, g.shape, 1.5)
    cerebral_wm = label_mask(a.labels, atlas.CEREBRAL_WM)
    t1 -= 0.25 * a.wm * np.clip(hypo - 2.2 + 0.03 * (p.age - 70.0), 0.0, 1.0) * cerebral_wm
    t1 *= np.exp(0.04 * _smooth_field(rng, g.shape, 25))
    sigma = np.float32(0.015)
    n_re = rng.standard_normal(g.shape, dtype=np.float32)
    n_im = rng.standard_normal(g.shape, dtype=np.float32)
    t1 = np.sqrt((t1 + sigma * n_re) ** 2 + (sigma * n_im) ** 2) * a.mask
    return t1.astype(np.float32)


def _roi_table(g: _Grid, a: _Anatomy, pet: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """ROI SUVRs of ``pet`` and ``gt`` and morphometry, on the 2 mm grid."""
    masks = _roi_masks(a.labels, a.gm, g.rois, ROI_TABLE, 0.5, LABEL_ONLY_ROIS)
    roi = {f"pet_{k}": v for k, v in region_means(pet, masks).items()}
    roi.update({f"gt_{k}": v for k, v in region_means(gt, masks).items()})

    def volume_ml(tissue: np.ndarray, roi_name: str) -> float:
        return float(tissue[label_mask(a.labels, g.rois[roi_name])].sum(dtype=np.float64) * VOXEL_ML_2MM)

    roi["hippocampus_gm_ml"] = volume_ml(a.gm, "hippocampus")
    roi["metatemporal_gm_ml"] = volume_ml(a.gm, "metatemporal")
    roi["ventricles_csf_ml"] = volume_ml(a.csf, "ventricles")
    return roi


def simulate_subject(
    params: SubjectParams | Mapping[str, Any] | pd.Series,
    index: int,
    seed: int,
    manufacturer: str | None = None,
    resolution: int | Sequence[int] = (2, 4),
    *,
    dose_scale: float = 1.0,
) -> SyntheticSubject:
    """Simulate one subject's T1w MRI and flortaucipir SUVR images.

    Parameters
    ----------
    params : SubjectParams, mapping or pandas.Series
        Subject attributes, e.g. a row of :func:`sample_cohort`.
    index : int
        Subject index ``i`` in the cohort; the subject's generator is
        ``numpy.random.default_rng(seed * 100003 + index)``.
    seed : int
        Cohort seed.
    manufacturer : str, optional
        Scan the same subject on this manufacturer instead of ``params.manufacturer`` (same
        anatomy, tau and noise draws; only PSF, SUVR distortion and MPRAGE contrasts change).
    resolution : int or sequence of int, default=(2, 4)
        Output grids in mm. Images are always simulated at 2 mm; 4 mm images are 2×2×2 block
        means (labels: block mode; masks: block mean >= 0.5).
    dose_scale : float, default=1.0
        Multiplies the global activity scale S (injected dose / weight). SUVR does not depend on
        it; exposed for tests of that invariance.

    Returns
    -------
    SyntheticSubject
    """
    p = SubjectParams.from_any(params)
    index = _check_int("index", index, 0)
    seed = _check_int("seed", seed, 0)
    if manufacturer is not None:
        p = dataclasses.replace(p, manufacturer=canonical_manufacturer(manufacturer))
    resolutions = _check_resolution(resolution)
    if not (dose_scale > 0 and math.isfinite(dose_scale)):
        raise TausynthError(f"dose_scale must be a positive finite number, got {dose_scale!r}")
    m = _MANUFACTURERS[p.manufacturer]
    g = _grid()

    rng = np.random.default_rng(seed * 100003 + index)
    # independent child streams: no draw depends on the manufacturer (travelling subjects)
    r_tau, r_anat, r_pet, r_mri = rng.spawn(4)
    tau = _draw_tau(r_tau)
    anat = _draw_anat(r_anat)
    reg = _regional_model(p, tau, anat)
    a = _subject_anatomy(g, p, anat, reg, r_anat)
    pet_true = _true_pet(g, p, tau, reg, a, r_tau, r_pet)
    pet, gt, fwhm = _scan_pet(g, m, pet_true, a, r_pet, dose_scale)
    t1 = _t1w(g, m, p, a, r_mri)
    roi = _roi_table(g, a, pet, gt)

    labels = np.where(a.mask, a.labels, 0).astype(np.int16)
    images: dict[int, SubjectImages] = {}
    if 2 in resolutions:
        images[2] = SubjectImages(
            2, g.tpl.affine.copy(), t1, pet, gt, labels, a.mask.astype(np.uint8), a.refmask.astype(np.uint8)
        )
    if 4 in resolutions:
        images[4] = SubjectImages(
            4, GRID4_AFFINE.copy(), block_mean(t1), block_mean(pet), block_mean(gt), block_mode(labels),
            (block_mean(a.mask) >= 0.5).astype(np.uint8), (block_mean(a.refmask) >= 0.5).astype(np.uint8),
        )
    return SyntheticSubject(params=p, index=index, native_fwhm_mm=fwhm, images=images, roi=roi)


# --------------------------------------------------------------------------------------------
# Writing a cohort
# --------------------------------------------------------------------------------------------

_MARKER = ".tausynth-cohort.json"
_IMAGE_FILE = re.compile(r"^(t1|pet|pet_gt|labels|mask|refmask)\.nii\.gz$")


def _prepare_output(out: Path) -> None:
    """Refuse a non-empty folder unless it is a previous cohort (recognised by its marker file)."""
    if out.exists() and not out.is_dir():
        raise TausynthError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        marker = out / _MARKER
        try:
            info = json.loads(marker.read_text(encoding="utf-8"))
            ok = info.get("generator") == "tausynth.data.synthetic"
        except (OSError, ValueError, AttributeError):
            ok = False
        if not ok:
            raise TausynthError(
                f"{out}: folder is not empty and is not a tausynth synthetic cohort (no valid {_MARKER}); "
                "choose an empty or new folder"
            )
    out.mkdir(parents=True, exist_ok=True)


def _remove_stale(out: Path, keep: set[Path]) -> None:
    """Delete image files of an earlier cohort that the new manifest does not name."""
    for sub in out.glob("sub-*"):
        if not sub.is_dir():
            continue
        for f in sorted(sub.rglob("*.nii.gz")):
            if _IMAGE_FILE.match(f.name) and f.resolve() not in keep:
                f.unlink()
        for d in sorted((p for p in sub.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            if not any(d.iterdir()):
                d.rmdir()
        if not any(sub.iterdir()):
            shutil.rmtree(sub)


def _write_subject(
    out: Path, row: dict[str, Any], i: int, seed: int, sessions: list[str | None], res_mm: int
) -> list[tuple[dict[str, Any], dict[str, Any], list[Path]]]:
    """Simulate one subject (every session) and write its images: its manifest and subject rows."""
    params = SubjectParams.from_any(row)
    rows = []
    for manu in sessions:
        subj = simulate_subject(params, i, seed, manufacturer=manu, resolution=res_mm)
        session = f"ses-{manu.lower()}" if manu else ""
        rel = Path(params.subject_id) / session if session else Path(params.subject_id)
        img = subj[res_mm]
        paths, written = {}, []
        for key in IMAGE_KEYS:
            path = rel / f"{key}.nii.gz"
            dtype = np.int16 if key == "labels" else np.float32
            save_nifti(out / path, getattr(img, key), img.affine, dtype=dtype)
            written.append((out / path).resolve())
            paths[key] = path.as_posix()
        sp = subj.params
        manifest_row = {
            "subject_id": sp.subject_id, "session": session, **paths, "manufacturer": sp.manufacturer,
            "diagnosis": sp.diagnosis, "split": sp.split, "amyloid": sp.amyloid, "site": "synthetic",
            "scanner_model": "synthetic", "age": sp.age, "sex": sp.sex,
        }
        subject_row = {
            "subject_id": sp.subject_id, "session": session, "diagnosis": sp.diagnosis,
            "amyloid": sp.amyloid, "age": sp.age, "sex": sp.sex, "stage_cont": sp.stage_cont,
            "braak": sp.braak, "manufacturer": sp.manufacturer, "split": sp.split,
            "native_fwhm_mm": round(subj.native_fwhm_mm, 4), **subj.roi,
        }
        rows.append((manifest_row, subject_row, written))
    return rows


def _map_subjects(jobs: list[tuple[Any, ...]], workers: int) -> Iterator[list[tuple[dict[str, Any], dict[str, Any], list[Path]]]]:
    """:func:`_write_subject` over ``jobs`` in order, in ``workers`` processes (spawned: no forked state)."""
    if workers == 1 or len(jobs) < 2:
        yield from (_write_subject(*job) for job in jobs)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    atlas.load_template()  # build (and cache on disk) the template once, before the workers read it
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield from pool.map(_write_subject, *zip(*jobs, strict=True), chunksize=8)


def write_cohort(
    out: PathLike,
    n: int,
    seed: int,
    resolution: int = 4,
    confound: bool = False,
    travelling: bool = False,
    progress: bool = True,
    workers: int = 1,
) -> pd.DataFrame:
    """Generate a synthetic cohort and write it as NIfTI files plus ``manifest.csv`` and ``subjects.csv``.

    Layout: ``out/sub-XXXX/{t1,pet,pet_gt,labels,mask,refmask}.nii.gz`` (``t1``, ``pet``,
    ``pet_gt`` and the masks float32, ``labels`` int16); with ``travelling`` every subject is
    scanned on every manufacturer under ``out/sub-XXXX/ses-<manufacturer>/`` (same anatomy and
    tau; the split is kept in all sessions).

    ``manifest.csv`` has the columns :data:`MANIFEST_COLUMNS`, paths relative to ``out``;
    ``subjects.csv`` has one row per scan with the subject attributes, ``native_fwhm_mm``, the
    ROI SUVRs ``pet_<roi>`` / ``gt_<roi>`` for :data:`ROI_TABLE` and the morphometry columns,
    all measured on the 2 mm grid whatever ``resolution`` is written.

    Overwrite policy: ``out`` must be absent, empty, or a cohort written earlier by this function
    (it carries a ``.tausynth-cohort.json`` marker). Otherwise :class:`TausynthError` is raised.
    When overwriting, the old ``manifest.csv``/``subjects.csv`` are removed first (so no manifest
    ever points at a half-updated cohort), each image is replaced atomically, the new CSV files are
    written atomically at the end, and images of the old cohort that the new manifest does not
    name are deleted. Other files in ``out`` are left alone.

    Parameters
    ----------
    out : str or os.PathLike
        Output folder.
    n, seed : int
        Number of subjects and cohort seed (see :func:`sample_cohort`).
    resolution : {2, 4}, default=4
        Voxel size (mm) of the written images.
    confound : bool, default=False
        Confounded manufacturer assignment (AD enriched on Philips).
    travelling : bool, default=False
        Scan every subject on all three manufacturers.
    progress : bool, default=True
        Show a tqdm progress bar.
    workers : int, default=1
        Processes simulating subjects at a time. Each subject's images depend only on the cohort
        seed and its index, so the cohort is the same whatever the number.

    Returns
    -------
    pandas.DataFrame
        The manifest rows.
    """
    from tqdm.auto import tqdm

    if workers < 1:
        raise TausynthError(f"workers must be at least 1, got {workers}")

    res = _check_resolution(resolution)
    if len(res) != 1:
        raise TausynthError(f"write_cohort writes one resolution at a time, got {resolution!r}")
    res_mm = res[0]
    out = Path(out)
    cohort = sample_cohort(n, seed, confound=confound)
    _prepare_output(out)
    marker = {"generator": "tausynth.data.synthetic", "n": n, "seed": seed, "resolution": res_mm,
              "confound": bool(confound), "travelling": bool(travelling), "complete": False}
    atomic_write_text(out / _MARKER, json.dumps(marker, indent=2))
    for name in ("manifest.csv", "subjects.csv"):
        (out / name).unlink(missing_ok=True)

    sessions: list[str | None] = list(MANUFACTURERS) if travelling else [None]
    jobs = [(out, row._asdict(), i, seed, sessions, res_mm) for i, row in enumerate(cohort.itertuples(index=False))]
    manifest_rows, subject_rows, written = [], [], set()
    with tqdm(total=len(cohort) * len(sessions), desc="synth", unit="scan", disable=not progress) as bar:
        for rows in _map_subjects(jobs, workers):
            for manifest_row, subject_row, paths in rows:
                manifest_rows.append(manifest_row)
                subject_rows.append(subject_row)
                written.update(paths)
                bar.update()

    manifest = pd.DataFrame(manifest_rows, columns=list(MANIFEST_COLUMNS))
    subjects = pd.DataFrame(subject_rows)
    atomic_write_text(out / "subjects.csv", subjects.to_csv(index=False))
    atomic_write_text(out / "manifest.csv", manifest.to_csv(index=False))
    _remove_stale(out, written)
    atomic_write_text(out / _MARKER, json.dumps({**marker, "complete": True}, indent=2))
    return manifest
