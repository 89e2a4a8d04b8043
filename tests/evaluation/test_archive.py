"""Study archives: tables written and read back unchanged, run files copied, bad archives named."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tausynth.errors import TausynthError
from tausynth.evaluation.archive import ARCHIVE_TABLES, load_archive, write_archive
from tausynth.evaluation.collect import Collection


def _collection(run: str) -> Collection:
    metrics = pd.DataFrame({"run": [run] * 2, "subject_id": ["0001", "0002"], "ssim": [0.81, 0.79],
                            "kind": ["suvr", "suvr"]})
    agreement = pd.DataFrame({"run": [run], "region": ["metatemporal"], "group": ["all"], "pearson_r": [0.5],
                              "pearson_p": [float("nan")]})
    runs = pd.DataFrame({"run": [run], "path": [f"/somewhere/runs/demo/{run}"], "status": ["finished"]})
    empty = pd.DataFrame()
    return Collection(metrics=metrics, roi=metrics.assign(region="braak1"), agreement=agreement,
                      positivity=empty, staging=empty, runs=runs)


def _run_dir(tmp_path, name):
    d = tmp_path / "runs" / name
    d.mkdir(parents=True)
    for f, text in (("config.yaml", "profile: demo\n"), ("provenance.json", "{}\n"), ("metrics.csv", "epoch\n0\n")):
        (d / f).write_text(text)
    (d / "checkpoints").mkdir()
    (d / "checkpoints" / "final_model.pt").write_bytes(b"weights never go into an archive")
    return d


def test_round_trip_keeps_tables_and_copies_only_light_files(tmp_path):
    run = _run_dir(tmp_path, "unet-cyclic-standardize-s42")
    out = write_archive(_collection(run.name), _collection("baseline-mean-image"), [run], tmp_path / "archive",
                        {"profile": "study", "missing_runs": ["unet-2d-standardize-s42"]})
    runs, base, info = load_archive(out)
    pd.testing.assert_frame_equal(runs.metrics, _collection(run.name).metrics)  # ids stay strings ("0001")
    assert runs.runs.loc[0, "path"] == f"runs/{run.name}"  # no absolute path of the machine that made it
    assert pd.isna(runs.agreement.loc[0, "pearson_p"]) and runs.staging.empty
    assert set(base.metrics["run"]) == {"baseline-mean-image"}
    assert info["profile"] == "study" and info["missing_runs"] == ["unet-2d-standardize-s42"]
    assert info["runs"] == [run.name] and "created" in info
    assert sorted(p.name for p in (out / "runs" / run.name).iterdir()) == ["config.yaml", "metrics.csv",
                                                                           "provenance.json"]
    assert sorted(p.stem for p in (out / "tables").iterdir()) == sorted(ARCHIVE_TABLES)


def test_rewriting_drops_runs_no_longer_archived(tmp_path):
    a, b = _run_dir(tmp_path, "a"), _run_dir(tmp_path, "b")
    out = tmp_path / "archive"
    write_archive(_collection("a"), _collection("x"), [a, b], out)
    write_archive(_collection("b"), _collection("x"), [b], out)
    assert [p.name for p in (out / "runs").iterdir()] == ["b"]
    assert json.loads((out / "archive.json").read_text())["runs"] == ["b"]


def test_errors_name_the_file(tmp_path):
    with pytest.raises(TausynthError, match="not a study archive.*tausynth study archive"):
        load_archive(tmp_path)
    run = _run_dir(tmp_path, "a")
    out = write_archive(_collection("a"), _collection("x"), [run], tmp_path / "archive")
    (out / "tables" / "roi.csv").unlink()
    with pytest.raises(TausynthError, match=r"roi.csv: missing archive table"):
        load_archive(out)
    (out / "archive.json").write_text("{")
    with pytest.raises(TausynthError, match="archive.json: not valid JSON"):
        load_archive(out)
