"""Trivial baselines: the mean training image and the linearly rescaled T1, against ground truth."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tausynth.data.manifest import load_manifest, split_frame
from tausynth.data.preprocess import normalize_t1
from tausynth.errors import TausynthError
from tausynth.evaluation import baselines as B
from tausynth.io import load_nifti, save_nifti

SHAPE = (12, 12, 12)
SLOPE, INTERCEPT = 1.7, 0.6


def _write_manifest(tmp_path, n_train=4, n_test=2, odd_grid: str | None = None, pet_of=None):
    """Tiny subjects whose PET is exactly SLOPE · normalized T1 + INTERCEPT inside the mask."""
    rng = np.random.default_rng(0)
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    mask = np.zeros(SHAPE, np.float32)
    mask[2:10, 2:10, 2:10] = 1
    rows = []
    for i in range(n_train + n_test):
        sid = f"sub-{i:02d}"
        t1 = rng.uniform(50, 400, SHAPE).astype(np.float32) * mask
        norm = normalize_t1(t1, mask)
        pet = (SLOPE * norm + INTERCEPT).astype(np.float32) if pet_of is None else pet_of(i, norm)
        a = affine.copy()
        if sid == odd_grid:
            a[0, 3] = 8.0
        d = tmp_path / sid
        save_nifti(d / "t1.nii.gz", t1, a)
        save_nifti(d / "pet.nii.gz", pet, a)
        save_nifti(d / "mask.nii.gz", mask, a)
        rows.append({"subject_id": sid, "t1": f"{sid}/t1.nii.gz", "pet": f"{sid}/pet.nii.gz", "mask": f"{sid}/mask.nii.gz",
                     "manufacturer": "Siemens", "diagnosis": "CN", "split": "train" if i < n_train else "test"})
    path = tmp_path / "manifest.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_t1_linear_recovers_an_exact_linear_relation(tmp_path):
    manifest = _write_manifest(tmp_path)
    fit = B.fit_baselines(load_manifest(manifest))
    assert fit.n_train == 4
    assert fit.slope == pytest.approx(SLOPE, rel=1e-5) and fit.intercept == pytest.approx(INTERCEPT, abs=1e-5)
    tables = B.baseline_predictions(manifest, "test", tmp_path / "out", names=["t1-linear"], log=None)
    table = tables["t1-linear"]
    assert list(table["subject_id"]) == ["sub-04", "sub-05"] and set(table["kind"]) == {"suvr"}
    for _, row in table.iterrows():
        pred = load_nifti(row["path"])[0]
        real = load_nifti(tmp_path / row["subject_id"] / "pet.nii.gz")[0]
        np.testing.assert_allclose(pred, real, atol=1e-5)


def test_mean_image_is_the_voxelwise_training_mean(tmp_path):
    manifest = _write_manifest(tmp_path, pet_of=lambda i, norm: np.full(SHAPE, float(i + 1), np.float32))
    tables = B.baseline_predictions(manifest, "test", tmp_path / "out", names=["mean-image"], log=None)
    for path in tables["mean-image"]["path"]:
        # training subjects 0..3 have constant PET 1..4: the mean image is 2.5 everywhere
        np.testing.assert_allclose(load_nifti(path)[0], 2.5, atol=1e-6)


def test_cached_until_the_manifest_changes(tmp_path):
    manifest = _write_manifest(tmp_path)
    lines: list[str] = []
    B.baseline_predictions(manifest, "test", tmp_path / "out", log=lines.append)
    first = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("*.nii.gz")}
    B.baseline_predictions(manifest, "test", tmp_path / "out", log=lines.append)
    assert sum("reusing" in line for line in lines) == 2
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("*.nii.gz")} == first
    stamp = json.loads((tmp_path / "out" / "t1-linear" / "test" / "baseline.json").read_text())
    assert stamp["fit"]["slope"] == pytest.approx(SLOPE, rel=1e-5)
    df = pd.read_csv(manifest)
    df.loc[0, "diagnosis"] = "AD"  # any content change invalidates
    df.to_csv(manifest, index=False)
    lines.clear()
    B.baseline_predictions(manifest, "test", tmp_path / "out", log=lines.append)
    assert not any("reusing" in line for line in lines) and len(lines) == 2


def test_errors_name_the_problem(tmp_path):
    manifest = _write_manifest(tmp_path, odd_grid="sub-02")
    with pytest.raises(TausynthError, match="sub-02.*not on the grid"):
        B.fit_baselines(load_manifest(manifest))
    with pytest.raises(TausynthError, match="unknown baseline.*'median'.*mean-image, t1-linear"):
        B.baseline_predictions(manifest, names=["median"], out=tmp_path / "o", log=None)
    with pytest.raises(TausynthError, match="no scans in split 'val'"):
        B.baseline_predictions(manifest, "val", tmp_path / "o", log=None)
    assert B.baseline_variant("mean-image") == {"run": "baseline-mean-image", "model": "mean-image",
                                                "perceptual": "n/a", "normalization": "n/a", "seed": 0}


def _with_labels(tmp_path, manifest, tau_of_t1: float):
    """Give each subject a two-region label map; region 17's PET mean follows its T1 mean."""
    df = pd.read_csv(manifest)
    rng = np.random.default_rng(1)
    for i, row in df.iterrows():
        t1, affine = load_nifti(tmp_path / row["t1"])[:2]
        labels = np.zeros(SHAPE, np.int16)
        labels[2:6, 2:10, 2:10], labels[6:10, 2:10, 2:10] = 17, 2
        t1[labels == 17] *= rng.uniform(0.6, 1.4)  # atrophy-like darkening, varying between subjects
        save_nifti(tmp_path / row["t1"], t1, affine)
        norm = normalize_t1(t1, load_nifti(tmp_path / row["mask"])[0])
        pet = np.where(labels == 17, 3.0 + tau_of_t1 * norm[labels == 17].mean(), 1.0).astype(np.float32)
        save_nifti(tmp_path / f"{row['subject_id']}/labels.nii.gz", labels, affine)
        save_nifti(tmp_path / row["pet"], pet, affine)
        df.loc[i, "labels"] = f"{row['subject_id']}/labels.nii.gz"
    df.to_csv(manifest, index=False)
    return manifest


def test_regional_regression_follows_a_regional_t1_relation(tmp_path):
    manifest = _with_labels(tmp_path, _write_manifest(tmp_path, n_train=12, n_test=6), tau_of_t1=-2.0)
    table = B.baseline_predictions(manifest, "test", tmp_path / "out", names=["regional-regression"], log=None)
    frame = load_manifest(manifest)
    predicted, real = [], []
    for (_, row), path in zip(split_frame(frame, "test").iterrows(), table["regional-regression"]["path"], strict=True):
        labels = load_nifti(row["labels"])[0] == 17
        predicted.append(load_nifti(path)[0][labels].mean())
        real.append(load_nifti(row["pet"])[0][labels].mean())
    # the T1 darkening carries the regional value: the regression tracks it (ridge shrinks it a little)
    assert np.corrcoef(predicted, real)[0, 1] > 0.95
    np.testing.assert_allclose(predicted, real, atol=0.15 * np.ptp(real))
    stamp = json.loads((tmp_path / "out" / "regional-regression" / "test" / "baseline.json").read_text())
    assert stamp["fit"]["features"] == ["t1_mean", "volume_ml", "ventricles_ml"] and stamp["fit"]["labels"] == [2, 17]


def test_regional_regression_needs_label_maps(tmp_path):
    manifest = _write_manifest(tmp_path)
    assert B.available_baselines(load_manifest(manifest)) == ["mean-image", "t1-linear"]
    with pytest.raises(TausynthError, match="sub-00.*regional-regression baseline needs a label map"):
        B.baseline_predictions(manifest, "test", tmp_path / "o", names=["regional-regression"], log=None)
