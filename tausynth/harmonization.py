"""Harmonization experiments: SUVR standardization measured on a cohort whose ground truth is known.

The SUVR chapter asks what by-manufacturer standardization does on scans where the truth is known:
the synthetic phantom's noise-free SUVR and its exact per-manufacturer distortion, travelling
subjects scanned on every manufacturer, and a cohort whose case mix differs by scanner. This module
holds those experiments; the standardization itself is :mod:`tausynth.suvr`, which does not depend
on the phantom.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import pandas as pd

from tausynth.data.manifest import load_manifest, normalize_manufacturer
from tausynth.errors import TausynthError
from tausynth.io import load_nifti
from tausynth.suvr import (
    ManufacturerStandardizer,
    minmax_normalize,
    minmax_range,
    oracle_minmax_inverse,
    region_mean,
)

__all__ = [
    "Scan",
    "fit_on_scans",
    "manufacturer_error_summary",
    "roi_table",
    "scans_from_manifest",
    "simulate_scans",
    "travelling_comparison",
    "voxel_means",
]


@dataclass(frozen=True)
class Scan:
    """One PET scan with what the harmonization experiments need (arrays on one grid).

    ``pet`` is the observed SUVR (manufacturer-distorted), ``pet_gt`` the noise-free, undistorted
    ground truth (synthetic data only; ``None`` for real data), ``mask`` the brain mask (boolean),
    ``labels`` the FreeSurfer label map and ``refmask`` the SUVR reference region (``None`` when a
    real manifest has none).
    """

    subject_id: str
    manufacturer: str
    diagnosis: str
    amyloid: str
    split: str
    pet: np.ndarray
    mask: np.ndarray
    labels: np.ndarray | None = None
    refmask: np.ndarray | None = None
    pet_gt: np.ndarray | None = None
    session: str = ""


def simulate_scans(
    cohort: pd.DataFrame,
    seed: int,
    requests: Iterable[tuple[int, str]] | None = None,
    resolution: int = 4,
    cache: dict[tuple[int, int, str, int], Scan] | None = None,
    progress: bool = False,
) -> list[Scan]:
    """Simulate scans of a synthetic cohort (``sample_cohort`` rows) with a reusable cache.

    Parameters
    ----------
    cohort : pandas.DataFrame
        Output of :func:`tausynth.data.synthetic.sample_cohort` (row position = subject index).
    seed : int
        The cohort seed.
    requests : iterable of (int, str), optional
        ``(subject index, manufacturer)`` pairs; default: every subject on its own manufacturer.
        Asking for another manufacturer re-scans the same subject there (travelling subjects).
    resolution : {2, 4}, default=4
    cache : dict, optional
        Filled and reused across calls, keyed by ``(seed, index, manufacturer, resolution)``: the
        stratified and confounded cohorts of one seed share subjects, so most scans are reused.
    progress : bool, default=False
        Show a tqdm progress bar.
    """
    from tqdm import tqdm

    from tausynth.data.synthetic import simulate_subject

    pairs = list(requests) if requests is not None else list(enumerate(cohort["manufacturer"]))
    cache = {} if cache is None else cache
    out = []
    for index, manufacturer in tqdm(pairs, desc="scans", unit="scan", disable=not progress):
        man = normalize_manufacturer(manufacturer)
        key = (seed, int(index), man, resolution)
        row = cohort.iloc[int(index)]
        if key not in cache:
            subj = simulate_subject(row, int(index), seed, manufacturer=man, resolution=resolution)
            img = subj[resolution]
            cache[key] = Scan(
                subject_id=str(row["subject_id"]), manufacturer=man, diagnosis=str(row["diagnosis"]),
                amyloid=str(row["amyloid"]), split=str(row["split"]), pet=img.pet, mask=img.mask.astype(bool),
                labels=img.labels, refmask=img.refmask.astype(bool), pet_gt=img.pet_gt,
            )
        scan = cache[key]
        # the split comes from this cohort table, the images from the cache
        out.append(scan if scan.split == str(row["split"]) else replace(scan, split=str(row["split"])))
    return out


def scans_from_manifest(
    manifest: str | os.PathLike[str] | pd.DataFrame, splits: Sequence[str] | None = None
) -> list[Scan]:
    """Load the scans of a data manifest (all rows, or those of ``splits``) as :class:`Scan` objects.

    The ``pet`` column must hold SUVR maps. A row without ``mask`` uses the PET's non-zero voxels;
    ``labels``, ``refmask`` and ``pet_gt`` are loaded when present. Every image is held in memory.
    """
    df = manifest if not isinstance(manifest, str | os.PathLike) else load_manifest(manifest)
    if splits is not None:
        df = df[df["split"].isin(list(splits))]

    def optional(row: pd.Series, column: str, dtype: type = np.float32) -> np.ndarray | None:
        value = row.get(column, "")
        return load_nifti(value, dtype=dtype)[0] if isinstance(value, str) and value else None

    out = []
    for _, row in df.iterrows():
        pet = load_nifti(row["pet"])[0]
        mask = optional(row, "mask")
        labels = optional(row, "labels")
        refmask = optional(row, "refmask")
        out.append(Scan(
            subject_id=str(row["subject_id"]), manufacturer=normalize_manufacturer(row["manufacturer"]),
            diagnosis=str(row.get("diagnosis", "")), amyloid=str(row.get("amyloid", "")),
            split=str(row.get("split", "")), pet=pet, mask=(pet != 0) if mask is None else mask > 0.5,
            labels=None if labels is None else np.rint(labels).astype(np.int32),
            refmask=None if refmask is None else refmask > 0.5, pet_gt=optional(row, "pet_gt"),
            session=str(row.get("session", "")),
        ))
    return out


def fit_on_scans(
    scans: Iterable[Scan], fallback: Literal["error", "pooled"] = "error", reference: str | None = None
) -> ManufacturerStandardizer:
    """Fit a :class:`ManufacturerStandardizer` on (the brain masks of) the given scans."""
    scans = list(scans)
    return ManufacturerStandardizer(fallback=fallback, reference=reference).fit(
        [s.pet for s in scans], [s.mask for s in scans], [s.manufacturer for s in scans],
        subject_ids=[s.subject_id for s in scans],
    )


def voxel_means(
    scans: Iterable[Scan], standardizer: ManufacturerStandardizer, reference: str | None = None
) -> pd.DataFrame:
    """Mean brain-mask voxel SUVR per manufacturer (voxels pooled over its scans), raw and standardized.

    Columns ``scans``, ``raw`` and ``standardized`` (standardized, then put on the ``reference``
    manufacturer's scale); one row per manufacturer. The means of the voxel histograms of the SUVR
    chapter.
    """
    raw: dict[str, list[np.ndarray]] = {}
    std: dict[str, list[np.ndarray]] = {}
    for s in scans:
        raw.setdefault(s.manufacturer, []).append(s.pet[s.mask])
        std.setdefault(s.manufacturer, []).append(
            standardizer.to_reference_scale(s.pet, s.manufacturer, reference, subject=s.subject_id)[s.mask])
    rows = {m: {"scans": len(raw[m]), "raw": float(np.concatenate(raw[m]).mean()),
                "standardized": float(np.concatenate(std[m]).mean())} for m in sorted(raw)}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("manufacturer")


def roi_table(
    scans: Iterable[Scan],
    standardizer: ManufacturerStandardizer,
    roi_ids: Iterable[int],
    reference: str | None = None,
) -> pd.DataFrame:
    """One ROI value per scan, raw, standardized and min–max, with errors against the ground truth.

    Columns: ``subject_id, manufacturer, diagnosis, amyloid, split``;
    ``observed`` (ROI SUVR of the scan), ``standardized`` (ROI SUVR after standardization and
    inverse to the reference manufacturer's scale), ``truth`` (ROI SUVR of ``pet_gt``),
    ``error_raw = observed - truth`` and ``error_std = standardized - truth`` (SUVR);
    ``minmax`` / ``minmax_truth`` (ROI value of the min–max-scaled scan / ground truth, unitless)
    and ``error_minmax`` (their difference: the baseline in its own space); ``oracle_suvr`` (ROI
    SUVR after the ORACLE inverse with the ground truth's min and max) and ``error_oracle``.
    Without ``pet_gt`` the truth-based columns are NaN.

    Min–max uses the brain-mask minimum and maximum of each image, which removes any per-subject
    affine distortion exactly (with the background 0 as the minimum, an additive bias would stay).
    """
    ids = tuple(roi_ids)
    rows = []
    for s in scans:
        if s.labels is None:
            raise TausynthError(f"subject {s.subject_id}: no label map, so ROI values cannot be measured")
        observed = region_mean(s.pet, s.labels, ids)
        harmonized = standardizer.to_reference_scale(s.pet, s.manufacturer, reference, subject=s.subject_id)
        mm = minmax_normalize(s.pet, s.mask, subject=s.subject_id)
        row: dict[str, Any] = {
            "subject_id": s.subject_id, "manufacturer": s.manufacturer, "diagnosis": s.diagnosis,
            "amyloid": s.amyloid, "split": s.split, "observed": observed,
            "standardized": region_mean(harmonized, s.labels, ids), "minmax": region_mean(mm, s.labels, ids),
        }
        if s.pet_gt is not None:
            lo, hi = minmax_range(s.pet_gt, s.mask, subject=s.subject_id)
            row["truth"] = region_mean(s.pet_gt, s.labels, ids)
            row["minmax_truth"] = region_mean(minmax_normalize(s.pet_gt, s.mask), s.labels, ids)
            row["oracle_suvr"] = region_mean(oracle_minmax_inverse(mm, lo, hi), s.labels, ids)
        rows.append(row)
    df = pd.DataFrame(rows)
    for col in ("truth", "minmax_truth", "oracle_suvr"):
        if col not in df:
            df[col] = np.nan
    df["error_raw"] = df["observed"] - df["truth"]
    df["error_std"] = df["standardized"] - df["truth"]
    df["error_minmax"] = df["minmax"] - df["minmax_truth"]
    df["error_oracle"] = df["oracle_suvr"] - df["truth"]
    return df


def manufacturer_error_summary(
    table: pd.DataFrame, columns: Sequence[str] = ("error_raw", "error_std", "error_minmax")
) -> pd.DataFrame:
    """Mean of each error column per manufacturer, plus the between-manufacturer SD (``ddof=1``).

    The last row, ``"between-manufacturer SD"``, is the spread of the per-manufacturer means: the
    part of the error that depends on the scanner.
    """
    means = table.groupby("manufacturer")[list(columns)].mean()
    means.loc["between-manufacturer SD"] = means.std(ddof=1)
    return means


def travelling_comparison(
    scans: Iterable[Scan],
    standardizer: ManufacturerStandardizer,
    roi_ids: Iterable[int],
    reference: str = "Siemens",
) -> pd.DataFrame:
    """Same subjects on several scanners: differences to the ``reference`` scan of each subject.

    For every subject and every non-reference manufacturer: ``bias_raw`` / ``bias_std`` (ROI SUVR
    minus the reference scan's ROI SUVR, before / after standardization to the reference scale),
    ``mae_raw`` / ``mae_std`` (voxel mean absolute difference inside the brain mask, SUVR), and the
    min–max baseline in its own space, ``bias_minmax`` / ``mae_minmax`` (unitless; brain-mask
    minimum and maximum, as in :func:`roi_table`).
    """
    ids = tuple(roi_ids)
    ref = normalize_manufacturer(reference)
    by_subject: dict[str, dict[str, Scan]] = {}
    for s in scans:
        by_subject.setdefault(s.subject_id, {})[s.manufacturer] = s
    rows = []
    for sid, per in by_subject.items():
        if ref not in per:
            raise TausynthError(f"subject {sid}: no {ref} scan to compare with (travelling subjects need one)")
        r = per[ref]
        r_std = standardizer.to_reference_scale(r.pet, ref, ref, subject=sid)
        r_mm = minmax_normalize(r.pet, r.mask, subject=sid)
        for man, s in sorted(per.items()):
            if man == ref:
                continue
            if s.labels is None or r.labels is None:
                raise TausynthError(f"subject {sid}: no label map, so ROI values cannot be measured")
            mask = s.mask & r.mask
            h = standardizer.to_reference_scale(s.pet, man, ref, subject=sid)
            mm = minmax_normalize(s.pet, s.mask, subject=sid)
            rows.append({
                "subject_id": sid, "manufacturer": man, "diagnosis": s.diagnosis,
                "bias_raw": region_mean(s.pet, s.labels, ids) - region_mean(r.pet, r.labels, ids),
                "bias_std": region_mean(h, s.labels, ids) - region_mean(r_std, r.labels, ids),
                "bias_minmax": region_mean(mm, s.labels, ids) - region_mean(r_mm, r.labels, ids),
                "mae_raw": float(np.mean(np.abs(s.pet[mask] - r.pet[mask]), dtype=np.float64)),
                "mae_std": float(np.mean(np.abs(h[mask] - r_std[mask]), dtype=np.float64)),
                "mae_minmax": float(np.mean(np.abs(mm[mask] - r_mm[mask]), dtype=np.float64)),
            })
    return pd.DataFrame(rows)
