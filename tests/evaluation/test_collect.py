"""Collecting several runs: variant columns, one-line errors, claim inputs, baselines scored like runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tausynth.errors import TausynthError
from tausynth.evaluation import collect as C
from tausynth.io import load_nifti


@pytest.mark.slow
def test_collect_concatenates_runs_with_variant_columns(tmp_path, cohort, fake_predict, make_run):
    rng = np.random.default_rng(0)
    perfect = make_run(tmp_path, cohort, "unet-cyclic")
    noisy = make_run(tmp_path, cohort, "unet-none", "none", lambda pet: pet + rng.normal(0, 0.1, pet.shape).astype(np.float32))
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


def test_collect_errors_are_one_line_and_named(tmp_path, cohort, make_run):
    with pytest.raises(TausynthError, match="no runs to collect"):
        C.collect_runs([], log=None)
    a = make_run(tmp_path / "one", cohort, "same", predict=False)
    b = make_run(tmp_path / "two", cohort, "same", predict=False)
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
