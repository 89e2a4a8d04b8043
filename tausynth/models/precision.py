"""A guard against a PyTorch CPU bug: wrong bfloat16 conv3d weight gradients when the kernel is larger than its input.

Measured with torch 2.14.1 (oneDNN) on this project's CPUs: under ``torch.autocast("cpu",
dtype=torch.bfloat16)``, the weight gradient of a stride-1 ``Conv3d`` whose kernel is larger than
its input in some dimension (e.g. a 3³ kernel on SwinUNETR's 2³ bottleneck at a 64³ input, or a
4³ kernel on 3³) is garbage -- often ``inf``/``NaN`` -- for 32 or more channels, while the forward
pass and the input gradient stay right. With ``torch.backends.mkldnn`` disabled, or in float32, the
gradient is right. One bad step leaves NaN weights, so SwinUNETR could not train under CPU bf16.

:func:`guard_small_input_convs` makes such convolutions run in float32 when they meet a CPU
autocast region with an input smaller than their kernel; everything else keeps autocast. The
guarded layers are tiny (a few voxels), so the cost is negligible. CUDA is not affected by the guard.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["Float32SmallInputConv3d", "guard_small_input_convs", "kernel_exceeds_input"]


def kernel_exceeds_input(spatial: tuple[int, ...] | torch.Size, kernel: tuple[int, ...]) -> bool:
    """Whether a kernel is larger than the input in any spatial dimension."""
    return any(s < k for s, k in zip(spatial, kernel, strict=True))


class Float32SmallInputConv3d(nn.Conv3d):
    """A ``Conv3d`` that leaves CPU autocast for inputs smaller than its kernel (see the module docstring).

    Same parameters and state-dict keys as ``nn.Conv3d``; only ``forward`` differs.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            x.device.type == "cpu"
            and torch.is_autocast_enabled("cpu")
            and kernel_exceeds_input(x.shape[2:], self.kernel_size)  # type: ignore[arg-type]
        ):
            with torch.autocast("cpu", enabled=False):
                return super().forward(x.float())
        return super().forward(x)


def guard_small_input_convs(module: nn.Module) -> int:
    """Turn every plain ``nn.Conv3d`` in ``module`` into a :class:`Float32SmallInputConv3d`, in place.

    Parameters
    ----------
    module : nn.Module

    Returns
    -------
    int
        The number of convolutions guarded (subclasses of ``Conv3d`` are left alone).
    """
    count = 0
    for sub in module.modules():
        if type(sub) is nn.Conv3d:
            # a class swap keeps the parameters, hooks and state-dict keys of the built network
            sub.__class__ = Float32SmallInputConv3d
            count += 1
    return count
