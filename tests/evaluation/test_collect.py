"""Collecting several runs: predictions on demand, evaluation caches, variant columns, claim inputs."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tausynth.errors import TausynthError
from tausynth.evaluation import collect as C
from tausynth.io import file_sha256, load_nifti, save_nifti


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    from tausynth.data.synthetic import write_cohort

    out = tmp_path_factory.mktemp("cohort")
    write_cohort(out, n=6, seed=3, resolution=4, progress=False)
    return out


def _predict(run, cohort, split, maker):
    """Write predictions as ``tausynth predict`` does, from ``maker(real_pet) -> synthetic``."""
    manifest = pd.read_csv(cohort / "manifest.csv", keep_default_na=False)
    ckpt = run / "checkpoints" / "final_model.pt"
    rows = []
    for _, m in manifest[manifest["split"] == split].iterrows():
        pet, affine, _ = load_nifti(cohort / m["pet"])
        path = run / "predictions" / split / f"{m['subject_id']}_suvr.nii.gz"
        save_nifti(path, maker(pet), affine)
        rows.append({"subject_id": m["subject_id"], "session": "", "split": split, "kind": "suvr", "oracle": False,
                     "path": str(path), "t1": str(cohort / m["t1"]), "pet": str(cohort / m["pet"]),
                     "checkpoint_sha256": file_sha256(ckpt), "t1_sha256": file_sha256(cohort / m["t1"]),
                     "pet_sha256": file_sha256(cohort / m["pet"])})
    pd.DataFrame(rows).to_csv(run / "predictions" / split / "predictions.csv", index=False)


def _run(root, cohort, name, perceptual="cyclic", maker=lambda pet: pet, status="finished", predict=True):
    run = root / name
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "final_model.pt").write_bytes(f"weights of {name}".encode())
    cfg = {"model": {"name": "unet"}, "loss": {"perceptual": perceptual}, "normalization": "standardize",
           "training": {"seed": 7}}
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    prov = {"status": status, "epochs_done": 3, "schedule": {"max_epochs": 4}, "perceptual_weights": "random",
            "data": {"manifest": str(cohort / "manifest.csv")}}
    (run / "provenance.json").write_text(json.dumps(prov))
    if predict:
        _predict(run, cohort, "test", maker)
    return run


@pytest.fixture
def fake_predict(monkeypatch, cohort):
    """Replace predict_run (it needs a real checkpoint) by one that writes a noisy prediction; record calls."""
    calls = []

    def predict_run(run_dir, manifest=None, split="test", **kw):
        calls.append((run_dir.name, split))
        _predict(run_dir, cohort, split, lambda pet: pet + 0.05)
        return pd.read_csv(run_dir / "predictions" / split / "predictions.csv")

    monkeypatch.setattr("tausynth.training.predict_run", predict_run)
    return calls


@pytest.mark.slow
def test_collect_concatenates_runs_with_variant_columns(tmp_path, cohort, fake_predict):
    rng = np.random.default_rng(0)
    perfect = _run(tmp_path, cohort, "unet-cyclic")
    noisy = _run(tmp_path, cohort, "unet-none", "none", lambda pet: pet + rng.normal(0, 0.1, pet.shape).astype(np.float32))
    col = C.collect_runs([perfect, noisy], log=None)
    n_test = int((pd.read_csv(cohort / "manifest.csv")["split"] == "test").sum())
    assert len(col.metrics) == 2 * n_test
    for table in (col.metrics, col.roi, col.agreement, col.positivity, col.staging):
        assert set(table["run"]) == {"unet-cyclic", "unet-none"}
        assert set(table["perceptual"]) == {"cyclic", "none"} and set(table["seed"]) == {7}
        assert set(C.VARIANT_COLUMNS) <= set(table.columns)
    best = col.metrics[col.metrics["run"] == "unet-cyclic"]
    worse = col.metrics[col.metrics["run"] == "unet-none"]
    assert np.allclose(best["ssim"], 1.0) and (best["mae"] == 0).all()
    assert (worse["ssim"] < 1).all() and (worse["mae"] > 0.05).all()
    roi = col.roi[col.roi["run"] == "unet-cyclic"]
    assert np.allclose(roi["real"], roi["synthetic"])
    runs = col.runs.set_index("run")
    assert list(runs["predictions"]) == ["reused", "reused"] and list(runs["evaluation"]) == ["evaluated"] * 2
    assert runs.loc["unet-none", "n_subjects"] == n_test and runs.loc["unet-none", "epochs_done"] == 3
    assert fake_predict == []
    assert (perfect / "evaluation" / "per_subject.csv").is_file() and (perfect / "evaluation" / "evaluation.json").is_file()


@pytest.mark.slow
def test_evaluation_cache_reused_then_invalidated(tmp_path, cohort, fake_predict, monkeypatch):
    run = _run(tmp_path, cohort, "unet-cyclic", maker=lambda pet: pet * 1.1)
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
    monkeypatch.setattr(C, "source_digest", lambda: "the package after an edit")
    assert C.collect_runs([run], cut_point=1.3, log=None).runs.loc[0, "evaluation"] == "evaluated"
    assert fake_predict == []


@pytest.mark.slow
def test_missing_or_stale_predictions_are_made_first(tmp_path, cohort, fake_predict):
    run = _run(tmp_path, cohort, "unet-cyclic", predict=False)
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
def test_predictions_of_a_replaced_input_file_are_made_again(tmp_path, cohort, monkeypatch):
    # the same file names, other bytes: a T1 replaced in place must not reuse the old prediction
    data = tmp_path / "cohort"
    shutil.copytree(cohort, data)
    run = _run(tmp_path, data, "unet-cyclic")
    calls = []

    def predict_run(run_dir, manifest=None, split="test", **kw):
        calls.append(split)
        _predict(run_dir, data, split, lambda pet: pet)
        return pd.read_csv(run_dir / "predictions" / split / "predictions.csv")

    monkeypatch.setattr("tausynth.training.predict_run", predict_run)
    assert C.ensure_predictions(run, log=None)[1] == "reused" and calls == []
    manifest = pd.read_csv(data / "manifest.csv", keep_default_na=False)
    test, train = manifest[manifest["split"] == "test"].iloc[0], manifest[manifest["split"] == "train"].iloc[0]
    shutil.copyfile(data / train["t1"], data / test["t1"])
    lines: list[str] = []
    assert C.ensure_predictions(run, log=lines.append)[1] == "predicted" and calls == ["test"]
    assert any(f"the T1 file {data / test['t1']} changed since its predictions were made" in line for line in lines)
    assert C.ensure_predictions(run, log=None)[1] == "reused"
    shutil.copyfile(data / train["pet"], data / test["pet"])
    assert C.ensure_predictions(run, log=None)[1] == "predicted" and calls == ["test", "test"]


def test_find_and_resolve_runs(tmp_path, cohort):
    root = tmp_path / "runs" / "smoke"
    done = _run(root, cohort, "a-done", predict=False)
    _run(root, cohort, "b-paused", status="paused", predict=False)
    (root / "baselines").mkdir()  # not a run: no config.yaml
    assert C.find_runs(root) == [done]
    assert [p.name for p in C.find_runs(root, finished_only=False)] == ["a-done", "b-paused"]
    chosen, skipped = C.resolve_runs([], "smoke", tmp_path / "runs")
    assert chosen == [done] and [(p.name, s) for p, s in skipped] == [("b-paused", "paused")]
    assert C.resolve_runs("[x/r1, x/r2]", "smoke")[0] == [Path("x/r1"), Path("x/r2")]
    assert C.resolve_runs("x/r1, x/r2", "smoke")[0] == [Path("x/r1"), Path("x/r2")]
    assert C.resolve_runs(None, "nothing-here", tmp_path)[0] == []
    assert C.evaluation_dir(done) == done / "evaluation"
    assert C.evaluation_dir(done, "val") == done / "evaluation" / "val"


def test_collect_errors_are_one_line_and_named(tmp_path, cohort):
    with pytest.raises(TausynthError, match="no runs to collect"):
        C.collect_runs([], log=None)
    a = _run(tmp_path / "one", cohort, "same", predict=False)
    b = _run(tmp_path / "two", cohort, "same", predict=False)
    with pytest.raises(TausynthError, match="unique.*same"):
        C.collect_runs([a, b], log=None)
    with pytest.raises(TausynthError, match="not a run folder"):
        C.collect_runs([tmp_path], log=None)
    with pytest.raises(TausynthError, match="invalid split 'dev'"):
        C.evaluate_cached(a, split="dev", log=None)
    (a / "checkpoints" / "final_model.pt").unlink()
    with pytest.raises(TausynthError, match=r"same.*final_model\.pt: not found"):
        C.collect_runs([a], log=None)


def _metric_rows(run, model, perceptual, normalization, kind, values):
    return [{"run": run, "model": model, "perceptual": perceptual, "normalization": normalization, "seed": 1,
             "subject_id": f"s{i}", "kind": kind, "ssim": v, "psnr": 20 * v} for i, v in enumerate(values)]


def test_claim_inputs_use_suvr_space_only():
    rows = (_metric_rows("std", "unet", "cyclic", "standardize", "suvr", [0.8] * 8)
            + _metric_rows("mm", "unet", "cyclic", "minmax", "minmax", [0.99] * 8)  # own space: must be ignored
            + _metric_rows("mm", "unet", "cyclic", "minmax", "suvr_oracle", [0.7, 0.71, 0.69, 0.72, 0.68, 0.7, 0.73, 0.67]))
    metrics = pd.DataFrame(rows)
    assert set(C.suvr_metrics(metrics)["kind"]) == {"suvr", "suvr_oracle"}
    empty = pd.DataFrame()
    col = C.Collection(metrics, empty, empty, empty, empty, empty)
    verdicts = C.claim_verdicts(col)
    assert [v.claim.number for v in verdicts] == [1, 2, 3, 4]
    v3 = verdicts[2]
    # standardize (0.8) beats the oracle SUVR (~0.7) on all 8 subjects: p = 2/2^8 < 0.05
    assert v3.outcome == "reproduced"
    ssim = v3.comparisons.set_index("metric").loc["ssim"]
    assert set(v3.comparisons["n"]) == {8} and ssim["mean_baseline"] == pytest.approx(0.7)  # not 0.99
    assert verdicts[3].outcome == "inconclusive" and verdicts[3].comparisons.empty
    none = C.claim_verdicts(C.Collection(empty, empty, empty, empty, empty, empty))
    assert all(v.outcome == "inconclusive" for v in none)


@pytest.mark.slow
def test_collect_baselines_are_scored_like_runs(tmp_path, cohort):
    base = C.collect_baselines(cohort / "manifest.csv", "train", out=tmp_path / "baselines", log=None)
    assert set(base.metrics["run"]) == {"baseline-mean-image", "baseline-t1-linear", "baseline-regional-regression"}
    assert set(base.metrics["normalization"]) == {"n/a"} and set(base.runs["status"]) == {"baseline"}
    n_train = int((pd.read_csv(cohort / "manifest.csv")["split"] == "train").sum())
    assert len(base.metrics) == 3 * n_train and base.roi["region"].nunique() > 5
    paths = pd.read_csv(tmp_path / "baselines" / "mean-image" / "train" / "predictions.csv")["path"]
    images = [load_nifti(p)[0] for p in paths]
    assert all(np.array_equal(images[0], im) for im in images[1:])  # one image for everybody
    # a baseline is never taken for a model by the claims (they select standardization runs)
    for v in C.claim_verdicts(base):
        assert v.outcome == "inconclusive" and (v.comparisons.empty or (v.comparisons["n"] == 0).all())
    # a second collection reuses the stored evaluation tables (no re-scoring), with the same numbers
    stamp = tmp_path / "baselines" / "mean-image" / "train" / "evaluation" / C.STAMP
    first = stamp.stat().st_mtime_ns
    again = C.collect_baselines(cohort / "manifest.csv", "train", out=tmp_path / "baselines", log=None)
    assert stamp.stat().st_mtime_ns == first
    cols = ["run", "subject_id", "ssim", "psnr", "mae"]
    pd.testing.assert_frame_equal(again.metrics[cols], base.metrics[cols], check_dtype=False)
