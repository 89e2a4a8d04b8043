"""The float32 guard for convolutions whose kernel exceeds their input under CPU bf16 autocast."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tausynth.config import load_profile
from tausynth.models import build
from tausynth.models.precision import (
    Float32SmallInputConv3d,
    guard_small_input_convs,
    kernel_exceeds_input,
)


def _weight_grad_error(conv: nn.Conv3d, size: int) -> float:
    """Relative max error of the bf16-autocast weight gradient against the float32 one."""
    torch.manual_seed(0)
    x = torch.randn(1, conv.in_channels, size, size, size)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = conv(x)
    grad = torch.randn(out.shape)
    out.backward(grad)
    pad = conv.padding if isinstance(conv.padding, tuple) else (conv.padding,) * 3
    ref = torch.nn.grad.conv3d_weight(x, conv.weight.shape, grad, padding=pad)
    err = (conv.weight.grad - ref).abs().max() / ref.abs().max()
    return float(torch.nan_to_num(err, nan=float("inf")))


@pytest.mark.parametrize(("channels", "size", "kernel"), [(64, 2, 3), (32, 3, 4), (64, 4, 3)])
def test_guarded_conv_has_right_weight_gradient_under_cpu_bf16(channels: int, size: int, kernel: int) -> None:
    conv = nn.Conv3d(channels, channels, kernel, padding=1, bias=False)
    assert guard_small_input_convs(conv) == 1
    assert isinstance(conv, Float32SmallInputConv3d)
    assert _weight_grad_error(conv, size) < 0.05


def test_guard_keeps_bf16_for_inputs_at_least_the_kernel() -> None:
    conv = nn.Conv3d(4, 4, 3, padding=1)
    guard_small_input_convs(conv)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert conv(torch.randn(1, 4, 3, 3, 3)).dtype == torch.bfloat16
        assert conv(torch.randn(1, 4, 2, 3, 3)).dtype == torch.float32
    assert conv(torch.randn(1, 4, 2, 2, 2)).dtype == torch.float32


def test_guard_changes_nothing_outside_autocast() -> None:
    torch.manual_seed(0)
    plain = nn.Conv3d(3, 5, 3, padding=1)
    guarded = nn.Conv3d(3, 5, 3, padding=1)
    guarded.load_state_dict(plain.state_dict())
    guard_small_input_convs(guarded)
    assert list(guarded.state_dict()) == list(plain.state_dict())
    x = torch.randn(2, 3, 2, 4, 4)
    torch.testing.assert_close(guarded(x), plain(x), rtol=0, atol=0)


def test_kernel_exceeds_input() -> None:
    assert kernel_exceeds_input((2, 8, 8), (3, 3, 3))
    assert not kernel_exceeds_input((3, 3, 3), (3, 3, 3))


def test_swinunetr_trains_under_cpu_bf16_at_its_smallest_input() -> None:
    """One step of a SwinUNETR at 64³ (2³ bottleneck) under CPU bf16 gives finite, accurate gradients."""
    cfg = load_profile("demo", {"model": {"name": "swinunetr", "feature_size": 12, "depths": [1, 1, 1, 1]}})
    model = build("swinunetr", cfg)
    guarded = [m for m in model.modules() if isinstance(m, Float32SmallInputConv3d)]
    assert guarded, "the built network carries the guard"
    torch.manual_seed(0)
    x, y = torch.rand(1, 1, 40, 48, 40), torch.randn(1, 1, 40, 48, 40)
    grads = {}
    for amp in (True, False):
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            pred = model(x)
        # an SSIM-like small-variance gradient was what exposed the bug; any loss does here
        ((pred.float() - y) ** 2).mean().backward()
        grads[amp] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    for name, g in grads[True].items():
        assert torch.isfinite(g).all(), name
    bottleneck = [n for n in grads[True] if "encoder10" in n and n.endswith("conv.weight")]
    assert bottleneck
    for name in bottleneck:
        # bf16 elsewhere in the network perturbs the gradient (~30 %); the bug gave 1e30 or NaN
        ref, got = grads[False][name].flatten(), grads[True][name].flatten()
        assert 0.5 < float(got.norm() / ref.norm()) < 2.0, name
        assert float(torch.nn.functional.cosine_similarity(got, ref, dim=0)) > 0.8, name
