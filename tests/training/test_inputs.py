"""The run's datasets follow the ``data`` section of the config."""

from __future__ import annotations

from pathlib import Path

import pytest

from tausynth.data.manifest import load_manifest
from tausynth.training.inputs import PetNormalizer, build_datasets


@pytest.mark.parametrize(("override", "expected"), [({}, "zeros"), ({"augment_padding": "reflection"}, "reflection")])
def test_augment_padding_reaches_the_training_augmentation(
    smoke_config, cohort_manifest: Path, override: dict, expected: str
) -> None:
    cfg = smoke_config(data={"augment": True, "cache": "none", **override})
    frame = load_manifest(cohort_manifest)
    train, val, grid = build_datasets(cfg, frame, PetNormalizer.fit(cfg.normalization, frame), 4, None)
    modes = {type(t).__name__: set(t.padding_mode) for t in train.transform.transforms if hasattr(t, "padding_mode")}
    assert modes == {"Rand3DElasticd": {expected}, "RandAffined": {expected}}
    assert not any(hasattr(t, "padding_mode") for t in val.transform.transforms)  # no augmentation
