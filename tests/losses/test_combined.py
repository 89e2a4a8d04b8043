"""Total loss α·MSE + β·(1 − SSIM) + γ·perceptual."""

from __future__ import annotations

import pytest
import torch
from monai.losses import SSIMLoss
from torch import nn

from tausynth.losses import _weights
from tausynth.losses._weights import PretrainedWeightsUnavailableWarning
from tausynth.losses.combined import CombinedLoss, LossComponents
from tausynth.losses.perceptual import PerceptualLoss, SlicePerceptualLoss


def small_features() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())


def vols(seed=0, shape=(2, 1, 16, 14, 12)):
    gen = torch.Generator().manual_seed(seed)
    t = torch.rand(shape, generator=gen) * 2 - 1
    return (t + 0.1 * torch.randn(shape, generator=gen)).clamp(-1, 1), t


def test_total_is_weighted_sum_of_components():
    feats = small_features()
    pred, target = vols()
    loss = CombinedLoss(0.3, 0.7, 2.0, perceptual="cyclic", features=feats)
    out = loss(pred, target, "coronal")
    assert isinstance(out, LossComponents)
    mse = torch.mean((pred - target) ** 2)
    ssim = SSIMLoss(spatial_dims=3, data_range=2.0)(pred, target)
    perc = SlicePerceptualLoss(feats)(pred, target, "coronal")
    assert float(out.mse) == pytest.approx(float(mse), rel=1e-6)
    assert float(out.ssim) == pytest.approx(float(ssim), rel=1e-5)  # MONAI's, to float32 rounding
    assert float(out.perceptual) == pytest.approx(float(perc), rel=1e-6)
    assert float(out.total) == pytest.approx(0.3 * float(mse) + 0.7 * float(out.ssim) + 2.0 * float(perc), rel=1e-6)
    assert set(out.as_floats()) == {"loss", "mse", "ssim_loss", "perceptual"}
    assert out.as_floats()["loss"] == pytest.approx(float(out.total))


def test_paper_defaults_and_data_range():
    loss = CombinedLoss(perceptual="none")
    assert (loss.alpha, loss.beta, loss.gamma) == (1.0, 1.0, 0.5)
    assert loss.ssim.data_range == 2.0 and loss.ssim.win_size == 11
    pred, target = vols(seed=1)
    wide = CombinedLoss(perceptual=None, data_range=10.0)(pred, target)
    narrow = loss(pred, target)
    # a larger data range raises the SSIM constants, so the images look more similar
    assert float(wide.ssim) < float(narrow.ssim)
    assert float(narrow.perceptual) == 0.0
    assert float(narrow.total) == pytest.approx(float(narrow.mse) + float(narrow.ssim), rel=1e-6)
    assert loss.weights_source is None and loss.mode == "none"


@pytest.mark.parametrize("data_range", [2.0, "target"])
def test_ssim_data_range_fixed_or_from_the_target(data_range):
    pred, target = vols(seed=3)
    target = target * torch.tensor([1.0, 3.0]).view(2, 1, 1, 1, 1)  # two different target ranges
    out = CombinedLoss(perceptual=None, data_range=data_range)(pred, target)
    ranges = [2.0] * 2 if data_range == 2.0 else [float(t.max() - t.min()) for t in target]
    ref = sum(float(SSIMLoss(spatial_dims=3, data_range=r)(pred[i : i + 1], target[i : i + 1])) for i, r in enumerate(ranges)) / 2
    assert float(out.ssim) == pytest.approx(ref, rel=1e-5)
    assert CombinedLoss(perceptual=None, data_range=data_range).data_range == data_range


def test_identical_volumes_give_zero():
    _, target = vols(seed=2)
    out = CombinedLoss(perceptual="2.5d", features=small_features())(target, target)
    assert float(out.total) == pytest.approx(0.0, abs=1e-5)


def test_gradient_flows_and_plane_is_ignored_outside_cyclic():
    feats = small_features()
    pred, target = vols(seed=3)
    pred.requires_grad_(True)
    two_d = CombinedLoss(perceptual="2d", plane="sagittal", features=feats)
    a = two_d(pred, target, "axial")
    b = two_d(pred, target)
    assert float(a.perceptual.detach()) == float(b.perceptual.detach())
    a.total.backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0


def test_ready_module_and_provenance():
    module = PerceptualLoss("cyclic", features=small_features())
    loss = CombinedLoss(perceptual=module)
    assert loss.perceptual is module and loss.weights_source == "custom" and loss.mode == "cyclic"
    with pytest.raises(TypeError):
        CombinedLoss(perceptual=module, plane="axial")


def test_offline_auto_records_random(tmp_path, monkeypatch):
    monkeypatch.setattr(_weights, "_WARNED", set())
    saved = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path))  # no cached ImageNet weights here
    try:
        with pytest.warns(PretrainedWeightsUnavailableWarning):
            loss = CombinedLoss(perceptual="cyclic")
    finally:
        torch.hub.set_dir(saved)
    assert loss.weights_source == "random"
