"""Evaluating a run folder end to end on a small synthetic cohort with hand-made predictions."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import yaml

from tausynth.errors import TausynthError
from tausynth.evaluation import evaluate as E
from tausynth.io import load_nifti, save_nifti
from tausynth.suvr import minmax_normalize


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    from tausynth.data.synthetic import write_cohort

    out = tmp_path_factory.mktemp("cohort")
    write_cohort(out, n=6, seed=3, resolution=4, progress=False)
    return out


def _run(tmp_path, cohort, kind_maker, normalization="standardize"):
    run = tmp_path / "unet-cyclic-s1"
    (run / "predictions" / "test").mkdir(parents=True)
    cfg = {"model": {"name": "unet"}, "loss": {"perceptual": "cyclic"}, "normalization": normalization,
           "training": {"seed": 1}}
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    (run / "provenance.json").write_text(json.dumps({"data": {"manifest": str(cohort / "manifest.csv")}}))
    manifest = pd.read_csv(cohort / "manifest.csv", keep_default_na=False)
    rows = []
    for _, m in manifest.iterrows():
        pet, affine, _ = load_nifti(cohort / m["pet"])
        for kind, volume in kind_maker(pet, load_nifti(cohort / m["pet_gt"])[0]).items():
            path = run / "predictions" / "test" / f"{m['subject_id']}_{kind}.nii.gz"
            save_nifti(path, volume, affine)
            rows.append({"subject_id": m["subject_id"], "session": "", "kind": kind, "oracle": kind == "suvr_oracle",
                         "path": str(path)})
    pd.DataFrame(rows).to_csv(run / "predictions" / "test" / "predictions.csv", index=False)
    return run


@pytest.mark.slow
def test_perfect_prediction_end_to_end(tmp_path, cohort):
    run = _run(tmp_path, cohort, lambda pet, gt: {"suvr": pet})
    ev = E.evaluate_run(run)
    from tausynth.data.manifest import load_manifest
    from tausynth.plotting.evaluation import write_run_figures

    predictions = pd.read_csv(run / "predictions" / "test" / "predictions.csv", keep_default_na=False)
    manifest = load_manifest(json.loads((run / "provenance.json").read_text())["data"]["manifest"])
    ev.files += write_run_figures(ev, run / "evaluation" / "figures", E.prediction_files(predictions, manifest))
    s = ev.per_subject
    assert len(s) == 6 and set(s["model"]) == {"unet"} and set(s["perceptual"]) == {"cyclic"}
    assert np.allclose(s["ssim"], 1.0, atol=1e-9) and (s["mae"] == 0).all()
    assert (s["psnr"] == math.inf).all()
    overall = ev.agreement[ev.agreement["group"] == "all"].set_index("region")
    assert np.allclose(overall.loc[["metatemporal", "braak1", "braak34"], "pearson_r"], 1.0)
    assert (overall["mae"] == 0).all()
    assert ev.positivity.loc[ev.positivity["group"] == "all", "kappa"].item() == 1.0
    assert (ev.staging["stage_real"] == ev.staging["stage_synthetic"]).all()
    assert "stage_true" in ev.staging
    names = {p.name for p in ev.files}
    assert {"per_subject.csv", "per_region.csv", "agreement.csv", "positivity.csv", "staging.csv",
            "summary.csv", "roi_scatter.png", "bland_altman.png", "staging_confusion.png",
            "best_worst_subjects.png"} <= names
    csv = pd.read_csv(run / "evaluation" / "per_subject.csv")
    assert np.isinf(csv["psnr"]).all()  # "inf" survives the CSV round trip


@pytest.mark.slow
def test_imperfect_and_minmax_predictions(tmp_path, cohort):
    def kinds(pet, gt):
        return {"minmax": minmax_normalize(pet), "suvr_oracle": gt}

    run = _run(tmp_path, cohort, kinds, normalization="minmax")
    ev = E.evaluate_run(run)
    mm = ev.per_subject[ev.per_subject["kind"] == "minmax"]
    assert (mm["space"] == "minmax").all() and (mm["data_range"] == 1.0).all()
    assert (mm["mae"] < 1e-6).all()  # float32 file vs float64 scaling of the target
    orc = ev.per_subject[ev.per_subject["kind"] == "suvr_oracle"]
    assert orc["oracle"].all() and (orc["ssim"] < 1).all() and np.isfinite(orc["psnr"]).all()
    assert set(ev.per_region["kind"]) == {"suvr_oracle"}  # ROI analysis only on SUVR predictions
    # region means of the ground truth agree closely with the noisy observed PET, but not exactly
    meta = ev.per_region[ev.per_region["region"] == "metatemporal"]
    assert 0 < meta["difference"].abs().max() < 0.5


@pytest.mark.slow
def test_errors_are_one_line_and_name_the_problem(tmp_path, cohort):
    run = _run(tmp_path, cohort, lambda pet, gt: {"suvr": pet[:-1]})
    with pytest.raises(TausynthError, match="is not on the grid of the real PET"):
        E.evaluate_run(run)
    with pytest.raises(TausynthError, match="not found; run `tausynth predict"):
        E.evaluate_run(run, split="val")
    with pytest.raises(TausynthError, match="not a run folder"):
        E.evaluate_run(tmp_path)
