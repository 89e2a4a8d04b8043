"""The official per-slice loop, kept as the reference for benchmarks and the book.

This mirrors the official ``CyclicPerceptualLoss.forward``: a Python loop over the slices of one
axis, each slice min–max scaled jointly over the batch, repeated to three channels and compared
with ``mse_loss`` of its features. It is slow by design; use
:class:`tausynth.losses.perceptual.SlicePerceptualLoss` for training. (The tests keep their own,
independent copy of the loop.)
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from tausynth.losses.perceptual import PLANE_AXES
from tausynth.losses.schedule import PLANES
from tausynth.vocabulary import check_choice


def per_slice_loop_loss(
    features: nn.Module, pred: torch.Tensor, target: torch.Tensor, plane: str, eps: float = 1e-8
) -> torch.Tensor:
    """Algorithm 1 computed slice by slice, as the official code does.

    Parameters
    ----------
    features : torch.nn.Module
        Frozen 2D extractor taking ``(B, 3, H, W)``.
    pred, target : torch.Tensor
        ``(B, 1, X, Y, Z)`` volumes.
    plane : {"axial", "coronal", "sagittal"}
    eps : float, default=1e-8

    Returns
    -------
    torch.Tensor
        The mean over slices of ``mse_loss(features(pred_slice), features(target_slice))``.
    """
    axis = PLANE_AXES[check_choice("plane", plane, PLANES)]
    total = pred.new_zeros(())
    slices = list(zip(torch.unbind(pred, dim=axis), torch.unbind(target, dim=axis), strict=True))
    for p, t in slices:
        p = (p - p.min()) / (p.max() - p.min() + eps)
        t = (t - t.min()) / (t.max() - t.min() + eps)
        total = total + F.mse_loss(features(p.repeat(1, 3, 1, 1)), features(t.repeat(1, 3, 1, 1)))
    return total / len(slices)


def time_forward_backward(
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    shape: tuple[int, ...],
    *,
    repeats: int = 3,
    warmup: int = 1,
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> tuple[float, float]:
    """Best wall time of ``loss_fn(pred, target).backward()`` on random volumes, and its value.

    Parameters
    ----------
    loss_fn : callable
        ``(pred, target) -> scalar tensor``.
    shape : tuple of int
        ``(B, 1, X, Y, Z)``.
    repeats, warmup : int
        Timed and untimed runs; the fastest timed run is returned (the host may be busy).
    device : str or torch.device, default="cpu"
    seed : int, default=0

    Returns
    -------
    seconds : float
        Fastest forward + backward time.
    value : float
        The loss value.
    """
    gen = torch.Generator().manual_seed(seed)
    target = torch.rand(shape, generator=gen).to(device)
    base = torch.rand(shape, generator=gen).to(device)
    dev = torch.device(device)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    best, value = float("inf"), float("nan")
    for i in range(warmup + repeats):
        pred = base.clone().requires_grad_(True)
        sync()
        t0 = time.perf_counter()
        loss = loss_fn(pred, target)
        loss.backward()
        sync()
        dt = time.perf_counter() - t0
        value = float(loss.detach())
        if i >= warmup:
            best = min(best, dt)
    return best, value
