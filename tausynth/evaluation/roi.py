"""Regional SUVR of real and synthetic PET in Braak regions, meta-temporal and off-target regions.

Region sets are **parameters** (paper-spec §9): :func:`braak_regions` and :func:`off_target_regions`
return fresh dicts of FreeSurfer label IDs built from :func:`tausynth.data.atlas.roi_sets` that a
caller may edit, extend or replace. Labels come from the phantom's label map or from a FreeSurfer
``aparc+aseg`` (the manifest's ``labels`` column) on the PET grid.

Region means are voxel-weighted, i.e. volume-weighted over the structures of a composite (a
large region counts more than a small one), and restricted to grey matter:

* with a grey-matter fraction map ``gm``, a voxel counts when its label is in the region and
  ``gm >= gm_min`` (0.5, the phantom's "GM ribbon" rule, ``phantom.md`` §3.6);
* without one, the label alone: FreeSurfer's cortical ``aparc`` labels *are* the GM ribbon and the
  aseg structures used here (hippocampus, amygdala, deep nuclei) are GM structures.

Regions in ``label_only`` (by default the off-target structures, which are subcortical or lie in
the ventricles) always use the label alone, as the phantom does for putamen and choroid plexus.

A region none of whose voxels survive, or one with label IDs absent from the label map, raises a
:class:`~tausynth.errors.TausynthError` naming the subject and the region.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from tausynth.data.atlas import roi_sets
from tausynth.errors import TausynthError

__all__ = [
    "BRAAK_REGIONS",
    "GM_MIN",
    "MISSING_POLICIES",
    "OFF_TARGET_REGIONS",
    "braak_regions",
    "off_target_regions",
    "off_target_report",
    "region_masks",
    "region_means",
    "roi_frame",
    "spill_in_correlation",
    "subject_roi_rows",
]

BRAAK_REGIONS: tuple[str, ...] = (
    "braak1", "braak2", "braak3", "braak4", "braak5", "braak6", "braak34", "braak56", "metatemporal",
)
"""Names of the AD-relevant regions (Braak I = entorhinal, II = hippocampus, III–VI, composites, meta-temporal)."""
OFF_TARGET_REGIONS: tuple[str, ...] = ("putamen", "pallidum", "caudate", "thalamus", "choroid")
"""Off-target binding sites of flortaucipir reported separately (Baker, Maass & Jagust 2017)."""
GM_MIN = 0.5
"""Grey-matter fraction a voxel needs when a GM map is given (phantom.md §3.6)."""
MISSING_POLICIES = ("error", "ignore")
"""Allowed values of ``missing``: what to do with label IDs of a region absent from the label map."""


def braak_regions(names: Sequence[str] = BRAAK_REGIONS) -> dict[str, tuple[int, ...]]:
    """Return a fresh dict of the AD-relevant regions' FreeSurfer IDs (paper-spec §9).

    Parameters
    ----------
    names : sequence of str
        Keys of :func:`tausynth.data.atlas.roi_sets` to include.
    """
    return _select(names)


def off_target_regions(names: Sequence[str] = OFF_TARGET_REGIONS) -> dict[str, tuple[int, ...]]:
    """Return a fresh dict of the off-target regions' FreeSurfer IDs (putamen, pallidum, caudate, thalamus, choroid plexus)."""
    return _select(names)


def _select(names: Sequence[str]) -> dict[str, tuple[int, ...]]:
    sets = roi_sets()
    unknown = [n for n in names if n not in sets]
    if unknown:
        raise TausynthError(f"unknown region(s) {', '.join(map(repr, unknown))}; known: {', '.join(sorted(sets))}")
    return {n: tuple(sets[n]) for n in names}


def _who(subject: object | None) -> str:
    return "" if subject is None else f"subject {subject}: "


def region_masks(
    labels: np.ndarray,
    regions: Mapping[str, Iterable[int]],
    gm: np.ndarray | None = None,
    gm_min: float = GM_MIN,
    label_only: Iterable[str] = OFF_TARGET_REGIONS,
    missing: Literal["error", "ignore"] = "error",
    subject: object | None = None,
) -> dict[str, np.ndarray]:
    """Boolean voxel mask of every region (label in the region, and GM where a GM map is given).

    Parameters
    ----------
    labels : numpy.ndarray
        Integer label map (FreeSurfer IDs); float arrays are rounded.
    regions : mapping of str to iterable of int
        Region name to label IDs, e.g. :func:`braak_regions`.
    gm : numpy.ndarray, optional
        Grey-matter fraction on the same grid.
    gm_min : float, default=0.5
        A voxel counts when ``gm >= gm_min`` (ignored without ``gm``).
    label_only : iterable of str
        Regions measured on their labels alone even when ``gm`` is given.
    missing : {"error", "ignore"}, default="error"
        A region with label IDs absent from the map raises (``"error"``), or is measured on the
        IDs present (``"ignore"``).
    subject : object, optional
        Subject identifier for error messages.

    Raises
    ------
    TausynthError
        On mismatched shapes, a label absent from the map (``missing="error"``), or an empty region.
    """
    if missing not in MISSING_POLICIES:
        raise TausynthError(f"missing={missing!r} not allowed; use one of {', '.join(MISSING_POLICIES)}")
    lab = np.asarray(labels)
    if lab.dtype.kind == "f":
        lab = np.rint(lab).astype(np.int64)
    ribbon = None
    if gm is not None:
        g = np.asarray(gm)
        if g.shape != lab.shape:
            raise TausynthError(f"{_who(subject)}GM map shape {g.shape} does not match the label map shape {lab.shape}")
        ribbon = g >= gm_min
    present = set(np.unique(lab).tolist())
    label_only = set(label_only)
    out: dict[str, np.ndarray] = {}
    for name, ids in regions.items():
        ids = sorted({int(i) for i in ids})
        if not ids:
            raise TausynthError(f"{_who(subject)}region {name!r} has no label IDs")
        absent = [i for i in ids if i not in present]
        if absent and missing == "error":
            raise TausynthError(
                f"{_who(subject)}region {name!r}: label(s) {', '.join(map(str, absent))} absent from the label map"
            )
        sel = np.isin(lab, ids)
        if ribbon is not None and name not in label_only:
            sel &= ribbon
        if not sel.any():
            extra = f" with GM >= {gm_min:g}" if ribbon is not None and name not in label_only else ""
            raise TausynthError(f"{_who(subject)}region {name!r} is empty (no voxel{extra} with labels {ids})")
        out[name] = sel
    return out


def region_means(volume: np.ndarray, masks: Mapping[str, np.ndarray], subject: object | None = None) -> dict[str, float]:
    """Voxel-weighted mean of ``volume`` in each mask of :func:`region_masks` (float64 accumulation)."""
    vol = np.asarray(volume)
    out = {}
    for name, sel in masks.items():
        if sel.shape != vol.shape:
            raise TausynthError(f"{_who(subject)}image shape {vol.shape} does not match the label map shape {sel.shape}")
        out[name] = float(np.mean(vol[sel], dtype=np.float64))
    return out


def subject_roi_rows(
    subject_id: str,
    real: np.ndarray,
    synthetic: np.ndarray,
    labels: np.ndarray,
    regions: Mapping[str, Iterable[int]] | None = None,
    gm: np.ndarray | None = None,
    gm_min: float = GM_MIN,
    label_only: Iterable[str] = OFF_TARGET_REGIONS,
    missing: Literal["error", "ignore"] = "error",
    extra: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Long-form rows ``subject_id, region, real, synthetic, n_voxels`` (+ ``extra``) for one subject.

    Parameters
    ----------
    subject_id : str
    real, synthetic : numpy.ndarray
        Measured and synthetic SUVR maps on the label map's grid.
    labels : numpy.ndarray
    regions : mapping, optional
        Default: :func:`braak_regions` and :func:`off_target_regions`.
    gm, gm_min, label_only, missing
        See :func:`region_masks`.
    extra : mapping, optional
        Constant columns added to each row (e.g. ``diagnosis``, ``model``).
    """
    if regions is None:
        regions = {**braak_regions(), **off_target_regions()}
    for what, arr in (("real PET", real), ("synthetic PET", synthetic)):
        if np.asarray(arr).shape != np.asarray(labels).shape:
            raise TausynthError(
                f"subject {subject_id}: {what} shape {np.asarray(arr).shape} does not match the label map "
                f"shape {np.asarray(labels).shape}"
            )
    masks = region_masks(labels, regions, gm, gm_min, label_only, missing, subject=subject_id)
    r = region_means(real, masks, subject_id)
    s = region_means(synthetic, masks, subject_id)
    base = dict(extra) if extra else {}
    return [
        {"subject_id": subject_id, **base, "region": name, "real": r[name], "synthetic": s[name],
         "n_voxels": int(masks[name].sum())}
        for name in masks
    ]


def roi_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Collect rows of :func:`subject_roi_rows` into a table; adds ``difference = synthetic − real``."""
    df = pd.DataFrame(list(rows))
    if df.empty:
        raise TausynthError("no ROI values to tabulate (no subjects)")
    df["difference"] = df["synthetic"] - df["real"]
    return df


def off_target_report(
    frame: pd.DataFrame,
    regions: Sequence[str] = OFF_TARGET_REGIONS,
    by: str | None = "diagnosis",
    icc_form: str = "ICC(2,1)",
) -> pd.DataFrame:
    """Agreement of real and synthetic SUVR in the off-target regions, overall and by ``by``.

    Off-target binding (basal ganglia, thalamus, choroid plexus) is not tau and cannot be read
    from a T1w image; a model that reproduces it has learned the cohort's average, and a large
    bias there leaks into neighbouring target regions (choroid plexus into hippocampus). Regions
    missing from ``frame`` are skipped; an ``off_target`` column marks the rows.
    """
    from tausynth.evaluation.agreement import agreement_table

    present = [r for r in regions if r in set(frame["region"])]
    if not present:
        raise TausynthError(
            f"none of the off-target regions {', '.join(regions)} is in the ROI table; add them to the region sets"
        )
    out = agreement_table(frame, by=by, regions=present, icc_form=icc_form)
    out.insert(1, "off_target", True)
    return out


def spill_in_correlation(frame: pd.DataFrame, source: str = "choroid", target: str = "braak2") -> dict[str, float]:
    """Across-subject Pearson r between an off-target ``source`` and a ``target`` region, real and synthetic.

    Choroid-plexus signal spills into the hippocampus (Braak II) in flortaucipir PET; comparing
    ``r_real`` with ``r_synthetic`` shows whether the synthetic images carry the same artefact.
    """
    from tausynth.evaluation.agreement import pearson

    wide = {}
    for col in ("real", "synthetic"):
        table = frame[frame["region"].isin([source, target])].pivot_table(
            index="subject_id", columns="region", values=col, aggfunc="mean"
        )
        missing = [r for r in (source, target) if r not in table]
        if missing:
            raise TausynthError(f"region(s) {', '.join(missing)} not in the ROI table")
        table = table.dropna()
        wide[col] = pearson(table[source].to_numpy(), table[target].to_numpy()).r
    return {"source": source, "target": target, "r_real": wide["real"], "r_synthetic": wide["synthetic"]}
