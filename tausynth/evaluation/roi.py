"""Regional SUVR of real and synthetic PET in Braak regions, meta-temporal and off-target regions.

Region sets are **parameters** (the paper does not list its label IDs): :func:`braak_regions` and :func:`off_target_regions`
return fresh dicts of FreeSurfer label IDs built from :func:`tausynth.data.atlas.roi_sets` that a
caller may edit, extend or replace. Labels come from the phantom's label map or from a FreeSurfer
``aparc+aseg`` (the manifest's ``labels`` column) on the PET grid.

Region means are voxel-weighted, i.e. volume-weighted over the structures of a composite (a
large region counts more than a small one), and restricted to grey matter:

* with a grey-matter fraction map ``gm``, a voxel counts when its label is in the region and
  ``gm >= gm_min`` (0.5, the synthetic cohort's "GM ribbon" rule);
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

from tausynth.data import regions as _regions
from tausynth.data.atlas import roi_sets
from tausynth.data.regions import GM_MIN, MISSING_POLICIES, region_means  # noqa: F401 (re-exported)
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


def braak_regions(names: Sequence[str] = BRAAK_REGIONS) -> dict[str, tuple[int, ...]]:
    """Return a fresh dict of the AD-relevant regions' FreeSurfer IDs (Desikan–Killiany cortex, aseg subcortex).

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


def region_masks(
    labels: np.ndarray,
    regions: Mapping[str, Iterable[int]],
    gm: np.ndarray | None = None,
    gm_min: float = GM_MIN,
    label_only: Iterable[str] = OFF_TARGET_REGIONS,
    missing: Literal["error", "ignore"] = "error",
    subject: object | None = None,
) -> dict[str, np.ndarray]:
    """:func:`tausynth.data.regions.region_masks` with the evaluation's defaults: the off-target regions
    measured on their labels alone, and an empty region refused (one line naming the subject and region)."""
    return _regions.region_masks(labels, regions, gm, gm_min, label_only, missing, "error", subject)


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
