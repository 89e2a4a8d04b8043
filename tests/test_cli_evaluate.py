"""``tausynth evaluate``: tables and figures of a run, predictions made first when missing, one-line errors."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from tausynth.cli import build_parser, main
from tausynth.io import file_sha256, load_nifti, save_nifti


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    from tausynth.data.synthetic import write_cohort

    out = tmp_path_factory.mktemp("cohort")
    write_cohort(out, n=5, seed=1, resolution=4, progress=False)
    return out


def _predict(run, cohort, split, offset=0.0):
    manifest = pd.read_csv(cohort / "manifest.csv", keep_default_na=False)
    rows = []
    for _, m in manifest[manifest["split"] == split].iterrows():
        pet, affine, _ = load_nifti(cohort / m["pet"])
        path = run / "predictions" / split / f"{m['subject_id']}_suvr.nii.gz"
        save_nifti(path, pet + offset, affine)
        rows.append({"subject_id": m["subject_id"], "session": "", "kind": "suvr", "oracle": False, "path": str(path),
                     "pet": str(cohort / m["pet"]),
                     "checkpoint_sha256": file_sha256(run / "checkpoints" / "final_model.pt")})
    pd.DataFrame(rows).to_csv(run / "predictions" / split / "predictions.csv", index=False)


def _run(tmp_path, cohort, predict=True):
    run = tmp_path / "unet-cyclic-standardize-s1"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "final_model.pt").write_bytes(b"weights")
    cfg = {"model": {"name": "unet"}, "loss": {"perceptual": "cyclic"}, "normalization": "standardize",
           "training": {"seed": 1}}
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    (run / "provenance.json").write_text(json.dumps({"status": "finished",
                                                     "data": {"manifest": str(cohort / "manifest.csv")}}))
    if predict:
        _predict(run, cohort, "test")
    return run


def test_parser_defaults():
    args = build_parser().parse_args(["evaluate", "--run", "r"])
    assert (args.split, args.cut_point, args.no_figures, args.manifest, args.out) == ("test", 1.27, False, None, None)


@pytest.mark.slow
def test_evaluate_writes_tables_and_figures(tmp_path, cohort, capsys):
    run = _run(tmp_path, cohort)
    assert main(["evaluate", "--run", str(run)]) == 0
    out = capsys.readouterr().out
    assert "suvr" in out and "SSIM 1.000" in out and "MAE 0.000" in out
    assert "tau positivity (meta-temporal SUVR > 1.27): kappa 1.000" in out
    ev = run / "evaluation"
    assert f"to {ev}" in out
    for name in ("per_subject", "per_region", "agreement", "positivity", "staging", "summary"):
        assert (ev / f"{name}.csv").is_file()
    assert {p.name for p in (ev / "figures").glob("*.png")} >= {"roi_scatter.png", "bland_altman.png",
                                                                  "best_worst_subjects.png"}
    stamp = json.loads((ev / "evaluation.json").read_text())
    assert stamp["key"]["split"] == "test" and stamp["key"]["cut_point"] == 1.27


@pytest.mark.slow
def test_evaluate_options(tmp_path, cohort, capsys):
    run = _run(tmp_path, cohort)
    _predict(run, cohort, "val", offset=0.1)
    out_dir = tmp_path / "elsewhere"
    args = ["evaluate", "--run", str(run), "--split", "val", "--out", str(out_dir), "--no-figures", "--cut-point", "1.2"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "MAE 0.100" in out and "SUVR > 1.2)" in out and "wrote 7 tables and 0 figures" in out
    assert (out_dir / "per_subject.csv").is_file() and not (out_dir / "figures").exists()
    assert not (run / "evaluation").exists()


@pytest.mark.slow
def test_missing_predictions_are_made_first(tmp_path, cohort, capsys, monkeypatch):
    run = _run(tmp_path, cohort, predict=False)
    calls = []

    def predict_run(run_dir, manifest=None, split="test", **kw):
        calls.append(split)
        _predict(run_dir, cohort, split, offset=0.05)
        return pd.read_csv(run_dir / "predictions" / split / "predictions.csv")

    monkeypatch.setattr("tausynth.training.predict_run", predict_run)
    assert main(["evaluate", "--run", str(run), "--no-figures"]) == 0
    out = capsys.readouterr().out
    assert calls == ["test"]
    assert "no predictions of split 'test' yet; predicting them first" in out and "MAE 0.050" in out


def test_user_errors_are_one_line(tmp_path, cohort, capsys):
    assert main(["evaluate", "--run", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tausynth evaluate: error:") and "no config.yaml" in err[0]
    run = _run(tmp_path, cohort, predict=False)
    assert main(["evaluate", "--run", str(run), "--split", "dev"]) == 2
    assert "invalid split 'dev'; allowed: train, val, test" in capsys.readouterr().err
    assert main(["evaluate", "--run", str(run), "--cut", "nan"]) == 2
    assert "cut-point must be a finite SUVR" in capsys.readouterr().err
    assert main(["evaluate", "--run", str(run), "--manifest", str(tmp_path / "none.csv")]) == 2
    assert "none.csv: manifest not found" in capsys.readouterr().err
