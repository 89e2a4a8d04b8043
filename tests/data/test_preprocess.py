"""Tests for tausynth.data.preprocess: orientation, resampling, mask, normalization, crop/pad."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tausynth.data import preprocess as pp
from tausynth.errors import TausynthError


def _world(affine: np.ndarray, ijk) -> np.ndarray:
    return nib.affines.apply_affine(affine, ijk)


def _ball(shape, centre, radius) -> np.ndarray:
    grid = np.indices(shape).astype(float)
    return sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)) <= radius**2


def _las_affine(voxel: float, shape) -> np.ndarray:
    """A non-RAS (LAS, X flipped) affine with ``voxel`` mm voxels, centred near the origin."""
    affine = np.diag([-voxel, voxel, voxel, 1.0])
    affine[:3, 3] = [voxel * shape[0] / 2, -voxel * shape[1] / 2, -voxel * shape[2] / 2]
    return affine


def test_reorient_to_ras_keeps_world_positions() -> None:
    data = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    affine = np.array(
        [[0, 0, -2.0, 10], [2.0, 0, 0, -5], [0, -2.0, 0, 3], [0, 0, 0, 1]]
    )  # axes permuted and flipped
    img = nib.Nifti1Image(data, affine)
    ras = pp.reorient_to_ras(img)
    assert nib.aff2axcodes(ras.affine) == ("R", "A", "S")
    out = ras.get_fdata()
    for ijk in [(0, 0, 0), (3, 4, 5), (1, 2, 3)]:
        world = _world(affine, ijk)
        new_ijk = np.rint(_world(np.linalg.inv(ras.affine), world)).astype(int)
        assert out[tuple(new_ijk)] == data[ijk]


def test_to_3d_squeezes_single_frame_and_rejects_dynamic() -> None:
    img = nib.Nifti1Image(np.ones((4, 4, 4, 1), np.float32), np.eye(4))
    assert pp.to_3d(img).shape == (4, 4, 4)
    with pytest.raises(TausynthError, match="expected a 3D image, got shape \\(4, 4, 4, 3\\)"):
        pp.to_3d(nib.Nifti1Image(np.ones((4, 4, 4, 3), np.float32), np.eye(4)), name="pet.nii")


def test_resample_to_reference_reproduces_a_linear_field() -> None:
    # A PET on a coarser 2 mm grid sampling a linear function of world position; trilinear resampling
    # onto the 1 mm T1 grid must reproduce that function wherever the PET grid covers the point.
    def field(xyz):
        return 3.0 + 0.5 * xyz[..., 0] - 0.25 * xyz[..., 1] + 0.125 * xyz[..., 2]

    pet_affine = np.diag([2.0, 2.0, 2.0, 1.0])
    ijk = np.stack(np.indices((10, 10, 10)), axis=-1)
    pet = nib.Nifti1Image(field(_world(pet_affine, ijk)).astype(np.float32), pet_affine)
    t1 = nib.Nifti1Image(np.zeros((16, 16, 16), np.float32), np.eye(4))
    out = pp.resample_to_reference(pet, t1)
    assert out.shape == (16, 16, 16) and np.allclose(out.affine, t1.affine)
    expected = field(_world(t1.affine, np.stack(np.indices((16, 16, 16)), axis=-1)))
    np.testing.assert_allclose(out.get_fdata(), expected, rtol=0, atol=1e-4)
    assert pp.resample_to_reference(t1, t1) is t1
    assert pp.same_grid(t1, nib.Nifti1Image(np.zeros((16, 16, 16)), np.eye(4) + 1e-5))


def test_derive_brain_mask_fills_holes_and_drops_islands() -> None:
    shape = (24, 24, 24)
    brain = _ball(shape, (12, 12, 12), 8)
    ventricle = _ball(shape, (12, 12, 12), 3)
    island = _ball(shape, (2, 2, 2), 1.5)
    t1 = np.where(brain, 100.0, 0.0) + np.where(island, 100.0, 0.0)
    t1[ventricle] = 1.0  # dark CSF, below the threshold
    mask = pp.derive_brain_mask(t1.astype(np.float32))
    assert mask.dtype == np.uint8
    np.testing.assert_array_equal(mask.astype(bool), brain)
    with pytest.raises(TausynthError, match="no positive voxel"):
        pp.derive_brain_mask(np.zeros(shape))


def test_normalize_t1_percentile_zscore_and_idempotence() -> None:
    rng = np.random.default_rng(0)
    t1 = rng.normal(500, 80, size=(16, 16, 16)).astype(np.float32)
    mask = _ball(t1.shape, (8, 8, 8), 6)
    out = pp.normalize_t1(t1, mask)
    assert out.dtype == np.float32 and out.min() == 0 and out.max() == 1
    assert np.all(out[~mask] == 0)
    lo = np.percentile(t1[mask], 0.5, method="lower")
    hi = np.percentile(t1[mask], 99.5, method="higher")
    inside = mask & (t1 > lo) & (t1 < hi)
    np.testing.assert_allclose(out[inside], (t1[inside] - lo) / (hi - lo), rtol=1e-5)
    np.testing.assert_array_equal(pp.normalize_t1(out, mask), out)  # exactly idempotent
    # invariant to a positive affine change of scanner units
    np.testing.assert_allclose(pp.normalize_t1(3 * t1 + 40, mask), out, atol=1e-5)
    z = pp.normalize_t1(t1, mask, "zscore")
    assert abs(z[mask].mean()) < 1e-5 and abs(z[mask].std() - 1) < 1e-4 and np.all(z[~mask] == 0)
    np.testing.assert_array_equal(pp.normalize_t1(t1, mask, "none")[mask], t1[mask])
    with pytest.raises(
        TausynthError, match="invalid T1 normalization 'minmax'; allowed: percentile, zscore, none"
    ):
        pp.normalize_t1(t1, mask, "minmax")
    with pytest.raises(TausynthError, match="constant"):
        pp.normalize_t1(np.ones_like(t1), mask)


def test_bounding_box_and_divisible_box() -> None:
    mask = np.zeros((40, 40, 40), bool)
    mask[5:22, 10:20, 3:40] = True
    start, stop = pp.brain_bounding_box(mask, margin=2)
    np.testing.assert_array_equal(start, [3, 8, 1])
    np.testing.assert_array_equal(stop, [24, 22, 42])
    box_start, shape = pp.divisible_box(start, stop, 16)
    assert shape == (32, 16, 48)
    np.testing.assert_array_equal(
        box_start, [3 - 5, 8 - 1, 1 - 3]
    )  # grown symmetrically, smaller half first
    with pytest.raises(TausynthError, match="positive integer"):
        pp.divisible_box(start, stop, 0)
    with pytest.raises(TausynthError, match="empty"):
        pp.brain_bounding_box(np.zeros((4, 4, 4)))


@settings(max_examples=40, deadline=None)
@given(
    start=st.tuples(*[st.integers(-4, 6)] * 3),
    shape=st.tuples(*[st.integers(1, 10)] * 3),
)
def test_extract_box_preserves_world_positions(start, shape) -> None:
    rng = np.random.default_rng(1)
    data = rng.random((6, 7, 5)).astype(np.float32) + 1  # never 0, so fill is recognisable
    affine = np.array([[1.5, 0.1, 0, -3], [0, 2.0, 0.2, 4], [0.1, 0, 1.0, 1], [0, 0, 0, 1]])
    out, new_affine = pp.extract_box(data, affine, start, shape)
    assert out.shape == shape
    for ijk in np.ndindex(*shape):
        src = np.asarray(ijk) + np.asarray(start)
        np.testing.assert_allclose(_world(new_affine, ijk), _world(affine, src), atol=1e-9)
        inside = np.all(src >= 0) and np.all(src < data.shape)
        assert out[ijk] == (data[tuple(src)] if inside else 0.0)


def _pair(tmp_path: Path):
    """A skull-stripped LAS T1 (1 mm, 30x28x26) and a co-registered RAS PET on a 2 mm grid."""
    shape = (30, 28, 26)
    t1_affine = _las_affine(1.0, shape)
    brain = _ball(shape, (15, 13, 12), 7)
    rng = np.random.default_rng(2)
    t1 = np.where(brain, 400 + 50 * rng.random(shape), 0).astype(np.float32)
    nib.save(nib.Nifti1Image(t1, t1_affine), str(tmp_path / "t1.nii.gz"))
    pet_affine = np.diag([2.0, 2.0, 2.0, 1.0])
    pet_affine[:3, 3] = [-20, -20, -20]
    pet_ijk = np.stack(np.indices((20, 20, 20)), axis=-1)
    pet = (5 + 0.1 * _world(pet_affine, pet_ijk)[..., 2]).astype(
        np.float32
    )  # uptake grows with z (mm)
    nib.save(nib.Nifti1Image(pet, pet_affine), str(tmp_path / "pet.nii.gz"))
    labels = np.where(brain, 17, 0).astype(np.int16)
    nib.save(nib.Nifti1Image(labels, t1_affine), str(tmp_path / "aparc.nii.gz"))
    return t1_affine, brain


def test_preprocess_pair_end_to_end(tmp_path: Path) -> None:
    t1_affine, brain = _pair(tmp_path)
    out = pp.preprocess_pair(
        tmp_path / "t1.nii.gz",
        tmp_path / "pet.nii.gz",
        None,
        tmp_path / "out",
        divisible=16,
        margin=0,
        label_images={"labels": tmp_path / "aparc.nii.gz"},
    )
    assert set(out) == {"t1", "pet", "mask", "labels", "record"}
    imgs = {k: nib.load(str(out[k])) for k in ("t1", "pet", "mask", "labels")}
    shape = imgs["t1"].shape
    assert all(s % 16 == 0 for s in shape) and shape == (16, 16, 16)
    for img in imgs.values():
        assert img.shape == shape and np.allclose(img.affine, imgs["t1"].affine)
    assert nib.aff2axcodes(imgs["t1"].affine) == ("R", "A", "S")
    mask = imgs["mask"].get_fdata()
    # the derived mask is the ball, at the same world positions as in the input
    centre_in = _world(t1_affine, np.argwhere(brain).mean(axis=0))
    centre_out = _world(imgs["mask"].affine, np.argwhere(mask > 0).mean(axis=0))
    np.testing.assert_allclose(centre_out, centre_in, atol=1e-6)
    assert mask.sum() == brain.sum()
    t1 = imgs["t1"].get_fdata()
    assert t1.min() == 0 and t1.max() == 1 and np.all(t1[mask == 0] == 0)
    # the PET was resampled onto the T1 grid: uptake = 5 + 0.1 * z(mm) at every covered voxel
    z = _world(imgs["pet"].affine, np.stack(np.indices(shape), axis=-1))[..., 2]
    np.testing.assert_allclose(
        imgs["pet"].get_fdata()[mask > 0], (5 + 0.1 * z)[mask > 0], atol=1e-4
    )
    assert set(np.unique(imgs["labels"].get_fdata())) == {0.0, 17.0}
    np.testing.assert_array_equal(imgs["labels"].get_fdata() > 0, mask > 0)
    record = json.loads(out["record"].read_text())
    assert record["input_orientation"] == "LAS" and record["pet_resampled_to_t1"] is True
    assert (
        record["output_shape"] == [16, 16, 16] and record["pet_assumed_coregistered_to_t1"] is True
    )

    with pytest.raises(TausynthError, match="outputs exist"):
        pp.preprocess_pair(tmp_path / "t1.nii.gz", tmp_path / "pet.nii.gz", None, tmp_path / "out")
    # a given mask is used as is; divisible=32 for SwinUNETR
    nib.save(nib.Nifti1Image(brain.astype(np.uint8), t1_affine), str(tmp_path / "mask.nii.gz"))
    out32 = pp.preprocess_pair(
        tmp_path / "t1.nii.gz",
        tmp_path / "pet.nii.gz",
        tmp_path / "mask.nii.gz",
        tmp_path / "out",
        32,
        overwrite=True,
    )
    assert nib.load(str(out32["t1"])).shape == (32, 32, 32)
    assert json.loads(out32["record"].read_text())["mask"] == str(tmp_path / "mask.nii.gz")


def test_preprocess_pair_errors_name_the_file(tmp_path: Path) -> None:
    _pair(tmp_path)
    bad = np.ones((30, 28, 26), np.float32)
    bad[1, 1, 1] = np.nan
    nib.save(nib.Nifti1Image(bad, np.eye(4)), str(tmp_path / "nan.nii.gz"))
    with pytest.raises(TausynthError, match="nan.nii.gz: the PET contains NaN"):
        pp.preprocess_pair(tmp_path / "t1.nii.gz", tmp_path / "nan.nii.gz", None, tmp_path / "o1")
    with pytest.raises(TausynthError, match="missing.nii.gz: file not found"):
        pp.preprocess_pair(
            tmp_path / "missing.nii.gz", tmp_path / "pet.nii.gz", None, tmp_path / "o2"
        )
    data = (tmp_path / "t1.nii.gz").read_bytes()
    (tmp_path / "cut.nii.gz").write_bytes(data[: len(data) // 3])
    with pytest.raises(TausynthError, match="cut.nii.gz: not a readable NIfTI"):
        pp.preprocess_pair(tmp_path / "cut.nii.gz", tmp_path / "pet.nii.gz", None, tmp_path / "o3")
    with pytest.raises(TausynthError, match="invalid T1 normalization 'robust'"):
        pp.preprocess_pair(
            tmp_path / "t1.nii.gz",
            tmp_path / "pet.nii.gz",
            None,
            tmp_path / "o4",
            t1_normalization="robust",
        )
