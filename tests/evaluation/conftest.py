"""Shared fixtures of the evaluation tests: a tiny synthetic cohort and fake run folders."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from tausynth.io import file_sha256, load_nifti, save_nifti


@pytest.fixture(scope="session")
def cohort(tmp_path_factory):
    from tausynth.data.synthetic import write_cohort

    out = tmp_path_factory.mktemp("cohort")
    write_cohort(out, n=6, seed=3, resolution=4, progress=False)
    return out


def write_predictions(run, cohort, split, maker):
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


def _fake_run(root, cohort, name, perceptual="cyclic", maker=lambda pet: pet, status="finished", predict=True):
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
        write_predictions(run, cohort, "test", maker)
    return run


@pytest.fixture
def fake_predict(monkeypatch, cohort):
    """Replace predict_run (it needs a real checkpoint) by one that writes a noisy prediction; record calls."""
    calls = []

    def predict_run(run_dir, manifest=None, split="test", **kw):
        calls.append((run_dir.name, split))
        write_predictions(run_dir, cohort, split, lambda pet: pet + 0.05)
        return pd.read_csv(run_dir / "predictions" / split / "predictions.csv")

    monkeypatch.setattr("tausynth.training.predict_run", predict_run)
    return calls




@pytest.fixture
def make_run():
    """``make_run(root, cohort, name, perceptual="cyclic", maker=identity, status="finished", predict=True)``:
    a finished run folder (config, provenance, a stand-in checkpoint) with predictions made by ``maker``."""
    return _fake_run


@pytest.fixture
def predictions_writer():
    """``write(run, cohort, split, maker)``: predictions as ``tausynth predict`` writes them."""
    return write_predictions
