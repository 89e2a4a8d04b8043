"""The 3D perceptual baseline: MedicalNet ResNet-10 layout, weights policy, loss properties."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from tausynth.errors import TausynthError
from tausynth.losses import _weights
from tausynth.losses._weights import PretrainedWeightsUnavailableWarning
from tausynth.losses.medicalnet import (
    MEDICALNET_RESNET10_FILE,
    MedicalNetPerceptualLoss,
    medicalnet_cache_path,
    resnet10_medicalnet,
)
from tausynth.losses.perceptual import PerceptualLoss


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    saved = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    monkeypatch.setattr(_weights, "_WARNED", set())
    yield tmp_path / "hub"
    torch.hub.set_dir(saved)


@pytest.fixture(scope="module")
def net():
    return resnet10_medicalnet("random")


def vols(seed=0, shape=(2, 1, 32, 24, 20)):
    gen = torch.Generator().manual_seed(seed)
    t = torch.rand(shape, generator=gen)
    return t + 0.2 * torch.randn(shape, generator=gen), t


def test_layout_is_medicalnet_resnet10(net):
    # MedicalNet ResNet-10: conv1 7^3 stride 2 without bias, 1 block per stage, 1x1x1 conv
    # downsampling without bias (shortcut B), no classifier head
    assert net.conv1.weight.shape == (64, 1, 7, 7, 7) and net.conv1.bias is None
    assert net.conv1.stride == (2, 2, 2)
    assert net.layer2[0].downsample[0].bias is None
    assert net.fc is None
    keys = set(net.state_dict())
    assert {"conv1.weight", "bn1.running_mean", "layer4.0.conv2.weight", "layer4.0.downsample.1.weight"} <= keys
    out = net(torch.zeros(1, 1, 64, 32, 32))
    assert out.shape == (1, 512, 2, 1, 1)  # layer4: 1/32 per axis
    assert not net.training and not any(p.requires_grad for p in net.parameters())


def test_loss_properties(net):
    loss = MedicalNetPerceptualLoss(net)
    pred, target = vols()
    assert float(loss(target, target)) == pytest.approx(0.0, abs=1e-6)
    p = pred.clone().requires_grad_(True)
    value = loss(p, target)
    assert value.ndim == 0 and float(value.detach()) > 0
    value.backward()
    assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
    # z-scored input: invariant to a positive affine intensity change of either volume
    assert float(loss(4 * pred + 1, target)) == pytest.approx(float(value.detach()), rel=1e-4)
    # features are unit-normalized over channels, so the loss is at most 4 (opposite unit vectors)
    assert 0 < float(value.detach()) <= 4
    with pytest.raises(ValueError, match="shape"):
        loss(pred[:, :, :-1], target)


def test_random_is_seeded(net):
    again = resnet10_medicalnet("random")
    assert torch.equal(again.conv1.weight, net.conv1.weight)
    assert not torch.equal(resnet10_medicalnet("random", seed=1).conv1.weight, net.conv1.weight)
    assert net.weights_source == "random"


def test_medicalnet_checkpoint_with_module_prefix(tmp_path, net, empty_hub):
    donor = resnet10_medicalnet("random", seed=5)
    state = {f"module.{k}": v for k, v in donor.state_dict().items()}
    state["module.conv_seg.0.weight"] = torch.zeros(2)  # segmentation head of MedicalNet checkpoints
    path = tmp_path / "resnet_10.pth"
    torch.save({"state_dict": state, "epoch": 3}, path)
    loaded = resnet10_medicalnet(path)
    assert loaded.weights_source == f"file:{path}"
    assert torch.equal(loaded.layer3[0].conv1.weight, donor.layer3[0].conv1.weight)
    # the same file in the hub cache is what "medicalnet" and "auto" use
    medicalnet_cache_path().parent.mkdir(parents=True)
    torch.save({"state_dict": state}, medicalnet_cache_path())
    assert resnet10_medicalnet("medicalnet").weights_source == "medicalnet"
    assert PerceptualLoss("3d").weights_source == "medicalnet"


def test_offline_policy(empty_hub):
    with pytest.raises(TausynthError, match=MEDICALNET_RESNET10_FILE) as info:
        resnet10_medicalnet("medicalnet")
    assert str(empty_hub) in str(info.value) and "\n" not in str(info.value)
    with pytest.warns(PretrainedWeightsUnavailableWarning) as record:
        auto = resnet10_medicalnet("auto")
    assert len(record) == 1 and auto.weights_source == "random"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resnet10_medicalnet("auto")
    with pytest.raises(TausynthError, match="imagenet"):
        resnet10_medicalnet("imagenet")


def test_bad_checkpoint_names_the_file(tmp_path):
    path = tmp_path / "wrong.pth"
    torch.save({"state_dict": {"module.conv1.weight": torch.zeros(3)}}, path)
    with pytest.raises(TausynthError, match="wrong.pth"):
        resnet10_medicalnet(path)


def test_injected_3d_extractor():
    feats = nn.Conv3d(1, 4, 3)
    loss = PerceptualLoss("3d", features=feats)
    pred, target = vols(shape=(1, 1, 8, 8, 8))
    assert float(loss(pred, target, "axial")) > 0
    assert loss.weights_source == "custom"
