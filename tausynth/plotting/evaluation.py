"""Figures of the ROI-analysis and results chapters.

Every function returns a :class:`matplotlib.figure.Figure`; the numbers they annotate come from
:mod:`tausynth.evaluation` (agreement statistics, staging, tables), not from the plotting code.
Inputs are the long ROI table of :func:`tausynth.evaluation.roi.roi_frame` (``subject_id, region,
real, synthetic`` plus ``diagnosis``) or plain arrays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from tausynth.errors import TausynthError
from tausynth.evaluation.agreement import agreement_stats, bland_altman
from tausynth.evaluation.evaluate import SUVR_KINDS, RunEvaluation
from tausynth.evaluation.staging import confusion_matrix
from tausynth.evaluation.tables import rank_subjects
from tausynth.io import load_nifti
from tausynth.plotting.scales import DIFF_CMAP, PET_CMAP, SUVR_DIFF, SUVR_RANGE
from tausynth.plotting.slices import center_voxel, orthogonal_slices

__all__ = [
    "DX_COLORS",
    "plot_bland_altman",
    "plot_confusion",
    "plot_regions",
    "plot_residuals_by_group",
    "plot_roi_by_stage",
    "plot_roi_scatter",
    "plot_runs_on_subject",
    "plot_subject_slices",
    "plot_tracking",
    "write_run_figures",
]

DX_COLORS: dict[str, str] = {"CN": "#2ca02c", "MCI": "#ff7f0e", "AD": "#d62728"}
_DX_ORDER = ("CN", "MCI", "AD")


def _regions(frame: pd.DataFrame, regions: Sequence[str] | None) -> list[str]:
    names = list(regions) if regions is not None else list(pd.unique(frame["region"]))
    missing = [r for r in names if r not in set(frame["region"])]
    if missing:
        raise TausynthError(f"region(s) {', '.join(missing)} not in the ROI table")
    return names


def _groups(values: pd.Series) -> list[str]:
    seen = [str(v) for v in pd.unique(values.astype(str))]
    return [g for g in _DX_ORDER if g in seen] + sorted(set(seen) - set(_DX_ORDER))


def _color(group: str, k: int) -> str:
    return DX_COLORS.get(group, f"C{k % 10}")


def _grid(n: int, ncols: int, size: float = 3.3) -> tuple[Figure, np.ndarray]:
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False, layout="constrained")
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    return fig, axes.ravel()


def plot_roi_scatter(
    frame: pd.DataFrame, regions: Sequence[str] | None = None, hue: str = "diagnosis", ncols: int = 3
) -> Figure:
    """Real against synthetic SUVR per region, colored by ``hue``, with the identity line.

    Each panel is annotated with n, Pearson r, ICC(2,1) and MAE of all subjects.
    """
    names = _regions(frame, regions)
    fig, axes = _grid(len(names), ncols)
    for ax, region in zip(axes, names, strict=False):
        sub = frame[frame["region"] == region]
        groups = _groups(sub[hue]) if hue in sub else ["all"]
        for k, g in enumerate(groups):
            part = sub[sub[hue].astype(str) == g] if hue in sub else sub
            ax.scatter(part["real"], part["synthetic"], s=18, alpha=0.8, color=_color(g, k), label=g)
        lo = float(min(sub["real"].min(), sub["synthetic"].min()))
        hi = float(max(sub["real"].max(), sub["synthetic"].max()))
        pad = 0.05 * (hi - lo or 1.0)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.3", lw=1, ls="--", label="identity")
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_aspect("equal")
        st = agreement_stats(sub["real"].to_numpy(), sub["synthetic"].to_numpy())
        ax.text(0.03, 0.97, f"n={st['n']}  r={st['pearson_r']:.2f}\nICC={st['icc']:.2f}  MAE={st['mae']:.3f}",
                transform=ax.transAxes, va="top", fontsize=8)
        ax.set_title(region)
        ax.set_xlabel("real SUVR")
        ax.set_ylabel("synthetic SUVR")
    axes[0].legend(fontsize=7, loc="lower right")
    return fig


def plot_bland_altman(
    frame: pd.DataFrame, regions: Sequence[str] | None = None, hue: str = "diagnosis", ncols: int = 3
) -> Figure:
    """Bland–Altman plots per region: mean of real and synthetic against ``synthetic − real``.

    Solid line: bias; dashed lines: 95 % limits of agreement (bias ± 1.96 SD).
    """
    names = _regions(frame, regions)
    fig, axes = _grid(len(names), ncols)
    for ax, region in zip(axes, names, strict=False):
        sub = frame[frame["region"] == region]
        mean = (sub["real"] + sub["synthetic"]) / 2
        diff = sub["synthetic"] - sub["real"]
        groups = _groups(sub[hue]) if hue in sub else ["all"]
        for k, g in enumerate(groups):
            sel = (sub[hue].astype(str) == g).to_numpy() if hue in sub else np.ones(len(sub), bool)
            ax.scatter(mean[sel], diff[sel], s=18, alpha=0.8, color=_color(g, k), label=g)
        ba = bland_altman(sub["real"].to_numpy(), sub["synthetic"].to_numpy())
        ax.axhline(ba.bias, color="k", lw=1.2, label=f"bias {ba.bias:+.3f}")
        if np.isfinite(ba.sd_diff):
            for y in (ba.loa_low, ba.loa_high):
                ax.axhline(y, color="k", lw=1, ls="--")
            ax.text(0.98, 0.02, f"LoA [{ba.loa_low:+.3f}, {ba.loa_high:+.3f}]", transform=ax.transAxes,
                    ha="right", va="bottom", fontsize=8)
        ax.axhline(0, color="0.6", lw=0.8, ls=":")
        ax.set_title(region)
        ax.set_xlabel("mean of real and synthetic SUVR")
        ax.set_ylabel("synthetic − real")
    axes[0].legend(fontsize=7, loc="upper right")
    return fig


def plot_residuals_by_group(
    frame: pd.DataFrame, regions: Sequence[str] | None = None, by: str = "diagnosis"
) -> Figure:
    """``synthetic − real`` per region, one box per group of ``by`` (points overlaid)."""
    names = _regions(frame, regions)
    if by not in frame:
        raise TausynthError(f"column {by!r} not in the ROI table")
    groups = _groups(frame[by])
    diff = (frame["synthetic"] - frame["real"]).to_numpy()
    fig, ax = plt.subplots(figsize=(max(6.0, 1.0 * len(names) * len(groups)), 3.8), layout="constrained")
    width = 0.8 / len(groups)
    rng = np.random.default_rng(0)  # jitter only
    for k, g in enumerate(groups):
        data = [diff[(frame["region"] == r).to_numpy() & (frame[by].astype(str) == g).to_numpy()] for r in names]
        pos = np.arange(len(names)) + (k - (len(groups) - 1) / 2) * width
        ax.boxplot([d if d.size else [np.nan] for d in data], positions=pos, widths=width * 0.85,
                   patch_artist=True, boxprops={"facecolor": _color(g, k), "alpha": 0.35}, showfliers=False,
                   medianprops={"color": _color(g, k)})
        for p, d in zip(pos, data, strict=True):
            ax.scatter(p + rng.uniform(-width / 4, width / 4, d.size), d, s=8, color=_color(g, k),
                       label=g if p == pos[0] else None)
    ax.axhline(0, color="0.4", lw=0.8, ls="--")
    ax.set_xticks(np.arange(len(names)), names, rotation=30, ha="right")
    ax.set_ylabel("synthetic − real SUVR")
    ax.legend(title=by, fontsize=8)
    return fig


def plot_roi_by_stage(
    frame: pd.DataFrame,
    stage: str = "braak",
    column: str = "real",
    regions: Sequence[str] | None = None,
    hue: str = "diagnosis",
    ncols: int = 3,
    ylim: tuple[float, float] | None = None,
) -> Figure:
    """SUVR (``column``) of each region against a stage column, points colored by ``hue``, stage means joined.

    ``ylim`` defaults to one range per region that covers both the ``real`` and the ``synthetic``
    column, so the real and synthetic figures share their axes and a flat prediction looks flat.
    """
    names = _regions(frame, regions)
    if stage not in frame:
        raise TausynthError(f"column {stage!r} not in the ROI table")
    fig, axes = _grid(len(names), ncols)
    rng = np.random.default_rng(0)  # jitter only
    for ax, region in zip(axes, names, strict=False):
        sub = frame[frame["region"] == region]
        groups = _groups(sub[hue]) if hue in sub else ["all"]
        for k, g in enumerate(groups):
            part = sub[sub[hue].astype(str) == g] if hue in sub else sub
            ax.scatter(part[stage] + rng.uniform(-0.15, 0.15, len(part)), part[column], s=14, alpha=0.8,
                       color=_color(g, k), label=g)
        means = sub.groupby(stage)[column].mean()
        ax.plot(means.index, means.to_numpy(), color="k", lw=1.2, marker="o", ms=3, label="stage mean")
        ax.set_title(region)
        ax.set_xlabel(stage)
        ax.set_ylabel(f"{column} SUVR")
        values = sub[[c for c in ("real", "synthetic", column) if c in sub]].to_numpy(dtype=float)
        values = values[np.isfinite(values)]
        if ylim is not None:
            ax.set_ylim(*ylim)
        elif values.size:
            pad = 0.05 * (float(values.max() - values.min()) or 1.0)
            ax.set_ylim(float(values.min()) - pad, float(values.max()) + pad)
    axes[0].legend(fontsize=7)
    return fig


def plot_confusion(matrix: pd.DataFrame, title: str | None = None, cmap: str = "Blues") -> Figure:
    """Heat map of a confusion matrix (rows: reference, columns: prediction) with the counts written in."""
    counts = matrix.to_numpy()
    fig, ax = plt.subplots(figsize=(1.0 + 0.9 * counts.shape[1], 0.8 + 0.8 * counts.shape[0]), layout="constrained")
    ax.imshow(counts, cmap=cmap, vmin=0, vmax=max(1, counts.max()))
    for (i, j), v in np.ndenumerate(counts):
        ax.text(j, i, str(v), ha="center", va="center", color="white" if v > counts.max() / 2 else "black")
    ax.set_xticks(range(counts.shape[1]), [str(c) for c in matrix.columns])
    ax.set_yticks(range(counts.shape[0]), [str(r) for r in matrix.index])
    ax.set_xlabel(matrix.columns.name or "predicted")
    ax.set_ylabel(matrix.index.name or "reference")
    if title:
        ax.set_title(title)
    return fig


def plot_regions(
    labels: np.ndarray,
    regions: Mapping[str, Sequence[int]],
    background: np.ndarray | None = None,
    voxel: tuple[int, int, int] | None = None,
) -> Figure:
    """Regions drawn on a template in three planes, one color per region.

    Where regions overlap (composites) the first one listed wins, so pass disjoint sets (e.g.
    Braak I … VI) for a readable map.
    """
    lab = np.asarray(labels)
    index = np.zeros(lab.shape, dtype=int)
    for k, ids in enumerate(regions.values(), start=1):
        index[(index == 0) & np.isin(lab, list(ids))] = k
    if not index.any():
        raise TausynthError("none of the regions has a voxel in the label map")
    voxel = voxel or center_voxel(index > 0)
    colors = ["none", *[f"C{k % 10}" for k in range(len(regions))]]
    cmap = ListedColormap(colors)
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.8), layout="constrained")
    shown = orthogonal_slices(index, voxel)
    backdrop = orthogonal_slices(background, voxel) if background is not None else [(p, None) for p, _ in shown]
    for ax, (name, ov), (_, bg) in zip(axes, shown, backdrop, strict=True):
        if bg is not None:
            ax.imshow(bg, origin="lower", cmap="gray")
        ov = ov.astype(float)
        ax.imshow(np.ma.masked_where(ov == 0, ov), origin="lower", cmap=cmap, vmin=0, vmax=len(regions),
                  interpolation="nearest", alpha=0.85)
        ax.set_title(name)
        ax.axis("off")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[k + 1]) for k in range(len(regions))]
    fig.legend(handles, list(regions), loc="outside right center", fontsize=8)
    return fig


def plot_subject_slices(
    cases: Sequence[Mapping[str, object]],
    vmin: float = SUVR_RANGE[0],
    vmax: float = SUVR_RANGE[1],
    diff_max: float = SUVR_DIFF,
) -> Figure:
    """Axial, coronal and sagittal slices of real PET, synthetic PET and their difference, per subject.

    Parameters
    ----------
    cases : sequence of mapping
        Each with ``real`` and ``synthetic`` (3D SUVR arrays), ``title`` (e.g. ``"best: sub-0003,
        SSIM 0.93"``) and optionally ``mask`` and ``voxel`` (array indices through which the planes
        pass; default the center of the mask).
    """
    if not cases:
        raise TausynthError("no subjects to show")
    fig, axes = plt.subplots(len(cases), 9, figsize=(18, 2.3 * len(cases)), squeeze=False, layout="constrained")
    im_s = im_d = None
    for r, case in enumerate(cases):
        real = np.asarray(case["real"], dtype=float)
        synth = np.asarray(case["synthetic"], dtype=float)
        mask = np.asarray(case.get("mask", real != 0), dtype=bool)
        voxel = case.get("voxel") or center_voxel(mask)
        diff = np.where(mask, synth - real, 0.0)
        for c, (what, vol) in enumerate((("real", real), ("synthetic", synth), ("synthetic − real", diff))):
            for v, (plane, sl) in enumerate(orthogonal_slices(vol, voxel, ("axial", "coronal", "sagittal"))):
                ax = axes[r, 3 * c + v]
                if what.startswith("synthetic −"):
                    im_d = ax.imshow(sl, origin="lower", cmap=DIFF_CMAP, vmin=-diff_max, vmax=diff_max)
                else:
                    im_s = ax.imshow(sl, origin="lower", cmap=PET_CMAP, vmin=vmin, vmax=vmax)
                ax.axis("off")
                if r == 0:
                    ax.set_title(f"{what}\n{plane}", fontsize=8)
        axes[r, 0].text(-0.08, 0.5, str(case.get("title", "")), transform=axes[r, 0].transAxes, rotation=90,
                        ha="right", va="center", fontsize=8)
    fig.colorbar(im_s, ax=axes[:, :6].ravel().tolist(), shrink=0.7, label="SUVR", location="bottom")
    fig.colorbar(im_d, ax=axes[:, 6:].ravel().tolist(), shrink=0.7, label="synthetic − real (SUVR)", location="bottom")
    return fig


def plot_runs_on_subject(
    real: np.ndarray,
    synthetic: Mapping[str, np.ndarray],
    mask: np.ndarray | None = None,
    title: str = "",
    ncols: int = 5,
    vmin: float = SUVR_RANGE[0],
    vmax: float = SUVR_RANGE[1],
) -> Figure:
    """Small multiples: one subject's real PET and every run's synthetic PET, coronal and axial, on one SUVR scale.

    Parameters
    ----------
    real : ndarray
        The subject's real SUVR volume (X, Y, Z), RAS.
    synthetic : mapping of str to ndarray
        Run name -> its synthetic SUVR volume of the same subject, on the same grid.
    mask : ndarray, optional
        Brain mask: the slices pass through its centre (default: the non-zero voxels of ``real``).
    title : str
    ncols : int, default 5
        Volumes per row of panels (each volume takes two rows: coronal above axial).
    vmin, vmax : float
        The SUVR scale, the book's fixed one by default.
    """
    if not synthetic:
        raise TausynthError("no synthetic volumes to show")
    volumes = {"real PET": np.asarray(real, dtype=float), **{k: np.asarray(v, dtype=float) for k, v in synthetic.items()}}
    inside = np.asarray(mask if mask is not None else volumes["real PET"] != 0, dtype=bool)
    _, j, k = (int(round(c)) for c in np.argwhere(inside).mean(axis=0))
    nrows = -(-len(volumes) // ncols)
    fig, axes = plt.subplots(2 * nrows, ncols, figsize=(2.2 * ncols, 4.3 * nrows + 0.8), squeeze=False,
                             layout="constrained")
    for ax in axes.ravel():
        ax.axis("off")
    im = None
    for n, (name, vol) in enumerate(volumes.items()):
        r, c = 2 * (n // ncols), n % ncols
        im = axes[r, c].imshow(vol[:, j, :].T, origin="lower", cmap=PET_CMAP, vmin=vmin, vmax=vmax)
        axes[r + 1, c].imshow(vol[:, :, k].T, origin="lower", cmap=PET_CMAP, vmin=vmin, vmax=vmax)
        axes[r, c].set_title(name.replace("-standardize", "").replace("-s", " s", 1) if n else name,
                             fontsize=8, fontweight="bold" if n == 0 else "normal")
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.5, label="SUVR", location="bottom")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def write_run_figures(ev: RunEvaluation, out: Path, files: Mapping[str, tuple[str, str, str]]) -> list[Path]:
    """The figures of ``tausynth evaluate``, as PNGs in ``out``: ROI scatter, Bland–Altman, residuals, staging, best/worst.

    ``ev`` is :func:`tausynth.evaluation.evaluate.evaluate_run`'s result and ``files``
    :func:`tausynth.evaluation.evaluate.prediction_files`' map of each subject's synthetic PET, real PET and mask.
    Returns the paths written.
    """
    written = []

    def save(fig: Any, name: str) -> None:
        path = out / f"{name}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    out.mkdir(parents=True, exist_ok=True)
    roi = ev.per_region
    if not roi.empty:
        main = [r for r in ("metatemporal", "braak1", "braak2", "braak34", "braak56", "braak6") if r in set(roi["region"])]
        save(plot_roi_scatter(roi, main), "roi_scatter")
        save(plot_bland_altman(roi, main), "bland_altman")
        save(plot_residuals_by_group(roi, main), "residuals_by_diagnosis")
    if not ev.staging.empty:
        save(plot_confusion(confusion_matrix(ev.staging["stage_real"], ev.staging["stage_synthetic"]),
                              "imaging Braak stage: real (rows) vs synthetic PET"), "staging_confusion")
    suvr = ev.per_subject[ev.per_subject["kind"].isin(SUVR_KINDS)]
    if not suvr.empty:
        ranked = suvr
        best, worst = rank_subjects(ranked, "ssim", k=1)
        cases = []
        for tag, sid in (("best", best[0]), ("worst", worst[0])):
            pred_path, pet_path, mask_path = files[sid]
            score = float(ranked.loc[ranked["subject_id"] == sid, "ssim"].mean())
            case: dict[str, Any] = {"real": load_nifti(pet_path)[0], "synthetic": load_nifti(pred_path)[0],
                                    "title": f"{tag}: {sid}\nSSIM {score:.3f}"}
            if mask_path:
                case["mask"] = load_nifti(mask_path)[0] > 0.5
            cases.append(case)
        save(plot_subject_slices(cases), "best_worst_subjects")
    return written


_VERDICT_COLORS = {"tracks": "#2ca02c", "does not track": "#7f7f7f", "anti-correlated": "#d62728"}


def plot_tracking(tracking: pd.DataFrame, bound: str | None = "baseline-regional-regression") -> Figure:
    """Does each run's synthetic tau track the real tau? Meta-temporal Pearson r per run, colored by verdict.

    Parameters
    ----------
    tracking : pandas.DataFrame
        :func:`tausynth.evaluation.tracking.tracking_table` rows (``run``, ``n``, ``pearson_r``, ``verdict``).
    bound : str, optional
        A row of ``tracking`` drawn as a dashed line instead of a bar: what the T1 alone allows.
    """
    rows = tracking[tracking["run"] != bound].reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(7.5, 0.42 * len(rows) + 1.4), layout="constrained")
    y = np.arange(len(rows))[::-1]
    r = pd.to_numeric(rows["pearson_r"], errors="coerce").fillna(0.0)
    ax.barh(y, r, color=[_VERDICT_COLORS.get(v, "#7f7f7f") for v in rows["verdict"]])
    ax.set_yticks(y, rows["run"])
    for yi, value in zip(y, pd.to_numeric(rows["pearson_r"], errors="coerce"), strict=True):
        label = "n/a" if not np.isfinite(value) else f"{value:.2f}"
        ax.text(value if np.isfinite(value) else 0.0, yi, f" {label} ", va="center", fontsize=8,
                ha="left" if not np.isfinite(value) or value >= 0 else "right")
    ax.axvline(0, color="black", lw=0.8)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in _VERDICT_COLORS.values()]
    labels = list(_VERDICT_COLORS)
    if bound is not None and (tracking["run"] == bound).any():
        value = float(tracking.loc[tracking["run"] == bound, "pearson_r"].iloc[0])
        if np.isfinite(value):
            handles.append(ax.axvline(value, color="black", ls="--", lw=1))
            labels.append(f"regional regression on the T1 ({value:.2f})")
    ax.set_xlim(-1, 1)
    ax.set_xlabel("Pearson r, synthetic vs real meta-temporal SUVR (test subjects)")
    ax.legend(handles=handles, labels=labels, loc="upper center", bbox_to_anchor=(0.5, -0.18 - 0.6 / (len(rows) + 3)),
              ncol=2, fontsize=8, frameon=False)
    n = int(pd.to_numeric(rows["n"], errors="coerce").max()) if len(rows) else 0
    ax.set_title(f"Does the synthetic tau track the real tau? ({n} test subjects)", fontsize=10)
    return fig
