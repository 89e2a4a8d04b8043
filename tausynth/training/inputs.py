"""The data side of a run: which manifest, the PET normalization fitted on ``train``, the loaders.

Every random choice of an epoch is a function of ``(seed, epoch, rank)``: the shuffle (a
``DistributedSampler`` with ``set_epoch``, also with one process), the MONAI augmentation state
(re-seeded by a fresh loader per epoch) and the torch/NumPy/Python global generators (dropout).
That is what makes "4 epochs" equal "2 epochs, stop, resume to 4" bit for bit.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DistributedSampler

from tausynth.config import Config
from tausynth.data.dataset import build_dataset, build_loader, grid_shape
from tausynth.data.manifest import split_frame
from tausynth.errors import TausynthError
from tausynth.io import PathLike
from tausynth.suvr import (
    ManufacturerStandardizer,
    fit_from_manifest,
    minmax_normalize,
    minmax_range,
)
from tausynth.training.distributed import DistContext

__all__ = ["PetNormalizer", "derive_seed", "epoch_loader", "resolve_manifest", "seed_everything"]


def derive_seed(seed: int, *keys: int) -> int:
    """A 31-bit seed that is a fixed function of ``seed`` and ``keys`` (e.g. epoch, rank)."""
    return int(np.random.SeedSequence([int(seed), *map(int, keys)]).generate_state(1)[0] & 0x7FFFFFFF)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_manifest(
    cfg: Config, manifest: PathLike | None = None, root: PathLike = ".", log: Callable[[str], None] = print
) -> Path:
    """The manifest of a run: ``manifest`` if given, else ``data.manifest``, else the synthetic cohort.

    The synthetic cohort is the profile's, from :func:`tausynth.data.cohort.ensure_cohort` (generated once
    under ``<root>/data/<profile>/cohort``).
    """
    if manifest is not None:
        path = Path(manifest)
    elif cfg.data.manifest:
        path = Path(cfg.data.manifest)
    elif cfg.data.source == "synthetic":
        from tausynth.data.cohort import ensure_cohort

        path = ensure_cohort(Path(root), cfg.profile, log)
    else:
        raise TausynthError(
            "config field 'data.manifest' is required when data.source is 'manifest' (or pass --manifest)"
        )
    if not path.is_file():
        raise TausynthError(f"{path}: manifest not found")
    return path.resolve()


class PetNormalizer:
    """The PET intensity normalization of a run: by-manufacturer standardization or min–max.

    Parameters
    ----------
    kind : {"standardize", "minmax"}
    standardizer : ManufacturerStandardizer, optional
        Required for ``"standardize"``.
    """

    def __init__(self, kind: str, standardizer: ManufacturerStandardizer | None = None) -> None:
        if kind not in ("standardize", "minmax"):
            raise TausynthError(f"unknown normalization {kind!r} (allowed: standardize, minmax)")
        if kind == "standardize" and standardizer is None:
            raise TausynthError("normalization 'standardize' needs fitted statistics")
        self.kind = kind
        self.standardizer = standardizer

    @classmethod
    def fit(cls, kind: str, manifest: pd.DataFrame) -> PetNormalizer:
        """Fit on the ``train`` split of ``manifest`` (min–max has nothing to fit)."""
        if kind == "standardize":
            return cls(kind, fit_from_manifest(manifest, split="train"))
        return cls(kind)

    def transform(self, pet: np.ndarray, manufacturer: str) -> np.ndarray:
        """SUVR → model space (the dataset's ``pet_transform``)."""
        if self.kind == "standardize":
            assert self.standardizer is not None
            return self.standardizer.transform(pet, manufacturer)
        return minmax_normalize(pet)

    def to_dict(self) -> dict[str, Any] | None:
        """The fitted statistics (``None`` for min–max), as stored in checkpoints."""
        return None if self.standardizer is None else self.standardizer.to_dict()

    @classmethod
    def from_checkpoint(cls, kind: str, stats: dict[str, Any] | None) -> PetNormalizer:
        """Rebuild from a checkpoint's ``normalization`` and ``standardizer`` fields."""
        return cls(kind, None if stats is None else ManufacturerStandardizer.from_dict(stats))

    def to_suvr(self, pred: np.ndarray, manufacturer: str, true_pet: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Model-space prediction → the outputs to write, keyed by kind.

        ``"suvr"`` for standardization (the inverse with the manufacturer's statistics). For
        min–max: ``"minmax"`` (the prediction as is) and, if ``true_pet`` is given,
        ``"suvr_oracle"``: the inverse with the real PET's min and max, an ORACLE that needs the
        very image being synthesised.
        """
        if self.kind == "standardize":
            assert self.standardizer is not None
            return {"suvr": self.standardizer.inverse(pred, manufacturer).astype(np.float32)}
        from tausynth.suvr import oracle_minmax_inverse

        out = {"minmax": pred.astype(np.float32)}
        if true_pet is not None:
            lo, hi = minmax_range(true_pet)
            out["suvr_oracle"] = oracle_minmax_inverse(pred, lo, hi).astype(np.float32)
        return out


def build_datasets(
    cfg: Config, frame: pd.DataFrame, normalizer: PetNormalizer, divisor: int, cache_dir: PathLike | None
) -> tuple[Any, Any, tuple[int, int, int]]:
    """The training (augmented if ``data.augment``) and validation datasets of a run, and its grid.

    The grid (:func:`tausynth.data.dataset.grid_shape` of the training split) is the shape every
    sample is padded to, so scans of different sizes share a batch.
    """
    for split in ("train", "val"):
        if split_frame(frame, split).empty:
            raise TausynthError(f"{frame.attrs.get('manifest', 'manifest')}: no scans in split {split!r}")
    grid = grid_shape(frame, "train", int(divisor))
    common = {
        "cache": cfg.data.cache,
        "cache_dir": cache_dir,
        "pet_transform": normalizer.transform,
        "spatial_divisor": int(divisor),
        "grid": grid,
    }
    train = build_dataset(
        frame, "train", augment=cfg.data.augment, augmentation={"padding_mode": cfg.data.augment_padding}, **common
    )
    val_frame = frame
    if cfg.training.val_subjects is not None:
        keep = split_frame(frame, "val").head(cfg.training.val_subjects)
        val_frame = pd.concat([frame[frame["split"] != "val"], keep], ignore_index=True)
        val_frame.attrs.update(frame.attrs)
    val = build_dataset(val_frame, "val", augment=False, **common)
    return train, val, grid


def epoch_loader(
    dataset: Any, cfg: Config, ctx: DistContext, epoch: int, *, train: bool
) -> torch.utils.data.DataLoader:
    """A loader for one epoch whose order and augmentation depend only on ``(seed, epoch, rank)``.

    Training: a ``DistributedSampler`` (also with one process) shuffled with ``set_epoch(epoch)``;
    every rank sees ``ceil(n / world_size)`` samples (the sampler repeats a few when ``n`` is not
    divisible). Validation: rank ``r`` takes samples ``r, r + world, ...`` in order, nothing repeated.
    """
    seed = cfg.training.seed
    if train:
        sampler = DistributedSampler(
            dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=seed, drop_last=False
        )
        sampler.set_epoch(epoch)
    else:
        sampler = list(range(ctx.rank, len(dataset), ctx.world_size))
    return build_loader(
        dataset,
        batch_size=cfg.training.batch_size,
        sampler=sampler,
        num_workers=cfg.training.num_workers,
        seed=derive_seed(seed, epoch, ctx.rank, 1 if train else 2),
    )

