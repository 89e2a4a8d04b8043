"""Fixtures of the training tests: one tiny synthetic cohort and tiny smoke configurations."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tausynth.config import Config, load_profile
from tausynth.data.synthetic import write_cohort


@pytest.fixture(scope="session")
def cohort_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The smoke cohort (8 subjects at 4 mm: 6 train, 1 val, 1 test), written once per session."""
    out = tmp_path_factory.mktemp("training-cohort")
    write_cohort(out, n=8, seed=0, resolution=4, progress=False)
    return out / "manifest.csv"


def _smoke_config(**sections: dict[str, Any] | str) -> Config:
    return load_profile("smoke", dict(sections))


@pytest.fixture(scope="session")
def smoke_config() -> Callable[..., Config]:
    """The smoke profile with nested overrides: ``smoke_config(training={"max_epochs": 2})``."""
    return _smoke_config
