"""Figures and tables of the loss chapter: planes, VGG feature maps, the plane schedule, costs.

Every figure function returns a :class:`matplotlib.figure.Figure`. Volumes are RAS arrays
``(X, Y, Z)``; a plane's slices are taken along the axis that :data:`tausynth.losses.PLANE_AXES`
names (sagittal = X, coronal = Y, axial = Z) and drawn with ``origin="lower"``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from torch import nn

from tausynth.losses.schedule import PLANES, cosine_lr, plane_phases
from tausynth.plotting.slices import PLANE_AXIS, PLANE_COLORS, center_voxel, plane_slice

__all__ = [
    "PLANE_COLORS",
    "center_voxel",
    "cost_table",
    "plane_slice",
    "plot_feature_maps",
    "plot_gradients",
    "plot_images",
    "plot_planes",
    "plot_schedule",
]

def plot_planes(
    volume: np.ndarray,
    voxel: tuple[int, int, int] | None = None,
    *,
    title: str | None = None,
    cmap: str = "gray",
    vmin: float | None = None,
    vmax: float | None = None,
    label: str | None = None,
) -> Figure:
    """The axial, coronal and sagittal slices through ``voxel``, with the tensor axis each one slices.

    Parameters
    ----------
    volume : numpy.ndarray
        (X, Y, Z) RAS array.
    voxel : tuple of int, optional
        Voxel (i, j, k) the slices pass through; default :func:`~tausynth.plotting.slices.center_voxel`.
    title, cmap, vmin, vmax, label
        Figure title, color map and limits, color-bar label.
    """
    volume = np.asarray(volume)
    voxel = voxel or center_voxel(volume)
    vmin = float(np.min(volume)) if vmin is None else vmin
    vmax = float(np.max(volume)) if vmax is None else vmax
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.6), layout="constrained")
    dim = {"sagittal": 2, "coronal": 3, "axial": 4}
    for ax, plane in zip(axes, PLANES, strict=True):
        idx = voxel[PLANE_AXIS[plane]]
        im = ax.imshow(plane_slice(volume, plane, idx), origin="lower", cmap=cmap, vmin=vmin, vmax=vmax)
        ax.set_title(f"{plane} (dim {dim[plane]}, slice {idx}/{volume.shape[PLANE_AXIS[plane]]})", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=axes, shrink=0.8, label=label)
    if title:
        fig.suptitle(title)
    return fig


@torch.no_grad()
def _slice_features(features: nn.Module, image: np.ndarray) -> np.ndarray:
    t = torch.as_tensor(np.ascontiguousarray(image), dtype=torch.float32)[None, None]
    t = (t - t.min()) / (t.max() - t.min() + 1e-8)  # the paper's min-max scaling, one slice
    param = next(features.parameters(), None)
    if param is not None:
        t = t.to(param.device)
    return features(t.repeat(1, 3, 1, 1))[0].float().cpu().numpy()


def plot_feature_maps(
    volume: np.ndarray,
    features: nn.Module,
    voxel: tuple[int, int, int] | None = None,
    *,
    n_maps: int = 4,
    title: str | None = None,
) -> Figure:
    """Each plane's slice and the ``n_maps`` most active channels of its 2D feature maps.

    The slice is min–max scaled and repeated to three channels as in Algorithm 1; the channels
    shown are those with the largest mean activation on that slice.
    """
    volume = np.asarray(volume)
    voxel = voxel or center_voxel(volume)
    fig, axes = plt.subplots(3, n_maps + 1, figsize=(2.1 * (n_maps + 1), 6.6), layout="constrained", squeeze=False)
    for row, plane in enumerate(PLANES):
        # features of the image as stored (rows = first in-plane axis), shown transposed like the slice
        raw = np.take(volume, voxel[PLANE_AXIS[plane]], axis=PLANE_AXIS[plane])
        fmap = _slice_features(features, raw)
        order = np.argsort(fmap.mean(axis=(1, 2)))[::-1][:n_maps]
        axes[row, 0].imshow(raw.T, origin="lower", cmap="gray")
        axes[row, 0].set_ylabel(plane)
        axes[row, 0].set_title(f"input {raw.shape[0]}×{raw.shape[1]}", fontsize=9)
        for col, ch in enumerate(order, start=1):
            axes[row, col].imshow(fmap[ch].T, origin="lower", cmap="magma")
            axes[row, col].set_title(f"ch {ch} ({fmap.shape[1]}×{fmap.shape[2]})", fontsize=9)
        for ax in axes[row]:
            ax.set_xticks([])
            ax.set_yticks([])
    if title:
        fig.suptitle(title)
    return fig


def plot_images(
    images: Mapping[str, np.ndarray],
    *,
    ncols: int | None = None,
    cmap: str = "gray",
    vmin: float | None = None,
    vmax: float | None = None,
    title: str | None = None,
    colorbar: bool = True,
) -> Figure:
    """A row (or grid) of 2D images with titles, sharing one color scale.

    Images are drawn as given with ``origin="lower"`` (use :func:`plane_slice` to orient slices).
    """
    names = list(images)
    ncols = ncols or len(names)
    nrows = -(-len(names) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 3.0 * nrows), layout="constrained", squeeze=False)
    lo = min(float(np.min(images[n])) for n in names) if vmin is None else vmin
    hi = max(float(np.max(images[n])) for n in names) if vmax is None else vmax
    im = None
    for ax, name in zip(axes.flat, names, strict=False):
        im = ax.imshow(images[name], origin="lower", cmap=cmap, vmin=lo, vmax=hi)
        ax.set_title(name, fontsize=10)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    if colorbar and im is not None:
        fig.colorbar(im, ax=axes, shrink=0.8)
    if title:
        fig.suptitle(title)
    return fig


def plot_gradients(loop_grad: np.ndarray, batched_grad: np.ndarray, plane: str, index: int | None = None) -> Figure:
    """One slice of the loss gradient from the per-slice loop, from the batched loss, and their difference.

    Parameters
    ----------
    loop_grad, batched_grad : numpy.ndarray
        (X, Y, Z) gradients of the loss with respect to one predicted volume.
    plane : str
        The plane to draw.
    index : int, optional
        The slice; default the middle one.

    Notes
    -----
    The color scale is clipped at the 99.5th percentile of ``|loop gradient|``: the min–max scaling
    concentrates a slice's gradient on its extreme voxels, which would otherwise wash out the rest.
    """
    if index is None:
        index = loop_grad.shape[PLANE_AXIS[plane]] // 2
    a, b = plane_slice(loop_grad, plane, index), plane_slice(batched_grad, plane, index)
    lim = float(np.percentile(np.abs(a), 99.5)) or float(np.max(np.abs(a))) or 1.0
    fig = plot_images(
        {"per-slice loop": a, "batched": b, f"difference (max {np.max(np.abs(a - b)):.1e})": a - b},
        cmap="RdBu_r", vmin=-lim, vmax=lim, title=f"∂L/∂prediction, {plane} slice {index}",
    )
    return fig


def plot_schedule(
    max_epochs: int,
    cycle_duration: int,
    cycle_factor: str | float,
    lr: float,
    t_max: int,
    *,
    title: str | None = None,
    label_switches: bool = True,
) -> Figure:
    """The plane over epochs (Algorithm 2) above the cosine learning rate, on one epoch axis.

    Parameters
    ----------
    max_epochs, cycle_duration, cycle_factor
        As :func:`tausynth.losses.schedule.switch_epochs`.
    lr : float
        Initial learning rate.
    t_max : int
        ``T_max`` of ``CosineAnnealingLR`` (stepped per epoch).
    title : str, optional
    label_switches : bool, default=True
        Write each phase's start epoch over its band (skipped where bands are too narrow).
    """
    phases = plane_phases(max_epochs, cycle_duration, cycle_factor)
    fig, (ax, ax_lr) = plt.subplots(
        2, 1, figsize=(10, 3.8), sharex=True, layout="constrained", height_ratios=(1, 1.4)
    )
    rows = {p: i for i, p in enumerate(reversed(PLANES))}
    for start, stop, plane in phases:
        ax.broken_barh([(start, stop - start)], (rows[plane] - 0.4, 0.8), color=PLANE_COLORS[plane])
        if label_switches and (stop - start) >= max_epochs / 60:
            ax.text(start, rows[plane] + 0.45, str(start), fontsize=7, ha="left", va="bottom")
    ax.set_yticks(list(rows.values()), list(rows))
    ax.set_ylim(-0.6, 2.9)
    ax.set_ylabel("plane")
    ax.legend(
        handles=[Patch(color=PLANE_COLORS[p], label=p) for p in PLANES],
        ncols=3, loc="upper right", fontsize=8, frameon=False, bbox_to_anchor=(1, 1.35),
    )
    lrs = cosine_lr(lr, t_max, max_epochs)
    ax_lr.step(np.arange(max_epochs), lrs, where="post", color="0.25", lw=1)
    for start, stop, plane in phases:
        ax_lr.axvspan(start, stop, color=PLANE_COLORS[plane], alpha=0.12, lw=0)
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_xlabel("epoch")
    ax_lr.set_xlim(0, max_epochs)
    ax_lr.set_title(f"CosineAnnealingLR(T_max={t_max}), stepped per epoch", fontsize=9, loc="left")
    fig.suptitle(title or f"Plane schedule: {max_epochs} epochs, T = {cycle_duration}, factor {cycle_factor}")
    return fig


def cost_table(rows: Sequence[Mapping[str, object]], baseline: str | None = None) -> pd.DataFrame:
    """A table of forward + backward costs, with speed-ups relative to ``baseline``.

    Parameters
    ----------
    rows : sequence of mapping
        Each with ``what`` (str), ``seconds`` (float) and optionally ``value`` and any other columns.
    baseline : str, optional
        The ``what`` of the row the speed-up column divides by (default: the first row).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``what``, with a ``speed-up`` column (baseline seconds / seconds).
    """
    df = pd.DataFrame(list(rows)).set_index("what")
    base = df["seconds"].iloc[0] if baseline is None else df.loc[baseline, "seconds"]
    df["speed-up"] = base / df["seconds"]
    return df
