"""The 2D images a slice perceptual loss sees, drawn from 3D volumes for feature calibration and pretraining.

Each slice is min–max scaled to ``[0, 1]`` on its own, as Algorithm 1 scales a slice of a batch of
one, and repeated to three channels by the loss itself. Because that scaling is invariant to any
affine map of the volume's intensities, the same slices serve standardized and min–max runs alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

from tausynth.losses.perceptual import PLANE_AXES
from tausynth.losses.schedule import PLANES

__all__ = ["minmax_slices", "plane_slices"]


def minmax_slices(slices: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Min–max scale each ``(1, H, W)`` image of an ``(N, 1, H, W)`` stack to ``[0, 1]`` separately."""
    flat = slices.flatten(1)
    lo = flat.amin(dim=1).view(-1, 1, 1, 1)
    hi = flat.amax(dim=1).view(-1, 1, 1, 1)
    return (slices - lo) / (hi - lo + eps)


def plane_slices(
    volumes: Iterable[torch.Tensor],
    *,
    planes: Sequence[str] = PLANES,
    stride: int = 1,
    labels: Iterable[torch.Tensor] | None = None,
) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
    """Every ``stride``-th non-empty slice of each volume, per plane, min–max scaled to ``[0, 1]``.

    Parameters
    ----------
    volumes : iterable of torch.Tensor
        ``(1, X, Y, Z)`` (or ``(X, Y, Z)``) RAS volumes on one grid.
    planes : sequence of {"axial", "coronal", "sagittal"}, default=all three
    stride : int, default=1
        Keep every ``stride``-th slice index (before dropping empty slices).
    labels : iterable of torch.Tensor, optional
        Label volumes matching ``volumes``; their slices are returned alongside (not scaled).

    Returns
    -------
    dict
        ``plane -> (images, label_images)``: ``images`` is ``(N, 1, H, W)`` float32 in ``[0, 1]``;
        ``label_images`` is ``(N, H, W)`` int64, or ``None`` without ``labels``.

    Examples
    --------
    >>> import torch
    >>> vol = torch.zeros(1, 6, 5, 4); vol[0, 2:4, 1:4, 1:3] = 2.0
    >>> out = plane_slices([vol])
    >>> tuple(out["axial"][0].shape), float(out["axial"][0].max())
    ((2, 1, 6, 5), 1.0)
    """
    vols = [v.reshape(v.shape[-3:]).float() for v in volumes]
    labs = None if labels is None else [lab.reshape(lab.shape[-3:]).long() for lab in labels]
    out: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = {}
    for plane in planes:
        axis = PLANE_AXES[plane] - 2  # PLANE_AXES counts the (B, 1) dimensions
        images, label_images = [], []
        for i, vol in enumerate(vols):
            stack = vol.movedim(axis, 0)[::stride]
            flat = stack.flatten(1)
            keep = (flat.amax(dim=1) - flat.amin(dim=1)) > 0
            images.append(stack[keep])
            if labs is not None:
                label_images.append(labs[i].movedim(axis, 0)[::stride][keep])
        imgs = torch.cat(images).unsqueeze(1)
        out[plane] = (minmax_slices(imgs), torch.cat(label_images) if labs is not None else None)
    return out
