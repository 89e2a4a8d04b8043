"""The profile's synthetic cohort on disk: generated once, reused while its generator and settings hold.

Chapters, training runs and studies that use the embedded synthetic data call :func:`ensure_cohort`.
The cohort is keyed by the package version, the generator's source files and the profile's
``data`` settings, so editing unrelated code does not regenerate it (it takes minutes), and editing
the generator does. One writer at a time: chapters started side by side wait for each other.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tausynth import __version__
from tausynth.config import load_profile
from tausynth.digest import PACKAGE, combine
from tausynth.io import atomic_write_text, file_lock, file_sha256, usable_cores

__all__ = ["GENERATOR_SOURCES", "cohort_dir", "ensure_cohort"]

#: The source files the cohort is made by, relative to the package.
GENERATOR_SOURCES = ("data/synthetic.py", "data/atlas.py", "io.py")


def cohort_dir(root: Path, profile: str) -> Path:
    """Folder of the synthetic cohort used by ``profile``."""
    return Path(root) / "data" / profile / "cohort"


def ensure_cohort(root: Path, profile: str, log: Callable[[str], None] = print) -> Path:
    """Generate the profile's synthetic cohort unless an identical one is already on disk; its manifest's path."""
    from tausynth.data.synthetic import write_cohort

    cfg = load_profile(profile).data
    out = cohort_dir(root, profile)
    generator = [file_sha256(PACKAGE / f) for f in GENERATOR_SOURCES]
    key = combine("cohort", __version__, generator, cfg.n_subjects, cfg.seed, cfg.resolution, cfg.confound)
    stamp = out / ".tausynth-cohort-key"
    with file_lock(out.parent / ".cohort.lock"):
        if stamp.is_file() and stamp.read_text().strip() == key and (out / "manifest.csv").is_file():
            log(f"cohort   cached    {out}")
            return out / "manifest.csv"
        start = time.perf_counter()
        write_cohort(out, n=cfg.n_subjects, seed=cfg.seed, resolution=cfg.resolution, workers=usable_cores(),
                     confound=cfg.confound, progress=False)
        atomic_write_text(stamp, key + "\n")
    log(f"cohort   generated {time.perf_counter() - start:7.1f} s  {cfg.n_subjects} subjects -> {out}")
    return out / "manifest.csv"
