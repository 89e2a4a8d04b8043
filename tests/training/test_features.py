"""The perceptual network of a run: weights policy, calibration, in-domain cache, provenance."""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import pandas as pd
import pytest
import torch

from tausynth.data.manifest import load_manifest, split_frame
from tausynth.errors import TausynthError
from tausynth.losses import PretrainedWeightsUnavailableWarning
from tausynth.training import features as feat
from tausynth.training.features import build_perceptual_features


@pytest.fixture(scope="module")
def frame(cohort_manifest: Path) -> pd.DataFrame:
    return load_manifest(cohort_manifest)


@pytest.fixture(autouse=True)
def _no_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # no ImageNet / MedicalNet file


def test_no_perceptual_term_has_no_network(smoke_config, frame) -> None:
    source = build_perceptual_features(smoke_config(loss={"perceptual": "none"}), frame)
    assert source.features is None and source.record == {"source": None}


def test_auto_offline_falls_back_to_calibrated_with_a_warning(smoke_config, frame) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from tausynth.losses import _weights

        _weights._WARNED.clear()
        source = build_perceptual_features(smoke_config(loss={"perceptual": "cyclic", "weights": "auto"}), frame)
    assert any(issubclass(w.category, PretrainedWeightsUnavailableWarning) and "'calibrated'" in str(w.message)
               for w in caught)
    rec = source.record
    assert rec["source"] == "calibrated" and rec["requested"] == "auto" and len(rec["calibration_scales"]) == 10
    assert source.features.weights_source == "calibrated" and len(rec["sha256"]) == 64


def test_calibration_is_deterministic_and_lifts_the_feature_scale(smoke_config, frame) -> None:
    cfg = smoke_config(loss={"perceptual": "2d", "weights": "calibrated"})
    a, b = build_perceptual_features(cfg, frame), build_perceptual_features(cfg, frame)
    assert a.record["sha256"] == b.record["sha256"]
    rand = build_perceptual_features(smoke_config(loss={"perceptual": "2d", "weights": "random"}), frame)
    assert rand.record["source"] == "random" and rand.record["sha256"] != a.record["sha256"]
    x = torch.rand(4, 3, 40, 48)
    with torch.no_grad():
        assert a.features(x).pow(2).mean().sqrt() > 10 * rand.features(x).pow(2).mean().sqrt()


def test_3d_calibrated(smoke_config, frame) -> None:
    source = build_perceptual_features(smoke_config(loss={"perceptual": "3d", "weights": "calibrated"}), frame)
    assert source.record["source"] == "calibrated" and source.record["calibration_volumes"] >= 1
    assert source.features.weights_source == "calibrated"


@pytest.mark.parametrize(("mode", "weights"), [("3d", "imagenet"), ("3d", "indomain"), ("cyclic", "medicalnet")])
def test_weights_that_do_not_fit_the_term_are_named(smoke_config, mode: str, weights: str) -> None:
    with pytest.raises(TausynthError, match=f"loss.weights': '{weights}' is for the"):
        smoke_config(loss={"perceptual": mode, "weights": weights})


@pytest.mark.slow
def test_indomain_network_is_cached_by_content_and_shared(smoke_config, frame, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(feat, "PretrainConfig", _small)  # a few steps: the cache is under test, not the net
    cfg = smoke_config(loss={"perceptual": "cyclic", "weights": "indomain", "indomain_objective": "labels"})
    lines: list[str] = []
    first = build_perceptual_features(cfg, frame, root=tmp_path, log=lines.append)
    assert first.record["cached"] is False and first.record["pretraining"]["config"]["objective"] == "labels"
    assert len(first.record["pretraining"]["calibration_scales"]) == 10
    assert any("pretraining an in-domain VGG16" in line for line in lines)
    folder = tmp_path / "data" / "smoke" / "features"
    files = sorted(p.name for p in folder.glob("*.pt"))
    # the pretrained network (keyed by the slices' content) and the run's network made from it
    assert len(files) == 2 and first.record["cache_file"] in files
    lines.clear()
    second = build_perceptual_features(cfg, frame, root=tmp_path, log=lines.append)
    assert second.record["cached"] is True and second.record["sha256"] == first.record["sha256"]
    assert second.record["pretraining"] == first.record["pretraining"] and not lines
    # another objective is another network
    other = build_perceptual_features(smoke_config(loss={"weights": "indomain", "indomain_objective": "denoise"}),
                                      frame, root=tmp_path, log=lines.append)
    assert other.record["sha256"] != first.record["sha256"] and len(list(folder.glob("*.pt"))) == 4


def test_calibrated_network_is_shared_and_follows_its_data(smoke_config, frame, cohort_manifest, tmp_path) -> None:
    cfg = smoke_config(loss={"perceptual": "cyclic", "weights": "calibrated", "perceptual_balance": 0.25})
    first = build_perceptual_features(cfg, frame, root=tmp_path)
    again = build_perceptual_features(cfg, frame, root=tmp_path)
    assert (first.record["cached"], again.record["cached"]) == (False, True)
    assert again.record["sha256"] == first.record["sha256"] and again.record["balance"] == first.record["balance"]
    # a training PET that changes on disk (same path) makes a new network, never a stale one
    copy = tmp_path / "cohort"
    shutil.copytree(cohort_manifest.parent, copy)
    moved = load_manifest(copy / cohort_manifest.name)  # relative paths: the copy's own images
    third = build_perceptual_features(cfg, moved, root=tmp_path)
    pet = Path(split_frame(moved, "train")["pet"].iloc[0])
    os.utime(pet, ns=(pet.stat().st_atime_ns, pet.stat().st_mtime_ns + 10**9))
    fourth = build_perceptual_features(cfg, moved, root=tmp_path)
    assert third.record["cache_file"] != fourth.record["cache_file"] and fourth.record["cached"] is False


def test_3d_balance_survives_the_cache(smoke_config, frame, tmp_path) -> None:
    cfg = smoke_config(loss={"perceptual": "3d", "weights": "calibrated", "perceptual_balance": 0.5})
    first = build_perceptual_features(cfg, frame, root=tmp_path)
    again = build_perceptual_features(cfg, frame, root=tmp_path)
    assert again.record["cached"] and again.features.loss_scale == pytest.approx(first.record["balance"]["factor"])


def _small(**kw):
    from tausynth.losses.indomain import PretrainConfig

    return PretrainConfig(**{**kw, "steps": 4, "batch_size": 4})


@pytest.mark.parametrize("mode", ["2.5d", "3d"])
def test_balance_sets_the_term_against_the_mean_image_mse(smoke_config, frame, mode: str) -> None:
    from tausynth.losses import PerceptualLoss
    from tausynth.losses.ssim import SeparableSSIMLoss
    from tausynth.training.inputs import PetNormalizer

    cfg = smoke_config(loss={"perceptual": mode, "weights": "calibrated", "perceptual_balance": 0.5})
    source = build_perceptual_features(cfg, frame)
    bal = source.record["balance"]
    assert bal["factor"] > 0 and bal["subjects"] >= 1
    # recompute on the same subjects: gamma * L_perc(mean, x) = r * [alpha * MSE + beta * (1 - SSIM)](mean, x)
    vols, _ = feat._training_volumes(frame, labels=False, transform=PetNormalizer.fit("standardize", frame).transform)
    mean = torch.stack(vols).mean(0)[None]
    pick = torch.linspace(0, len(vols) - 1, min(feat.CALIBRATION_VOLUMES, len(vols))).long().tolist()
    term = PerceptualLoss("3d" if mode == "3d" else "2.5d", features=source.features)
    ssim = SeparableSSIMLoss(data_range=cfg.loss.ssim_data_range)
    with torch.no_grad():
        perc = sum(float(term(mean, vols[i][None])) for i in pick)
        others = sum(cfg.loss.alpha * float(torch.nn.functional.mse_loss(mean, vols[i][None]))
                     + cfg.loss.beta * float(ssim(mean, vols[i][None])) for i in pick)
    assert cfg.loss.gamma * perc == pytest.approx(0.5 * others, rel=0.05)  # bf16 in the balance


def test_no_balance_by_default(smoke_config, frame) -> None:
    assert "balance" not in build_perceptual_features(smoke_config(loss={"weights": "calibrated"}), frame).record


@pytest.mark.parametrize(("key", "value"), [("perceptual_balance", 0), ("perceptual_balance", -1.0), ("indomain_steps", 0)])
def test_offline_feature_options_are_validated(smoke_config, key: str, value: float) -> None:
    with pytest.raises(TausynthError, match=f"config field 'loss.{key}'"):
        smoke_config(loss={key: value})


def test_a_code_change_makes_a_new_network(smoke_config, frame, tmp_path, monkeypatch) -> None:
    cfg = smoke_config(loss={"perceptual": "cyclic", "weights": "calibrated"})
    first = build_perceptual_features(cfg, frame, root=tmp_path)
    monkeypatch.setattr(feat, "_source_digest", lambda: "edited")
    second = build_perceptual_features(cfg, frame, root=tmp_path)
    assert second.record["cached"] is False and second.record["cache_file"] != first.record["cache_file"]
