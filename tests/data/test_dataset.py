"""Tests for tausynth.data.dataset: samples, padding, PET hook, augmentation, caching, loaders."""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.transforms import DivisiblePad

from tausynth.data.dataset import (
    AugmentationConfig,
    build_dataset,
    build_loader,
    build_transforms,
    crop_to_original,
)
from tausynth.data.manifest import load_manifest
from tausynth.data.preprocess import normalize_t1
from tausynth.errors import TausynthError

SHAPE = (9, 10, 11)
HEADER = [
    "subject_id",
    "session",
    "t1",
    "pet",
    "manufacturer",
    "diagnosis",
    "split",
    "labels",
    "mask",
]
NO_AUG = {"elastic": False, "affine": False, "flip": False, "noise": False}


def _ball(shape, centre, radius) -> np.ndarray:
    grid = np.indices(shape).astype(float)
    return sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)) <= radius**2


def _save(path: Path, data: np.ndarray) -> str:
    nib.save(nib.Nifti1Image(np.asarray(data), np.eye(4)), str(path))
    return str(path)


@pytest.fixture
def cohort(tmp_path: Path):
    """Three train subjects (two makers, one without a mask) and one val subject, 9x10x11 voxels."""
    rng = np.random.default_rng(0)
    brain = _ball(SHAPE, (4, 5, 5), 4)
    rows = []
    for i, (maker, split) in enumerate(
        [("Siemens", "train"), ("GE", "train"), ("Siemens", "train"), ("Philips", "val")]
    ):
        sid = f"sub-{i}"
        t1 = np.where(brain, 300 + 100 * rng.random(SHAPE), 0).astype(np.float32)
        pet = np.where(brain, 1 + rng.random(SHAPE), 0.1).astype(np.float32)
        rows.append(
            dict(
                subject_id=sid,
                session="",
                manufacturer=maker,
                diagnosis="CN",
                split=split,
                t1=_save(tmp_path / f"{sid}_t1.nii.gz", t1),
                pet=_save(tmp_path / f"{sid}_pet.nii.gz", pet),
                labels=_save(
                    tmp_path / f"{sid}_labels.nii.gz", np.where(brain, 1006, 0).astype(np.int16)
                ),
                mask=""
                if i == 2
                else _save(tmp_path / f"{sid}_mask.nii.gz", brain.astype(np.uint8)),
            )
        )
    path = tmp_path / "manifest.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=HEADER)
        writer.writeheader()
        writer.writerows(rows)
    return load_manifest(path), rows, brain


def _arr(path: str) -> np.ndarray:
    return nib.load(path).get_fdata(dtype=np.float32)


def test_sample_contents_padding_and_crop_back(cohort) -> None:
    df, rows, brain = cohort
    ds = build_dataset(df, "train", augment=False)
    assert len(ds) == 3
    s = ds[0]
    for key in ("t1", "pet", "mask", "labels"):
        assert type(s[key]) is torch.Tensor and s[key].shape == (1, 16, 16, 16), key
    assert s["labels"].dtype == torch.int64 and s["t1"].dtype == torch.float32
    assert s["subject_id"] == "sub-0" and s["manufacturer"] == "Siemens" and s["split"] == "train"
    assert s["original_shape"].tolist() == list(SHAPE)
    np.testing.assert_allclose(s["affine"].numpy(), np.eye(4))
    # crop_to_original undoes the padding exactly and mirrors MONAI's symmetric DivisiblePad
    t1_ref = normalize_t1(_arr(rows[0]["t1"]), brain)
    np.testing.assert_allclose(
        crop_to_original(s["t1"], s["original_shape"])[0].numpy(), t1_ref, atol=1e-6
    )
    np.testing.assert_array_equal(
        crop_to_original(s["pet"], SHAPE)[0].numpy(), _arr(rows[0]["pet"])
    )
    np.testing.assert_array_equal(crop_to_original(s["mask"], SHAPE)[0].numpy(), brain)
    padded = DivisiblePad(k=16, method="symmetric")(torch.from_numpy(t1_ref)[None])
    np.testing.assert_allclose(s["t1"].numpy(), np.asarray(padded), atol=1e-6)
    assert float(s["t1"].sum()) == pytest.approx(float(t1_ref.sum()), rel=1e-5)  # padding is zeros
    # a subject without a mask gets one derived from its (skull-stripped) T1
    np.testing.assert_array_equal(crop_to_original(ds[2]["mask"], SHAPE)[0].numpy(), brain)
    # SwinUNETR's divisor
    assert build_dataset(df, "val", augment=False, spatial_divisor=32)[0]["t1"].shape == (
        1,
        32,
        32,
        32,
    )


def test_orientation_is_ras(tmp_path: Path, cohort) -> None:
    df, rows, brain = cohort
    flipped = np.diag([-1.0, 1, 1, 1])
    flipped[0, 3] = SHAPE[0] - 1  # same world grid as the identity, stored with X reversed
    for key in ("t1", "pet", "mask", "labels"):
        img = nib.load(rows[0][key])
        nib.save(
            nib.Nifti1Image(np.asarray(img.dataobj)[::-1], flipped),
            str(tmp_path / f"las_{key}.nii.gz"),
        )
        df.loc[0, key] = str(tmp_path / f"las_{key}.nii.gz")
    s = build_dataset(df, "train", augment=False)[0]
    np.testing.assert_array_equal(
        crop_to_original(s["pet"], SHAPE)[0].numpy(), _arr(rows[0]["pet"])
    )
    np.testing.assert_allclose(s["affine"].numpy(), np.eye(4), atol=1e-6)


def test_pet_transform_hook_per_manufacturer_and_never_cached(cohort) -> None:
    df, rows, _ = cohort
    factor = {"Siemens": 2.0, "GE": 3.0}
    seen: list[str] = []

    def standardize(pet: np.ndarray, manufacturer: str) -> np.ndarray:
        assert pet.ndim == 3 and pet.dtype == np.float32
        seen.append(manufacturer)
        return pet * factor[manufacturer] - 1.0

    ds = build_dataset(df, "train", augment=False, cache="memory", pet_transform=standardize)
    for i, maker in enumerate(["Siemens", "GE"]):
        got = crop_to_original(ds[i]["pet"], SHAPE)[0].numpy()
        np.testing.assert_allclose(got, _arr(rows[i]["pet"]) * factor[maker] - 1.0, rtol=1e-6)
    assert ds[0]["pet"][0, 0, 0, 0] == -1.0  # padding (0) is transformed like background
    factor["Siemens"] = (
        5.0  # e.g. a re-fitted standardizer: the memory cache must not hold its output
    )
    np.testing.assert_allclose(
        crop_to_original(ds[0]["pet"], SHAPE)[0].numpy(),
        _arr(rows[0]["pet"]) * 5.0 - 1.0,
        rtol=1e-6,
    )
    assert seen == ["Siemens", "GE", "Siemens", "Siemens"]
    with pytest.raises(TausynthError, match="pet_transform returned shape"):
        build_dataset(df, "train", augment=False, pet_transform=lambda a, m: a[:2])[0]


def _same_input_pair(tmp_path: Path, cohort):
    """A manifest whose PET is the T1 file itself, so any spatial transform must keep them equal."""
    df, rows, _ = cohort
    df = df.copy()
    df["pet"] = df["t1"]
    return df


def test_spatial_augmentation_is_one_draw_for_all_images(tmp_path: Path, cohort) -> None:
    df = _same_input_pair(tmp_path, cohort)
    aug = {"noise": False, "elastic_prob": 1.0, "affine_prob": 1.0, "flip_prob": 1.0}
    ds = build_dataset(df, "train", augment=True, augmentation=aug, t1_normalization="none", seed=3)
    plain = build_dataset(df, "train", augment=False, t1_normalization="none")[0]
    s = ds[0]
    assert not torch.equal(s["t1"], plain["t1"])  # it did move
    torch.testing.assert_close(s["t1"], s["pet"], rtol=0, atol=0)
    assert set(torch.unique(s["mask"]).tolist()) <= {0.0, 1.0}  # nearest neighbour for masks
    assert set(torch.unique(s["labels"]).tolist()) <= {0, 1006}
    # the mask moved with the image: image voxels inside the augmented mask are mostly brain
    inside = s["t1"][s["mask"] > 0]
    assert (inside > 0).float().mean() > 0.9


def test_flip_flips_all_three_axes_together(cohort) -> None:
    df, _, _ = cohort
    only_flip = {**NO_AUG, "flip": True, "flip_prob": 1.0}
    s = build_dataset(df, "train", augment=True, augmentation=only_flip, seed=0)[0]
    plain = build_dataset(df, "train", augment=False)[0]
    for key in ("t1", "pet", "mask", "labels"):
        torch.testing.assert_close(s[key], torch.flip(plain[key], dims=(1, 2, 3)), rtol=0, atol=0)


def test_noise_is_added_to_the_mri_only(cohort) -> None:
    df, _, _ = cohort
    only_noise = {**NO_AUG, "noise": True, "noise_sample_std": False}
    s = build_dataset(df, "train", augment=True, augmentation=only_noise, seed=0)[0]
    plain = build_dataset(df, "train", augment=False)[0]
    torch.testing.assert_close(s["pet"], plain["pet"], rtol=0, atol=0)
    torch.testing.assert_close(s["mask"], plain["mask"], rtol=0, atol=0)
    noise = (s["t1"] - plain["t1"]).flatten()
    assert abs(float(noise.std()) - 0.1) < 0.01 and abs(float(noise.mean())) < 0.01


def test_augmentation_is_seedable(cohort) -> None:
    df, _, _ = cohort

    def draw(seed: int) -> torch.Tensor:
        ds = build_dataset(df, "train", augment=True, seed=seed)
        return torch.cat([ds[i]["t1"] for i in range(3)] + [ds[0]["pet"]])

    a, b, c = draw(7), draw(7), draw(8)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, c)


def _background_minus_three(pet: np.ndarray, manufacturer: str) -> np.ndarray:
    """A stand-in for standardized PET: the background (and the zero padding) sits at about -3."""
    return pet - 3.0


@pytest.mark.parametrize(
    ("augmentation", "padding_mode", "zero_voxels"),
    [
        ({}, "zeros", True),  # the default: the official code's zero padding
        ({"padding_mode": "zeros"}, "zeros", True),
        ({"padding_mode": "border"}, "border", False),
        ({"padding_mode": "reflection"}, "reflection", False),
    ],
)
def test_spatial_augmentation_padding(cohort, augmentation: dict, padding_mode: str, zero_voxels: bool) -> None:
    df, _, _ = cohort
    rotate = {**NO_AUG, "affine": True, "affine_prob": 1.0, "rotate_range": math.pi / 4, **augmentation}
    pipeline = build_transforms(augment=True, augmentation=rotate)
    modes = {type(t).__name__: t.padding_mode for t in pipeline.transforms if hasattr(t, "padding_mode")}
    assert modes == {"RandAffined": (padding_mode,) * 3}
    s = build_dataset(df, "train", augment=True, augmentation=rotate, pet_transform=_background_minus_three, seed=0)[0]
    assert bool((s["pet"][s["pet"] != 0] < 0).all())  # every PET voxel of the input is below zero
    # voxels rotated in from outside the volume: exactly 0 with zero padding, else about -3
    assert bool((s["pet"] == 0).any()) is zero_voxels


def test_augmentation_config_validation() -> None:
    cfg = AugmentationConfig()
    assert (cfg.elastic_prob, cfg.elastic_sigma, cfg.elastic_magnitude) == (
        0.5,
        (4.0, 7.0),
        (50.0, 100.0),
    )
    assert (cfg.affine_prob, cfg.rotate_range, cfg.scale_range) == (0.5, math.pi / 12, 0.1)
    assert (cfg.flip_prob, cfg.noise_prob, cfg.noise_std) == (0.5, 1.0, 0.1)
    assert cfg.padding_mode == "zeros"  # the official code
    assert AugmentationConfig.from_mapping({"elastic_sigma": [3, 5]}).elastic_sigma == (3.0, 5.0)
    with pytest.raises(TausynthError, match=r"unknown augmentation option\(s\) \['elastc'\]"):
        AugmentationConfig.from_mapping({"elastc": True})
    with pytest.raises(TausynthError, match="flip_prob must be in \\[0, 1\\]"):
        AugmentationConfig(flip_prob=1.5)
    with pytest.raises(TausynthError, match="invalid augmentation padding_mode 'wrap'"):
        AugmentationConfig(padding_mode="wrap")
    names = [type(t).__name__ for t in build_transforms(augment=True).transforms]
    assert names[-5:] == [
        "Rand3DElasticd",
        "RandAffined",
        "RandFlipd",
        "RandGaussianNoised",
        "ToPlainTensord",
    ]
    assert "Rand3DElasticd" not in [
        type(t).__name__
        for t in build_transforms(augment=True, augmentation={"elastic": False}).transforms
    ]
    assert not any(
        n.startswith("Rand")
        for n in [type(t).__name__ for t in build_transforms(augment=False).transforms]
    )


def test_disk_cache_hits_misses_and_safe_loading(tmp_path: Path, cohort) -> None:
    df, rows, _ = cohort
    cache = tmp_path / "cache"
    first = build_dataset(df, "val", augment=False, cache="disk", cache_dir=cache)[0]
    files = sorted(cache.glob("*.pt"))
    assert len(files) == 1
    cached = torch.load(files[0], weights_only=True)
    assert cached["subject_id"] == "sub-3"
    again = build_dataset(df, "val", augment=False, cache="disk", cache_dir=cache)[0]
    torch.testing.assert_close(first["t1"], again["t1"])
    assert sorted(cache.glob("*.pt")) == files  # a hit: no new entry
    # a changed pipeline setting or an edited image is a new key, never a stale hit
    build_dataset(df, "val", augment=False, cache="disk", cache_dir=cache, spatial_divisor=32)[0]
    assert len(list(cache.glob("*.pt"))) == 2
    new = np.full(SHAPE, 7.0, np.float32)
    _save(Path(rows[3]["pet"]), new)
    st = os.stat(rows[3]["pet"])
    os.utime(rows[3]["pet"], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    edited = build_dataset(df, "val", augment=False, cache="disk", cache_dir=cache)[0]
    np.testing.assert_array_equal(crop_to_original(edited["pet"], SHAPE)[0].numpy(), new)
    assert len(list(cache.glob("*.pt"))) == 3


def test_dataset_option_errors(cohort) -> None:
    df, _, _ = cohort
    with pytest.raises(TausynthError, match="invalid cache 'ram'; allowed: none, memory, disk"):
        build_dataset(df, "train", augment=False, cache="ram")
    with pytest.raises(TausynthError, match="needs a cache_dir"):
        build_dataset(df, "train", augment=False, cache="disk")
    with pytest.raises(TausynthError, match="no scans in split 'test'"):
        build_dataset(df, "test", augment=False)
    with pytest.raises(TausynthError, match="spatial_divisor must be a positive integer"):
        build_dataset(df, "train", augment=False, spatial_divisor=0)
    df.loc[1, "labels"] = ""
    assert "labels" not in build_dataset(df, "train", augment=False)[0]  # not every row has labels
    with pytest.raises(TausynthError, match="have no labels in split 'train': sub-1"):
        build_dataset(df, "train", augment=False, include_labels=True)


def test_grid_mismatch_names_the_subject(tmp_path: Path, cohort) -> None:
    df, _, _ = cohort
    df.loc[0, "pet"] = _save(tmp_path / "small.nii.gz", np.ones((8, 8, 8), np.float32))
    with pytest.raises(TausynthError, match="subject sub-0: images are on different grids"):
        build_dataset(df, "train", augment=False)[0]


def test_loader_batches_and_reproducible_shuffle(cohort) -> None:
    df, _, _ = cohort

    def order(seed: int) -> list[str]:
        loader = build_loader(df, "train", batch_size=1, shuffle=True, seed=seed, augment=True)
        return [b["subject_id"][0] for b in loader] + [str(float(b["t1"].sum())) for b in loader]

    assert order(1) == order(1)
    loader = build_loader(build_dataset(df, "train", augment=False), batch_size=3)
    batch = next(iter(loader))
    assert batch["t1"].shape == (3, 1, 16, 16, 16) and batch["original_shape"].shape == (3, 3)
    assert batch["manufacturer"] == ["Siemens", "GE", "Siemens"]
    assert crop_to_original(batch["pet"], batch["original_shape"][0]).shape == (3, 1, *SHAPE)
    with pytest.raises(TausynthError, match="needs a split"):
        build_loader(df)
