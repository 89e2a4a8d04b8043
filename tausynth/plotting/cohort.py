"""Figures of the data chapter: staging, montages, ROI placement, MRI–tau coupling."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import nibabel as nib
import numpy as np
import pandas as pd
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from tausynth.data.summary import BRAAK_LABELS
from tausynth.plotting.scales import PET_CMAP, SUVR_RANGE


def plot_stage_by_diagnosis(counts: pd.DataFrame) -> Figure:
    """Stacked bars of Braak stage counts per group (output of ``stage_by_diagnosis``)."""
    fig, ax = plt.subplots(figsize=(7, 3.2))
    colors = plt.get_cmap("magma_r")(np.linspace(0.1, 0.9, len(counts.columns)))
    bottom = np.zeros(len(counts))
    for color, stage in zip(colors, counts.columns, strict=True):
        ax.bar(counts.index, counts[stage], bottom=bottom, color=color, label=f"Braak {stage}")
        bottom += counts[stage].to_numpy()
    ax.set_ylabel("subjects")
    ax.set_title("Braak stage (ground truth) by diagnosis and amyloid status")
    ax.legend(ncol=1, fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left", frameon=False)
    fig.tight_layout()
    return fig


def plot_montage(
    t1: Sequence[nib.Nifti1Image],
    pet: Sequence[nib.Nifti1Image],
    titles: Sequence[str],
    cut_coords: tuple[float, float, float] = (-26.0, -20.0, -14.0),
    pet_range: tuple[float, float] = SUVR_RANGE,
) -> Figure:
    """T1w and PET SUVR of several subjects in three orthogonal cuts (nilearn, one column each).

    Parameters
    ----------
    t1, pet : sequence of nibabel images
        One per subject, on the same grid.
    titles : sequence of str
        Column titles.
    cut_coords : tuple of float
        MNI (x, y, z) of the sagittal, coronal and axial cuts (mm), as in nilearn.
    pet_range : tuple of float
        SUVR color range.
    """
    from nilearn import plotting

    n = len(t1)
    fig, axes = plt.subplots(6, n, figsize=(2.0 * n, 8.4), squeeze=False)
    modes = (("x", cut_coords[0]), ("y", cut_coords[1]), ("z", cut_coords[2]))
    for j in range(n):
        for i, (mode, coord) in enumerate(modes):
            plotting.plot_anat(t1[j], display_mode=mode, cut_coords=[coord], axes=axes[i, j],
                               annotate=False, draw_cross=False, black_bg=True, vmin=0, vmax=1.1,
                               colorbar=False)
            plotting.plot_img(pet[j], display_mode=mode, cut_coords=[coord], axes=axes[3 + i, j],
                              annotate=False, draw_cross=False, black_bg=True, cmap=PET_CMAP,
                              vmin=pet_range[0], vmax=pet_range[1], colorbar=False)
        axes[0, j].set_title(titles[j], fontsize=8)
    for i, name in enumerate(("T1w sag.", "T1w cor.", "T1w ax.", "PET sag.", "PET cor.", "PET ax.")):
        axes[i, 0].text(-0.08, 0.5, name, transform=axes[i, 0].transAxes, rotation=90,
                        va="center", ha="right", fontsize=8)
    sm = plt.cm.ScalarMappable(cmap=PET_CMAP, norm=plt.Normalize(*pet_range))
    fig.colorbar(sm, ax=axes[3:, :].ravel().tolist(), fraction=0.015, pad=0.01, label="SUVR")
    return fig


def braak_group_map(labels: np.ndarray, rois: dict[str, Sequence[int]], reference: np.ndarray) -> np.ndarray:
    """Integer map: 1 Braak I, 2 hippocampus (II), 3 III/IV, 4 V/VI, 5 reference, 0 elsewhere."""
    out = np.zeros(labels.shape, np.int16)
    for value, key in ((1, "braak1"), (2, "braak2"), (3, "braak34"), (4, "braak56")):
        out[np.isin(labels, rois[key])] = value
    out[reference.astype(bool)] = 5
    return out


ROI_GROUP_NAMES = ("Braak I (entorhinal)", "Braak II (hippocampus)", "Braak III/IV", "Braak V/VI",
                   "reference (inf. cerebellar GM)")
ROI_GROUP_COLORS = ("#d62728", "#ff7f0e", "#2ca02c", "#1f77b4", "#17becf")


def plot_roi_placement(
    background: nib.Nifti1Image,
    groups: nib.Nifti1Image,
    cuts: Sequence[tuple[str, float]] = (("z", -34.0), ("z", -14.0), ("z", 16.0), ("y", -20.0),
                                         ("x", -26.0), ("z", -44.0)),
) -> Figure:
    """ROI placement (output of ``braak_group_map`` as an image) over a T1w background."""
    from nilearn import plotting

    cmap = ListedColormap(ROI_GROUP_COLORS)
    fig, axes = plt.subplots(1, len(cuts), figsize=(2.2 * len(cuts), 2.6), squeeze=False)
    for ax, (mode, coord) in zip(axes[0], cuts, strict=True):
        plotting.plot_roi(groups, bg_img=background, display_mode=mode, cut_coords=[coord], axes=ax,
                          cmap=cmap, vmin=1, vmax=5, annotate=False, draw_cross=False, black_bg=True,
                          alpha=0.8, colorbar=False)
        ax.set_title(f"{mode} = {coord:+.0f} mm", fontsize=8)
    handles = [Patch(color=c, label=n) for c, n in zip(ROI_GROUP_COLORS, ROI_GROUP_NAMES, strict=True)]
    fig.legend(handles=handles, loc="lower center", ncol=5, fontsize=8, frameon=False)
    fig.subplots_adjust(bottom=0.18)
    return fig


def plot_coupling(subjects: pd.DataFrame) -> Figure:
    """MRI–tau coupling: hippocampal GM vs entorhinal SUVR, and ventricles vs Braak stage."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    dx_color = {"CN": "#2ca02c", "MCI": "#ff7f0e", "AD": "#d62728"}
    colors = subjects["diagnosis"].map(dx_color).fillna("grey")
    pairs = (("hippocampus_gm_ml", "pet_braak1", "hippocampal GM (ml)", "Braak I (entorhinal) SUVR"),
             ("stage_cont", "ventricles_csf_ml", "continuous Braak stage (ground truth)", "ventricular CSF (ml)"))
    for ax, (x, y, xl, yl) in zip(axes, pairs, strict=True):
        ax.scatter(subjects[x], subjects[y], c=colors, s=14, alpha=0.8)
        r = float(np.corrcoef(subjects[x], subjects[y])[0, 1])
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.set_title(f"r = {r:+.2f} (N = {len(subjects)})", fontsize=9)
    axes[1].set_xticks(range(7), BRAAK_LABELS)
    handles = [Patch(color=c, label=d) for d, c in dx_color.items()]
    axes[0].legend(handles=handles, fontsize=8, frameon=False)
    fig.tight_layout()
    return fig
