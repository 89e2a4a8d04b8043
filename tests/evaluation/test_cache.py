"""Predictions and evaluations reused while their inputs, the cut-point and the package are unchanged."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pandas as pd
import pytest

from tausynth.evaluation import cache
from tausynth.evaluation import collect as C


@pytest.mark.slow
def test_evaluation_cache_reused_then_invalidated(tmp_path, cohort, fake_predict, monkeypatch, make_run):
    run = make_run(tmp_path, cohort, "unet-cyclic", maker=lambda pet: pet * 1.1)
    first = C.collect_runs([run], log=None)
    again = C.collect_runs([run], log=None)
    assert again.runs.loc[0, "evaluation"] == "cached"
    for a, b in ((first.metrics, again.metrics), (first.roi, again.roi), (first.agreement, again.agreement),
                 (first.staging, again.staging)):
        pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), check_dtype=False)
    # a checkpoint written after the evaluation: the CSVs are older than it, so they are recomputed
    earlier = (run / "checkpoints" / "final_model.pt").stat().st_mtime - 10
    for csv in (run / "evaluation").glob("*.csv"):
        os.utime(csv, (earlier, earlier))
    assert C.collect_runs([run], log=None).runs.loc[0, "evaluation"] == "evaluated"
    # another cut-point is another evaluation
    assert C.collect_runs([run], log=None).runs.loc[0, "evaluation"] == "cached"
    assert C.collect_runs([run], cut_point=1.3, log=None).runs.loc[0, "evaluation"] == "evaluated"
    # a label map rewritten under the same name (before: the old tables were reused, keyed by path)
    manifest = pd.read_csv(cohort / "manifest.csv", keep_default_na=False)
    labels = cohort / manifest[manifest["split"] == "test"].iloc[0]["labels"]
    st = labels.stat()
    os.utime(labels, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert C.collect_runs([run], cut_point=1.3, log=None).runs.loc[0, "evaluation"] == "evaluated"
    # changed code anywhere in the package (the ROI sets of data/atlas.py, say) is another evaluation
    assert C.collect_runs([run], cut_point=1.3, log=None).runs.loc[0, "evaluation"] == "cached"
    monkeypatch.setattr("tausynth.evaluation.cache.source_digest", lambda: "the package after an edit")
    assert C.collect_runs([run], cut_point=1.3, log=None).runs.loc[0, "evaluation"] == "evaluated"
    assert fake_predict == []


@pytest.mark.slow
def test_missing_or_stale_predictions_are_made_first(tmp_path, cohort, fake_predict, make_run):
    run = make_run(tmp_path, cohort, "unet-cyclic", predict=False)
    lines: list[str] = []
    col = C.collect_runs([run], log=lines.append)
    assert fake_predict == [("unet-cyclic", "test")] and col.runs.loc[0, "predictions"] == "predicted"
    assert any("no predictions of split 'test' yet; predicting them first" in line for line in lines)
    assert np.allclose(col.metrics["mae"], 0.05, atol=1e-4)
    C.collect_runs([run], log=None)
    assert len(fake_predict) == 1  # up to date now
    (run / "checkpoints" / "final_model.pt").write_bytes(b"retrained")
    lines.clear()
    col = C.collect_runs([run], log=lines.append)
    assert len(fake_predict) == 2 and any("older checkpoint" in line for line in lines)
    assert col.runs.loc[0, "evaluation"] == "evaluated"
    # the validation split has its own predictions and evaluation folder
    C.collect_runs([run], split="val", log=None)
    assert fake_predict[-1] == ("unet-cyclic", "val")
    assert (run / "evaluation" / "val" / "per_subject.csv").is_file()


@pytest.mark.slow
def test_predictions_of_a_replaced_input_file_are_made_again(tmp_path, cohort, monkeypatch, make_run, predictions_writer):
    # the same file names, other bytes: a T1 replaced in place must not reuse the old prediction
    data = tmp_path / "cohort"
    shutil.copytree(cohort, data)
    run = make_run(tmp_path, data, "unet-cyclic")
    calls = []

    def predict_run(run_dir, manifest=None, split="test", **kw):
        calls.append(split)
        predictions_writer(run_dir, data, split, lambda pet: pet)
        return pd.read_csv(run_dir / "predictions" / split / "predictions.csv")

    monkeypatch.setattr("tausynth.training.predict_run", predict_run)
    assert cache.ensure_predictions(run, log=None)[1] == "reused" and calls == []
    manifest = pd.read_csv(data / "manifest.csv", keep_default_na=False)
    test, train = manifest[manifest["split"] == "test"].iloc[0], manifest[manifest["split"] == "train"].iloc[0]
    shutil.copyfile(data / train["t1"], data / test["t1"])
    lines: list[str] = []
    assert cache.ensure_predictions(run, log=lines.append)[1] == "predicted" and calls == ["test"]
    assert any(f"the T1 file {data / test['t1']} changed since its predictions were made" in line for line in lines)
    assert cache.ensure_predictions(run, log=None)[1] == "reused"
    shutil.copyfile(data / train["pet"], data / test["pet"])
    assert cache.ensure_predictions(run, log=None)[1] == "predicted" and calls == ["test", "test"]
