"""Regional regression: how much of a subject's regional tau its own T1 can explain.

A baseline, not a model. For every label of the label map it predicts the label's mean SUVR from
measures a T1 gives without any PET:

* the label's mean normalized T1 intensity (atrophy replaces grey matter by darker CSF),
* the label's volume in ml,
* the ventricles' volume in ml (lateral and inferior lateral ventricles, choroid plexus),
* the subject's age, where the manifest gives one for every scan.

One ridge regression per label is fitted on the training split (features standardized on it).
The prediction is painted back into the subject's label map: inside each label, the mean training
image is shifted so that its mean over the label equals the predicted SUVR; background and labels
absent from some training subject keep the mean image. The result is scored exactly like a model
(:func:`tausynth.evaluation.baselines.baseline_predictions`).

The network sees the same T1 (plus its spatial context) but must learn these relations from the
voxels; this baseline is told where the regions are. Its regional Pearson r is therefore a
practical bound of what the T1 carries about tau, not a model to deploy.

Examples
--------
>>> import numpy as np
>>> labels = np.zeros((6, 6, 6), int); labels[1:3] = 17; labels[3:5] = 4
>>> t1 = np.where(labels > 0, 0.5, 0.0)
>>> f = subject_features(t1, labels, voxel_ml=0.064, age=70.0, label_ids=(17,))
>>> sorted(f[17])
['age', 't1_mean', 'ventricles_ml', 'volume_ml']
>>> round(f[17]["volume_ml"], 3), round(f[17]["ventricles_ml"], 3)
(4.608, 4.608)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from tausynth.data.atlas import roi_sets
from tausynth.errors import TausynthError

__all__ = ["REGIONAL_FEATURES", "RegionalFit", "fit_regional", "label_means", "paint_regional", "subject_features"]

REGIONAL_FEATURES: tuple[str, ...] = ("t1_mean", "volume_ml", "ventricles_ml", "age")
"""The T1-derived measures of each label (``age`` only when every scan has one)."""
RIDGE = 1.0
"""Ridge penalty on standardized features: keeps ~70 training subjects × 4 features stable."""


def _as_int(labels: np.ndarray) -> np.ndarray:
    return np.rint(labels).astype(np.int64) if labels.dtype.kind == "f" else labels


def label_means(volume: np.ndarray, labels: np.ndarray) -> dict[int, float]:
    """Mean of ``volume`` over each label present in ``labels`` (one pass over the voxels).

    Examples
    --------
    >>> label_means(np.array([1.0, 3.0, 5.0]), np.array([2, 2, 7]))
    {2: 2.0, 7: 5.0}
    """
    lab = _as_int(np.asarray(labels))
    ids, index, counts = np.unique(lab.ravel(), return_inverse=True, return_counts=True)
    sums = np.bincount(index, weights=np.asarray(volume, dtype=np.float64).ravel())
    return {int(i): float(s / c) for i, s, c in zip(ids, sums, counts, strict=True)}


def subject_features(
    t1: np.ndarray,
    labels: np.ndarray,
    voxel_ml: float,
    age: float | None,
    label_ids: Sequence[int],
) -> dict[int, dict[str, float]]:
    """The regional measures of one subject, for every label of ``label_ids`` present in ``labels``.

    Parameters
    ----------
    t1 : numpy.ndarray
        The normalized T1 (as the models see it).
    labels : numpy.ndarray
        Integer label map (FreeSurfer IDs) on the same grid.
    voxel_ml : float
        Volume of one voxel in ml.
    age : float or None
        Age in years; ``None`` leaves the feature out.
    label_ids : sequence of int
        Labels to measure.

    Returns
    -------
    dict of int to dict of str to float
        Label ID to its features (:data:`REGIONAL_FEATURES`, without ``age`` when ``age`` is None).
    """
    lab = _as_int(labels)
    ventricles = float(np.isin(lab, roi_sets()["ventricles"]).sum() * voxel_ml)
    means = label_means(t1, lab)
    ids, counts = np.unique(lab, return_counts=True)
    wanted = set(label_ids)
    out: dict[int, dict[str, float]] = {}
    for label, count in zip(ids.tolist(), counts.tolist(), strict=True):
        if label not in wanted:
            continue
        feats = {"t1_mean": means[label], "volume_ml": count * voxel_ml, "ventricles_ml": ventricles}
        if age is not None:
            feats["age"] = float(age)
        out[label] = feats
    return out


@dataclass(frozen=True)
class RegionalFit:
    """One ridge regression per label, fitted on standardized features.

    Attributes
    ----------
    features : tuple of str
        Feature names, in column order.
    coefficients : dict of int to numpy.ndarray
        Label ID to ``[intercept, w_1, …, w_f]`` on standardized features.
    center, scale : dict of int to numpy.ndarray
        Label ID to the training mean and standard deviation of each feature.
    n_train : int
    """

    features: tuple[str, ...]
    coefficients: dict[int, np.ndarray] = field(repr=False)
    center: dict[int, np.ndarray] = field(repr=False)
    scale: dict[int, np.ndarray] = field(repr=False)
    n_train: int = 0

    def predict(self, features: Mapping[int, Mapping[str, float]]) -> dict[int, float]:
        """Predicted mean SUVR of every fitted label present in ``features``."""
        out = {}
        for label, feats in features.items():
            if label not in self.coefficients:
                continue
            x = (np.array([feats[f] for f in self.features]) - self.center[label]) / self.scale[label]
            out[label] = float(self.coefficients[label][0] + x @ self.coefficients[label][1:])
        return out

    def summary(self) -> dict[str, object]:
        """JSON-ready description (features, labels, ridge, training size)."""
        return {"features": list(self.features), "labels": sorted(self.coefficients), "ridge": RIDGE,
                "n_train": self.n_train}


def fit_regional(
    features: Sequence[Mapping[int, Mapping[str, float]]],
    targets: Sequence[Mapping[int, float]],
) -> RegionalFit:
    """Fit one ridge regression per label present in every training subject.

    Parameters
    ----------
    features : sequence of mapping
        Per training subject, :func:`subject_features`.
    targets : sequence of mapping
        Per training subject, label ID to the label's mean SUVR.

    Raises
    ------
    TausynthError
        With fewer than three training subjects, or when no label is present in all of them.
    """
    if len(features) < 3:
        raise TausynthError(f"regional regression needs at least 3 training subjects, got {len(features)}")
    common = set(features[0]).intersection(*features[1:])
    if not common:
        raise TausynthError("regional regression: no label is present in every training label map")
    names = tuple(f for f in REGIONAL_FEATURES if all(f in subj[label] for subj in features for label in common))
    coefficients, center, scale = {}, {}, {}
    for label in sorted(common):
        x = np.array([[subj[label][f] for f in names] for subj in features])
        y = np.array([t[label] for t in targets])
        mu, sd = x.mean(axis=0), x.std(axis=0)
        sd[sd == 0] = 1.0  # a constant feature (one volume for all) carries nothing; keep it finite
        z = (x - mu) / sd
        # ridge on the centred problem: the intercept is the training mean, unpenalised
        w = np.linalg.solve(z.T @ z + RIDGE * np.eye(len(names)), z.T @ (y - y.mean()))
        coefficients[label], center[label], scale[label] = np.concatenate([[y.mean()], w]), mu, sd
    return RegionalFit(names, coefficients, center, scale, len(features))


def paint_regional(mean_image: np.ndarray, labels: np.ndarray, predicted: Mapping[int, float]) -> np.ndarray:
    """The mean image with each predicted label shifted to its predicted mean SUVR.

    Examples
    --------
    >>> mean = np.ones((2, 2, 2)); labels = np.zeros((2, 2, 2), int); labels[0] = 5
    >>> out = paint_regional(mean, labels, {5: 2.5})
    >>> float(out[0].mean()), float(out[1].mean())
    (2.5, 1.0)
    """
    lab = _as_int(labels)
    out = np.array(mean_image, dtype=np.float64, copy=True)
    for label, value in predicted.items():
        region = lab == label
        if region.any():
            out[region] += value - out[region].mean()
    return out
