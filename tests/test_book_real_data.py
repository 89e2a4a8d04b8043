"""The book on a manifest that is not the synthetic cohort's (what a user with ADNI data has).

The images start as raw-like scans (a 4-frame PET displaced on its own grid, a T1 with skull and
scalp stored LPS; one subject as DICOM series) and go through ``tausynth prepare``, as a user's raw
downloads would. The prepared scans are then copied to another folder under other names and described
by a manifest with absolute paths, the manufacturers as DICOM writes them, no ground-truth columns, no
amyloid column and no ``subjects.csv``. Every chapter must run, render, and say what it cannot show.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tausynth import book

REPO = Path(__file__).resolve().parents[1]
DICOM_MAKERS = {"Siemens": "SIEMENS", "GE": "GE MEDICAL SYSTEMS", "Philips": "Philips Medical Systems"}


def prepared_cohort(work: Path, n: int = 8) -> Path:
    """Raw-like scans of ``n`` phantom subjects through ``tausynth prepare`` (4 mm grid); the prepared folder."""
    from tausynth.data.synthetic import sample_cohort
    from tausynth.prepare.rawlike import write_rawlike_subject

    cohort, rows = sample_cohort(n, 3), []
    for i, subject in cohort.iterrows():
        rng = np.random.default_rng(i)
        paths, _ = write_rawlike_subject(work / "raw" / subject.subject_id, subject, i, 3, t1_voxel_mm=2.0,
                                         rotation_deg=tuple(rng.uniform(-6, 6, 3)),
                                         translation_mm=tuple(rng.uniform(-10, 10, 3)), dicom=i == 0, pet_dicom=i == 0)
        rows.append({"subject_id": subject.subject_id, "t1": paths["t1"], "pet": paths["pet"],
                     "manufacturer": subject.manufacturer, "diagnosis": subject.diagnosis, "split": subject.split,
                     "age": subject.age, "sex": subject.sex})
    pd.DataFrame(rows).to_csv(work / "RAW.csv", index=False)
    prepare = subprocess.run([sys.executable, "-m", "tausynth", "prepare", "--raw", str(work / "RAW.csv"),
                              "--out", str(work / "prepared"), "--resolution", "4", "--jobs", "2", "--quiet"],
                             capture_output=True, text=True)
    assert prepare.returncode == 0, prepare.stderr[-3000:]
    shutil.rmtree(work / "raw")
    return work / "prepared"


def real_like_manifest(cohort: Path, out: Path) -> Path:
    """Copy the images a manifest names to ``out`` and describe them as a real-data manifest would."""
    scans = pd.read_csv(cohort / "manifest.csv")
    rows = []
    for _, scan in scans.iterrows():
        folder = out / "images" / f"{scan['subject_id']}_visit"
        folder.mkdir(parents=True)
        row = {"subject_id": scan["subject_id"], "manufacturer": DICOM_MAKERS.get(scan["manufacturer"], scan["manufacturer"]),
               "diagnosis": scan["diagnosis"].lower(), "split": scan["split"], "age": scan.get("age"),
               "sex": scan.get("sex")}
        for column, name in (("t1", "T1w_brain"), ("pet", "AV1451_suvr"), ("labels", "aparc+aseg"),
                             ("mask", "brainmask"), ("refmask", "infcereb_gm")):
            target = folder / f"{name}.nii.gz"
            shutil.copy2(cohort / scan[column], target)
            row[column] = str(target.resolve())
        rows.append(row)
    manifest = out / "adni_like.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return manifest


@pytest.fixture(scope="module")
def real_book(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, subprocess.CompletedProcess[str]]:
    work = tmp_path_factory.mktemp("real")
    cohort = prepared_cohort(work)
    manifest = real_like_manifest(cohort, work / "adni")
    shutil.rmtree(cohort)  # nothing of the generator is left to find
    root = work / "repo"
    shutil.copytree(REPO / "book", root / "book")
    shutil.copytree(REPO / "archive", root / "archive")  # the synthetic study, which must not be mixed in
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(REPO / name, root / name)
    run = subprocess.run(
        [sys.executable, "-m", "tausynth", "book", "run", "--profile", "smoke", "--manifest", str(manifest),
         "--jobs", "2"], cwd=root, capture_output=True, text=True)
    return root, manifest, run


def test_the_manifest_is_valid_and_has_no_ground_truth(real_book: tuple[Path, Path, subprocess.CompletedProcess[str]]) -> None:
    _, manifest, _ = real_book
    check = subprocess.run([sys.executable, "-m", "tausynth", "validate", str(manifest)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    columns = set(pd.read_csv(manifest).columns)
    assert not columns & {"pet_gt", "braak", "stage_cont", "amyloid"}
    assert not (manifest.parent / "subjects.csv").exists()


@pytest.mark.slow
def test_every_chapter_runs_and_renders_on_real_data(real_book: tuple[Path, Path, subprocess.CompletedProcess[str]]) -> None:
    root, manifest, run = real_book
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    chapters = book.chapters_for("smoke", root, str(manifest))
    record = book.read_run_log(root)
    assert record["manifest"] == str(manifest.resolve())
    assert {n for n, c in record["chapters"].items() if c["status"] == "executed"} == {c.name for c in chapters}
    assert not (root / "data" / "smoke" / "cohort").exists()  # no synthetic cohort was made for a real-data book
    index = book.build_book(root)
    assert index.is_file()
    pages = {c.name: (root / "_build" / "html" / "book" / Path(c.output_path).with_suffix(".html")).read_text()
             for c in chapters}
    # each chapter says plainly what it cannot show without the generator's ground truth
    for name, sentence in [
        ("data", "Braak stages are not known for this data set"),
        ("data", "coupling figure plots the generator"),
        ("suvr", "exists only in the synthetic cohort"),
        ("loss", "The worked examples use two phantom subjects"),
        ("results", "The archived study was trained on the synthetic cohort, not on this data set"),
    ]:
        assert sentence in pages[name], (name, sentence)
    for page in pages.values():
        assert "Traceback" not in page and "KeyError" not in page
