"""Overfit a fixed batch with every model of the smoke profile: finite losses that decrease."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from tausynth.data.dataset import build_dataset
from tausynth.models import MODEL_NAMES, build
from tausynth.training.distributed import DistContext
from tausynth.training.engine import Engine, build_loss
from tausynth.training.inputs import PetNormalizer

pytestmark = pytest.mark.filterwarnings("ignore::tausynth.losses.PretrainedWeightsUnavailableWarning")


@pytest.fixture(scope="module")
def fixed_batch(cohort_manifest: Path) -> dict[str, torch.Tensor]:
    """One standardized training subject, cropped to 24 x 32 x 24 to keep the steps cheap."""
    from tausynth.data.manifest import load_manifest

    frame = load_manifest(cohort_manifest)
    norm = PetNormalizer.fit("standardize", frame)
    sample = build_dataset(frame, "train", augment=False, pet_transform=norm.transform, spatial_divisor=1)[0]
    crop = (slice(None), slice(8, 32), slice(8, 40), slice(8, 32))
    return {"t1": sample["t1"][crop][None], "pet": sample["pet"][crop][None]}


@pytest.mark.slow
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_overfits_a_fixed_batch(name: str, fixed_batch: dict[str, torch.Tensor], smoke_config) -> None:
    cfg = smoke_config(model={"name": name}, training={"lr": 0.002}, data={"shape": [24, 32, 24]})
    torch.manual_seed(0)
    model = build(name, cfg)
    engine = Engine(model, build_loss(cfg), cfg, torch.device("cpu"), DistContext())
    assert engine.optimizers.keys() == ({"g"} if name in ("unet", "unetr", "swinunetr") else {"g", "d"})
    losses = []
    engine.begin_epoch()
    # SwinUNETR runs at 64^3 whatever the input (MONAI 1.6.1 needs > 32): one update fewer
    for _ in range(2 if name == "swinunetr" else 3):
        terms, stepped = engine.train_step(fixed_batch, "axial", last=True)
        assert stepped
        assert all(math.isfinite(v) for v in terms.values()), terms
        losses.append(terms["loss"])
    assert terms["perceptual"] > 0  # the cyclic term is really there
    if name in ("pix2pix", "cyclegan"):
        assert {"g_total", "d_loss"} <= terms.keys()
    assert losses[-1] < losses[0], losses
    val = engine.val_step(fixed_batch, "coronal")
    assert math.isfinite(val["loss"])
    with torch.no_grad():
        out = model.eval()(fixed_batch["t1"])
    assert out.shape == fixed_batch["t1"].shape and out.dtype == torch.float32


def test_gradient_accumulation_steps_every_k_batches(fixed_batch: dict[str, torch.Tensor], smoke_config) -> None:
    cfg = smoke_config(loss={"perceptual": "none"}, training={"grad_accum_steps": 2})
    model = build("unet", cfg)
    engine = Engine(model, build_loss(cfg), cfg, torch.device("cpu"), DistContext())
    engine.begin_epoch()
    before = [p.detach().clone() for p in model.parameters()]
    _, stepped = engine.train_step(fixed_batch, "axial", last=False)
    assert not stepped and all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    _, stepped = engine.train_step(fixed_batch, "axial", last=False)
    assert stepped and not all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    _, stepped = engine.train_step(fixed_batch, "axial", last=True)  # a partial window is flushed
    assert stepped


def test_engine_state_round_trips(fixed_batch: dict[str, torch.Tensor], smoke_config) -> None:
    cfg = smoke_config(model={"name": "pix2pix"}, loss={"perceptual": "none"})
    engine = Engine(build("pix2pix", cfg), build_loss(cfg), cfg, torch.device("cpu"), DistContext())
    engine.begin_epoch()
    engine.train_step(fixed_batch, "axial", last=True)
    engine.step_schedulers()
    other = Engine(build("pix2pix", cfg), build_loss(cfg), cfg, torch.device("cpu"), DistContext())
    other.load_state_dict(engine.state_dict())
    assert other.lr == engine.lr == 0.0  # T_max = 1: after one epoch the cosine is at eta_min
    assert other.optimizers["d"].state_dict()["state"].keys() == engine.optimizers["d"].state_dict()["state"].keys()
    assert engine.optimizers["g"].param_groups[0]["betas"] == (0.5, 0.999)


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")
def test_discriminator_learning_rate_is_its_own_and_follows_the_cosine(smoke_config) -> None:
    cfg = smoke_config(model={"name": "cyclegan"}, training={"lr": 2e-3, "d_lr": 2e-4, "cycle_duration": 4})
    engine = Engine(build("cyclegan", cfg), build_loss(cfg), cfg, torch.device("cpu"), DistContext())
    lrs = lambda: {k: o.param_groups[0]["lr"] for k, o in engine.optimizers.items()}  # noqa: E731
    assert lrs() == {"g": 2e-3, "d": 2e-4}
    engine.step_schedulers()  # T_max = 2: halfway down the cosine, for both
    assert lrs() == pytest.approx({"g": 1e-3, "d": 1e-4})
    same = smoke_config(model={"name": "pix2pix"}, training={"lr": 2e-3})
    engine = Engine(build("pix2pix", same), build_loss(same), same, torch.device("cpu"), DistContext())
    assert lrs() == {"g": 2e-3, "d": 2e-3}  # the default: the generators' rate


def test_discriminator_learning_rate_must_be_positive(smoke_config) -> None:
    from tausynth.errors import TausynthError

    with pytest.raises(TausynthError, match="training.d_lr"):
        smoke_config(training={"d_lr": 0})


def test_build_loss_passes_the_3d_weights_through(smoke_config) -> None:
    loss = build_loss(smoke_config(loss={"perceptual": "3d", "weights": "random"}))
    assert loss.mode == "3d" and loss.weights_source == "random"


@pytest.mark.parametrize(("ssim", "expected"), [({}, 2.0), ({"ssim_data_range": 4.0}, 4.0), ({"ssim_range": "target"}, "target")])
def test_build_loss_ssim_range(smoke_config, ssim: dict, expected: float | str) -> None:
    assert build_loss(smoke_config(loss={"perceptual": "none", **ssim})).ssim.data_range == expected
