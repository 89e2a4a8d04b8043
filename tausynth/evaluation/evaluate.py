"""Evaluate a run's predictions: per-subject, per-region and summary CSVs.

:func:`evaluate_run` is what ``tausynth evaluate --run DIR`` does. It reads the file table that
``tausynth predict`` wrote (``<run>/predictions/<split>/predictions.csv``: one row per written
NIfTI with ``subject_id``, ``session``, ``kind``, ``oracle``, ``path``), the data manifest (real
PET as SUVR, brain mask, label map, diagnosis) and the run's ``config.yaml`` (the variant columns
``model``, ``perceptual``, ``normalization``, ``seed``), and writes into ``<run>/evaluation/``:

``per_subject.csv``
    Voxel metrics (:func:`~tausynth.evaluation.metrics.voxel_metrics`) per subject and
    prediction kind: ``kind = "suvr"`` (standardization runs) in SUVR space; for min–max runs
    ``"minmax"`` in the min–max space and ``"suvr_oracle"`` in SUVR space (``oracle`` = True: it
    used the real PET's min and max, an upper bound).
``per_region.csv``
    Regional SUVR of real and synthetic PET (the SUVR prediction), one row per subject × region.
``agreement.csv``, ``positivity.csv``, ``off_target.csv``
    Agreement statistics per region overall and by diagnosis; tau-positivity κ; off-target report.
``staging.csv``
    Imaging Braak stage from real and from synthetic PET (and the true stage when the manifest's
    folder has a ``subjects.csv`` with ``braak``, as the synthetic cohort does).
``summary.csv``
    Mean ± SD over subjects of each voxel metric per kind.

Evaluation returns tables; ``tausynth evaluate`` then draws the figures (``figures/*.png``) with
:func:`tausynth.plotting.evaluation.write_run_figures`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from tausynth.data.manifest import scan_label
from tausynth.errors import TausynthError
from tausynth.evaluation.agreement import POSITIVITY_CUT, agreement_table, positivity_table
from tausynth.evaluation.metrics import DataRange, minmax_space_metrics, voxel_metrics
from tausynth.evaluation.roi import (
    braak_regions,
    off_target_regions,
    off_target_report,
    roi_frame,
    subject_roi_rows,
)
from tausynth.evaluation.staging import (
    StagingThresholds,
    braak_group,
    stage_frame,
)
from tausynth.evaluation.tables import summary_table
from tausynth.io import PathLike, atomic_write_text, load_nifti
from tausynth.training.run import RunPaths

__all__ = ["METRICS", "SUVR_KINDS", "RunEvaluation", "evaluate_predictions", "evaluate_run", "prediction_files", "run_variant"]

METRICS: tuple[str, ...] = ("ssim", "ssim_volume", "psnr", "mse", "mae", "nrmse")
#: The prediction kinds in SUVR (the oracle one included).
SUVR_KINDS = ("suvr", "suvr_oracle")


@dataclass
class RunEvaluation:
    """Tables of one evaluated run (and the files written, when written)."""

    per_subject: pd.DataFrame
    per_region: pd.DataFrame
    agreement: pd.DataFrame
    positivity: pd.DataFrame
    off_target: pd.DataFrame
    staging: pd.DataFrame
    summary: pd.DataFrame
    files: list[Path] = field(default_factory=list)


def run_variant(run_dir: PathLike) -> dict[str, Any]:
    """Variant columns of a run from its ``config.yaml``: ``run``, ``model``, ``perceptual``, ``normalization``, ``seed``."""
    path = RunPaths(run_dir).config
    if not path.is_file():
        raise TausynthError(f"{run_dir}: not a run folder (no config.yaml)")
    try:
        cfg = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return {"run": Path(run_dir).name, "model": cfg["model"]["name"], "perceptual": cfg["loss"]["perceptual"],
                "normalization": cfg["normalization"], "seed": int(cfg["training"]["seed"])}
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        raise TausynthError(f"{path}: unreadable run config ({type(exc).__name__}: {exc})") from None


def _key(row: Mapping[str, Any]) -> tuple[str, str]:
    ses = row.get("session", "")
    return str(row["subject_id"]), "" if pd.isna(ses) else str(ses)


def _true_stages(manifest: pd.DataFrame) -> dict[str, int]:
    """True Braak stage per subject from a ``subjects.csv`` beside the manifest (synthetic cohorts)."""
    src = manifest.attrs.get("manifest")
    path = Path(src).parent / "subjects.csv" if src else None
    if path is None or not path.is_file():
        return {}
    subjects = pd.read_csv(path)
    if "braak" not in subjects:
        return {}
    return {str(s): int(b) for s, b in zip(subjects["subject_id"], subjects["braak"], strict=True)}


def evaluate_predictions(
    predictions: pd.DataFrame,
    manifest: pd.DataFrame,
    variant: Mapping[str, Any] | None = None,
    regions: Mapping[str, Sequence[int]] | None = None,
    data_range: DataRange = "target",
    cut_point: float = POSITIVITY_CUT,
    thresholds: StagingThresholds | None = None,
) -> RunEvaluation:
    """Evaluate predicted NIfTI files against the manifest's real PET (in memory; nothing written).

    Parameters
    ----------
    predictions : pandas.DataFrame
        The ``predictions.csv`` table of ``tausynth predict``.
    manifest : pandas.DataFrame
        :func:`tausynth.data.manifest.load_manifest` output (absolute paths).
    variant : mapping, optional
        Constant columns added to every row (see :func:`run_variant`).
    regions : mapping, optional
        ROI sets; default the Braak regions and the off-target regions.
    data_range : "target" or float
        Data range of SSIM/PSNR in SUVR space (min–max space always uses 1).
    cut_point : float
        Meta-temporal tau-positivity cut-point.
    thresholds : StagingThresholds, optional
    """
    for col in ("subject_id", "kind", "path"):
        if col not in predictions:
            raise TausynthError(f"predictions table has no {col!r} column")
    if predictions.empty:
        raise TausynthError("predictions table is empty: nothing to evaluate")
    regions = regions if regions is not None else {**braak_regions(), **off_target_regions()}
    variant = dict(variant or {})
    rows_by_key = {_key(r): r for _, r in manifest.iterrows()}
    per_subject, roi_rows = [], []
    for _, p in predictions.iterrows():
        key = _key(p)
        if key not in rows_by_key:
            raise TausynthError(f"subject {scan_label(*key)}: in the predictions but not in the manifest")
        m = rows_by_key[key]
        who = scan_label(*key)
        pred, pred_affine, _ = load_nifti(p["path"])
        real, real_affine, _ = load_nifti(m["pet"])
        if pred.shape != real.shape or not np.allclose(pred_affine, real_affine, atol=1e-3):
            raise TausynthError(
                f"subject {who}: prediction {p['path']} (shape {pred.shape}) is not on the grid of the real PET "
                f"{m['pet']} (shape {real.shape}); predictions must be written on the manifest's grid"
            )
        mask_path = m.get("mask", "")
        mask = load_nifti(mask_path)[0] > 0.5 if isinstance(mask_path, str) and mask_path else real != 0
        # subject_id carries the session when there is one, so every table joins on one column
        info = {"subject_id": who, "session": key[1], "diagnosis": str(m.get("diagnosis", "")),
                "manufacturer": str(m.get("manufacturer", "")), **variant}
        kind = str(p["kind"])
        if kind == "minmax":
            metrics = minmax_space_metrics(pred, real, mask, subject=who)
        else:
            metrics = voxel_metrics(pred, real, mask, data_range=data_range, subject=who)
        per_subject.append({**info, "kind": kind, "oracle": bool(p.get("oracle", kind == "suvr_oracle")),
                            **metrics.as_dict()})
        if kind in SUVR_KINDS:
            labels_path = m.get("labels", "")
            if not (isinstance(labels_path, str) and labels_path):
                raise TausynthError(f"subject {who}: no label map (manifest column 'labels'); ROI analysis needs one")
            labels = np.rint(load_nifti(labels_path, dtype=np.float64)[0]).astype(np.int32)
            roi_rows += subject_roi_rows(who, real, pred, labels, regions,
                                         extra={k: v for k, v in info.items() if k != "subject_id"} | {"kind": kind})
    subj = pd.DataFrame(per_subject)
    roi = roi_frame(roi_rows) if roi_rows else pd.DataFrame()
    if not roi.empty:
        stages = _true_stages(manifest)
        if stages:
            roi["braak"] = [stages.get(s.split(" (")[0], np.nan) for s in roi["subject_id"]]
    return RunEvaluation(
        per_subject=subj,
        per_region=roi,
        agreement=agreement_table(roi) if not roi.empty else pd.DataFrame(),
        positivity=positivity_table(roi, cut_point=cut_point) if not roi.empty and "metatemporal" in set(roi["region"]) else pd.DataFrame(),
        off_target=_off_target(roi),
        staging=_staging(roi, thresholds),
        summary=summary_table(subj, ["kind"], list(METRICS)),
    )


def _off_target(roi: pd.DataFrame) -> pd.DataFrame:
    if roi.empty or not set(off_target_regions()) & set(roi["region"]):
        return pd.DataFrame()
    return off_target_report(roi)


def _staging(roi: pd.DataFrame, thresholds: StagingThresholds | None) -> pd.DataFrame:
    th = thresholds or StagingThresholds()
    if roi.empty or not set(th.regions) <= set(roi["region"]):
        return pd.DataFrame()
    out = pd.DataFrame({"stage_real": stage_frame(roi, "real", th), "stage_synthetic": stage_frame(roi, "synthetic", th)})
    if "braak" in roi and roi["braak"].notna().all():
        true = roi.drop_duplicates("subject_id").set_index("subject_id")["braak"]
        out["stage_true"] = braak_group(true.loc[out.index].to_numpy())
    return out.reset_index()


def prediction_files(predictions: pd.DataFrame, manifest: pd.DataFrame) -> dict[str, tuple[str, str, str]]:
    """Each subject's synthetic SUVR file, real PET file and brain mask ("" if none), keyed by its label.

    ``predictions`` is a run's ``predictions.csv`` and ``manifest`` the loaded manifest it was made
    from; only SUVR predictions are listed (the figures of :func:`tausynth.plotting.evaluation.write_run_figures`).
    """
    rows = {_key(r): r for _, r in manifest.iterrows()}
    files = {}
    for _, p in predictions[predictions["kind"].isin(SUVR_KINDS)].iterrows():
        m = rows[_key(p)]
        mask = m.get("mask", "")
        files[scan_label(*_key(p))] = (p["path"], m["pet"], mask if isinstance(mask, str) else "")
    return files


def evaluate_run(
    run_dir: PathLike,
    manifest: PathLike | None = None,
    split: str = "test",
    out: PathLike | None = None,
    check_files: bool = True,
    **kwargs: Any,
) -> RunEvaluation:
    """Evaluate the predictions of one run and write the CSVs (:func:`tausynth.plotting.evaluation.write_run_figures`
    draws the figures).

    Parameters
    ----------
    run_dir : path
        A run folder after ``tausynth predict`` (reads ``predictions/<split>/predictions.csv``).
    manifest : path, optional
        Default: the manifest the run was trained on (``provenance.json``'s ``data.manifest``).
    split : str, default="test"
    out : path, optional
        Default ``<run_dir>/evaluation``.
    check_files : bool, default=True
        Make ``tausynth validate``'s checks on the images the evaluation reads first (a caller that
        has just made them passes False).
    **kwargs
        Passed to :func:`evaluate_predictions` (``regions``, ``data_range``, ``cut_point``, ``thresholds``).
    """
    from tausynth.data.manifest import EVALUATION_COLUMNS, load_manifest, validate_manifest
    from tausynth.evaluation.discovery import run_manifest

    run_dir = Path(run_dir)
    variant = run_variant(run_dir)
    table_path = RunPaths(run_dir).predictions_table(split)
    if not table_path.is_file():
        raise TausynthError(f"{table_path}: not found; run `tausynth predict --run {run_dir} --split {split}` first")
    predictions = pd.read_csv(table_path, keep_default_na=False)
    manifest = run_manifest(run_dir, manifest)  # default: the manifest the run was trained on
    if check_files:
        validate_manifest(manifest, columns=EVALUATION_COLUMNS, splits=(split,))
    frame = load_manifest(manifest)
    ev = evaluate_predictions(predictions, frame, variant=variant, **kwargs)
    out_dir = Path(out) if out is not None else run_dir / "evaluation"
    tables = {"per_subject": ev.per_subject, "per_region": ev.per_region, "agreement": ev.agreement,
              "positivity": ev.positivity, "off_target": ev.off_target, "staging": ev.staging, "summary": ev.summary}
    for name, table in tables.items():
        if not table.empty:
            path = out_dir / f"{name}.csv"
            atomic_write_text(path, table.to_csv(index=False))
            ev.files.append(path)
    return ev
