"""Imaging-based Braak staging from regional SUVR (Maass et al. 2017 style).

The four-stage classification proceeds **from late to early** composite: a subject whose
Braak V/VI SUVR exceeds its threshold is stage V–VI; otherwise, if Braak III/IV exceeds its
threshold, III–IV; otherwise, if Braak I/II does, I–II; otherwise 0. Each test is "SUVR >
threshold".

Thresholds (:class:`StagingThresholds`, all parameters). Maass et al. (2017, Fig. 1) published
1.13 / 1.30 / 1.87 (I/II, III/IV, V/VI) for partial-volume-corrected SUVR; our PET is not
partial-volume corrected, and on non-PVC data V/VI > 1.87 is almost never reached (the phantom's
mean Braak V/VI SUVR at stage VI is 1.68). The defaults are therefore
calibrated on the phantom's non-PVC values, in the spirit of Maass's "above the controls" rule:

* Braak I/II (``braak1``, entorhinal): **1.13** — Maass's value, which also splits the phantom's
  stage 0 (mean 1.04) from stage I (1.20);
* Braak III/IV (``braak34``): **1.27** — mean + 2 SD of the phantom's CN A− subjects (1.15 ± 0.06);
* Braak V/VI (``braak56``): **1.20** — mean + 2 SD of the phantom's CN A− subjects (1.12 ± 0.04).

The Braak I/II composite is the entorhinal cortex alone: the hippocampus (Braak II) is excluded
by default because of choroid-plexus spill-in, as in the paper's regional analysis. For real data, derive thresholds
from one's own controls with :meth:`StagingThresholds.from_controls`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tausynth.errors import TausynthError

__all__ = [
    "STAGE_LABELS",
    "StagingThresholds",
    "braak_group",
    "confusion_matrix",
    "imaging_stage",
    "stage_frame",
]

STAGE_LABELS: tuple[str, ...] = ("0", "I-II", "III-IV", "V-VI")
"""Names of the imaging stages 0–3."""


@dataclass(frozen=True)
class StagingThresholds:
    """Composite regions and SUVR thresholds of the staging, early to late.

    Attributes
    ----------
    regions : tuple of str
        ROI names for stages I–II, III–IV and V–VI (keys of the ROI table's ``region`` column).
    thresholds : tuple of float
        SUVR above which each composite is positive.
    """

    regions: tuple[str, str, str] = ("braak1", "braak34", "braak56")
    thresholds: tuple[float, float, float] = (1.13, 1.27, 1.20)

    def __post_init__(self) -> None:
        if len(self.regions) != 3 or len(self.thresholds) != 3:
            raise TausynthError(
                f"staging needs 3 regions and 3 thresholds (I-II, III-IV, V-VI), got {self.regions!r}, {self.thresholds!r}"
            )
        if not all(math.isfinite(float(t)) for t in self.thresholds):
            raise TausynthError(f"staging thresholds must be finite numbers, got {self.thresholds!r}")

    @classmethod
    def from_controls(
        cls,
        controls: pd.DataFrame,
        regions: tuple[str, str, str] = ("braak1", "braak34", "braak56"),
        k: float = 2.0,
    ) -> StagingThresholds:
        """Thresholds = mean + ``k``·SD (ddof 1) of control subjects' SUVR in each composite.

        Parameters
        ----------
        controls : pandas.DataFrame
            Wide table, one row per control subject (e.g. cognitively normal, amyloid-negative),
            one column per region in ``regions``.
        """
        missing = [r for r in regions if r not in controls]
        if missing:
            raise TausynthError(f"control table has no column(s) {', '.join(missing)}")
        if len(controls) < 2:
            raise TausynthError(f"need at least 2 control subjects to derive thresholds, got {len(controls)}")
        values = tuple(float(controls[r].mean() + k * controls[r].std(ddof=1)) for r in regions)
        return cls(regions=tuple(regions), thresholds=values)  # type: ignore[arg-type]


def imaging_stage(values: Mapping[str, float], thresholds: StagingThresholds | None = None) -> int:
    """Imaging stage 0–3 (0, I–II, III–IV, V–VI) of one subject's composite SUVRs, late to early.

    Examples
    --------
    >>> imaging_stage({"braak1": 1.5, "braak34": 1.4, "braak56": 1.1})
    2
    """
    th = thresholds or StagingThresholds()
    missing = [r for r in th.regions if r not in values]
    if missing:
        raise TausynthError(f"staging needs region(s) {', '.join(missing)}")
    for stage in (3, 2, 1):
        if float(values[th.regions[stage - 1]]) > th.thresholds[stage - 1]:
            return stage
    return 0


def braak_group(stage: int | float | Iterable[int | float]) -> np.ndarray | int:
    """Map a neuropathological Braak stage 0–VI (integer, or continuous: floored) to the imaging groups 0–3.

    0 → 0, I–II → 1, III–IV → 2, V–VI → 3.
    """
    arr = np.floor(np.asarray(stage, dtype=np.float64))
    if np.any((arr < 0) | (arr > 6)) or np.any(~np.isfinite(arr)):
        raise TausynthError(f"Braak stage must lie in [0, 7), got {stage!r}")
    out = ((arr + 1) // 2).astype(int)
    return int(out) if out.ndim == 0 else out


def stage_frame(
    frame: pd.DataFrame, column: str, thresholds: StagingThresholds | None = None
) -> pd.Series:
    """Imaging stage of every subject of a long ROI table, from its ``column`` values (``real`` or ``synthetic``).

    Returns
    -------
    pandas.Series
        Integer stage 0–3 indexed by ``subject_id``.
    """
    th = thresholds or StagingThresholds()
    sub = frame[frame["region"].isin(th.regions)]
    wide = sub.pivot_table(index="subject_id", columns="region", values=column, aggfunc="mean")
    missing = [r for r in th.regions if r not in wide]
    if missing:
        raise TausynthError(f"ROI table has no values for staging region(s) {', '.join(missing)}")
    incomplete = wide.index[wide[list(th.regions)].isna().any(axis=1)].tolist()
    if incomplete:
        raise TausynthError(f"subject(s) {', '.join(map(str, incomplete))} lack a staging region value")
    stages = [imaging_stage(row, th) for _, row in wide.iterrows()]
    return pd.Series(stages, index=wide.index, name=f"stage_{column}", dtype=int)


def confusion_matrix(
    reference: Iterable[int], predicted: Iterable[int], labels: tuple[str, ...] = STAGE_LABELS
) -> pd.DataFrame:
    """Counts of (reference stage, predicted stage) over all stages 0..len(labels)−1, missing ones as 0.

    Rows are the reference (e.g. real-PET staging), columns the prediction (synthetic-PET staging).
    """
    ref = np.asarray(list(reference), dtype=int)
    pred = np.asarray(list(predicted), dtype=int)
    if ref.shape != pred.shape:
        raise TausynthError(f"stage lists differ in length: {ref.size} and {pred.size}")
    k = len(labels)
    if ref.size and (ref.min() < 0 or pred.min() < 0 or ref.max() >= k or pred.max() >= k):
        raise TausynthError(f"stages must lie in 0..{k - 1}")
    counts = np.zeros((k, k), dtype=int)
    np.add.at(counts, (ref, pred), 1)
    return pd.DataFrame(counts, index=pd.Index(labels, name="reference"), columns=pd.Index(labels, name="predicted"))
