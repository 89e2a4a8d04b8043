"""Figures of the training chapter: the plane schedule followed, loss curves, LR, prediction grids."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from tausynth.plotting.scales import DIFF_CMAP, PET_CMAP, SUVR_DIFF, SUVR_RANGE
from tausynth.plotting.slices import PLANE_COLORS, orthogonal_slices
from tausynth.vocabulary import check_choice

__all__ = [
    "PLANE_COLORS",
    "plot_losses",
    "plot_prediction_examples",
    "plot_prediction_grid",
    "plot_schedule",
    "plot_shares",
    "provenance_table",
    "schedule_table",
]

_COMPONENTS = ("loss", "mse", "ssim_loss", "perceptual")
PLANES_SHOWN = ("sagittal", "coronal", "axial")  # the rows of a prediction grid


def schedule_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """The phases actually followed: one row per run of equal planes in ``metrics.csv``.

    Columns ``plane``, ``first_epoch``, ``last_epoch``, ``epochs``, ``best_val`` (the phase's best
    validation loss) and ``best_epoch``.
    """
    m = metrics.sort_values("epoch").reset_index(drop=True)
    phase = (m["phase_start"].astype(bool) | (m["plane"] != m["plane"].shift())).cumsum()
    rows = []
    for _, g in m.groupby(phase, sort=True):
        best = g.loc[g["val_loss"].idxmin()] if g["val_loss"].notna().any() else None
        rows.append(
            {
                "plane": g["plane"].iloc[0],
                "first_epoch": int(g["epoch"].iloc[0]),
                "last_epoch": int(g["epoch"].iloc[-1]),
                "epochs": len(g),
                "best_val": None if best is None else float(best["val_loss"]),
                "best_epoch": None if best is None else int(best["epoch"]),
            }
        )
    return pd.DataFrame(rows)


def plot_schedule(metrics: pd.DataFrame, planned: Mapping[str, Sequence[int]] | None = None, max_epochs: int | None = None) -> Figure:
    """The plane of every epoch actually trained (bars), against the planned switches (ticks).

    Parameters
    ----------
    metrics : DataFrame
        ``metrics.csv`` of a run.
    planned : mapping, optional
        ``switch_epochs(...)`` of the configuration, drawn as markers above the bars.
    max_epochs : int, optional
        Draw the x axis to here (shows how much of the schedule an early stop left out).
    """
    fig, ax = plt.subplots(figsize=(9, 1.9 if planned is None else 2.3))
    for row in metrics.itertuples():
        ax.barh(0, 1, left=row.epoch, color=PLANE_COLORS[row.plane], edgecolor="white", linewidth=0.5)
        if getattr(row, "improved", False):
            ax.plot(row.epoch + 0.5, 0, marker="*", color="black", markersize=6)
    if planned is not None:
        for plane, starts in planned.items():
            ax.plot([s + 0.02 for s in starts], [0.6] * len(starts), "v", color=PLANE_COLORS[plane], markersize=7)
    end = max_epochs or (int(metrics["epoch"].max()) + 1 if len(metrics) else 1)
    ax.set_xlim(0, end)
    ax.set_ylim(-0.6, 0.9)
    ax.set_yticks([])
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    handles = [Patch(color=c, label=p) for p, c in PLANE_COLORS.items()]
    handles.append(plt.Line2D([], [], marker="*", color="black", linestyle="", label="best since switch"))
    if planned is not None:
        handles.append(plt.Line2D([], [], marker="v", color="grey", linestyle="", label="planned switch"))
    ax.legend(handles=handles, ncol=len(handles), fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.6), frameon=False)
    ax.set_title("Perceptual plane per epoch (Algorithm 2), as trained")
    fig.tight_layout()
    return fig


def plot_losses(metrics: pd.DataFrame) -> Figure:
    """Train and validation loss components per epoch, and the learning rate.

    One panel per component (total, MSE, 1 − SSIM, perceptual; GAN runs add the generator total
    and the discriminator loss), plane phases shaded; the last panel is the LR (cosine schedule).
    """
    comps = [c for c in _COMPONENTS if f"train_{c}" in metrics or f"val_{c}" in metrics]
    comps += [c for c in ("g_total", "d_loss") if f"train_{c}" in metrics]
    n = len(comps) + 1
    cols = 3
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(11, 2.8 * rows), squeeze=False)
    x = metrics["epoch"] + 1
    for ax, comp in zip(axes.flat, comps, strict=False):
        _shade(ax, metrics)
        for split, style in (("train", "-"), ("val", "--")):
            col = f"{split}_{comp}"
            if col in metrics:
                ax.plot(x, metrics[col], style, marker="o", markersize=3, label=split, color="black" if split == "train" else "tab:red")
        ax.set_title({"loss": "total loss", "ssim_loss": "1 − SSIM"}.get(comp, comp))
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
    lr_ax = axes.flat[len(comps)]
    _shade(lr_ax, metrics)
    lr_ax.plot(x, metrics["lr"], marker="o", markersize=3, color="tab:purple")
    lr_ax.set_title("learning rate (cosine, stepped per epoch)")
    lr_ax.set_xlabel("epoch")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    return fig


SHARE_TERMS = {"share_mse": ("α·MSE", "#4c72b0"), "share_ssim": ("β·(1 − SSIM)", "#dd8452"),
               "share_perceptual": ("γ·perceptual", "#c44e52")}


def plot_shares(metrics: pd.DataFrame) -> Figure:
    """Each weighted term's share of the training loss per epoch (stacked to 100 %), and the
    perceptual share alone on a log axis with the 1 % and 5 % marks.

    Parameters
    ----------
    metrics : DataFrame
        ``metrics.csv`` of a run (the ``train_share_*`` columns).
    """
    x = metrics["epoch"] + 1
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.0))
    _shade(left, metrics)
    bottom = np.zeros(len(metrics))
    for col, (label, color) in SHARE_TERMS.items():
        values = 100 * metrics[f"train_{col}"].fillna(0).to_numpy()
        left.bar(x, values, bottom=bottom, color=color, label=label, width=0.8)
        bottom = bottom + values
    left.set_ylim(0, 100)
    left.set_ylabel("share of the training loss (%)")
    left.set_xlabel("epoch")
    left.set_title("Weighted terms of the training loss")
    left.legend(fontsize=8, loc="lower left")
    _shade(right, metrics)
    perc = 100 * metrics["train_share_perceptual"].clip(lower=1e-6)
    right.plot(x, perc, marker="o", markersize=3, color=SHARE_TERMS["share_perceptual"][1], label="train")
    if "val_share_perceptual" in metrics:
        right.plot(x, 100 * metrics["val_share_perceptual"].clip(lower=1e-6), "--", marker="o", markersize=3,
                   color="tab:red", alpha=0.6, label="validation")
    for level in (1, 5):
        right.axhline(level, color="grey", linewidth=0.8, linestyle=":")
        right.annotate(f"{level} %", (x.iloc[0], level), fontsize=7, color="grey", va="bottom")
    right.set_yscale("log")
    right.set_ylim(min(1e-3, float(perc.min()) / 2), 100)
    right.set_ylabel("γ·perceptual / total (%)")
    right.set_xlabel("epoch")
    right.set_title("The perceptual term's share (log scale)")
    right.legend(fontsize=8)
    for ax in (left, right):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    return fig


def _shade(ax: Any, metrics: pd.DataFrame) -> None:
    for row in metrics.itertuples():
        ax.axvspan(row.epoch + 0.5, row.epoch + 1.5, color=PLANE_COLORS[row.plane], alpha=0.12, linewidth=0)


def _middle_slice(volume: np.ndarray, plane: str) -> np.ndarray:
    """The middle slice of ``plane``: the same voxel for every volume on one grid."""
    return orthogonal_slices(volume, planes=(plane,))[0][1]


def _prediction_columns(
    t1: np.ndarray, pet: np.ndarray, pred: np.ndarray, space: str, pet_range: tuple[float, float] | None
) -> list[tuple[str, np.ndarray, str, tuple[float, float] | None]]:
    """The four columns of a prediction figure: (title, volume, color map, display range)."""
    suvr = space == "SUVR"
    lo, hi = pet_range or (SUVR_RANGE if suvr else (float(np.percentile(pet, 1)), float(np.percentile(pet, 99.5))))
    diff = pred - pet
    dmax = SUVR_DIFF if suvr else (float(np.percentile(np.abs(diff), 99.5)) or 1.0)
    return [
        ("MRI (T1w)", t1, "gray", None),
        (f"real PET ({space})", pet, PET_CMAP, (lo, hi)),
        (f"synthetic PET ({space})", pred, PET_CMAP, (lo, hi)),
        (f"synthetic − real ({space})", diff, DIFF_CMAP, (-dmax, dmax)),
    ]


def _prediction_panels(fig: Figure, axes: np.ndarray, rows: list[tuple[str, list[Any]]], space: str) -> None:
    """Fill a rows × 4 grid of axes; ``rows`` is (row label, the four columns' slices in that row)."""
    for i, (label, columns) in enumerate(rows):
        for j, (name, image, cmap, vrange) in enumerate(columns):
            ax = axes[i, j]
            kw = {} if vrange is None else {"vmin": vrange[0], "vmax": vrange[1]}
            im = ax.imshow(image, cmap=cmap, origin="lower", **kw)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=9)
            if j == 0:
                ax.set_ylabel(label, fontsize=9)
            if j > 0 and i == len(rows) - 1:
                bar = fig.colorbar(im, ax=axes[:, j].tolist(), shrink=0.6, location="bottom", pad=0.03)
                bar.set_label(space, fontsize=8)
                bar.ax.xaxis.set_major_locator(MaxNLocator(3))  # a narrow bar: few ticks, or they run together


def plot_prediction_grid(
    t1: np.ndarray,
    pet: np.ndarray,
    pred: np.ndarray,
    title: str = "",
    space: str = "SUVR",
    pet_range: tuple[float, float] | None = None,
) -> Figure:
    """MRI, real PET, synthetic PET and their difference in the three planes (rows).

    Parameters
    ----------
    t1, pet, pred : ndarray
        (X, Y, Z) RAS volumes on the same grid.
    title : str
    space : str
        Intensity space of ``pet`` and ``pred`` (for the color bar labels).
    pet_range : (float, float), optional
        Display range of the PETs; default the book's fixed SUVR scale
        (:data:`tausynth.plotting.scales.SUVR_RANGE`, the same for every subject and run), and for
        another space the 1st–99.5th percentile of the real PET.
    """
    columns = _prediction_columns(t1, pet, pred, space, pet_range)
    rows = [(plane, [(name, _middle_slice(vol, plane), cmap, vrange) for name, vol, cmap, vrange in columns])
            for plane in PLANES_SHOWN]
    fig, axes = plt.subplots(3, 4, figsize=(10, 7.2))
    _prediction_panels(fig, axes, rows, space)
    if title:
        fig.suptitle(title)
    return fig


def plot_prediction_examples(
    examples: Sequence[Mapping[str, Any]], plane: str = "axial", title: str = "", pet_range: tuple[float, float] | None = None
) -> Figure:
    """Small multiples: one row per subject (MRI, real PET, synthetic PET, difference) at one middle plane.

    Parameters
    ----------
    examples : sequence of mapping
        As :func:`tausynth.training.prediction_examples` returns them (``t1``, ``pet``, ``pred``,
        ``space``, ``subject_id``, ``manufacturer``); all in the same intensity space.
    plane : {"sagittal", "coronal", "axial"}
    title : str
    pet_range : (float, float), optional
        As in :func:`plot_prediction_grid`; with the default, every row shares one scale.
    """
    check_choice("plane", plane, PLANES_SHOWN)
    if not examples:
        raise ValueError("no examples to plot")
    space = str(examples[0]["space"])
    first = _prediction_columns(examples[0]["t1"], examples[0]["pet"], examples[0]["pred"], space, pet_range)
    ranges = pet_range or first[1][3]  # one PET scale for every row, so the rows can be compared
    rows = []
    for ex in examples:
        columns = _prediction_columns(ex["t1"], ex["pet"], ex["pred"], space, ranges)
        columns[3] = (*columns[3][:3], first[3][3])  # and one difference scale
        label = f"{ex['subject_id']}\n{ex.get('manufacturer', '')}".strip()
        rows.append((label, [(name, _middle_slice(vol, plane), cmap, vrange) for name, vol, cmap, vrange in columns]))
    fig, axes = plt.subplots(len(rows), 4, figsize=(9, 2.3 * len(rows) + 1.2), squeeze=False)
    _prediction_panels(fig, axes, rows, space)
    fig.suptitle(title or f"{plane} middle slice")
    return fig


def _features_line(record: Mapping[str, Any]) -> str | None:
    """One line on the perceptual network: source, content hash, and how it was made."""
    if not record.get("source"):
        return None
    parts = [f"{record['source']} (requested {record.get('requested')})", f"sha256 {str(record.get('sha256', ''))[:12]}"]
    if "calibration_scales" in record:
        parts.append(f"calibrated in {record.get('calibration_seconds')} s")
    pre = record.get("pretraining") or {}
    if pre:
        cfg = pre.get("config", {})
        parts.append(f"pretrained ({cfg.get('objective')}, {cfg.get('steps')} steps, {pre.get('seconds')} s"
                     f"{', cached' if record.get('cached') else ''})")
    return "; ".join(parts)


def _shown_path(path: Any) -> str | None:
    """A path as a page shows it: relative to the working folder when inside it, else its last two parts.

    The book's pages must not show the build machine's folders.
    """
    if not path:
        return None
    p = Path(str(path))
    try:
        return p.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return Path(*p.parts[-2:]).as_posix()


def provenance_table(provenance: Mapping[str, Any]) -> pd.DataFrame:
    """The run's provenance as a two-column table (the main facts first; paths without the machine's folders)."""
    env = provenance.get("environment", {})
    git = env.get("git") or {}
    data = provenance.get("data", {})
    model = provenance.get("model", {})
    rows = [
        ("run", _shown_path(provenance.get("run_dir"))),
        ("status / stop reason", f"{provenance.get('status')} / {provenance.get('stop_reason')}"),
        ("epochs / optimizer steps", f"{provenance.get('epochs_done')} / {provenance.get('steps_done')}"),
        ("wall time (s)", round(float(provenance.get("wall_seconds", 0.0)), 1)),
        ("time limit (min)", provenance.get("time_limit_minutes")),
        ("model", f"{model.get('name')} ({model.get('kind')}, {model.get('parameters')} parameters, divisor {model.get('divisor')})"),
        ("loss / normalization", f"{provenance.get('loss')} / {provenance.get('normalization')}"),
        ("perceptual weights", provenance.get("perceptual_weights")),
        ("perceptual features", _features_line(provenance.get("perceptual_features") or {})),
        ("seed", provenance.get("seed")),
        ("device / processes", f"{env.get('device')} / {provenance.get('world_size')}"),
        ("mixed precision", provenance.get("amp") or "off"),
        ("manifest", _shown_path(data.get("manifest"))),
        ("manifest sha256", (data.get("manifest_sha256") or "")[:16]),
        ("train / val scans", f"{data.get('n_train')} / {data.get('n_val')}"),
        ("grid (voxels)", " × ".join(str(n) for n in data["grid"]) if data.get("grid") else None),
        ("tausynth / git", f"{env.get('tausynth_version')} / {git.get('commit', 'n/a')[:10]}{' (dirty)' if git.get('dirty') else ''}"),
        ("torch / MONAI / numpy", f"{env.get('torch')} / {env.get('monai')} / {env.get('numpy')}"),
        ("TensorBoard", provenance.get("tensorboard")),
        ("early stopping", (provenance.get("schedule") or {}).get("early_stopping_note")),
    ]
    return pd.DataFrame(
        [(k, "—" if v is None else str(v)) for k, v in rows], columns=["item", "value"]
    )
