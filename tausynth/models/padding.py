"""Pad an input to a network's valid shape, run the network, crop the output back.

Every network in :mod:`tausynth.models` accepts only some spatial shapes: a U-Net with strides
``(2, 2, 2, 2)`` needs each dimension divisible by 16, UNETR needs exactly the shape it was built
for, and SwinUNETR needs multiples of 32 (and, at MONAI 1.6.1, more than 32: see
:mod:`tausynth.models.factory`). :class:`SpatialPadCrop` makes any shape work and makes the
output shape equal to the input shape, so that no shape mismatch can fail silently downstream.

Padding is **symmetric**, with the odd voxel at the end, and uses a constant value (0 by default,
the background value of the preprocessed T1w images, see :mod:`tausynth.data.preprocess`) -- the
same layout as MONAI ``DivisiblePad(k, method="symmetric")``. It is written with
``torch.nn.functional.pad`` because MONAI's pad transforms act on one un-batched sample at a time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from tausynth.errors import TausynthError

__all__ = ["SpatialPadCrop", "padded_shape", "symmetric_pad_widths"]


def padded_shape(
    shape: Sequence[int],
    divisor: int,
    *,
    min_size: int = 1,
    fixed_shape: Sequence[int] | None = None,
) -> tuple[int, ...]:
    """Return the shape a spatial ``shape`` is padded to.

    Parameters
    ----------
    shape : sequence of int
        Spatial shape of the input.
    divisor : int
        Each padded dimension is a multiple of ``divisor``.
    min_size : int, default=1
        Each padded dimension is at least ``min_size`` (rounded up to a multiple of ``divisor``).
    fixed_shape : sequence of int, optional
        For networks built for one shape (UNETR): every input is padded to exactly this shape, and
        an input larger than it in any dimension is an error.

    Returns
    -------
    tuple of int

    Examples
    --------
    >>> padded_shape((40, 48, 40), 16)
    (48, 48, 48)
    >>> padded_shape((40, 48, 40), 32, min_size=64)
    (64, 64, 64)
    """
    shape = tuple(int(s) for s in shape)
    if fixed_shape is not None:
        fixed = tuple(int(s) for s in fixed_shape)
        if len(fixed) != len(shape) or any(s > f for s, f in zip(shape, fixed, strict=True)):
            raise TausynthError(
                f"input spatial shape {shape} does not fit the network's fixed input shape {fixed} "
                "(rebuild the model with spatial_shape set to the data's shape)"
            )
        return fixed
    floor = max(int(min_size), 1)
    return tuple(math.ceil(max(s, floor) / divisor) * divisor for s in shape)


def symmetric_pad_widths(shape: Sequence[int], target: Sequence[int]) -> list[tuple[int, int]]:
    """``(before, after)`` per dimension to pad ``shape`` to ``target``; the odd voxel goes after."""
    widths = []
    for s, t in zip(shape, target, strict=True):
        total = int(t) - int(s)
        if total < 0:
            raise ValueError(f"cannot pad size {s} down to {t}")
        widths.append((total // 2, total - total // 2))
    return widths


class SpatialPadCrop(nn.Module):
    """Wrap a network: pad the input to a valid shape, run it, crop the output to the input's shape.

    Parameters
    ----------
    net : nn.Module
        A network mapping ``(B, C_in, *spatial)`` to ``(B, C_out, *spatial)`` for valid shapes.
    divisor : int
        Each spatial dimension given to ``net`` is a multiple of this.
    min_size : int, default=1
        Each spatial dimension given to ``net`` is at least this.
    fixed_shape : sequence of int, optional
        ``net`` accepts only this spatial shape (UNETR): inputs are padded to exactly it.
    value : float, default=0.0
        Constant padding value.

    Attributes
    ----------
    net : nn.Module
        The wrapped network.
    divisor : int
        The spatial divisor.

    Examples
    --------
    >>> from monai.networks.nets import UNet
    >>> net = SpatialPadCrop(UNet(3, 1, 1, (4, 8, 16), (2, 2)), divisor=4)
    >>> net(torch.zeros(1, 1, 37, 45, 41)).shape
    torch.Size([1, 1, 37, 45, 41])
    """

    def __init__(
        self,
        net: nn.Module,
        divisor: int,
        *,
        min_size: int = 1,
        fixed_shape: Sequence[int] | None = None,
        value: float = 0.0,
    ) -> None:
        super().__init__()
        if isinstance(divisor, bool) or not isinstance(divisor, int) or divisor < 1:
            raise ValueError(f"divisor: expected a positive integer, got {divisor!r}")
        self.net = net
        self.divisor = divisor
        self.min_size = int(min_size)
        self.fixed_shape = None if fixed_shape is None else tuple(int(s) for s in fixed_shape)
        if self.fixed_shape is not None and any(s % divisor for s in self.fixed_shape):
            raise ValueError(f"fixed_shape {self.fixed_shape} is not divisible by {divisor}")
        self.value = float(value)

    def padded_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        """The spatial shape the wrapped network sees for an input of spatial ``shape``."""
        return padded_shape(
            shape, self.divisor, min_size=self.min_size, fixed_shape=self.fixed_shape
        )

    def pad(self, x: torch.Tensor) -> tuple[torch.Tensor, list[tuple[int, int]]]:
        """Pad ``x`` of shape ``(B, C, *spatial)``; return it and the ``(before, after)`` widths."""
        spatial = tuple(x.shape[2:])
        widths = symmetric_pad_widths(spatial, self.padded_shape(spatial))
        if not any(b or a for b, a in widths):
            return x, widths
        # F.pad takes the last dimension first.
        flat = [w for pair in reversed(widths) for w in pair]
        return nn.functional.pad(x, flat, mode="constant", value=self.value), widths

    @staticmethod
    def crop(y: torch.Tensor, widths: Sequence[tuple[int, int]]) -> torch.Tensor:
        """Undo :meth:`pad` on ``y`` (same spatial layout, any number of channels)."""
        index = [slice(None), slice(None)]
        index += [slice(b, y.shape[2 + i] - a) for i, (b, a) in enumerate(widths)]
        return y[tuple(index)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pad, run the network, crop back; the output has the input's spatial shape."""
        if x.ndim < 3:
            raise ValueError(f"expected a (B, C, *spatial) tensor, got shape {tuple(x.shape)}")
        padded, widths = self.pad(x)
        return self.crop(self.net(padded), widths)

    def extra_repr(self) -> str:
        extra = f"divisor={self.divisor}, min_size={self.min_size}"
        if self.fixed_shape is not None:
            extra += f", fixed_shape={self.fixed_shape}"
        return extra
