"""Figures of the SUVR and by-manufacturer standardization chapter.

Every function returns a :class:`matplotlib.figure.Figure` and does no computation beyond what it
draws; the numbers come from :mod:`tausynth.suvr`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from tausynth.harmonization import Scan
from tausynth.plotting.scales import PET_CMAP, SUVR_RANGE
from tausynth.plotting.slices import orthogonal_slices
from tausynth.suvr import ManufacturerStandardizer, minmax_normalize

__all__ = [
    "MANUFACTURER_COLORS",
    "plot_manufacturer_errors",
    "plot_normalization_maps",
    "plot_normalization_scatter",
    "plot_reference_region",
    "plot_roi_by_group",
    "plot_travelling",
    "plot_voxel_histograms",
]

MANUFACTURER_COLORS: dict[str, str] = {"Siemens": "#1f77b4", "GE": "#ff7f0e", "Philips": "#2ca02c"}
_ORDER = ("Siemens", "GE", "Philips")


def _manufacturers(values: Sequence[str]) -> list[str]:
    seen = set(values)
    return [m for m in _ORDER if m in seen] + sorted(seen - set(_ORDER))


def _color(manufacturer: str) -> str:
    return MANUFACTURER_COLORS.get(manufacturer, "0.4")


def plot_reference_region(
    suvr_map: np.ndarray,
    refmask: np.ndarray,
    t1: np.ndarray | None = None,
    voxel: tuple[int, int, int] | None = None,
    vmax: float = SUVR_RANGE[1],
    title: str | None = None,
) -> Figure:
    """SUVR map in three planes through the reference region, with the region outlined.

    Parameters
    ----------
    suvr_map : numpy.ndarray
        SUVR volume (RAS voxel order).
    refmask : numpy.ndarray
        Reference-region mask, drawn as a cyan contour.
    t1 : numpy.ndarray, optional
        Shown in grey in a first row when given.
    voxel : (int, int, int), optional
        Array indices through which the planes pass; default the reference region's centroid, moved
        sagittally to the centroid of its first-axis half (one cerebellar hemisphere).
    vmax : float, default=2.6
        Upper end of the SUVR color scale (lower end that of :data:`tausynth.plotting.scales.SUVR_RANGE`).
    """
    ref = np.asarray(refmask) > 0.5
    if voxel is None:
        idx = np.argwhere(ref)
        # the region is bilateral (the vermis is excluded): slice sagittally through one hemisphere
        half = idx[idx[:, 0] < ref.shape[0] / 2]
        x = half[:, 0].mean() if len(half) else idx[:, 0].mean()
        voxel = (int(round(x)), int(round(idx[:, 1].mean())), int(round(idx[:, 2].mean())))
    rows = [("T1w", t1, "gray", None, None)] if t1 is not None else []
    rows.append(("SUVR", suvr_map, PET_CMAP, SUVR_RANGE[0], vmax))
    fig, axes = plt.subplots(len(rows), 3, figsize=(10, 3.4 * len(rows)), squeeze=False, layout="constrained")
    for r, (label, vol, cmap, lo, hi) in enumerate(rows):
        for c, ((plane, img), (_, ref2d)) in enumerate(zip(orthogonal_slices(vol, voxel), orthogonal_slices(ref, voxel), strict=True)):
            ax = axes[r, c]
            im = ax.imshow(img, cmap=cmap, vmin=lo, vmax=hi, origin="lower", interpolation="nearest")
            if ref2d.any():
                ax.contour(ref2d.astype(float), levels=[0.5], colors="cyan", linewidths=1.2)
            ax.set_title(f"{label}, {plane}")
            ax.set_axis_off()
        if label == "SUVR":
            fig.colorbar(im, ax=axes[r, :].tolist(), shrink=0.8, label="SUVR")
    if title:
        fig.suptitle(title)
    return fig


def plot_voxel_histograms(
    scans: Sequence[Scan],
    standardizer: ManufacturerStandardizer,
    reference: str = "Siemens",
    bins: int = 90,
    value_range: tuple[float, float] = (0.3, 2.7),
) -> Figure:
    """Brain-mask voxel SUVR distributions per manufacturer, before and after standardization.

    Left: observed SUVR. Right: standardized, then inverted to the ``reference`` manufacturer's
    scale (an affine relabelling of the z-scores, so the overlap is the same as in z units).
    """
    before: dict[str, list[np.ndarray]] = {}
    after: dict[str, list[np.ndarray]] = {}
    for s in scans:
        before.setdefault(s.manufacturer, []).append(s.pet[s.mask])
        after.setdefault(s.manufacturer, []).append(
            standardizer.to_reference_scale(s.pet, s.manufacturer, reference, subject=s.subject_id)[s.mask]
        )
    edges = np.linspace(*value_range, bins + 1)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True, layout="constrained")
    for ax, data, title in (
        (axes[0], before, "observed SUVR"),
        (axes[1], after, f"after standardization (on the {reference} scale)"),
    ):
        for m in _manufacturers(list(data)):
            values = np.concatenate(data[m])
            n_subjects = len(data[m])
            ax.hist(values, bins=edges, density=True, histtype="step", lw=1.8, color=_color(m),
                    label=f"{m} (n = {n_subjects}, mean {values.mean():.3f})")
        ax.set_xlabel("voxel SUVR")
        ax.set_title(title)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("density")
    return fig


def plot_roi_by_group(
    table: pd.DataFrame,
    columns: Sequence[str] = ("observed", "standardized"),
    titles: Sequence[str] | None = None,
    group: str = "diagnosis",
    groups: Sequence[str] = ("CN", "MCI", "AD"),
    ylabel: str = "meta-temporal SUVR",
) -> Figure:
    """Box plots of ROI values by ``group`` (x) and manufacturer (color), one panel per column."""
    titles = list(titles) if titles is not None else list(columns)
    mans = _manufacturers(list(table["manufacturer"]))
    groups = [g for g in groups if g in set(table[group])]
    fig, axes = plt.subplots(1, len(columns), figsize=(5.2 * len(columns), 3.8), sharey=True,
                             squeeze=False, layout="constrained")
    width = 0.8 / max(len(mans), 1)
    for ax, col, title in zip(axes[0], columns, titles, strict=True):
        for k, m in enumerate(mans):
            data = [table.loc[(table[group] == g) & (table["manufacturer"] == m), col].dropna().to_numpy()
                    for g in groups]
            pos = np.arange(len(groups)) + (k - (len(mans) - 1) / 2) * width
            keep = [i for i, d in enumerate(data) if len(d)]
            bp = ax.boxplot([data[i] for i in keep], positions=pos[keep], widths=width * 0.9,
                            patch_artist=True, showfliers=True, flierprops={"markersize": 3},
                            medianprops={"color": "k"})
            for patch in bp["boxes"]:
                patch.set_facecolor(_color(m))
                patch.set_alpha(0.6)
            ax.plot([], [], "s", color=_color(m), label=m)
        ax.set_xticks(np.arange(len(groups)), groups)
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].set_ylabel(ylabel)
    axes[0, -1].legend(fontsize=8)
    return fig


def plot_travelling(table: pd.DataFrame, reference: str = "Siemens") -> Figure:
    """Travelling subjects: per-subject ROI bias versus the reference scanner and voxel MAE.

    ``table`` is :func:`tausynth.suvr.travelling_comparison` output.
    """
    mans = _manufacturers(list(table["manufacturer"]))
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
    ax = axes[0]
    rng = np.random.default_rng(0)
    for k, m in enumerate(mans):
        sub = table[table["manufacturer"] == m]
        for j, col in enumerate(("bias_raw", "bias_std")):
            x = 2 * k + j + rng.uniform(-0.12, 0.12, len(sub))
            ax.plot(x, sub[col], "o", ms=3.5, color=_color(m), alpha=0.45 if j == 0 else 0.9)
            ax.plot([2 * k + j - 0.3, 2 * k + j + 0.3], [sub[col].mean()] * 2, color="k", lw=2)
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set_xticks(np.arange(2 * len(mans)), [f"{m}\n{w}" for m in mans for w in ("raw", "standardized")])
    ax.set_ylabel(f"meta-temporal SUVR minus {reference}")
    ax.set_title("same subjects, ROI bias (bar = mean)")
    ax = axes[1]
    means = table.groupby("manufacturer")[["mae_raw", "mae_std"]].mean().reindex(mans)
    x = np.arange(len(mans))
    ax.bar(x - 0.2, means["mae_raw"], 0.4, color=[_color(m) for m in mans], alpha=0.45, label="raw")
    ax.bar(x + 0.2, means["mae_std"], 0.4, color=[_color(m) for m in mans], label="standardized")
    for xi, (a, b) in zip(x, means.to_numpy(), strict=True):
        ax.text(xi + 0.2, b, f"−{100 * (1 - b / a):.0f} %", ha="center", va="bottom", fontsize=9)
    ax.set_xticks(x, mans)
    ax.set_ylabel(f"voxel MAE vs {reference} (SUVR)")
    ax.set_title("same subjects, voxel mean absolute difference")
    ax.legend(fontsize=8)
    return fig


def plot_manufacturer_errors(
    summaries: Mapping[str, pd.DataFrame],
    columns: Sequence[str] = ("error_raw", "error_std"),
    labels: Sequence[str] = ("raw", "standardized"),
    ylabel: str = "mean meta-temporal error (SUVR)",
) -> Figure:
    """Mean error per manufacturer, raw vs standardized, one panel per cohort.

    ``summaries`` maps a panel title to :func:`tausynth.suvr.manufacturer_error_summary` output;
    the between-manufacturer SD is written under each panel.
    """
    fig, axes = plt.subplots(1, len(summaries), figsize=(5.2 * len(summaries), 3.8), sharey=True,
                             squeeze=False, layout="constrained")
    for ax, (title, summary) in zip(axes[0], summaries.items(), strict=True):
        mans = _manufacturers([m for m in summary.index if m != "between-manufacturer SD"])
        x = np.arange(len(mans))
        w = 0.8 / len(columns)
        for j, (col, lab) in enumerate(zip(columns, labels, strict=True)):
            ax.bar(x + (j - (len(columns) - 1) / 2) * w, summary.loc[mans, col], w,
                   color=[_color(m) for m in mans], alpha=0.4 + 0.6 * j / max(len(columns) - 1, 1),
                   edgecolor="k", lw=0.5, label=lab)
        ax.axhline(0, color="0.3", lw=0.8)
        ax.set_xticks(x, mans)
        sd = summary.loc["between-manufacturer SD", list(columns)]
        ax.set_title(title)
        ax.set_xlabel("between-manufacturer SD: " + ", ".join(f"{lab} {v:.3f}" for lab, v in zip(labels, sd, strict=True)))
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].set_ylabel(ylabel)
    axes[0, 0].legend(fontsize=8)
    return fig


def plot_normalization_scatter(table: pd.DataFrame) -> Figure:
    """Ground-truth ROI SUVR against standardized SUVR, min–max value and the ORACLE min–max SUVR.

    ``table`` is :func:`tausynth.suvr.roi_table` output (with ground truth).
    """
    panels = (
        ("standardized", "standardized → SUVR (reference scale)", "SUVR"),
        ("minmax", "per-subject min–max (its own space)", "min–max units"),
        ("oracle_suvr", "min–max → SUVR with the true range (ORACLE)", "SUVR"),
    )
    fig, axes = plt.subplots(1, 3, figsize=(14, 4), layout="constrained")
    truth = table["truth"]
    for ax, (col, title, unit) in zip(axes, panels, strict=True):
        for m in _manufacturers(list(table["manufacturer"])):
            sub = table[table["manufacturer"] == m]
            ax.plot(sub["truth"], sub[col], "o", ms=4, alpha=0.7, color=_color(m), label=m)
        r = np.corrcoef(truth, table[col])[0, 1]
        if unit == "SUVR":
            lim = [float(min(truth.min(), table[col].min())), float(max(truth.max(), table[col].max()))]
            ax.plot(lim, lim, color="0.4", lw=0.8, ls="--")
        ax.set_title(f"{title}\nPearson r = {r:.3f}", fontsize=10)
        ax.set_xlabel("ground-truth meta-temporal SUVR")
        ax.set_ylabel(unit)
    axes[0].legend(fontsize=8)
    return fig


def plot_normalization_maps(
    scans: Sequence[Scan], standardizer: ManufacturerStandardizer, slice_z: int | None = None
) -> Figure:
    """Axial slice of each scan as SUVR, standardized (z) and per-subject min–max.

    ``slice_z`` defaults to 35 % of the way up the brain mask (inferior temporal lobes).

    One row per scan (e.g. a CN and an AD subject); each column shares one color scale (0.5th to
    99.5th percentile of the brain voxels shown; [0, 1] for min–max), so a reader sees that min–max
    stretches every subject to the same range. Voxels outside the brain mask are black.
    """
    fig, axes = plt.subplots(len(scans), 3, figsize=(10, 3.3 * len(scans)), squeeze=False, layout="constrained")
    spaces = []
    for s in scans:
        z = standardizer.transform(s.pet, s.manufacturer, subject=s.subject_id)
        mm = minmax_normalize(s.pet, s.mask, subject=s.subject_id)
        spaces.append(tuple(np.where(s.mask, img, np.nan) for img in (s.pet, z, mm)))
    ranges = []
    for c in range(3):  # one color scale per column, from the 0.5th to the 99.5th percentile
        values = np.concatenate([sp[c][s.mask] for sp, s in zip(spaces, scans, strict=True)])
        ranges.append((float(np.percentile(values, 0.5)), float(np.percentile(values, 99.5))))
    ranges[2] = (0.0, 1.0)
    titles = ["SUVR", "standardized (z)", "min–max"]
    cmap = plt.get_cmap(PET_CMAP).with_extremes(bad="black")
    for r, (s, images) in enumerate(zip(scans, spaces, strict=True)):
        zs = np.flatnonzero(s.mask.any(axis=(0, 1)))
        # default: 35 % up the brain, i.e. through the inferior temporal lobes where tau starts
        k = slice_z if slice_z is not None else int(round(zs[0] + 0.35 * (zs[-1] - zs[0])))
        for c, (img, (lo, hi), title) in enumerate(zip(images, ranges, titles, strict=True)):
            ax = axes[r, c]
            im = ax.imshow(img[:, :, k].T, origin="lower", cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
            ax.set_title(f"{s.subject_id} {s.diagnosis} {s.amyloid} ({s.manufacturer})\n{title}", fontsize=9)
            ax.set_axis_off()
            if r == len(scans) - 1:
                fig.colorbar(im, ax=axes[:, c].tolist(), orientation="horizontal", shrink=0.8, label=title)
    return fig
