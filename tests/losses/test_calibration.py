"""Layer-wise unit-variance calibration of random feature networks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tausynth.errors import TausynthError
from tausynth.losses.calibration import calibrate_unit_variance, conv_layers
from tausynth.losses.medicalnet import resnet10_medicalnet
from tausynth.losses.perceptual import vgg16_relu4_3


def _conv_stds(net: nn.Module, batches: list[torch.Tensor]) -> list[float]:
    outs: list[torch.Tensor] = []
    hooks = [c.register_forward_hook(lambda _m, _i, o: outs.append(o.flatten().clone())) for c in conv_layers(net)]  # ReLU(inplace) follows
    with torch.no_grad():
        per_batch = []
        for b in batches:
            outs.clear()
            net(b)
            per_batch.append(list(outs))
    for h in hooks:
        h.remove()
    return [float(torch.cat([pb[k] for pb in per_batch]).std()) for k in range(len(per_batch[0]))]


def test_vgg16_every_convolution_has_unit_std_after_calibration() -> None:
    net = vgg16_relu4_3("random")
    batches = [torch.rand(6, 3, 32, 24), torch.rand(4, 3, 24, 32)]  # planes differ in size
    before = _conv_stds(net, batches)
    assert before[-1] < 0.1  # the default initialization shrinks the activations
    scales = calibrate_unit_variance(net, batches)
    assert len(scales) == 10
    assert _conv_stds(net, batches) == pytest.approx([1.0] * 10, rel=1e-3)


def test_calibration_keeps_feature_directions_of_a_bias_free_net() -> None:
    net = vgg16_relu4_3("random")
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        before = net(x)
    scales = calibrate_unit_variance(net, [x])
    with torch.no_grad():
        after = net(x)
    # ReLU and max pooling commute with positive scaling: the features are one factor apart
    factor = torch.tensor(scales, dtype=torch.float64).prod().item()
    torch.testing.assert_close(after / after.norm(), before / before.norm(), rtol=0, atol=1e-5)
    assert float(after.norm() / before.norm()) == pytest.approx(factor, rel=1e-3)


def test_pretrained_biases_converge_in_a_few_passes() -> None:
    net = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3))
    with torch.no_grad():
        for conv in conv_layers(net):
            conv.bias.fill_(0.5)
    x = torch.rand(16, 1, 20, 20)
    calibrate_unit_variance(net, [x], iterations=10, tolerance=1e-4)
    assert _conv_stds(net, [x]) == pytest.approx([1.0, 1.0], rel=1e-3)


def test_medicalnet_resnet10_is_calibrated_too() -> None:
    net = resnet10_medicalnet("random")
    x = torch.randn(2, 1, 32, 32, 32)
    calibrate_unit_variance(net, [x])
    assert _conv_stds(net, [x])[0] == pytest.approx(1.0, rel=1e-3)


@pytest.mark.parametrize(
    ("batches", "match"),
    [([], "at least one batch"), ([torch.zeros(2, 3, 16, 16)], "constant")],
)
def test_bad_calibration_data_is_one_line(batches: list[torch.Tensor], match: str) -> None:
    with pytest.raises(TausynthError, match=match):
        calibrate_unit_variance(vgg16_relu4_3("random"), batches)
