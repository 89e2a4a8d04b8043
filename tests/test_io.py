from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tausynth.errors import TausynthError
from tausynth.io import array_sha256, atomic_write_text, file_sha256, load_nifti, save_nifti


def test_save_load_round_trip_keeps_float32_and_affine(tmp_path: Path) -> None:
    data = np.random.default_rng(0).normal(size=(5, 6, 7)).astype(np.float32)
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = (-78, -112, -72)
    path = save_nifti(tmp_path / "a.nii.gz", data, affine)
    back, aff, hdr = load_nifti(path)
    assert back.dtype == np.float32 and hdr.get_data_dtype() == np.float32
    np.testing.assert_array_equal(back, data)
    np.testing.assert_array_equal(aff, affine)


def test_integer_header_does_not_quantise_output(tmp_path: Path) -> None:
    # The official inference code writes predictions with the MRI's header; an int16 header quantises.
    mri = nib.Nifti1Image(np.zeros((3, 3, 3), np.int16), np.eye(4))
    pred = np.full((3, 3, 3), 1.2345, np.float32)
    back, _, _ = load_nifti(save_nifti(tmp_path / "p.nii.gz", pred, np.eye(4), header=mri.header))
    np.testing.assert_allclose(back, 1.2345, rtol=0, atol=1e-7)


def test_corrupt_and_missing_files_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(TausynthError, match="bad.nii.gz: not a readable NIfTI"):
        load_nifti(bad)
    with pytest.raises(TausynthError, match="nope.nii.gz: file not found"):
        load_nifti(tmp_path / "nope.nii.gz")


def test_atomic_write_leaves_no_temporary_and_keeps_old_content_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "x.txt"
    atomic_write_text(target, "one")
    with pytest.raises(ZeroDivisionError):
        from tausynth.io import atomic_path

        with atomic_path(target) as tmp:
            tmp.write_text("two")
            1 / 0  # noqa: B018
    assert target.read_text() == "one"
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]


def test_hashes_are_content_hashes(tmp_path: Path) -> None:
    a = np.arange(6, dtype=np.float32)
    assert array_sha256(a) == array_sha256(a.copy())
    assert array_sha256(a) != array_sha256(a.reshape(2, 3))
    (tmp_path / "f").write_text("abc")
    assert file_sha256(tmp_path / "f") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
