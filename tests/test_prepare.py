"""``tausynth prepare`` against known truth: raw-like scans made from the synthetic cohort (issue #17).

One run of the command prepares four scans at once (``--jobs 2``): two good ones (one as NIfTI files,
one as DICOM series, as ADNI's raw downloads are; each PET has 4 frames, is displaced by a known
rigid motion and is on its own grid), one whose PET
misses the lower cerebellum (the reference region) and one whose T1 is not an image. The T1s are at
2 mm to keep the run short; the 1 mm case is the slow test at the end.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from tausynth.cli import main
from tausynth.data import atlas
from tausynth.data.manifest import validate_manifest
from tausynth.data.synthetic import GRID4_AFFINE, sample_cohort
from tausynth.errors import TausynthError, ValidationErrors
from tausynth.prepare.convert import load_scan
from tausynth.prepare.frames import average_frames
from tausynth.prepare.pipeline import is_finished, output_grid, rigid_part
from tausynth.prepare.raw import read_raw
from tausynth.prepare.rawlike import (
    rigid_matrix,
    score_prepared,
    write_dicom_series,
    write_rawlike_subject,
)

GOOD = ("sub-0000", "sub-0001")


def _raw_cohort(root: Path, t1_voxel_mm: float = 2.0, n: int = 2) -> tuple[Path, list[dict]]:
    cohort = sample_cohort(6, 0)
    motions = [((4.0, -3.0, 6.0), (7.0, -5.0, 10.0)), ((-5.0, 3.0, -4.0), (-6.0, 8.0, -9.0))]
    rows = []
    for i in range(n):
        row = cohort.iloc[i]
        paths, _ = write_rawlike_subject(root / row.subject_id, row, i, 0, rotation_deg=motions[i][0],
                                         translation_mm=motions[i][1], t1_voxel_mm=t1_voxel_mm, dicom=i == 1,
                                         pet_dicom=i == 1)
        rows.append({"subject_id": row.subject_id, "t1": Path(paths["t1"]).relative_to(root).as_posix(),
                     "pet": Path(paths["pet"]).relative_to(root).as_posix(), "manufacturer": row.manufacturer,
                     "diagnosis": row.diagnosis, "split": row.split, "age": row.age, "sex": row.sex})
    return root, rows


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("raw")
    root, rows = _raw_cohort(root)
    cohort = sample_cohort(6, 0)
    # The same phantom as sub-0000, its PET moved 34 mm down: the PET's field of view loses the lower cerebellum.
    cut = cohort.iloc[2]
    paths, _ = write_rawlike_subject(root / cut.subject_id, cut, 2, 0, translation_mm=(0.0, 0.0, -34.0),
                                     t1_voxel_mm=2.0)
    rows.append({**rows[0], "subject_id": cut.subject_id, "t1": f"{cut.subject_id}/t1.nii.gz",
                 "pet": f"{cut.subject_id}/pet.nii.gz"})
    (root / "broken").mkdir()
    (root / "broken" / "t1.nii.gz").write_bytes(b"not an image")
    shutil.copy(paths["pet"], root / "broken" / "pet.nii.gz")  # a scan's files are its own (the manifest checks)
    rows.append({**rows[0], "subject_id": "sub-broken", "t1": "broken/t1.nii.gz", "pet": "broken/pet.nii.gz"})
    pd.DataFrame(rows).to_csv(root / "RAW.csv", index=False)
    out = root.parent / "prepared"
    start = time.perf_counter()
    with contextlib.redirect_stderr(io.StringIO()) as err:
        status = main(["prepare", "--raw", str(root / "RAW.csv"), "--out", str(out), "--jobs", "2", "--quiet"])
    return {"raw": root, "out": out, "status": status, "seconds": time.perf_counter() - start,
            "stderr": err.getvalue()}


def test_good_scans_match_the_truth(prepared: dict) -> None:
    for subject in GOOD:
        score = score_prepared(prepared["out"] / subject, prepared["raw"] / subject)
        assert score["registration_error_mm"] <= 1.5, (subject, score)
        assert score["mask_dice"] >= 0.9, (subject, score)
        assert score["metatemporal_error_pct"] <= 5.0, (subject, score)
        # with the phantom's own regions, only the registration, frame averaging and resampling are left
        assert score["phantom_regions_error_pct"] <= 3.0, (subject, score)


def test_the_manifest_names_the_good_scans_and_validates(prepared: dict) -> None:
    manifest = prepared["out"] / "manifest.csv"
    assert validate_manifest(manifest).startswith("2 scans, 2 subjects")
    df = pd.read_csv(manifest, keep_default_na=False)
    assert df["subject_id"].tolist() == list(GOOD)
    assert (df[["labels", "mask", "refmask"]] != "").all().all()
    assert df["sex"].tolist() == sample_cohort(6, 0)["sex"].iloc[:2].tolist()  # identity columns carried over


def test_failed_scans_get_one_line_each_and_a_non_zero_exit(prepared: dict) -> None:
    assert prepared["status"] == 1
    for subject in ("sub-0002", "sub-broken"):
        assert not (prepared["out"] / subject / "provenance.json").exists()
        assert (prepared["out"] / "logs" / f"{subject}.log").is_file()
    lines = prepared["stderr"].splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("tausynth prepare: error: subject sub-0002: step suvr: the PET's field of view covers")
    assert lines[1].startswith("tausynth prepare: error: subject sub-broken: step convert: ")
    assert "broken/t1.nii.gz: not a readable NIfTI image" in lines[1]
    html = (prepared["out"] / "qc" / "index.html").read_text()
    assert "step suvr: the PET&#x27;s field of view covers" in html and "step convert: " in html
    assert html.count("<img ") == 2 and all((prepared["out"] / "qc" / f"{s}.png").is_file() for s in GOOD)
    assert not list(prepared["out"].rglob(".*.tmp")) and not (prepared["out"] / ".work").exists()


def test_a_rerun_skips_finished_scans(prepared: dict, capsys: pytest.CaptureFixture) -> None:
    good = prepared["raw"] / "good.csv"
    raw = pd.read_csv(prepared["raw"] / "RAW.csv")
    raw[raw["subject_id"].isin(GOOD)].to_csv(good, index=False)
    before = {p: p.stat().st_mtime_ns for p in prepared["out"].glob("sub-000[01]/*.nii.gz")}
    capsys.readouterr()
    assert main(["prepare", "--raw", str(good), "--out", str(prepared["out"]), "--quiet"]) == 0
    assert "0 prepared, 2 already done, 0 failed" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in before} == before
    # a new PET for a scan makes it unfinished (its files' times are part of its key)
    scan = next(s for s in read_raw(good) if s.subject_id == "sub-0000")
    assert is_finished(scan, prepared["out"], 2) and not is_finished(scan, prepared["out"], 4)
    os.utime(scan.pet, ns=(time.time_ns(), time.time_ns()))
    assert not is_finished(scan, prepared["out"], 2)


def test_provenance_records_the_library_and_versions(prepared: dict) -> None:
    prov = json.loads((prepared["out"] / "sub-0001" / "provenance.json").read_text())
    assert prov["registration_library"] == "SimpleITK"
    assert set(prov["versions"]) >= {"SimpleITK", "ITK", "dcm2niix", "tausynth"}
    assert prov["resolution_mm"] == 2 and len(prov["frame_motions_ras"]) == 4
    # every step but "write", which ends by writing this file
    assert list(prov["step_seconds"]) == ["convert", "frames", "bias", "mask", "labels", "pet_to_t1", "suvr", "resample"]


def test_every_scan_is_on_the_book_grid(prepared: dict) -> None:
    # one grid for all scans: the book's mean-image baseline averages them voxel by voxel
    for subject in GOOD:
        images = {k: nib.load(prepared["out"] / subject / f"{k}.nii.gz") for k in ("t1", "pet", "labels", "mask")}
        assert {img.shape for img in images.values()} == {(80, 96, 80)}
        assert all(np.allclose(img.affine, atlas.GRID_AFFINE) for img in images.values())
        assert np.asarray(images["labels"].dataobj).dtype == np.int16


def test_rigid_part_keeps_rotation_and_drops_scale() -> None:
    rotation = rigid_matrix((10.0, -4.0, 3.0), (2.0, 3.0, -1.0), centre=(0.0, 0.0, 0.0))
    affine = rotation @ np.diag([1.08, 0.95, 1.02, 1.0])
    centre = np.array([0.0, -18.0, 10.0])
    rigid = rigid_part(affine, centre)
    assert np.allclose(rigid[:3, :3], rotation[:3, :3], atol=1e-6)
    assert np.allclose(rigid @ [*centre, 1.0], affine @ [*centre, 1.0])


def test_raw_table_problems_are_reported_together(tmp_path: Path) -> None:
    (tmp_path / "t1.nii.gz").write_bytes(b"x")
    pd.DataFrame([{"subject_id": "a", "t1": "t1.nii.gz", "pet": "missing.nii.gz", "manufacturer": "GE",
                   "diagnosis": "CN", "split": "train", "mask": "m.nii.gz"}]).to_csv(tmp_path / "RAW.csv", index=False)
    with pytest.raises(ValidationErrors) as err:
        read_raw(tmp_path / "RAW.csv")
    text = "\n".join(err.value.problems)
    assert "column 'mask' is made by prepare" in text and "subject a, column pet" in text and "missing.nii.gz" in text


def test_a_dicom_series_converts_to_the_same_world(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    affine = np.array([[-2.0, 0, 0, 40.0], [0, -2.0, 0, 30.0], [0, 0, 2.5, -20.0], [0, 0, 0, 1]])  # stored LPS
    img = nib.Nifti1Image(rng.uniform(0, 500, (20, 24, 12)).astype(np.float32), affine)
    converted = load_scan(write_dicom_series(tmp_path / "dicom", img), tmp_path / "work")
    original = nib.as_closest_canonical(img)
    assert converted.shape == original.shape
    assert np.allclose(converted.affine, original.affine, atol=1e-3)
    assert np.allclose(converted.get_fdata(), original.get_fdata(), atol=0.05)


def test_dynamic_pet_dicom_converts_to_its_frames_in_the_same_world(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    affine = np.array([[2.5, 0, 0, -40.0], [0, 2.5, 0, -30.0], [0, 0, 3.0, -20.0], [0, 0, 0, 1]])
    frames = rng.uniform(0, 9000, (16, 18, 10, 4)).astype(np.float32)
    frames[..., 2] *= 3.0  # one slope per slice and frame: each frame keeps its own scale
    img = nib.Nifti1Image(frames, affine)
    folder = write_dicom_series(tmp_path / "pet", img)
    assert len(list(folder.glob("*.dcm"))) == 10 * 4
    converted = load_scan(folder, tmp_path / "work")
    assert converted.shape == (16, 18, 10, 4)
    assert np.allclose(converted.affine, affine, atol=1e-3)
    assert np.allclose(converted.get_fdata(), frames, atol=1.0)  # int16 with a per-slice slope


def test_a_folder_without_dicom_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(TausynthError, match="dcm2niix found no convertible DICOM series"):
        load_scan(tmp_path, tmp_path / "work")


def test_rigid_matrix_is_a_rotation_about_its_centre() -> None:
    m = rigid_matrix((10.0, -5.0, 7.0), (0.0, 0.0, 0.0), centre=(1.0, 2.0, 3.0))
    assert np.allclose(m @ [1.0, 2.0, 3.0, 1.0], [1.0, 2.0, 3.0, 1.0])
    assert np.allclose(m[:3, :3] @ m[:3, :3].T, np.eye(3))


@pytest.mark.slow
def test_one_millimetre_t1_against_the_truth(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root, rows = _raw_cohort(tmp_path / "raw", t1_voxel_mm=1.0, n=1)
    pd.DataFrame(rows).to_csv(root / "RAW.csv", index=False)
    start = time.perf_counter()
    assert main(["prepare", "--raw", str(root / "RAW.csv"), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    seconds = time.perf_counter() - start
    score = score_prepared(tmp_path / "out" / "sub-0000", root / "sub-0000")
    with capsys.disabled():
        print(f"\n1 mm T1: {seconds:.0f} s for one scan; {score}")
    assert score["registration_error_mm"] <= 1.5 and score["mask_dice"] >= 0.9
    assert score["metatemporal_error_pct"] <= 5.0


def test_frames_are_aligned_to_their_mean_before_averaging() -> None:
    # a blob moved by known shifts: each frame's recovered motion is its shift relative to the mean position
    grid = np.indices((40, 40, 32)).astype(np.float32)
    shifts = [(-2.0, 0.0, 0.0), (2.0, 0.0, 0.0), (0.0, -2.0, 0.0), (0.0, 2.0, 0.0)]  # mm; their mean is 0
    centre = np.array([20.0, 20.0, 16.0])
    frames = [np.exp(-(((grid - (centre + np.array(s) / 3.0)[:, None, None, None]) ** 2).sum(0)) / 30.0)
              + 0.5 * np.exp(-(((grid - (centre + 5 + np.array(s) / 3.0)[:, None, None, None]) ** 2).sum(0)) / 8.0)
              for s in shifts]
    pet = nib.Nifti1Image(np.stack(frames, axis=-1).astype(np.float32), np.diag([3.0, 3.0, 3.0, 1.0]))
    mean, motions = average_frames(pet)
    blob = np.array([*(centre * 3.0), 1.0])  # world mm; the displacement there, not at the far-away origin
    recovered = [(m @ blob - blob)[:3] for m in motions]
    assert mean.shape == (40, 40, 32) and len(motions) == 4
    assert np.allclose(recovered, shifts, atol=0.5), np.round(recovered, 2)


def test_a_registration_gives_the_same_result_every_time() -> None:
    # SimpleITK's sampling seed 0 means "the wall clock"; prepare must give the same scan the same output
    import SimpleITK as sitk

    from tausynth.prepare import register

    grid = np.indices((32, 32, 24)).astype(np.float32)
    blob = np.exp(-(((grid - np.array([15.0, 16.0, 12.0])[:, None, None, None]) ** 2) * [[[[1.0]]], [[[0.5]]], [[[0.8]]]]).sum(0) / 40.0)
    fixed = register.to_sitk(nib.Nifti1Image(blob, np.diag([3.0, 3.0, 3.0, 1.0])))
    moving = register.to_sitk(nib.Nifti1Image(np.roll(blob, (2, -1, 1), axis=(0, 1, 2)), np.diag([3.0, 3.0, 3.0, 1.0])))
    runs = [register.rigid(fixed, moving, levels_mm=(6.0, 3.0), sampling=0.1, seed=0).transform.GetParameters()
            for _ in range(2)]
    assert np.allclose(runs[0], runs[1], rtol=0, atol=1e-9)  # summation order across threads: 1e-17
    assert sitk.Euler3DTransform().GetParameters() != runs[0]  # it did move


def test_output_grids_are_the_cohorts() -> None:
    assert np.allclose(output_grid(2).affine, atlas.GRID_AFFINE) and output_grid(2).shape == (80, 96, 80)
    assert np.allclose(output_grid(4).affine, GRID4_AFFINE) and output_grid(4).shape == (40, 48, 40)


def test_prepare_without_its_extra_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "SimpleITK" else real(name, *a))
    assert main(["prepare", "--raw", str(tmp_path / "RAW.csv"), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip() == ("tausynth prepare: error: prepare needs SimpleITK; install them with: "
                                               "pip install 'tausynth[prepare]'")
