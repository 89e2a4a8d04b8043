"""Tests for tausynth.data.manifest: schema, normalization, file checks and the OK summary."""

from __future__ import annotations

import csv
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tausynth.data import manifest as mf
from tausynth.errors import TausynthError, ValidationErrors

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


def _vol(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> str:
    nib.save(nib.Nifti1Image(np.asarray(data), np.eye(4) if affine is None else affine), str(path))
    return path.name


def _write(path: Path, rows: list[dict], header: list[str] = HEADER) -> Path:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=header, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def _cohort(tmp_path: Path) -> list[dict]:
    """Four subjects (one with two sessions), 8x8x8 volumes, masks and labels, all valid."""
    rng = np.random.default_rng(0)
    mask = np.zeros((8, 8, 8), np.uint8)
    mask[2:6, 2:6, 2:6] = 1
    labels = mask.astype(np.int16) * 17
    _vol(tmp_path / "mask.nii.gz", mask)
    _vol(tmp_path / "labels.nii.gz", labels)
    spec = [
        ("sub-01", "", "SIEMENS", "CN", "train"),
        ("sub-02", "", "GE MEDICAL SYSTEMS", "ad", "Train"),
        ("sub-03", "ses-ge", "Philips Healthcare", "MCI", "val"),
        ("sub-03", "ses-siemens", "Siemens Healthineers", "MCI", "val"),
        ("sub-04", "", "GE Healthcare", "CN", "test"),
    ]
    rows = []
    for sid, ses, maker, dx, split in spec:
        tag = f"{sid}{ses}"
        rows.append(
            dict(
                subject_id=sid,
                session=ses,
                manufacturer=maker,
                diagnosis=dx,
                split=split,
                t1=_vol(tmp_path / f"{tag}_t1.nii.gz", rng.random((8, 8, 8), dtype=np.float32)),
                pet=_vol(tmp_path / f"{tag}_pet.nii.gz", rng.random((8, 8, 8), dtype=np.float32)),
                labels="labels.nii.gz",
                mask="mask.nii.gz",
            )
        )
    return rows


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("SIEMENS", "Siemens"),
        ("Siemens Healthineers", "Siemens"),
        ("siemens", "Siemens"),
        ("GE MEDICAL SYSTEMS", "GE"),
        ("GE Healthcare", "GE"),
        ("ge", "GE"),
        ("Philips Medical Systems", "Philips"),
        ("Philips Healthcare", "Philips"),
        ("PHILIPS", "Philips"),
        ("  GE   Medical Systems, LLC ", "GE"),
        ("CPS", "Siemens"),
    ],
)
def test_normalize_manufacturer_known_aliases(raw: str, canonical: str) -> None:
    assert mf.normalize_manufacturer(raw) == canonical


@settings(max_examples=60, deadline=None)
@given(alias=st.sampled_from(sorted(mf.MANUFACTURER_ALIASES)), data=st.data())
def test_normalize_manufacturer_ignores_case_and_whitespace(
    alias: str, data: st.DataObject
) -> None:
    flips = data.draw(st.lists(st.booleans(), min_size=len(alias), max_size=len(alias)))
    pad = data.draw(st.sampled_from(["", " ", "  ", "\t"]))
    variant = (
        pad
        + "".join(c.upper() if f else c.lower() for c, f in zip(alias, flips, strict=True))
        + pad
    )
    variant = variant.replace(" ", "  ")
    assert mf.normalize_manufacturer(variant) == mf.MANUFACTURER_ALIASES[alias]


def test_normalize_manufacturer_unknown_names_value_and_known_set() -> None:
    with pytest.raises(TausynthError) as err:
        mf.normalize_manufacturer("Canon")
    message = str(err.value)
    assert "'Canon'" in message and all(m in message for m in mf.MANUFACTURERS)


def test_imaging_protocol_and_adni_ids() -> None:
    protocol = (
        "Radiopharmaceutical=18F-AV1451;Manufacturer=GE MEDICAL SYSTEMS;Mfg Model=Discovery 690"
    )
    assert mf.parse_imaging_protocol(protocol)["Mfg Model"] == "Discovery 690"
    assert mf.manufacturer_from_protocol(protocol) == "GE"
    with pytest.raises(TausynthError, match="no 'Manufacturer='"):
        mf.manufacturer_from_protocol("Mfg Model=HR+")
    assert mf.adni_rid("002_S_0295") == 295
    assert mf.adni_rid(" 995_S_9005 ") == 9005
    with pytest.raises(TausynthError, match="NNN_S_NNNN"):
        mf.adni_rid("295")


def test_load_manifest_normalizes_and_resolves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = _cohort(tmp_path)
    rows[0]["t1"] = str((tmp_path / rows[0]["t1"]).absolute())  # absolute paths are accepted too
    path = _write(tmp_path / "manifest.csv", rows)
    monkeypatch.chdir("/")  # relative paths are relative to the manifest, not the working directory
    df = mf.load_manifest(path)
    assert list(df.columns) == list(mf.COLUMNS)
    assert df["manufacturer"].tolist() == ["Siemens", "GE", "Philips", "Siemens", "GE"]
    assert df["diagnosis"].tolist() == ["CN", "AD", "MCI", "MCI", "CN"]
    assert df["split"].tolist() == ["train", "train", "val", "val", "test"]
    for column in ("t1", "pet", "labels", "mask"):
        assert all(Path(p).is_absolute() and Path(p).is_file() for p in df[column])
    assert df["refmask"].tolist() == [""] * 5 and df["age"].isna().all()
    assert mf.split_frame(df, "val")["session"].tolist() == ["ses-ge", "ses-siemens"]
    with pytest.raises(TausynthError, match="allowed: train, val, test"):
        mf.split_frame(df, "validation")


def test_load_manifest_optional_values(tmp_path: Path) -> None:
    rows = _cohort(tmp_path)[:2]
    rows[0].update(age="71.5", sex="female", amyloid="a+")
    rows[1].update(age="old", sex="X", amyloid="maybe")
    path = _write(tmp_path / "m.csv", rows, [*HEADER, "age", "sex", "amyloid"])
    with pytest.raises(ValidationErrors) as err:
        mf.load_manifest(path)
    assert len(err.value.problems) == 3
    assert all(p.startswith("m.csv:3: subject sub-02") for p in err.value.problems)
    rows[1].update(age="", sex="M", amyloid="A-")
    df = mf.load_manifest(_write(tmp_path / "m.csv", rows, [*HEADER, "age", "sex", "amyloid"]))
    assert df["age"].iloc[0] == 71.5 and np.isnan(df["age"].iloc[1])
    assert df["sex"].tolist() == ["F", "M"] and df["amyloid"].tolist() == ["A+", "A-"]


def test_validate_ok_summary(tmp_path: Path) -> None:
    path = _write(tmp_path / "manifest.csv", _cohort(tmp_path))
    assert mf.validate_manifest(path) == (
        "5 scans, 4 subjects, splits train 2 / val 1 / test 1, manufacturers Siemens 2 / GE 2 / Philips 1"
    )


def _problems(path: Path, **kwargs) -> list[str]:
    with pytest.raises(ValidationErrors) as err:
        mf.validate_manifest(path, **kwargs)
    return err.value.problems


def test_missing_required_column(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "m.csv", _cohort(tmp_path), [c for c in HEADER if c not in ("pet", "split")]
    )
    problems = _problems(path)
    assert problems == [
        f"m.csv: missing required column 'pet' (file {path})",
        f"m.csv: missing required column 'split' (file {path})",
    ]


def test_each_file_problem_names_line_subject_column_file(tmp_path: Path) -> None:
    rows = _cohort(tmp_path)
    nan_pet = np.ones((8, 8, 8), np.float32)
    nan_pet[3, 3, 3] = np.nan
    nan_pet[4, 4, 4] = np.inf
    rows[0]["pet"] = _vol(tmp_path / "nan.nii.gz", nan_pet)
    rows[1]["t1"] = "missing.nii.gz"
    rows[2]["pet"] = _vol(tmp_path / "big.nii.gz", np.ones((8, 8, 9), np.float32))
    good = (tmp_path / rows[3]["t1"]).read_bytes()
    (tmp_path / "corrupt.nii.gz").write_bytes(good[: len(good) // 2])
    rows[3]["t1"] = "corrupt.nii.gz"
    shifted = np.eye(4)
    shifted[0, 3] = 0.01
    rows[4]["pet"] = _vol(tmp_path / "shifted.nii.gz", np.ones((8, 8, 8), np.float32), shifted)
    path = _write(tmp_path / "m.csv", rows)
    problems = _problems(path)
    expected = [
        ("m.csv:2: subject sub-01, column pet", "nan.nii.gz", "1 NaN and 1 Inf"),
        ("m.csv:3: subject sub-02, column t1", "missing.nii.gz", "file not found"),
        (
            "m.csv:4: subject sub-03 (session ses-ge), column pet",
            "big.nii.gz",
            "shape (8, 8, 9) differs",
        ),
        (
            "m.csv:5: subject sub-03 (session ses-siemens), column t1",
            "corrupt.nii.gz",
            "not a readable NIfTI",
        ),
        ("m.csv:6: subject sub-04, column pet", "shifted.nii.gz", "affine differs"),
    ]
    assert len(problems) == len(expected), problems
    for line, (prefix, file, what) in zip(problems, expected, strict=True):
        assert line.startswith(prefix) and f"file {tmp_path / file}" in line and what in line, line
        assert "\n" not in line
    # the affine check honours the tolerance
    rows = _cohort(tmp_path)
    rows[4]["pet"] = "shifted.nii.gz"
    assert mf.validate_manifest(_write(tmp_path / "m2.csv", rows), affine_tolerance=0.05)
    with pytest.raises(TausynthError, match="non-negative"):
        mf.validate_manifest(path, affine_tolerance=-1)


def test_schema_problems_all_reported_together_with_file_problems(tmp_path: Path) -> None:
    rows = _cohort(tmp_path)
    rows[1]["subject_id"] = "sub-01"  # a duplicate (subject_id, session); both rows are train
    rows[2]["manufacturer"] = "Canon"
    rows[3]["split"] = "test"  # sub-03 now in val and test
    rows[4]["diagnosis"] = "Dementia"
    rows[4]["pet"] = "gone.nii.gz"
    path = _write(tmp_path / "m.csv", rows)
    problems = _problems(path)
    assert len(problems) == 5, problems
    text = "\n".join(problems)
    assert (
        "m.csv:3: subject sub-01, column subject_id: duplicate id" in text and "lines 2, 3" in text
    )
    assert (
        "m.csv:4: subject sub-03 (session ses-ge), column manufacturer: unknown manufacturer 'Canon'"
        in text
    )
    assert (
        "column split: subject appears in more than one split (val on line 4, test on line 5)"
        in text
    )
    assert (
        "m.csv:6: subject sub-04, column diagnosis: invalid value 'Dementia'; allowed: CN, MCI, AD"
        in text
    )
    assert (
        f"m.csv:6: subject sub-04, column pet, file {tmp_path / 'gone.nii.gz'}: file not found"
        in text
    )


def test_mask_labels_dimension_and_shared_file_checks(tmp_path: Path) -> None:
    rows = _cohort(tmp_path)
    rows[0]["mask"] = _vol(tmp_path / "soft.nii.gz", np.full((8, 8, 8), 0.5, np.float32))
    rows[1]["mask"] = _vol(tmp_path / "empty.nii.gz", np.zeros((8, 8, 8), np.uint8))
    rows[2]["labels"] = _vol(tmp_path / "frac.nii.gz", np.full((8, 8, 8), 1.5, np.float32))
    rows[3]["pet"] = _vol(tmp_path / "4d.nii.gz", np.ones((8, 8, 8, 2), np.float32))
    rows[4]["t1"] = rows[0]["t1"]  # one T1 file for two different subjects
    problems = _problems(_write(tmp_path / "m.csv", rows))
    text = "\n".join(problems)
    assert len(problems) == 5, problems
    assert "column mask, file" in text and "only 0 and 1" in text
    assert "the mask is empty" in text
    assert "column labels, file" in text and "must be integers" in text
    assert "expected a 3D image, got shape (8, 8, 8, 2)" in text
    assert (
        "m.csv:6: subject sub-04, column t1" in text
        and "used by different subjects (lines 2, 6)" in text
    )


def test_unknown_column_close_to_known_is_reported(tmp_path: Path) -> None:
    rows = _cohort(tmp_path)
    for r in rows:
        r["maks"] = r.pop("mask")
        r["visit_code"] = "bl"
    path = _write(tmp_path / "m.csv", rows, [*HEADER[:-1], "maks", "visit_code"])
    problems = _problems(path)
    assert problems == [f"m.csv: unknown column 'maks', did you mean 'mask'? (file {path})"]


def test_unreadable_manifest(tmp_path: Path) -> None:
    with pytest.raises(TausynthError, match="manifest not found"):
        mf.validate_manifest(tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(TausynthError, match="not a readable CSV"):
        mf.load_manifest(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text(",".join(HEADER) + "\n")
    with pytest.raises(ValidationErrors, match="no rows"):
        mf.load_manifest(tmp_path / "header.csv")
    (tmp_path / "twice.csv").write_text(",".join([*HEADER, "t1"]) + "\n")
    with pytest.raises(TausynthError, match="repeated column name\\(s\\) 't1'"):
        mf.load_manifest(tmp_path / "twice.csv")


def test_byte_order_mark_from_spreadsheets_is_accepted(tmp_path: Path) -> None:
    path = _write(tmp_path / "m.csv", _cohort(tmp_path))
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert mf.validate_manifest(path).startswith("5 scans, 4 subjects")


def test_validate_loads_each_file_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path / "m.csv", _cohort(tmp_path))
    calls: list[str] = []
    real = mf.load_nifti

    def counting(file, *args, **kwargs):
        calls.append(str(file))
        return real(file, *args, **kwargs)

    monkeypatch.setattr(mf, "load_nifti", counting)
    mf.validate_manifest(path)
    assert len(calls) == len(set(calls)) == 5 * 2 + 2  # T1 + PET per scan, shared mask and labels


def test_load_manifest_frame_is_plain(tmp_path: Path) -> None:
    df = mf.load_manifest(_write(tmp_path / "m.csv", _cohort(tmp_path)))
    assert isinstance(df, pd.DataFrame) and df.index.tolist() == list(range(5))
    assert df.attrs["manifest"] == str((tmp_path / "m.csv").absolute())


REPO = Path(__file__).resolve().parents[2]


def test_adni_template_passes_the_schema_and_only_lacks_its_images() -> None:
    template = REPO / "data_manifest" / "adni_template.csv"
    df = mf.load_manifest(template)
    assert list(df.columns) == list(mf.COLUMNS)
    assert set(df["manufacturer"]) == set(mf.MANUFACTURERS)
    assert all(mf.adni_rid(s) > 0 for s in df["subject_id"])
    problems = _problems(template)
    assert len(problems) == len(df) * 5 and all(p.endswith(": file not found") for p in problems)


def test_readme_schema_table_lists_every_column() -> None:
    text = (REPO / "data_manifest" / "README.md").read_text()
    for column in mf.COLUMNS:
        required = "yes" if column in mf.REQUIRED_COLUMNS else "no"
        assert f"| `{column}` | {required} |" in text, column
