"""Predictions of a trained run: synthetic PET as float32 NIfTI in SUVR, on the subject's grid.

``predict_run`` loads ``checkpoints/final_model.pt`` (the last epoch, which the official code tests),
predicts every scan of a split, crops the model-valid padding away and inverts the normalization:

* by-manufacturer standardization: ``<id>_suvr.nii.gz``, the inverse with the subject's
  manufacturer statistics stored in the checkpoint;
* min–max: ``<id>_minmax.nii.gz`` (the prediction in min–max space) and
  ``<id>_suvr_ORACLE.nii.gz``, the inverse with the **real** PET's min and max. That needs the very
  image being synthesised, so it is an upper bound, never a deployable SUVR.

Images are written with the affine of the (RAS-oriented) input grid and a float32 header.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from tausynth.data.dataset import build_dataset, crop_to_original
from tausynth.data.manifest import TRAINING_COLUMNS, load_manifest, scan_stem, validate_manifest
from tausynth.errors import TausynthError
from tausynth.io import PathLike, atomic_write_text, file_sha256, save_nifti
from tausynth.models import build, predict_pet
from tausynth.training.checkpoint import load_checkpoint, load_model_state
from tausynth.training.inputs import PetNormalizer
from tausynth.training.run import RunPaths, read_provenance, read_run_config

__all__ = ["load_trained_model", "predict_run", "prediction_examples"]

_SUFFIX = {"suvr": "suvr", "minmax": "minmax", "suvr_oracle": "suvr_ORACLE"}


def _check_device(device: str | torch.device) -> None:
    """One line for a device this machine does not have (torch's own error is a traceback)."""
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError):
        raise TausynthError(f"device {device!r}: not a torch device (cpu, cuda, cuda:1, ...)") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise TausynthError(f"device {device!r}: no CUDA GPU is available here; use --device cpu")


def load_trained_model(
    run_dir: PathLike, checkpoint: PathLike | None = None, device: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, PetNormalizer, dict[str, Any]]:
    """The model of a run (eval mode), its PET normalizer and the checkpoint dict.

    Raises
    ------
    TausynthError
        If the run folder has no config, or the checkpoint is missing, corrupt, of another model
        or does not fit the configured network.
    """
    _check_device(device)
    cfg = read_run_config(run_dir)
    path = Path(checkpoint) if checkpoint is not None else RunPaths(Path(run_dir)).final
    ckpt = load_checkpoint(path, model_name=cfg.model.name)
    model = build(cfg.model.name, cfg)
    load_model_state(model, ckpt["model"], path)
    model.to(device).eval()
    normalizer = PetNormalizer.from_checkpoint(ckpt["normalization"], ckpt["standardizer"])
    ckpt["path"] = str(path)
    return model, normalizer, ckpt


def _manifest_of(run_dir: Path, manifest: PathLike | None) -> Path:
    if manifest is not None:
        return Path(manifest)
    prov = read_provenance(run_dir)
    return Path(prov["data"]["manifest"])


def _samples(run_dir: Path, manifest: PathLike | None, split: str, divisor: int, grid: Any = None) -> Any:
    frame = load_manifest(_manifest_of(run_dir, manifest))
    # the raw SUVR PET (no pet_transform): the ground truth, and the oracle's min and max; the
    # training grid (checkpoints before it was recorded: each scan's own), so the network sees
    # the padding it was trained with
    return build_dataset(frame, split, augment=False, cache="none", spatial_divisor=divisor, grid=grid)


def _stem(sample: dict[str, Any]) -> str:
    return scan_stem(sample["subject_id"], sample.get("session", "") or "")


def predict_run(
    run_dir: PathLike,
    manifest: PathLike | None = None,
    split: str = "test",
    *,
    out: PathLike | None = None,
    checkpoint: PathLike | None = None,
    device: str | torch.device = "cpu",
    log: Callable[[str], None] | None = print,
) -> pd.DataFrame:
    """Write the synthetic PET of every scan in ``split`` and return a table of the files.

    Parameters
    ----------
    run_dir : path
        A run folder written by :func:`tausynth.training.train`.
    manifest : path, optional
        Default: the manifest the run was trained on (from ``provenance.json``).
    split : {"train", "val", "test"}, default="test"
    out : path, optional
        Default ``<run_dir>/predictions/<split>``.
    checkpoint : path, optional
        Default ``<run_dir>/checkpoints/final_model.pt``.
    device : str or torch.device, default="cpu"
    log : callable, optional
        Receives one line at the end.

    Returns
    -------
    pandas.DataFrame
        One row per written file: ``subject_id``, ``session``, ``split``, ``manufacturer``,
        ``kind`` (``"suvr"``, ``"minmax"`` or ``"suvr_oracle"``), ``oracle`` (bool), ``path``,
        ``t1``, ``pet`` (the real PET), ``mask``, ``checkpoint``, ``checkpoint_sha256``,
        ``t1_sha256`` and ``pet_sha256`` (the inputs' bytes). Also written as ``predictions.csv`` in ``out``.
    """
    run_dir = Path(run_dir)
    model, normalizer, ckpt = load_trained_model(run_dir, checkpoint, device)
    out_dir = Path(out) if out is not None else RunPaths(run_dir).predictions / split
    validate_manifest(_manifest_of(run_dir, manifest), columns=TRAINING_COLUMNS, splits=(split,))
    dataset = _samples(run_dir, manifest, split, model.divisor, ckpt.get("grid"))
    frame = load_manifest(_manifest_of(run_dir, manifest))
    masks = dict(zip(zip(frame["subject_id"], frame["session"], strict=True), frame.get("mask", [""] * len(frame)), strict=True))
    sha = file_sha256(ckpt["path"])
    rows = []
    for i in range(len(dataset)):
        sample = dataset[i]
        # the inputs' content, so that a later evaluation notices a file replaced under the same name
        inputs = {"t1_sha256": file_sha256(sample["t1_path"]), "pet_sha256": file_sha256(sample["pet_path"])}
        pred = predict_pet(model, sample["t1"][None].to(device))[0]
        shape = sample["original_shape"]
        pred_np = crop_to_original(pred.float().cpu(), shape)[0].numpy()
        true_pet = sample["pet"][0].numpy()
        affine = sample["affine"].numpy()
        outputs = normalizer.to_suvr(pred_np, sample["manufacturer"], true_pet=true_pet)
        for kind, volume in outputs.items():
            path = out_dir / f"{_stem(sample)}_{_SUFFIX[kind]}.nii.gz"
            save_nifti(path, volume, affine)
            rows.append(
                {
                    "subject_id": sample["subject_id"],
                    "session": sample["session"],
                    "split": split,
                    "manufacturer": sample["manufacturer"],
                    "kind": kind,
                    "oracle": kind == "suvr_oracle",
                    "path": str(path),
                    "t1": sample["t1_path"],
                    "pet": sample["pet_path"],
                    "mask": masks.get((sample["subject_id"], sample["session"]), ""),
                    "checkpoint": ckpt["path"],
                    "checkpoint_sha256": sha,
                    **inputs,
                }
            )
    table = pd.DataFrame(rows)
    atomic_write_text(out_dir / RunPaths(run_dir).predictions_table(split).name, table.to_csv(index=False))
    if log is not None:
        kinds = ", ".join(sorted(set(table["kind"]))) if len(table) else "nothing"
        log(f"wrote {len(table)} predictions ({kinds}) of split {split!r} to {out_dir}")
    return table


def prediction_examples(
    run_dir: PathLike, n: int = 3, split: str = "val", manifest: PathLike | None = None
) -> list[dict[str, Any]]:
    """A few subjects' MRI, real PET and synthetic PET (cropped, numpy), for figures.

    Both PETs are in SUVR for standardization runs; in min–max space for min–max runs (``space``
    says which), so no oracle is involved in the comparison.
    """
    model, normalizer, ckpt = load_trained_model(run_dir)
    dataset = _samples(Path(run_dir), manifest, split, model.divisor, ckpt.get("grid"))
    out = []
    for i in range(min(n, len(dataset))):
        s = dataset[i]
        shape = s["original_shape"]
        pred = crop_to_original(predict_pet(model, s["t1"][None])[0].float(), shape)[0].numpy()
        t1 = crop_to_original(s["t1"], shape)[0].numpy()
        pet = crop_to_original(s["pet"], shape)[0].numpy()
        if normalizer.kind == "standardize":
            pred, space = normalizer.to_suvr(pred, s["manufacturer"])["suvr"], "SUVR"
        else:
            pet, space = normalizer.transform(pet, s["manufacturer"]), "min-max"
        out.append(
            {
                "subject_id": s["subject_id"],
                "manufacturer": s["manufacturer"],
                "t1": t1.astype(np.float32),
                "pet": pet.astype(np.float32),
                "pred": pred.astype(np.float32),
                "space": space,
                "affine": s["affine"].numpy(),
            }
        )
    if not out:
        raise TausynthError(f"{run_dir}: no scans in split {split!r} to show")
    return out
