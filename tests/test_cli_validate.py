"""`tausynth validate MANIFEST`: exit codes, one line per problem, no traceback, an OK summary."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tausynth.cli import main

HEADER = ["subject_id", "session", "t1", "pet", "manufacturer", "diagnosis", "split"]
PREFIX = "tausynth validate: error: "


def _vol(path: Path, data: np.ndarray) -> str:
    nib.save(nib.Nifti1Image(np.asarray(data, np.float32), np.eye(4)), str(path))
    return path.name


def _cohort(tmp_path: Path) -> list[dict]:
    rng = np.random.default_rng(1)
    rows = []
    for i, (maker, split) in enumerate(
        [("SIEMENS", "train"), ("GE MEDICAL SYSTEMS", "val"), ("Philips", "test")]
    ):
        sid = f"sub-{i + 1:02d}"
        rows.append(
            dict(
                subject_id=sid,
                session="",
                manufacturer=maker,
                diagnosis="CN",
                split=split,
                t1=_vol(tmp_path / f"{sid}_t1.nii.gz", rng.random((8, 8, 8))),
                pet=_vol(tmp_path / f"{sid}_pet.nii.gz", rng.random((8, 8, 8))),
            )
        )
    return rows


def _write(tmp_path: Path, rows: list[dict], header: list[str] = HEADER) -> Path:
    path = tmp_path / "manifest.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=header, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def _corrupt(tmp_path: Path, rows: list[dict]) -> None:
    data = (tmp_path / rows[1]["pet"]).read_bytes()
    (tmp_path / "corrupt.nii.gz").write_bytes(data[: len(data) // 2])  # truncated gzip stream
    rows[1]["pet"] = "corrupt.nii.gz"


def _nan(tmp_path: Path, rows: list[dict]) -> None:
    pet = np.ones((8, 8, 8))
    pet[0, 0, 0] = np.nan
    rows[1]["pet"] = _vol(tmp_path / "nan.nii.gz", pet)


CASES = {
    "missing file": (
        lambda t, r: r[1].update(pet="nowhere.nii.gz"),
        "column pet",
        "nowhere.nii.gz",
        "file not found",
    ),
    "duplicate id": (
        lambda t, r: r[1].update(subject_id="sub-01", split="train"),
        "column subject_id",
        None,
        "duplicate id",
    ),
    "shape mismatch": (
        lambda t, r: r[1].update(pet=_vol(t / "big.nii.gz", np.ones((9, 8, 8)))),
        "column pet",
        "big.nii.gz",
        "shape (9, 8, 8) differs from the T1 shape (8, 8, 8)",
    ),
    "NaN PET": (_nan, "column pet", "nan.nii.gz", "1 NaN"),
    "unknown manufacturer": (
        lambda t, r: r[1].update(manufacturer="Canon"),
        "column manufacturer",
        None,
        "'Canon'",
    ),
    "corrupt nii.gz": (_corrupt, "column pet", "corrupt.nii.gz", "not a readable NIfTI image"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_bad_input_is_one_clear_line(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    edit, column, file, what = CASES[case]
    rows = _cohort(tmp_path)
    edit(tmp_path, rows)
    path = _write(tmp_path, rows)
    assert main(["validate", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    lines = err.splitlines()
    assert lines[-1] == "tausynth validate: 1 problem(s) found"
    assert len(lines) == 2, lines
    line = lines[0]
    assert line.startswith(PREFIX + "manifest.csv:3: subject sub-0"), line
    assert column in line and what in line, line
    if file:
        assert f"file {tmp_path / file}" in line


def test_missing_required_column(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = _write(tmp_path, _cohort(tmp_path), [c for c in HEADER if c != "manufacturer"])
    assert main(["validate", str(path)]) == 2
    out, err = capsys.readouterr()
    assert err.splitlines() == [
        f"{PREFIX}manifest.csv: missing required column 'manufacturer' (file {path})",
        "tausynth validate: 1 problem(s) found",
    ]


def test_several_problems_are_all_reported(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rows = _cohort(tmp_path)
    rows[0]["t1"] = "nowhere.nii.gz"
    _corrupt(tmp_path, rows)
    rows[2]["manufacturer"] = "Toshiba"
    rows[2]["split"] = "holdout"
    assert main(["validate", str(_write(tmp_path, rows))]) == 2
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert lines[-1] == "tausynth validate: 4 problem(s) found"
    problems = lines[:-1]
    assert len(problems) == 4 and all(p.startswith(PREFIX + "manifest.csv:") for p in problems)
    assert sum("subject sub-01, column t1" in p for p in problems) == 1
    assert sum("subject sub-02, column pet" in p for p in problems) == 1
    assert sum("subject sub-03, column manufacturer" in p for p in problems) == 1
    assert sum("subject sub-03, column split" in p for p in problems) == 1


def test_valid_manifest_prints_ok(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = _write(tmp_path, _cohort(tmp_path))
    assert main(["validate", str(path), "--affine-tolerance", "0.01"]) == 0
    out, err = capsys.readouterr()
    assert out == (
        "OK: 3 scans, 3 subjects, splits train 1 / val 1 / test 1, manufacturers Siemens 1 / GE 1 / Philips 1\n"
    )
    assert err == ""


def test_missing_manifest_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["validate", str(tmp_path / "absent.csv")]) == 2
    err = capsys.readouterr().err
    assert err == f"{PREFIX}{tmp_path / 'absent.csv'}: manifest not found\n"


def test_subprocess_exit_code_and_no_traceback(tmp_path: Path) -> None:
    rows = _cohort(tmp_path)
    _nan(tmp_path, rows)
    rows[0]["manufacturer"] = "Canon"
    path = _write(tmp_path, rows)
    bad = subprocess.run(
        [sys.executable, "-m", "tausynth", "validate", str(path)], capture_output=True, text=True
    )
    assert bad.returncode == 2, bad.stderr
    assert "Traceback" not in bad.stderr and bad.stdout == ""
    assert bad.stderr.splitlines()[-1] == "tausynth validate: 2 problem(s) found"
    assert len(bad.stderr.splitlines()) == 3
    ok = subprocess.run(
        [sys.executable, "-m", "tausynth", "validate", str(_write(tmp_path, _cohort(tmp_path)))],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0 and ok.stdout.startswith("OK: 3 scans, 3 subjects"), ok.stderr
