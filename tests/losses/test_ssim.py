"""The separable SSIM loss is MONAI's 3D SSIMLoss, value and gradient."""

from __future__ import annotations

import pytest
import torch
from monai.losses import SSIMLoss

from tausynth.losses.ssim import SeparableSSIMLoss, gaussian_window_1d


def pair(shape: tuple[int, ...], seed: int = 0, scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    target = scale * torch.randn(shape, generator=g, dtype=torch.float64)
    # a smooth structure shared by both, so SSIM is neither ~0 nor ~1
    target = target + torch.linspace(-2, 2, shape[-1], dtype=torch.float64)
    pred = target + 0.5 * scale * torch.randn(shape, generator=g, dtype=torch.float64)
    return pred.float(), target.float()


@pytest.mark.parametrize(
    ("shape", "data_range"),
    [((1, 1, 11, 11, 11), 1.0), ((2, 1, 20, 24, 16), 2.0), ((2, 2, 13, 17, 12), 2.0), ((3, 1, 16, 12, 18), 8.0)],
)
def test_equals_monai_value_and_gradient(shape: tuple[int, ...], data_range: float) -> None:
    pred, target = pair(shape, scale=data_range / 2)
    a = pred.clone().requires_grad_(True)
    b = pred.clone().requires_grad_(True)
    ref = SSIMLoss(spatial_dims=3, data_range=data_range)(a, target)
    ours = SeparableSSIMLoss(data_range=data_range)(b, target)
    assert 0.05 < float(ref.detach()) < 0.95
    assert float(ours.detach()) == pytest.approx(float(ref.detach()), rel=1e-5, abs=1e-6)
    (ga,) = torch.autograd.grad(ref, a)
    (gb,) = torch.autograd.grad(ours, b)
    assert torch.allclose(gb, ga, rtol=1e-3, atol=1e-4 * float(ga.abs().max()))


def test_identical_volumes_give_zero_and_window_is_monais() -> None:
    x, _ = pair((2, 1, 12, 14, 13), seed=3)
    assert float(SeparableSSIMLoss(2.0)(x, x)) == pytest.approx(0.0, abs=1e-6)
    w = gaussian_window_1d(11, 1.5)
    assert w.sum().item() == pytest.approx(1.0) and w.argmax().item() == 5 and torch.equal(w, w.flip(0))
    # the 3D window is the outer product, as MONAI builds it
    dense = torch.einsum("i,j,k->ijk", w, w, w)
    assert dense.sum().item() == pytest.approx(1.0) and dense[5, 5, 5] == dense.max()


def test_batch_reduction_is_the_mean_of_per_volume_losses() -> None:
    pred, target = pair((3, 1, 12, 12, 12), seed=4)
    loss = SeparableSSIMLoss(2.0)
    each = [float(loss(pred[i : i + 1], target[i : i + 1])) for i in range(3)]
    assert float(loss(pred, target)) == pytest.approx(sum(each) / 3, rel=1e-6)
    assert len(set(round(e, 6) for e in each)) == 3


@pytest.mark.parametrize(
    ("a", "b", "match"),
    [((1, 1, 12, 12, 12), (1, 1, 12, 12, 13), "same shape"), ((1, 12, 12, 12), (1, 12, 12, 12), r"\(B, C, X, Y, Z\)"),
     ((1, 1, 12, 10, 12), (1, 1, 12, 10, 12), "at least 11")],
)
def test_bad_shapes(a: tuple[int, ...], b: tuple[int, ...], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SeparableSSIMLoss()(torch.zeros(a), torch.zeros(b))


@pytest.mark.parametrize("shape", [(1, 1, 12, 13, 11), (3, 1, 16, 12, 14), (2, 2, 13, 12, 12)])
def test_target_range_equals_monai_with_each_targets_range(shape: tuple[int, ...]) -> None:
    pred, target = pair(shape, seed=5)
    target = target * torch.arange(1, shape[0] + 1, dtype=torch.float32).view(-1, 1, 1, 1, 1)  # ranges differ
    ours = pred.clone().requires_grad_(True)
    loss = SeparableSSIMLoss(data_range="target")(ours, target)
    refs, ref_inputs = [], []
    for i in range(shape[0]):
        rng = float(target[i].max() - target[i].min())
        x = pred[i : i + 1].clone().requires_grad_(True)
        refs.append(SSIMLoss(spatial_dims=3, data_range=rng)(x, target[i : i + 1]))
        ref_inputs.append(x)
    ref = torch.stack(refs).mean()
    assert float(loss.detach()) == pytest.approx(float(ref.detach()), rel=1e-5, abs=1e-6)
    (g_ours,) = torch.autograd.grad(loss, ours)
    g_ref = torch.cat(torch.autograd.grad(ref, ref_inputs))
    assert torch.allclose(g_ours, g_ref, rtol=1e-3, atol=1e-4 * float(g_ref.abs().max()))
    # and it is not the fixed range of the official code
    assert float(loss.detach()) != pytest.approx(float(SeparableSSIMLoss(2.0)(pred, target)), rel=1e-3)


def test_data_range_must_be_a_number_or_target() -> None:
    assert SeparableSSIMLoss().data_range == 1.0 and SeparableSSIMLoss("target").data_range == "target"
    with pytest.raises(ValueError, match="data_range must be a positive number or 'target', got 'max'"):
        SeparableSSIMLoss(data_range="max")
