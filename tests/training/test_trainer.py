"""End-to-end training on the smoke cohort: run folder, paper semantics, exact resume, predictions."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from tausynth.config import Config, load_config, load_profile
from tausynth.data.manifest import load_manifest
from tausynth.errors import TausynthError
from tausynth.losses.schedule import plane_at_epoch
from tausynth.suvr import ManufacturerStandardizer
from tausynth.training import (
    TrainingInterrupted,
    load_checkpoint,
    predict_run,
    read_provenance,
    train,
)
from tausynth.training.trainer import validation_terms

# Dropout and augmentation on, so that resuming must restore every random stream. No perceptual
# term here to keep the tests fast (the plane still drives the best-loss resets and is checked);
# the book-template tests train with the cyclic loss.
SECTIONS = {
    "model": {"dropout": 0.2},
    "data": {"augment": True},
    "loss": {"perceptual": "none"},
    "training": {"max_epochs": 4, "batch_size": 1, "batches_per_epoch": 2},
}
pytestmark = pytest.mark.filterwarnings("ignore::tausynth.losses.PretrainedWeightsUnavailableWarning")


def config(**extra: dict) -> Config:
    sections = {k: dict(v) for k, v in SECTIONS.items()}
    for k, v in extra.items():
        sections.setdefault(k, {}).update(v)
    return load_profile("smoke", sections)


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory: pytest.TempPathFactory, cohort_manifest: Path):
    """An uninterrupted 4-epoch U-Net run (standardization)."""
    run_dir = tmp_path_factory.mktemp("runs") / "reference"
    result = train(config(), run_dir, manifest=cohort_manifest, progress=False, log=lambda s: None)
    return run_dir, result


def params(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / "checkpoints" / "final_model.pt")["model"]


@pytest.mark.slow
def test_run_folder_follows_the_paper(reference_run) -> None:
    run_dir, result = reference_run
    cfg = config()
    assert load_config(run_dir / "config.yaml") == cfg
    m = pd.read_csv(run_dir / "metrics.csv")
    assert list(m["epoch"]) == [0, 1, 2, 3]
    assert list(m["plane"]) == [plane_at_epoch(e, 4, 2, "2/3") for e in range(4)] == ["axial", "axial", "coronal", "coronal"]
    assert list(m["phase_start"]) == [True, False, True, False]
    # best validation loss is reset at the plane switch: the phase's first epoch always improves
    assert m.loc[m["phase_start"], "improved"].all()
    # CosineAnnealingLR(T_max=int((2 + 0.5) / 2) = 1), stepped per epoch
    assert np.allclose(m["lr"], [0.002, 0.0, 0.002, 0.0])
    assert (m["steps"] == 2).all() and (m["samples"] == 2).all()
    for col in ("train_loss", "train_mse", "train_ssim_loss", "train_perceptual", "val_loss", "val_mse"):
        assert np.isfinite(m[col]).all(), col
    prov = read_provenance(run_dir)
    assert prov["status"] == "finished" and prov["stop_reason"] == "max_epochs"
    assert prov["epochs_done"] == 4 and prov["steps_done"] == 8
    assert prov["perceptual_weights"] is None  # no perceptual term
    assert prov["standardizer"]["kind"] and prov["data"]["manifest_sha256"]
    assert prov["environment"]["torch"] == torch.__version__
    # one axial phase: the official rule counts from epoch 1 (phases of 2 epochs never reach patience 2)
    assert prov["schedule"]["early_stopping"] == "official" and prov["schedule"]["early_stopping_counts_from"] == 1
    ckpts = {p.name for p in (run_dir / "checkpoints").iterdir()}
    assert {"final_model.pt", "best_since_switch.pt"} <= ckpts
    best = load_checkpoint(run_dir / "checkpoints" / "best_since_switch.pt")
    assert best["state"]["best_epoch"] == int(m.loc[m["improved"], "epoch"].iloc[-1])
    assert result.state.stopped == "max_epochs" and "4/4 epochs" in result.summary


@pytest.mark.slow
def test_interrupted_and_resumed_run_equals_the_uninterrupted_one(
    reference_run, tmp_path: Path, cohort_manifest: Path
) -> None:
    ref_dir, _ = reference_run
    run_dir = tmp_path / "interrupted"

    def ctrl_c(epoch: int, batch: dict) -> None:
        if epoch == 2:  # mid-epoch, after the checkpoint of epoch 1 and right at the plane switch
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted, match="resume"):
        train(config(), run_dir, manifest=cohort_manifest, progress=False, log=lambda s: None, on_batch=ctrl_c)
    assert load_checkpoint(run_dir / "checkpoints" / "interrupted.pt")["complete"] is False
    assert read_provenance(run_dir)["status"] == "interrupted"
    assert len(pd.read_csv(run_dir / "metrics.csv")) == 2

    result = train(config(), run_dir, manifest=cohort_manifest, resume=True, progress=False, log=lambda s: None)
    assert result.resumed and result.epochs_this_call == 2
    # the Ctrl-C snapshot is gone once the run has moved past it (it used to stay)
    assert not (run_dir / "checkpoints" / "interrupted.pt").exists()
    a, b = params(ref_dir), params(run_dir)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    opt_a = load_checkpoint(ref_dir / "checkpoints" / "final_model.pt")["optimizers"]["g"]["state"]
    opt_b = load_checkpoint(run_dir / "checkpoints" / "final_model.pt")["optimizers"]["g"]["state"]
    assert all(torch.equal(opt_a[i]["exp_avg"], opt_b[i]["exp_avg"]) for i in opt_a)
    cols = ["epoch", "plane", "lr", "train_loss", "val_loss", "best_val", "improved"]
    pd.testing.assert_frame_equal(pd.read_csv(ref_dir / "metrics.csv")[cols], pd.read_csv(run_dir / "metrics.csv")[cols])
    assert len(read_provenance(run_dir)["sessions"]) == 2

    # resuming a finished run does nothing
    again = train(config(), run_dir, manifest=cohort_manifest, resume=True, progress=False, log=lambda s: None)
    assert again.epochs_this_call == 0 and again.state.stopped == "max_epochs"


@pytest.mark.slow
def test_predictions_are_suvr_on_the_subject_grid(reference_run, tmp_path: Path, cohort_manifest: Path) -> None:
    run_dir, _ = reference_run
    table = predict_run(run_dir, split="test", out=tmp_path / "pred", log=None)
    frame = load_manifest(cohort_manifest)
    test = frame[frame["split"] == "test"]
    assert len(table) == len(test) and set(table["kind"]) == {"suvr"} and not table["oracle"].any()
    std = ManufacturerStandardizer.from_dict(read_provenance(run_dir)["standardizer"])
    for row in table.itertuples():
        img = nib.load(row.path)
        t1 = nib.load(row.t1)
        assert img.shape == t1.shape
        assert np.allclose(img.affine, t1.affine)
        assert img.get_data_dtype() == np.float32
        data = img.get_fdata(dtype=np.float32)
        assert np.isfinite(data).all()
        # inverse standardization with the subject's manufacturer: back in model space it is the
        # network output, whose background (T1 = 0) the trained U-Net maps near the PET background
        z = std.transform(data, row.manufacturer)
        assert np.allclose(std.inverse(z, row.manufacturer), data, atol=1e-4)
    assert (tmp_path / "pred" / "predictions.csv").is_file()


def test_existing_run_folder_is_never_overwritten_silently(tmp_path: Path, cohort_manifest: Path) -> None:
    from tausynth.training import prepare_run_dir

    run_dir = tmp_path / "run"
    assert prepare_run_dir(run_dir, config()) == "new"
    with pytest.raises(TausynthError, match="already holds a run with this config") as info:
        prepare_run_dir(run_dir, config())
    assert "\n" not in str(info.value)
    with pytest.raises(TausynthError, match=r"different config \(differs in: training\.lr\)"):
        train(config(training={"lr": 0.1}), run_dir, manifest=cohort_manifest, progress=False)
    with pytest.raises(TausynthError, match=r"cannot resume .* differs in model\.name"):
        prepare_run_dir(run_dir, config(model={"name": "unetr"}), resume=True)
    assert prepare_run_dir(run_dir, config(training={"max_epochs": 8}), resume=True) == "new"  # no checkpoint yet
    assert prepare_run_dir(run_dir, config(training={"lr": 0.1}), overwrite=True) == "new"
    assert load_config(run_dir / "config.yaml").training.lr == 0.1
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    with pytest.raises(TausynthError, match="not a tausynth run folder"):
        prepare_run_dir(stranger, config(), overwrite=True)
    assert (stranger / "notes.txt").is_file()


@pytest.mark.slow
def test_minmax_run_writes_minmax_and_flagged_oracle(tmp_path: Path, cohort_manifest: Path) -> None:
    cfg = load_profile(
        "smoke",
        {"normalization": "minmax", "loss": {"perceptual": "none"}, "training": {"max_epochs": 1}},
    )
    run_dir = tmp_path / "mm"
    train(cfg, run_dir, manifest=cohort_manifest, progress=False, log=lambda s: None)
    prov = json.loads((run_dir / "provenance.json").read_text())
    assert prov["standardizer"] is None and prov["perceptual_weights"] is None
    table = predict_run(run_dir, split="val", log=None)
    assert sorted(table["kind"]) == ["minmax", "suvr_oracle"]
    oracle = table[table["oracle"]].iloc[0]
    assert oracle["path"].endswith("_suvr_ORACLE.nii.gz")
    mm = nib.load(table[~table["oracle"]].iloc[0]["path"]).get_fdata()
    suvr = nib.load(oracle["path"]).get_fdata()
    pet = nib.load(oracle["pet"]).get_fdata()
    lo, hi = pet.min(), pet.max()
    assert np.allclose(suvr, mm * (hi - lo) + lo, atol=1e-4)


def test_non_finite_training_loss_stops_with_a_one_line_error(tmp_path: Path, cohort_manifest: Path) -> None:
    def poison(epoch: int, batch: dict) -> None:
        if epoch == 1:
            batch["t1"].fill_(float("nan"))

    run_dir = tmp_path / "nan"
    with pytest.raises(TausynthError, match=r"training loss is not finite in epoch 2 \(kept the checkpoint of epoch 1") as info:
        train(config(), run_dir, manifest=cohort_manifest, progress=False, log=lambda s: None, on_batch=poison)
    assert "\n" not in str(info.value)
    # the last good epoch is kept and the run is marked failed, not finished
    assert read_provenance(run_dir)["status"] == "failed"
    assert (run_dir / "checkpoints" / "final_model.pt").is_file()
    assert len(pd.read_csv(run_dir / "metrics.csv")) == 1


def test_time_bound_is_recorded_and_a_book_page_reuses_the_bounded_run(tmp_path: Path, cohort_manifest: Path) -> None:
    cfg = config(training={"max_minutes": 1e-6})  # stops after the first epoch
    run_dir = tmp_path / "bounded"
    first = train(cfg, run_dir, manifest=cohort_manifest, progress=False, log=lambda s: None)
    prov = read_provenance(run_dir)
    assert (first.state.stopped, prov["stop_reason"], prov["epochs_done"]) == ("time_limit", "time_limit", 1)
    assert prov["time_limit_minutes"] == 1e-6 and prov["steps_done"] == 2
    # the book's pages: reused as it is
    again = train(cfg, run_dir, manifest=cohort_manifest, resume=True, extend_time_limited=False,
                  progress=False, log=lambda s: None)
    assert again.epochs_this_call == 0 and read_provenance(run_dir)["epochs_done"] == 1
    # the CLI's --resume: the bound is per call, so it trains for another bound
    more = train(cfg, run_dir, manifest=cohort_manifest, resume=True, progress=False, log=lambda s: None)
    assert more.epochs_this_call == 1 and read_provenance(run_dir)["epochs_done"] == 2


def test_non_finite_weights_are_caught_by_the_validation_loss(
    tmp_path: Path, cohort_manifest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tausynth.training import engine as engine_module

    original = engine_module.Engine.train_step

    def poisoned(self, batch, plane, last=False):  # the epoch's last step leaves NaN weights behind
        out = original(self, batch, plane, last=last)
        if last:
            with torch.no_grad():
                for p in self.model.parameters():
                    p.fill_(float("nan"))
        return out

    monkeypatch.setattr(engine_module.Engine, "train_step", poisoned)
    run_dir = tmp_path / "nan-weights"
    with pytest.raises(TausynthError, match=r"validation loss is not finite in epoch 1"):
        train(config(), run_dir, manifest=cohort_manifest, progress=False, log=lambda s: None)
    assert read_provenance(run_dir)["status"] == "failed"


@pytest.mark.parametrize("name", ["unet", "swinunetr", "cyclegan"])
def test_init_output_bias_starts_the_network_at_the_training_mean(name: str, cohort_manifest: Path) -> None:
    from tausynth.models import build, output_layer
    from tausynth.training import init_output_bias

    cfg = config(model={"name": name, "feature_size": 12, "depths": [1, 1, 1, 1]})
    model = build(name, cfg)
    pets = [torch.full((1, 4, 4, 4), 2.0), torch.full((1, 4, 4, 4), -1.0), torch.full((1, 2, 4, 4), 5.0)]
    value = init_output_bias(model, [{"pet": p} for p in pets])
    assert value == pytest.approx((64 * 2.0 - 64 * 1.0 + 32 * 5.0) / 160)  # voxel-weighted mean
    layer = output_layer(model)
    assert layer.out_channels == 1 and torch.all(layer.bias == torch.tensor(value))


def test_init_output_bias_in_a_run_is_recorded_and_kept_on_resume(tmp_path: Path, cohort_manifest: Path) -> None:
    cfg = config(training={"init_output_bias": True, "max_epochs": 2, "lr": 1e-12})
    run_dir = tmp_path / "bias"
    train(cfg, run_dir, manifest=cohort_manifest, progress=False, log=lambda s: None, stop_after=1)
    value = read_provenance(run_dir)["output_bias_init"]
    # standardized SUVR: 0 in the background, most of each volume, is far below the brain's mean
    assert value < -1.0
    bias = [v for k, v in params(run_dir).items() if k.endswith("bias") and v.numel() == 1]
    assert bias and float(bias[-1]) == pytest.approx(value, abs=1e-6)  # lr ~ 0: still the initial value
    train(cfg, run_dir, manifest=cohort_manifest, resume=True, progress=False, log=lambda s: None)
    assert read_provenance(run_dir)["output_bias_init"] == value
    off = tmp_path / "off"
    train(config(training={"max_epochs": 1}), off, manifest=cohort_manifest, progress=False, log=lambda s: None)
    assert read_provenance(off)["output_bias_init"] is None


def test_early_stopping_rule_reaches_the_schedule_and_the_provenance(tmp_path: Path, cohort_manifest: Path) -> None:
    cfg = config(training={"max_epochs": 1, "early_stopping": "third_axial"})
    train(cfg, tmp_path / "run", manifest=cohort_manifest, progress=False, log=lambda s: None)
    schedule = read_provenance(tmp_path / "run")["schedule"]
    assert schedule["early_stopping"] == "third_axial" and schedule["early_stopping_counts_from"] is None
    assert "never triggers" in schedule["early_stopping_note"]


# A validation split of 5 scans in batches of 2: the last batch holds one scan.
PARTIAL_LAST_BATCH = [({"loss": 1.0, "mse": 0.5}, 2), ({"loss": 2.0, "mse": 0.5}, 2), ({"loss": 6.0, "mse": 2.0}, 1)]


@pytest.mark.parametrize(
    ("reduction", "loss", "mse", "count"),
    [
        ("batch_mean", (1.0 + 2.0 + 6.0) / 3, (0.5 + 0.5 + 2.0) / 3, 3),  # the official code
        ("sample_mean", (2 * 1.0 + 2 * 2.0 + 6.0) / 5, (1.0 + 1.0 + 2.0) / 5, 5),
    ],
)
def test_validation_loss_reduction_with_a_partial_last_batch(reduction: str, loss: float, mse: float, count: int) -> None:
    terms, n = validation_terms(PARTIAL_LAST_BATCH, reduction)
    assert terms["loss"] == pytest.approx(loss) and terms["mse"] == pytest.approx(mse) and n == count
    assert set(terms) == {"loss", "mse", "ssim_loss", "perceptual"}


def test_validation_loss_defaults_to_the_official_batch_mean() -> None:
    assert Config().training.val_reduction == "batch_mean"
    assert validation_terms(PARTIAL_LAST_BATCH)[0]["loss"] == pytest.approx(3.0)
    with pytest.raises(TausynthError, match=r"'training\.val_reduction': unknown value 'median'"):
        validation_terms(PARTIAL_LAST_BATCH, "median")
    with pytest.raises(TausynthError, match=r"'training\.val_reduction': unknown value 'median'"):
        config(training={"val_reduction": "median"})
