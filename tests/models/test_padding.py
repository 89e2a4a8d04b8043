"""Tests for tausynth.models.padding: pad to a valid shape, run, crop back exactly."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from monai.transforms import DivisiblePad
from torch import nn

from tausynth.errors import TausynthError
from tausynth.models.padding import SpatialPadCrop, padded_shape, symmetric_pad_widths


class ShapeRecorder(nn.Module):
    """Identity that remembers the spatial shape it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(tuple(x.shape[2:]))
        return x


class Doubler(nn.Module):
    """``2 * x`` with one channel more (to check cropping of any channel count)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([2 * x, x], dim=1)


def test_padded_shape_golden() -> None:
    assert padded_shape((40, 48, 40), 16) == (48, 48, 48)
    assert padded_shape((40, 48, 40), 8) == (40, 48, 40)
    assert padded_shape((37, 45, 41), 4) == (40, 48, 44)
    assert padded_shape((40, 48, 40), 32, min_size=64) == (64, 64, 64)
    assert padded_shape((32, 32, 96), 32, min_size=64) == (64, 64, 96)
    assert padded_shape((37, 45, 41), 16, fixed_shape=(48, 48, 48)) == (48, 48, 48)


def test_padded_shape_fixed_too_small_is_a_clear_error() -> None:
    with pytest.raises(TausynthError, match=r"\(49, 45, 41\).*\(48, 48, 48\)"):
        padded_shape((49, 45, 41), 16, fixed_shape=(48, 48, 48))


def test_symmetric_widths_put_the_odd_voxel_at_the_end() -> None:
    assert symmetric_pad_widths((37, 45, 40), (40, 48, 40)) == [(1, 2), (1, 2), (0, 0)]
    with pytest.raises(ValueError):
        symmetric_pad_widths((41,), (40,))


@pytest.mark.parametrize("shape", [(37, 45, 41), (40, 48, 40), (5, 17, 33)])
def test_padding_matches_monai_divisible_pad_symmetric(shape: tuple[int, ...]) -> None:
    x = torch.randn(2, 1, *shape)
    wrapper = SpatialPadCrop(nn.Identity(), divisor=16)
    padded, _ = wrapper.pad(x)
    expected = torch.stack([DivisiblePad(16, method="symmetric")(sample) for sample in x])
    assert torch.equal(padded, torch.as_tensor(expected))


@pytest.mark.parametrize("shape", [(37, 45, 41), (40, 48, 40), (1, 1, 1)])
def test_identity_roundtrip_is_exact_and_net_sees_valid_shape(shape: tuple[int, ...]) -> None:
    recorder = ShapeRecorder()
    wrapper = SpatialPadCrop(recorder, divisor=8)
    x = torch.randn(2, 3, *shape)
    y = wrapper(x)
    assert torch.equal(y, x)  # an off-by-one crop would shift the values
    (seen,) = recorder.seen
    assert all(s % 8 == 0 and s >= d for s, d in zip(seen, shape, strict=True))


def test_crop_handles_other_channel_counts_and_padding_value() -> None:
    x = torch.randn(1, 1, 5, 6, 7)
    wrapper = SpatialPadCrop(Doubler(), divisor=4, value=-3.0)
    y = wrapper(x)
    assert y.shape == (1, 2, 5, 6, 7)
    assert torch.equal(y[:, :1], 2 * x) and torch.equal(y[:, 1:], x)
    padded, widths = wrapper.pad(x)
    assert widths == [(1, 2), (1, 1), (0, 1)]
    assert padded[0, 0, 0].eq(-3.0).all() and padded[0, 0, -1].eq(-3.0).all()


def test_min_size_and_fixed_shape_are_applied() -> None:
    recorder = ShapeRecorder()
    SpatialPadCrop(recorder, divisor=32, min_size=64)(torch.zeros(1, 1, 32, 40, 70))
    SpatialPadCrop(recorder, divisor=16, fixed_shape=(48, 48, 48))(torch.zeros(1, 1, 17, 40, 3))
    assert recorder.seen == [(64, 64, 96), (48, 48, 48)]
    with pytest.raises(TausynthError, match="fixed input shape"):
        SpatialPadCrop(recorder, divisor=16, fixed_shape=(48, 48, 48))(torch.zeros(1, 1, 49, 40, 3))


def test_gradient_flows_through_pad_and_crop() -> None:
    x = torch.randn(1, 1, 7, 9, 5, requires_grad=True)
    SpatialPadCrop(Doubler(), divisor=4)(x).sum().backward()
    assert torch.equal(x.grad, torch.full_like(x, 3.0))


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="divisor"):
        SpatialPadCrop(nn.Identity(), divisor=0)
    with pytest.raises(ValueError, match="not divisible"):
        SpatialPadCrop(nn.Identity(), divisor=16, fixed_shape=(40, 48, 40))
    with pytest.raises(ValueError, match="B, C"):
        SpatialPadCrop(nn.Identity(), divisor=2)(torch.zeros(4, 4))


def test_wrapper_exposes_divisor_and_inner_net() -> None:
    inner = nn.Identity()
    wrapper = SpatialPadCrop(inner, divisor=16, min_size=64)
    assert wrapper.divisor == 16 and wrapper.net is inner
    assert "divisor=16" in repr(wrapper)


@settings(max_examples=40, deadline=None)
@given(
    shape=st.tuples(*[st.integers(1, 40)] * 3),
    divisor=st.sampled_from([1, 2, 4, 8, 16, 32]),
    min_size=st.integers(1, 70),
)
def test_padded_shape_properties(shape: tuple[int, int, int], divisor: int, min_size: int) -> None:
    out = padded_shape(shape, divisor, min_size=min_size)
    for s, p in zip(shape, out, strict=True):
        assert p % divisor == 0
        assert p >= max(s, min_size)
        assert p - max(s, min_size) < divisor  # the smallest such size
    x = torch.randn(1, 1, *shape)
    assert torch.equal(SpatialPadCrop(nn.Identity(), divisor, min_size=min_size)(x), x)
