"""SUVR, intensity standardization by PET manufacturer, and the per-subject min–max baseline.

The paper standardizes flortaucipir SUVR maps by scanner manufacturer before training; the exact
formula is not published, so this module implements the documented default

.. math:: x' = (\\mathrm{SUVR} - \\mu_m) / \\sigma_m,

with :math:`\\mu_m, \\sigma_m` the mean and standard deviation over brain-mask voxels of the
**training** subjects scanned on manufacturer :math:`m`. The statistics are persisted as JSON (and
inside checkpoints via :meth:`ManufacturerStandardizer.to_dict`) so that a prediction can always be
taken back to SUVR.

The baseline the paper compares against, per-subject min–max normalization, is *not* invertible: a
synthetic PET in min–max space can only be turned back into SUVR with the true PET's minimum and
maximum, which do not exist for a subject without PET. :func:`oracle_minmax_inverse` does exactly
that and is named so that its use is visible wherever it appears.

The last section holds the harmonization experiments of the SUVR chapter and of
``tests/test_suvr_phantom.py`` (travelling subjects, stratified and confounded cohorts), which
compare each scan with its ground truth: :func:`simulate_scans`, :func:`roi_table`,
:func:`travelling_comparison`, :func:`manufacturer_error_summary`.

Examples
--------
>>> import numpy as np
>>> from tausynth.suvr import ManufacturerStandardizer
>>> rng = np.random.default_rng(0)
>>> vols = [rng.normal(1.2, 0.3, (8, 8, 8)) for _ in range(4)]
>>> masks = [np.ones((8, 8, 8), bool)] * 4
>>> std = ManufacturerStandardizer().fit(vols, masks, ["Siemens", "Siemens", "GE", "GE"])
>>> z = std.transform(vols[0], "Siemens")
>>> bool(np.allclose(std.inverse(z, "Siemens"), vols[0]))
True
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from tausynth.data.manifest import load_manifest, normalize_manufacturer, split_frame
from tausynth.data.regions import region_mean  # noqa: F401 (re-exported: the SUVR chapter's ROI mean)
from tausynth.errors import TausynthError, subject_prefix
from tausynth.io import atomic_write_text, load_nifti

__all__ = [
    "FALLBACKS",
    "FORMAT_VERSION",
    "ManufacturerStandardizer",
    "ManufacturerStats",
    "check_pet",
    "fit_from_manifest",
    "minmax_normalize",
    "minmax_range",
    "oracle_minmax_inverse",
    "reference_mean",
    "region_mean",
    "suvr",
]

FORMAT_VERSION = 1
"""Version of the JSON statistics format written by :meth:`ManufacturerStandardizer.save`."""

FALLBACKS = ("error", "pooled")
"""Allowed values of ``ManufacturerStandardizer(fallback=...)``."""

_KIND = "tausynth.ManufacturerStandardizer"
_POOLED = "pooled"


# --------------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------------



def check_pet(pet: np.ndarray, subject: object | None = None) -> np.ndarray:
    """Return ``pet`` as a floating-point array after checking that it is a usable PET image.

    Parameters
    ----------
    pet : numpy.ndarray
        A PET volume (any shape).
    subject : object, optional
        Subject identifier used in error messages.

    Raises
    ------
    TausynthError
        If the array is empty, not numeric, contains NaN/infinite voxels or is all zero.
    """
    arr = np.asarray(pet)
    if arr.size == 0:
        raise TausynthError(f"{subject_prefix(subject)}PET image is empty (shape {arr.shape})")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TausynthError(f"{subject_prefix(subject)}PET image has non-numeric dtype {arr.dtype}")
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float32)
    bad = int(np.count_nonzero(~np.isfinite(arr)))
    if bad:
        raise TausynthError(f"{subject_prefix(subject)}PET image has {bad} NaN or infinite voxel(s)")
    if not np.any(arr):
        raise TausynthError(f"{subject_prefix(subject)}PET image is all zero")
    return arr


def _as_mask(mask: np.ndarray, shape: tuple[int, ...], what: str, subject: object | None) -> np.ndarray:
    """Boolean version of ``mask`` (non-boolean masks are thresholded at 0.5); must be non-empty."""
    m = np.asarray(mask)
    if m.shape != tuple(shape):
        raise TausynthError(
            f"{subject_prefix(subject)}{what} has shape {m.shape}, which does not match the PET shape {tuple(shape)}"
        )
    m = m if m.dtype == bool else np.nan_to_num(m.astype(np.float64)) > 0.5
    if not m.any():
        raise TausynthError(f"{subject_prefix(subject)}{what} is empty (no voxel set)")
    return m


# --------------------------------------------------------------------------------------------------
# SUVR and region means
# --------------------------------------------------------------------------------------------------


def reference_mean(pet: np.ndarray, reference_mask: np.ndarray, subject: object | None = None) -> float:
    """Mean PET value over the reference region (float64 accumulation).

    Raises
    ------
    TausynthError
        If the PET is all zero / NaN, the mask is empty or mis-shaped, or the mean is not positive.
    """
    arr = check_pet(pet, subject)
    ref = _as_mask(reference_mask, arr.shape, "reference mask", subject)
    value = float(np.mean(arr[ref], dtype=np.float64))
    if not value > 0:
        raise TausynthError(
            f"{subject_prefix(subject)}reference-region mean is {value:g}; SUVR needs a positive reference uptake"
        )
    return value


def suvr(pet: np.ndarray, reference_mask: np.ndarray, subject: object | None = None) -> np.ndarray:
    """Standardized uptake value ratio: ``pet`` divided by its mean in the reference region.

    For flortaucipir the conventional reference is inferior cerebellar grey matter
    (``refmask`` of the synthetic cohort).

    Parameters
    ----------
    pet : numpy.ndarray
        PET activity (or an SUVR map, in which case the result is renormalized to the region).
    reference_mask : numpy.ndarray
        Reference-region mask of the same shape (boolean, or numeric thresholded at 0.5).
    subject : object, optional
        Subject identifier used in error messages.

    Returns
    -------
    numpy.ndarray
        SUVR map; float32 for float32/integer input, float64 for float64 input.
    """
    arr = check_pet(pet, subject)
    ref = reference_mean(arr, reference_mask, subject)
    return (arr.astype(np.float64) / ref).astype(np.result_type(arr.dtype, np.float32))


# --------------------------------------------------------------------------------------------------
# By-manufacturer standardization
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ManufacturerStats:
    """Voxel statistics of one manufacturer's training subjects (inside the brain masks).

    Attributes
    ----------
    mean, std : float
        Mean and (population) standard deviation of brain-mask SUVR voxels.
    n_subjects, n_voxels : int
        How many subjects and voxels they were computed from.
    """

    mean: float
    std: float
    n_subjects: int
    n_voxels: int


class _Accumulator:
    """Pooled mean / sum of squared deviations in float64 (Chan et al. parallel update)."""

    __slots__ = ("n", "mean", "m2", "subjects")

    def __init__(self) -> None:
        self.n, self.mean, self.m2, self.subjects = 0, 0.0, 0.0, 0

    def add(self, values: np.ndarray) -> None:
        v = values.astype(np.float64, copy=False)
        n_b = v.size
        mean_b = float(v.mean())
        m2_b = float(np.sum((v - mean_b) ** 2))
        n = self.n + n_b
        delta = mean_b - self.mean
        self.mean += delta * n_b / n
        self.m2 += m2_b + delta * delta * self.n * n_b / n
        self.n = n
        self.subjects += 1

    def stats(self) -> ManufacturerStats:
        return ManufacturerStats(self.mean, math.sqrt(self.m2 / self.n), self.subjects, self.n)


class ManufacturerStandardizer:
    """Standardize SUVR maps with per-manufacturer voxel statistics of the training subjects.

    ``transform(x, m) = (x - mu_m) / sigma_m`` and ``inverse(z, m) = z * sigma_m + mu_m``, where
    ``mu_m`` and ``sigma_m`` are taken over the brain-mask voxels of the subjects passed to
    :meth:`fit` (only the training split should be passed). The formula acts on every voxel, so the
    background (0 SUVR) maps to ``-mu_m / sigma_m`` and back to 0.

    Parameters
    ----------
    fallback : {"error", "pooled"}, default="error"
        What to do with a manufacturer not seen during :meth:`fit` (or not in the manifest's mapping
        table): raise a :class:`~tausynth.errors.TausynthError`, or use the statistics pooled over
        all training voxels (with a warning).
    reference : str, optional
        Manufacturer whose scale :meth:`inverse_to_reference` maps to (e.g. ``"Siemens"``). If not
        given, the manufacturer with the most training subjects is used (recorded in the JSON).

    Attributes
    ----------
    stats_ : dict of str to ManufacturerStats
        Per-manufacturer statistics after :meth:`fit`.
    pooled_ : ManufacturerStats
        Statistics over all training voxels (the ``"pooled"`` fallback).
    reference_ : str
        The resolved reference manufacturer.
    """

    def __init__(self, fallback: Literal["error", "pooled"] = "error", reference: str | None = None) -> None:
        if fallback not in FALLBACKS:
            raise TausynthError(f"unknown fallback {fallback!r} (allowed: {', '.join(FALLBACKS)})")
        self.fallback: str = fallback
        self.reference: str | None = None if reference is None else normalize_manufacturer(reference)
        self.stats_: dict[str, ManufacturerStats] = {}
        self.pooled_: ManufacturerStats | None = None
        self.reference_: str | None = None

    def __repr__(self) -> str:
        fitted = ", ".join(self.stats_) if self.stats_ else "not fitted"
        return f"ManufacturerStandardizer(fallback={self.fallback!r}, reference={self.reference!r}; {fitted})"

    # ---------------------------------------------------------------------------------- fitting

    @property
    def manufacturers(self) -> list[str]:
        """Manufacturers seen during :meth:`fit`, sorted."""
        return sorted(self.stats_)

    def fit(
        self,
        volumes: Iterable[np.ndarray],
        masks: Iterable[np.ndarray],
        manufacturers: Iterable[str],
        subject_ids: Iterable[object] | None = None,
    ) -> ManufacturerStandardizer:
        """Compute ``mu_m`` and ``sigma_m`` over the brain-mask voxels of the given subjects.

        Pass the **training** subjects only; the statistics depend on nothing else. The inputs are
        consumed one subject at a time, so generators that load images lazily keep memory flat.

        Parameters
        ----------
        volumes : iterable of numpy.ndarray
            SUVR maps.
        masks : iterable of numpy.ndarray
            Brain masks, one per volume, same shapes.
        manufacturers : iterable of str
            Manufacturer names; normalized through the manifest's mapping table.
        subject_ids : iterable, optional
            Identifiers used in error messages (default: the position, ``#0``, ``#1``, ...).

        Returns
        -------
        ManufacturerStandardizer
            ``self``.

        Raises
        ------
        TausynthError
            On an unknown manufacturer, a NaN/all-zero volume, an empty or mis-shaped mask, inputs of
            different lengths, no subjects, or a manufacturer whose voxels are all equal.
        """
        rows: Iterator[tuple[Any, Any, Any, object]]
        if subject_ids is None:
            rows = (
                (v, m, n, f"#{i}")
                for i, (v, m, n) in enumerate(zip(volumes, masks, manufacturers, strict=True))
            )
        else:
            rows = zip(volumes, masks, manufacturers, subject_ids, strict=True)
        acc: dict[str, _Accumulator] = {}
        pooled = _Accumulator()
        try:
            for volume, mask, name, sid in rows:
                try:
                    man = normalize_manufacturer(name)
                except TausynthError as exc:
                    raise TausynthError(f"{subject_prefix(sid)}{exc}") from None
                arr = check_pet(volume, sid)
                values = arr[_as_mask(mask, arr.shape, "brain mask", sid)]
                acc.setdefault(man, _Accumulator()).add(values)
                pooled.add(values)
        except ValueError as exc:
            if not str(exc).startswith("zip()"):
                raise
            raise TausynthError(
                f"fit: volumes, masks, manufacturers (and subject_ids) have different lengths ({exc})"
            ) from None
        if not acc:
            raise TausynthError("fit: no subjects given (is the training split empty?)")
        stats = {m: a.stats() for m, a in sorted(acc.items())}
        for m, s in stats.items():
            if not s.std > 0:
                raise TausynthError(f"manufacturer {m}: brain-mask voxels have zero spread; cannot standardize")
        if self.reference is not None and self.reference not in stats:
            raise TausynthError(
                f"reference manufacturer {self.reference!r} has no training subject "
                f"(seen: {', '.join(stats)})"
            )
        self.stats_ = stats
        self.pooled_ = pooled.stats()
        self.reference_ = self.reference or min(
            stats, key=lambda m: (-stats[m].n_subjects, -stats[m].n_voxels, m)
        )
        return self

    def _check_fitted(self) -> None:
        if not self.stats_ or self.pooled_ is None:
            raise TausynthError("ManufacturerStandardizer is not fitted: call fit() or load() first")

    def stats_for(self, manufacturer: object, subject: object | None = None) -> ManufacturerStats:
        """Statistics used for ``manufacturer`` (after normalization and the fallback rule)."""
        self._check_fitted()
        assert self.pooled_ is not None
        try:
            man = normalize_manufacturer(manufacturer)
        except TausynthError as exc:
            if self.fallback == "pooled":
                warnings.warn(
                    f"{subject_prefix(subject)}manufacturer {manufacturer!r} is not in the mapping table; "
                    "using pooled statistics", stacklevel=3,
                )
                return self.pooled_
            raise TausynthError(f"{subject_prefix(subject)}{exc}") from None
        if man in self.stats_:
            return self.stats_[man]
        if self.fallback == "pooled":
            warnings.warn(
                f"{subject_prefix(subject)}manufacturer {man} was not seen in training; using pooled statistics",
                stacklevel=3,
            )
            return self.pooled_
        raise TausynthError(
            f"{subject_prefix(subject)}manufacturer {man!r} was not seen when the standardizer was fitted "
            f"(seen: {', '.join(self.stats_)}); add it to the training data or use fallback='pooled'"
        )

    # --------------------------------------------------------------------------------- mapping

    def transform(self, volume: np.ndarray, manufacturer: object, subject: object | None = None) -> np.ndarray:
        """Standardize an SUVR map: ``(x - mu_m) / sigma_m`` (dtype kept for float input).

        Raises
        ------
        TausynthError
            On a NaN or all-zero volume, or an unseen manufacturer without ``fallback="pooled"``.
        """
        s = self.stats_for(manufacturer, subject)
        arr = check_pet(volume, subject)
        return ((arr.astype(np.float64) - s.mean) / s.std).astype(arr.dtype)

    def inverse(self, volume: np.ndarray, manufacturer: object, subject: object | None = None) -> np.ndarray:
        """Back to SUVR on manufacturer ``manufacturer``'s scale: ``z * sigma_m + mu_m``."""
        s = self.stats_for(manufacturer, subject)
        z = np.asarray(volume)
        dtype = z.dtype if np.issubdtype(z.dtype, np.floating) else np.float32
        return (z.astype(np.float64) * s.std + s.mean).astype(dtype)

    def inverse_to_reference(self, volume: np.ndarray, reference: str | None = None) -> np.ndarray:
        """Back to SUVR on a reference manufacturer's scale (for subjects with no PET).

        Parameters
        ----------
        volume : numpy.ndarray
            A standardized map (e.g. a model output).
        reference : str, optional
            Manufacturer whose scale to use; default :attr:`reference_`. Must have been seen in
            training (no fallback applies: the reference scale has to be a real one).
        """
        self._check_fitted()
        ref = self.reference_ if reference is None else normalize_manufacturer(reference)
        if ref not in self.stats_:
            raise TausynthError(
                f"reference manufacturer {ref!r} was not seen in training (seen: {', '.join(self.stats_)})"
            )
        return self.inverse(volume, ref)

    def to_reference_scale(
        self, volume: np.ndarray, manufacturer: object, reference: str | None = None,
        subject: object | None = None,
    ) -> np.ndarray:
        """Harmonize an SUVR map from ``manufacturer`` onto the reference manufacturer's scale.

        Equivalent to ``inverse_to_reference(transform(volume, manufacturer), reference)``.
        """
        return self.inverse_to_reference(self.transform(volume, manufacturer, subject), reference)

    # ----------------------------------------------------------------------------- persistence

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON representation (stored in checkpoints and by :meth:`save`)."""
        self._check_fitted()
        assert self.pooled_ is not None
        return {
            "format_version": FORMAT_VERSION,
            "kind": _KIND,
            "formula": "z = (suvr - mean[m]) / std[m] over brain-mask voxels of training subjects",
            "fallback": self.fallback,
            "reference": self.reference_,
            "manufacturers": self.manufacturers,
            "stats": {m: asdict(s) for m, s in self.stats_.items()},
            _POOLED: asdict(self.pooled_),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], fallback: str | None = None) -> ManufacturerStandardizer:
        """Rebuild a fitted standardizer from :meth:`to_dict` output (validated).

        Parameters
        ----------
        data : mapping
        fallback : {"error", "pooled"}, optional
            Overrides the stored fallback policy (e.g. from a run configuration).
        """
        if not isinstance(data, Mapping):
            raise TausynthError("standardization statistics: expected a JSON object")
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise TausynthError(
                f"standardization statistics: format_version {version!r} is not supported (expected {FORMAT_VERSION})"
            )
        for key in ("stats", "manufacturers", _POOLED, "reference", "fallback"):
            if key not in data:
                raise TausynthError(f"standardization statistics: missing field {key!r}")
        raw = data["stats"]
        if not isinstance(raw, Mapping) or not raw:
            raise TausynthError("standardization statistics: field 'stats' must be a non-empty object")
        stats = {str(m): _stats_from(v, f"stats.{m}") for m, v in raw.items()}
        listed = data["manufacturers"]
        if not isinstance(listed, list) or sorted(map(str, listed)) != sorted(stats):
            raise TausynthError(
                f"standardization statistics: 'manufacturers' {listed!r} does not match the keys of 'stats'"
            )
        for m in stats:
            if normalize_manufacturer(m) != m:
                raise TausynthError(f"standardization statistics: manufacturer {m!r} is not a canonical name")
        out = cls(fallback=data["fallback"] if fallback is None else fallback)  # type: ignore[arg-type]
        ref = data["reference"]
        if ref not in stats:
            raise TausynthError(f"standardization statistics: reference {ref!r} is not one of {sorted(stats)}")
        out.reference = out.reference_ = ref
        out.stats_ = dict(sorted(stats.items()))
        out.pooled_ = _stats_from(data[_POOLED], _POOLED)
        return out

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the statistics as JSON, atomically. Returns the path."""
        path = Path(path)
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str], fallback: str | None = None) -> ManufacturerStandardizer:
        """Read statistics written by :meth:`save`.

        Raises
        ------
        TausynthError
            One line naming the file when it is missing, not JSON, of another format version or
            inconsistent.
        """
        path = Path(path)
        if not path.is_file():
            raise TausynthError(f"{path}: standardization statistics file not found")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
            raise TausynthError(f"{path}: corrupt standardization statistics, not valid JSON{where}") from None
        try:
            return cls.from_dict(data, fallback=fallback)
        except TausynthError as exc:
            raise TausynthError(f"{path}: {exc}") from None

    def summary_frame(self) -> pd.DataFrame:
        """Table of the fitted statistics: manufacturer, subjects, voxels, mean, std (+ pooled row)."""
        self._check_fitted()
        assert self.pooled_ is not None
        rows = [{"manufacturer": m, **asdict(s)} for m, s in self.stats_.items()]
        rows.append({"manufacturer": "(pooled)", **asdict(self.pooled_)})
        df = pd.DataFrame(rows, columns=["manufacturer", "n_subjects", "n_voxels", "mean", "std"])
        return df.rename(columns={"n_subjects": "subjects", "n_voxels": "voxels"})


def _stats_from(value: object, where: str) -> ManufacturerStats:
    if not isinstance(value, Mapping):
        raise TausynthError(f"standardization statistics: field {where!r} must be an object")
    try:
        mean, std = float(value["mean"]), float(value["std"])
        n_subjects, n_voxels = value["n_subjects"], value["n_voxels"]
    except (KeyError, TypeError, ValueError) as exc:
        raise TausynthError(f"standardization statistics: field {where!r} is incomplete or not numeric ({exc})") from None
    if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
        raise TausynthError(f"standardization statistics: field {where!r} needs a finite mean and a positive std")
    if not (isinstance(n_subjects, int) and isinstance(n_voxels, int) and n_subjects > 0 and n_voxels > 0):
        raise TausynthError(f"standardization statistics: field {where!r} needs positive integer counts")
    return ManufacturerStats(mean, std, n_subjects, n_voxels)


def fit_from_manifest(
    manifest: str | os.PathLike[str] | pd.DataFrame,
    split: str = "train",
    fallback: Literal["error", "pooled"] = "error",
    reference: str | None = None,
) -> ManufacturerStandardizer:
    """Fit a :class:`ManufacturerStandardizer` on one split of a data manifest.

    The ``pet`` column must hold SUVR maps; the ``mask`` column the brain masks (where a row has no
    mask, the non-zero voxels of its skull-stripped PET are used). Images are loaded one at a time;
    errors name the subject (and session), and :func:`tausynth.io.load_nifti` names the file.

    Parameters
    ----------
    manifest : path or pandas.DataFrame
        A manifest CSV, or a frame from :func:`tausynth.data.manifest.load_manifest` (absolute paths).
    split : str, default="train"
        Only rows of this split are used.
    fallback, reference
        Passed to :class:`ManufacturerStandardizer`.
    """
    df = manifest if not isinstance(manifest, str | os.PathLike) else load_manifest(manifest)
    rows = split_frame(df, split)
    if len(rows) == 0:
        raise TausynthError(f"manifest has no rows with split == {split!r}; nothing to fit on")
    masks = list(rows["mask"]) if "mask" in rows.columns else [""] * len(rows)

    def _pets() -> Iterator[np.ndarray]:
        for p in rows["pet"]:
            yield load_nifti(p)[0]

    def _masks() -> Iterator[np.ndarray]:
        for m, p in zip(masks, rows["pet"], strict=True):
            # no mask given: the non-zero voxels of the skull-stripped PET are the brain
            yield load_nifti(m)[0] if isinstance(m, str) and m else load_nifti(p)[0] != 0

    sessions = rows["session"] if "session" in rows.columns else [""] * len(rows)
    ids = [
        f"{s} ({f'session {t}, ' if isinstance(t, str) and t else ''}file {p})"
        for s, t, p in zip(rows["subject_id"], sessions, rows["pet"], strict=True)
    ]
    return ManufacturerStandardizer(fallback=fallback, reference=reference).fit(
        _pets(), _masks(), list(rows["manufacturer"]), subject_ids=ids
    )


# --------------------------------------------------------------------------------------------------
# Per-subject min–max baseline
# --------------------------------------------------------------------------------------------------


def minmax_range(volume: np.ndarray, mask: np.ndarray | None = None, subject: object | None = None) -> tuple[float, float]:
    """Minimum and maximum of ``volume`` (inside ``mask`` if given) — what min–max scaling uses.

    Raises
    ------
    TausynthError
        On a NaN or all-zero volume, an empty mask, or a constant volume.
    """
    arr = check_pet(volume, subject)
    values = arr if mask is None else arr[_as_mask(mask, arr.shape, "brain mask", subject)]
    lo, hi = float(values.min()), float(values.max())
    if not hi > lo:
        raise TausynthError(f"{subject_prefix(subject)}PET image is constant ({lo:g}); min-max scaling is undefined")
    return lo, hi


def minmax_normalize(volume: np.ndarray, mask: np.ndarray | None = None, subject: object | None = None) -> np.ndarray:
    """Per-subject min–max scaling ``(x - min) / (max - min)`` (the paper's baseline).

    ``min`` and ``max`` come from this very image (inside ``mask`` if given; the whole volume by
    default, i.e. the background 0 of a skull-stripped PET is the minimum). The scaling removes any
    per-subject affine intensity distortion, but it also removes the absolute SUVR scale — the
    between-subject tau burden — and depends on the single most extreme voxel.

    There is deliberately no ``inverse``: going back to SUVR needs the *true* PET's min and max,
    see :func:`oracle_minmax_inverse`.
    """
    arr = check_pet(volume, subject)
    lo, hi = minmax_range(arr, mask, subject)
    return ((arr.astype(np.float64) - lo) / (hi - lo)).astype(arr.dtype)


def oracle_minmax_inverse(normalized: np.ndarray, true_min: float, true_max: float) -> np.ndarray:
    """ORACLE inverse of :func:`minmax_normalize`: ``x * (true_max - true_min) + true_min``.

    This needs the min and max of the subject's **real** PET, which do not exist when the PET is
    synthesised from MRI. Use it only to report an upper bound ("if we knew the true range") and
    label the result as oracle; it is not a deployable way to obtain SUVR from a min–max model.
    """
    if not (math.isfinite(true_min) and math.isfinite(true_max) and true_max > true_min):
        raise TausynthError(f"oracle min-max inverse needs finite true_min < true_max, got {true_min!r}, {true_max!r}")
    z = np.asarray(normalized)
    dtype = z.dtype if np.issubdtype(z.dtype, np.floating) else np.float32
    return (z.astype(np.float64) * (true_max - true_min) + true_min).astype(dtype)
