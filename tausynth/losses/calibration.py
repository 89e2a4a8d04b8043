"""Data-calibrated random features: layer-wise scaling to unit activation variance (LSUV-style).

A default-initialized (Kaiming fan-out) VGG16 shrinks its activations layer after layer: on PET
slices its relu4_3 features have an RMS of about 1e-3, so the perceptual term's feature MSE is
~1e-5 and vanishes next to MSE and SSIM. Rescaling each convolution, in network order, so that its
output has unit variance on real data (Mishkin & Matas, "All you need is a good init", 2016,
without their orthonormal step) gives features of order one while keeping the seeded weights'
directions: the network computes the same features up to one positive factor per layer (ReLU and
max pooling commute with positive scaling when the biases are zero).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from tausynth.errors import TausynthError

__all__ = ["calibrate_unit_variance", "conv_layers"]


class _StopForward(Exception):
    """Raised by the hook once the layer being calibrated has run: the layers after it are not needed."""


def conv_layers(net: nn.Module) -> list[nn.Module]:
    """The 2D and 3D convolutions of ``net`` in registration (= forward, for sequential nets) order."""
    return [m for m in net.modules() if isinstance(m, nn.Conv2d | nn.Conv3d)]


@torch.no_grad()
def calibrate_unit_variance(
    net: nn.Module,
    batches: Sequence[torch.Tensor],
    *,
    target_std: float = 1.0,
    iterations: int = 3,
    tolerance: float = 0.01,
) -> list[float]:
    """Scale each convolution of ``net`` in place so that its output has standard deviation ``target_std``.

    Layers are calibrated in order; each one sees the already calibrated layers before it. The
    standard deviation is taken over every element of the layer's output on all ``batches``
    together (batches may differ in spatial size, e.g. the three planes of a volume).

    Parameters
    ----------
    net : torch.nn.Module
        The feature extractor (modified in place; run in eval mode).
    batches : sequence of torch.Tensor
        Calibration inputs, each a valid input of ``net``.
    target_std : float, default=1.0
        The output standard deviation each convolution is scaled to.
    iterations : int, default=3
        Passes per layer (one is exact when biases are zero; pretrained biases need a few).
    tolerance : float, default=0.01
        Stop a layer's passes once ``|std / target_std - 1|`` is below this.

    Returns
    -------
    list of float
        The total factor applied to each convolution, in order (recorded in provenance).

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 4, 3))
    >>> scales = calibrate_unit_variance(net, [torch.rand(8, 1, 16, 16)])
    >>> len(scales), round(float(net(torch.rand(8, 1, 16, 16)).std()), 1)
    (2, 1.0)
    """
    if not batches:
        raise TausynthError("calibration needs at least one batch of images")
    convs = conv_layers(net)
    if not convs:
        raise TausynthError("calibration: the network has no convolution to scale")
    was_training = net.training
    net.eval()
    scales: list[float] = []
    for conv in convs:
        captured: list[torch.Tensor] = []

        def hook(_m: nn.Module, _i: object, out: torch.Tensor, captured: list[torch.Tensor] = captured) -> None:
            captured.append(out.detach().float().flatten().clone())  # an in-place ReLU may follow
            raise _StopForward

        handle = conv.register_forward_hook(hook)
        total = 1.0
        try:
            for _ in range(iterations):
                captured.clear()
                for batch in batches:
                    try:
                        net(batch)
                    except _StopForward:
                        pass
                std = float(torch.cat(captured).std())
                if not std > 0:
                    raise TausynthError(
                        "calibration: a convolution's output is constant on the calibration images "
                        "(are they all empty?)"
                    )
                factor = target_std / std
                conv.weight.mul_(factor)
                if conv.bias is not None:
                    conv.bias.mul_(factor)
                total *= factor
                # without a bias the output is linear in the weight: one pass is exact
                no_bias = conv.bias is None or not bool(conv.bias.any())
                if no_bias or abs(1.0 / factor - 1.0) < tolerance:
                    break
        finally:
            handle.remove()
        scales.append(total)
    net.train(was_training)
    return scales
