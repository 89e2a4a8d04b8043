"""Shared pytest fixtures: keep every test run hermetic and offline."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _isolated_caches(tmp_path_factory: pytest.TempPathFactory):
    """Point tausynth's cache and nilearn's data folder at fresh temporary folders.

    Tests never read or write ``~/.cache/tausynth`` (the phantom template is rebuilt once per
    session, a few seconds), and nilearn finds no previously downloaded data, so an accidental
    ``fetch_*`` call fails instead of silently passing on a developer's machine.
    """
    saved = {k: os.environ.get(k) for k in ("TAUSYNTH_CACHE", "NILEARN_DATA")}
    os.environ["TAUSYNTH_CACHE"] = str(tmp_path_factory.mktemp("tausynth-cache"))
    os.environ["NILEARN_DATA"] = str(tmp_path_factory.mktemp("nilearn-data"))
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
