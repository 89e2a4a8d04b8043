"""The QC report of ``tausynth prepare``: one row per scan, PET over T1 in three planes with the masks outlined.

``OUT/qc/index.html`` is a table: the scan, its status (or the one line of its failure), the PET→T1
and template→T1 registration costs (Mattes mutual information, lower is better), the largest frame
motion, the brain volume and the meta-temporal SUVR, and a figure per scan (``OUT/qc/<stem>.png``):
the SUVR on the T1 in an axial, a coronal and a sagittal plane through the meta-temporal region
and the cerebellum, with the brain mask (white), the reference region (cyan) and the Braak ROIs
(I yellow, III–IV orange, V–VI magenta) outlined. A registration that went wrong shows at a glance:
PET off the brain, a mask over the scalp, a reference region outside the cerebellum.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

import matplotlib.pyplot as plt
import nibabel as nib
import numpy as np
from matplotlib.figure import Figure

from tausynth.data import atlas
from tausynth.data.regions import label_mask, region_mean
from tausynth.io import atomic_path, atomic_write_text
from tausynth.plotting.scales import PET_CMAP, SUVR_RANGE
from tausynth.prepare.pipeline import SubjectResult

__all__ = ["plot_qc", "write_qc_report"]

_OUTLINES = (("mask", "white"), ("refmask", "cyan"), ("braak1", "yellow"), ("braak34", "orange"),
             ("braak56", "magenta"))


def _load(folder: Path) -> dict[str, np.ndarray]:
    images = {k: np.asarray(nib.load(folder / f"{k}.nii.gz").dataobj) for k in ("t1", "pet", "labels", "mask", "refmask")}
    sets = atlas.roi_sets()
    for name in ("braak1", "braak34", "braak56", "metatemporal"):
        images[name] = label_mask(images["labels"].astype(np.int64), sets[name])
    return images


def _planes(images: dict[str, np.ndarray]) -> list[tuple[str, tuple[slice | int, ...]]]:
    """Axial and sagittal planes through the left meta-temporal region, coronal through the reference region."""
    mt = np.argwhere(images["metatemporal"])
    left = mt[mt[:, 0] < images["mask"].shape[0] // 2]
    x, _, z = (left if len(left) else mt).mean(axis=0).astype(int)
    y = int(np.argwhere(images["refmask"]).mean(axis=0)[1])
    full = slice(None)
    return [("axial", (full, full, z)), ("coronal", (full, y, full)), ("sagittal", (x, full, full))]


def plot_qc(folder: Path, title: str) -> Figure:
    """The QC figure of one prepared scan folder (three planes, SUVR over T1, outlines), drawn with pyplot.

    In a notebook, ``plt.show()`` shows it; :func:`write_qc_report` saves and closes it.
    """
    images = _load(folder)
    fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.8), layout="constrained")
    t1_top = float(np.percentile(images["t1"][images["mask"] > 0], 99))
    for ax, (plane, index) in zip(axes, _planes(images), strict=True):
        ax.imshow(images["t1"][index].T, origin="lower", cmap="gray", vmin=0, vmax=t1_top)
        pet = np.ma.masked_where(images["mask"][index] == 0, images["pet"][index])
        ax.imshow(pet.T, origin="lower", cmap=PET_CMAP, vmin=SUVR_RANGE[0], vmax=SUVR_RANGE[1], alpha=0.45)
        for name, color in _OUTLINES:
            region = images[name][index].astype(float)
            if region.any():
                ax.contour(region.T, levels=[0.5], colors=color, linewidths=0.7, origin="lower")
        ax.set_title(plane, fontsize=9)
        ax.set_axis_off()
    fig.suptitle(title, fontsize=10)
    return fig


def _row(result: SubjectResult, qc: Path) -> str:
    name = escape(result.scan.label)
    if result.status == "failed":
        return f"<tr class='failed'><td>{name}</td><td colspan='6'>{escape(result.message)}</td><td></td></tr>"
    prov = json.loads((result.folder / "provenance.json").read_text(encoding="utf-8"))
    images = _load(result.folder)
    suvr = region_mean(images["pet"], images["labels"], atlas.roi_sets()["metatemporal"], name="metatemporal")
    fig = plot_qc(result.folder, f"{result.scan.label}: SUVR over T1; mask, reference region, Braak ROIs")
    png = qc / f"{result.scan.stem}.png"
    with atomic_path(png, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)  # one figure per scan: a long report must not hold them all
    alt = (f"{name}: SUVR over T1 in three planes with brain mask, inferior cerebellar reference region "
           "and Braak ROIs outlined")
    cells = [name, result.status, f"{prov['pet_to_t1_cost']:.3f}", f"{prov['template_cost']:.3f}",
             f"{prov['max_frame_shift_mm']:.1f}", f"{prov['brain_ml']:.0f}", f"{suvr:.2f}"]
    return ("<tr>" + "".join(f"<td>{c}</td>" for c in cells)
            + f"<td><img src='{escape(png.name)}' alt='{alt}' width='700'></td></tr>")


def write_qc_report(out: Path, results: list[SubjectResult]) -> Path:
    """Write ``out/qc/index.html`` and one PNG per prepared scan; return the HTML's path."""
    qc = Path(out) / "qc"
    qc.mkdir(parents=True, exist_ok=True)
    head = ["scan", "status", "PET→T1 cost", "template→T1 cost", "frame motion (mm)", "brain (mL)",
            "meta-temporal SUVR", "PET over T1"]
    rows = "\n".join(_row(r, qc) for r in results)
    failed = sum(r.status == "failed" for r in results)
    html = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>tausynth prepare: QC</title>"
        "<style>body{font-family:sans-serif}td,th{padding:4px 8px;border-bottom:1px solid #ccc;text-align:left}"
        "tr.failed td{color:#a00}img{max-width:100%;height:auto}</style></head><body>"
        f"<h1>tausynth prepare: quality control</h1><p>{len(results)} scan(s), {failed} failed. Costs are "
        "Mattes mutual information (lower is better); compare a scan with the others. Outlines: brain mask "
        "(white), inferior cerebellar reference (cyan), Braak I (yellow), III–IV (orange), V–VI (magenta).</p>"
        "<table><thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr></thead><tbody>\n"
        + rows + "\n</tbody></table></body></html>\n"
    )
    atomic_write_text(qc / "index.html", html)
    return qc / "index.html"
