"""Trivial baselines a synthesis model has to beat, written like a run's predictions.

Two predictions that use no learning beyond one summary of the **training** split, both in SUVR:

``mean-image``
    The voxel-wise mean of the training subjects' measured SUVR maps: the same image for every
    test subject. It scores well on global voxel metrics (it is the cohort's average brain) but
    carries no between-subject signal, so its regional Pearson r is undefined (constant
    prediction) whenever all subjects share the grid and label map.
``regional-regression``
    The mean image with each label of the subject's label map shifted to the SUVR that a ridge
    regression on the subject's T1-derived regional measures predicts
    (:mod:`tausynth.evaluation.regional`). It is told where the regions are, so its regional r
    bounds what the T1 carries about tau. Needs the manifest's ``labels`` column.
``t1-linear``
    The subject's own T1, normalized as the models see it
    (:func:`tausynth.data.preprocess.normalize_t1`, percentile method by default) and put on the
    SUVR scale by **one** linear map ``a·T1 + b`` fitted by least squares over the brain-mask
    voxels of all training subjects. This is the "identity" baseline: an input image that is not
    PET at all, given the fairest affine intensity mapping. A raw T1 compared with SUVR would
    only measure its arbitrary units.

:func:`baseline_predictions` writes the NIfTI files and a ``predictions.csv`` in the format of
``tausynth predict`` (``kind = "suvr"``), so :func:`tausynth.evaluation.evaluate.evaluate_predictions`
scores them exactly as it scores a model (:func:`tausynth.evaluation.collect.collect_baselines`
does both).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tausynth.data.manifest import load_manifest, scan_label, scan_stem, split_frame
from tausynth.data.preprocess import derive_brain_mask, normalize_t1
from tausynth.digest import source_digest
from tausynth.errors import TausynthError
from tausynth.evaluation.regional import (
    RegionalFit,
    fit_regional,
    label_means,
    paint_regional,
    subject_features,
)
from tausynth.io import PathLike, atomic_write_text, file_lock, file_sha256, load_nifti, save_nifti

__all__ = [
    "BASELINES",
    "BaselineFit",
    "available_baselines",
    "baseline_predictions",
    "baseline_variant",
    "fit_baselines",
    "fit_regional_baseline",
]

BASELINES: tuple[str, ...] = ("mean-image", "t1-linear", "regional-regression")
"""Names of the implemented baselines."""


@dataclass(frozen=True)
class BaselineFit:
    """What the baselines learned from the training split.

    Attributes
    ----------
    mean_image : numpy.ndarray
        Voxel-wise mean training SUVR (float64).
    affine : numpy.ndarray
        Grid of the mean image (that of every training PET).
    slope, intercept : float
        ``SUVR ≈ slope · T1_normalized + intercept`` over training brain-mask voxels.
    t1_normalization : str
    n_train : int
    """

    mean_image: np.ndarray
    affine: np.ndarray
    slope: float
    intercept: float
    t1_normalization: str
    n_train: int


def baseline_variant(name: str) -> dict[str, Any]:
    """Variant columns of a baseline, as :func:`tausynth.evaluation.evaluate.run_variant` gives for a run."""
    _check_names([name])
    return {"run": f"baseline-{name}", "model": name, "perceptual": "n/a", "normalization": "n/a", "seed": 0}


def available_baselines(manifest: pd.DataFrame) -> list[str]:
    """The baselines a loaded manifest supports: all, less ``regional-regression`` without label maps."""
    labels = manifest["labels"] if "labels" in manifest.columns else pd.Series([], dtype=str)
    has_labels = len(labels) > 0 and bool(labels.map(lambda v: isinstance(v, str) and bool(v)).all())
    return [n for n in BASELINES if n != "regional-regression" or has_labels]


def _check_names(names: Sequence[str]) -> None:
    bad = [n for n in names if n not in BASELINES]
    if bad:
        raise TausynthError(f"unknown baseline(s) {', '.join(map(repr, bad))}; allowed: {', '.join(BASELINES)}")


def _mask(row: pd.Series, t1: np.ndarray) -> np.ndarray:
    path = row.get("mask", "")
    if isinstance(path, str) and path:
        return load_nifti(path)[0] > 0.5
    return derive_brain_mask(t1) > 0


def _who(row: pd.Series) -> str:
    return scan_label(row["subject_id"], row.get("session", ""))


def _t1(row: pd.Series, method: str) -> tuple[np.ndarray, np.ndarray]:
    t1 = load_nifti(row["t1"])[0]
    mask = _mask(row, t1)
    try:
        return normalize_t1(t1, mask, method).astype(np.float64), mask
    except TausynthError as exc:
        raise TausynthError(f"subject {_who(row)}, t1 {row['t1']}: {exc}") from None


def fit_baselines(manifest: pd.DataFrame, t1_normalization: str = "percentile") -> BaselineFit:
    """Fit both baselines on the ``train`` rows of a loaded manifest.

    Raises
    ------
    TausynthError
        If there are no training scans, or a training PET is not on the grid of the first one
        (a mean image needs one grid; the message names the subject).
    """
    train = split_frame(manifest, "train")
    if train.empty:
        raise TausynthError("the manifest has no training scans; baselines are fitted on split == train")
    total: np.ndarray | None = None
    affine = None
    # normal equations of SUVR = a·t + b, accumulated subject by subject (volumes never held together)
    n = st = stt = sy = sty = 0.0
    for _, row in train.iterrows():
        pet, pet_affine, _ = load_nifti(row["pet"], dtype=np.float64)
        if total is None:
            total, affine = np.zeros_like(pet), pet_affine
        elif pet.shape != total.shape or not np.allclose(pet_affine, affine, atol=1e-3):
            raise TausynthError(
                f"subject {_who(row)}: PET {row['pet']} (shape {pet.shape}) is not on the grid of the first "
                f"training PET (shape {total.shape}); the mean-image baseline needs one common grid"
            )
        total += pet
        t, mask = _t1(row, t1_normalization)
        if t.shape != pet.shape:
            raise TausynthError(f"subject {_who(row)}: T1 shape {t.shape} differs from the PET shape {pet.shape}")
        x, y = t[mask], pet[mask]
        n += x.size
        st += x.sum()
        stt += (x * x).sum()
        sy += y.sum()
        sty += (x * y).sum()
    assert total is not None and affine is not None
    var = stt - st * st / n
    slope = (sty - st * sy / n) / var if var > 0 else 0.0
    intercept = (sy - slope * st) / n
    return BaselineFit(total / len(train), affine, float(slope), float(intercept), t1_normalization, len(train))


def _labels(row: pd.Series) -> np.ndarray:
    path = row.get("labels", "")
    if not (isinstance(path, str) and path):
        raise TausynthError(
            f"subject {_who(row)}: the regional-regression baseline needs a label map (manifest column 'labels')"
        )
    return load_nifti(path)[0]


def _ages(frame: pd.DataFrame) -> pd.Series | None:
    """Every scan's age, or None when a scan has none (then age is not a feature)."""
    if "age" not in frame.columns:
        return None
    ages = pd.to_numeric(frame["age"], errors="coerce")
    return ages if bool(np.isfinite(ages).all()) else None


def _regional_features(row: pd.Series, age: float | None, method: str) -> dict[int, dict[str, float]]:
    t, _ = _t1(row, method)
    labels = _labels(row)
    if labels.shape != t.shape:
        raise TausynthError(f"subject {_who(row)}: label map shape {labels.shape} differs from the T1 shape {t.shape}")
    voxel_ml = abs(float(np.linalg.det(load_nifti(row["t1"])[1][:3, :3]))) / 1000.0
    return subject_features(t, labels, voxel_ml, age, label_ids=np.unique(labels).astype(int).tolist())


def fit_regional_baseline(manifest: pd.DataFrame, t1_normalization: str = "percentile") -> RegionalFit:
    """Fit the regional regression (:mod:`tausynth.evaluation.regional`) on the ``train`` rows.

    Age is a feature only when every scan of the manifest has one.
    """
    train = split_frame(manifest, "train")
    ages = _ages(manifest)
    features, targets = [], []
    for index, row in train.iterrows():
        feats = _regional_features(row, None if ages is None else float(ages[index]), t1_normalization)
        feats.pop(0, None)  # the background is not a region
        features.append(feats)
        targets.append(label_means(load_nifti(row["pet"])[0], _labels(row)))
    return fit_regional(features, targets)


def _stem(row: pd.Series) -> str:
    ses = row.get("session", "")
    return scan_stem(row["subject_id"], ses if isinstance(ses, str) else "")


def baseline_predictions(
    manifest: PathLike,
    split: str = "test",
    out: PathLike = "baselines",
    names: Sequence[str] | None = None,
    t1_normalization: str = "percentile",
    log: Callable[[str], None] | None = print,
) -> dict[str, pd.DataFrame]:
    """Write the baselines' SUVR predictions of every scan of ``split``; cached by content.

    Files go to ``<out>/<name>/<split>/`` with a ``predictions.csv`` like ``tausynth predict``
    writes (``subject_id``, ``session``, ``split``, ``manufacturer``, ``kind = "suvr"``,
    ``oracle = False``, ``path``) and a ``baseline.json`` (the manifest's SHA-256, the fit). A
    folder whose ``baseline.json`` matches the manifest and options is reused as it is.

    Parameters
    ----------
    manifest : path
        Data manifest (PET as SUVR maps).
    split : str, default="test"
    out : path
        Parent folder of the baselines (e.g. ``runs/<profile>/baselines``).
    names : sequence of str, optional
        Baselines to write (:data:`BASELINES`); default: those the manifest supports
        (:func:`available_baselines`).
    t1_normalization : {"percentile", "zscore", "none"}
        T1 normalization of ``t1-linear`` (the models' default is ``"percentile"``).
    log : callable, optional
        Receives one line per baseline.

    Returns
    -------
    dict of str to pandas.DataFrame
        The predictions table of each baseline.
    """
    frame = load_manifest(manifest)
    names = available_baselines(frame) if names is None else list(names)
    _check_names(names)
    rows = split_frame(frame, split)
    if rows.empty:
        raise TausynthError(f"{manifest}: no scans in split {split!r}")
    key = {"manifest": str(Path(manifest).resolve()), "manifest_sha256": file_sha256(manifest), "split": split,
           "t1_normalization": t1_normalization, "format": 1, "code": source_digest()}
    fits = _Fits(frame, t1_normalization)
    tables: dict[str, pd.DataFrame] = {}
    # one writer at a time: the ROI and results chapters may ask for the same baselines at once
    with file_lock(Path(out) / ".baselines.lock"):
        for name in names:
            folder = Path(out) / name / split
            tables[name] = _cached(folder, key)
            if not tables[name].empty:
                if log is not None:
                    log(f"baseline {name}: reusing {folder}")
                continue
            tables[name] = _write_baseline(name, rows, fits, folder, key, split)
            if log is not None:
                log(f"baseline {name}: wrote {len(tables[name])} predictions of split {split!r} to {folder}")
    return tables


def _cached(folder: Path, key: dict[str, Any]) -> pd.DataFrame:
    """The predictions table of ``folder`` when its stamp matches ``key``; empty otherwise."""
    stamp, table_path = folder / "baseline.json", folder / "predictions.csv"
    if not (stamp.is_file() and table_path.is_file()):
        return pd.DataFrame()
    try:
        cached = json.loads(stamp.read_text(encoding="utf-8"))
    except ValueError:
        return pd.DataFrame()
    if cached.get("key") != key:
        return pd.DataFrame()
    return pd.read_csv(table_path, dtype={"subject_id": str, "session": str}, keep_default_na=False)


class _Fits:
    """The baselines' fits, each made once and only when a baseline needs it."""

    def __init__(self, frame: pd.DataFrame, t1_normalization: str) -> None:
        self.frame, self.method, self.ages = frame, t1_normalization, _ages(frame)
        self._common: BaselineFit | None = None
        self._regional: RegionalFit | None = None

    @property
    def common(self) -> BaselineFit:
        self._common = self._common or fit_baselines(self.frame, self.method)
        return self._common

    @property
    def regional(self) -> RegionalFit:
        self._regional = self._regional or fit_regional_baseline(self.frame, self.method)
        return self._regional

    def volume(self, name: str, index: object, row: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        """One scan's prediction under baseline ``name``, and the PET's affine."""
        pet, pet_affine, _ = load_nifti(row["pet"])
        fit = self.common
        if name == "t1-linear":
            return fit.slope * _t1(row, self.method)[0] + fit.intercept, pet_affine
        if pet.shape != fit.mean_image.shape or not np.allclose(pet_affine, fit.affine, atol=1e-3):
            raise TausynthError(
                f"subject {_who(row)}: PET {row['pet']} is not on the training grid; the {name} baseline needs one grid"
            )
        if name == "regional-regression":
            age = None if self.ages is None else float(self.ages[index])
            predicted = self.regional.predict(_regional_features(row, age, self.method))
            return paint_regional(fit.mean_image, _labels(row), predicted), pet_affine
        return fit.mean_image, pet_affine

    def info(self, name: str) -> dict[str, Any]:
        """What ``baseline.json`` records of the fit behind ``name``."""
        info: dict[str, Any] = {"n_train": self.common.n_train}
        if name == "t1-linear":
            info |= {"slope": self.common.slope, "intercept": self.common.intercept}
        if name == "regional-regression":
            info |= self.regional.summary()
        return info


def _write_baseline(
    name: str, rows: pd.DataFrame, fits: _Fits, folder: Path, key: dict[str, Any], split: str
) -> pd.DataFrame:
    records = []
    for index, row in rows.iterrows():
        volume, affine = fits.volume(name, index, row)
        path = folder / f"{_stem(row)}_suvr.nii.gz"
        save_nifti(path, volume.astype(np.float32), affine)
        records.append({"subject_id": row["subject_id"], "session": row.get("session", ""), "split": split,
                        "manufacturer": row.get("manufacturer", ""), "kind": "suvr", "oracle": False,
                        "path": str(path.resolve())})
    table = pd.DataFrame(records)
    atomic_write_text(folder / "predictions.csv", table.to_csv(index=False))
    atomic_write_text(folder / "baseline.json", json.dumps({"key": key, "fit": fits.info(name)}, indent=2) + "\n")
    return table
