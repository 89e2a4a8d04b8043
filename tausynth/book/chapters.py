"""The book's chapters: which notebooks run, with which parameters, in which order, at what cost.

The training pages come from the profile's run list (``tausynth.runlist``); every other chapter is
a notebook of ``book/``. A chapter's cost (its expected seconds) lets the executor start the
longest first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tausynth.config import load_profile
from tausynth.data.cohort import cohort_dir
from tausynth.runlist import RunSpec, load_runs

BUILD = "_build"


@dataclass(frozen=True)
class Chapter:
    """One executable chapter: a notebook, the papermill parameters it gets, what it depends on.

    ``output`` is the executed notebook's path relative to ``_build/executed`` (and, for the
    rendered book, to ``book/``); ``depends`` names the chapters whose results it reads, so a change
    upstream re-executes it and nothing else does.
    """

    name: str
    notebook: str
    parameters: dict[str, Any] = field(default_factory=dict)
    depends: tuple[str, ...] = ()
    output: str = ""
    title: str = ""
    #: runs alone with every core when chapters run side by side (its timings are part of its content)
    exclusive: bool = False
    #: files or folders (relative to the root) it reads besides its dependencies: their content is in its key
    inputs: tuple[str, ...] = ()
    #: expected work, relative to the other chapters; it only orders the chapters that start first
    cost: float = 0.0

    @property
    def output_path(self) -> str:
        """Executed notebook, relative to ``_build/executed``."""
        return self.output or Path(self.notebook).name


@dataclass(frozen=True)
class ChapterResult:
    """What happened to one chapter during ``book run``."""

    name: str
    status: str  # "executed", "cached" or "failed"
    seconds: float
    output: Path


def chapters_for(
    profile: str, root: Path, manifest: str | None = None, runs: str | Path | None = None,
) -> list[Chapter]:
    """The chapters of the book, in dependency order, with their parameters for ``profile``.

    One training page per run of the profile's run list (:func:`tausynth.runlist.load_runs`), or of
    the YAML file ``runs`` when given.
    """
    # Relative to the root (the chapters run there), so rendered pages show no machine-specific paths.
    data = str(Path(manifest).resolve()) if manifest else str(cohort_dir(root, profile).relative_to(root) / "manifest.csv")
    common = {"profile": profile, "manifest": data}
    # Chapters that use the generator's ground truth get a manifest only for real data.
    real = {"manifest": data} if manifest else {}
    chapters = [
        Chapter("data", "book/data.ipynb", dict(common)),
        Chapter("suvr", "book/suvr.ipynb", {"profile": profile, **real}),
    ]
    if (root / "book" / "loss.ipynb").is_file():
        # the loss chapter calibrates and pretrains feature networks on the cohort's training split
        chapters.append(Chapter("loss", "book/loss.ipynb", dict(common), depends=("data",), exclusive=True))
    specs = load_runs(profile, runs)
    run_dirs = []
    for spec in specs:
        run_dir = (Path("runs") / profile / spec.name).as_posix()
        run_dirs.append(run_dir)
        chapters.append(Chapter(
            spec.page, "book/train.ipynb",
            {"profile": profile, "model": spec.model, "loss": spec.loss, "normalization": spec.normalization,
             "seed": spec.seed, "run_dir": run_dir, "restart_if_changed": True, **real,
             **({"settings": spec.overrides} if spec.settings else {})},
            depends=("data",), output=f"runs/{spec.page}.ipynb", title=spec.title, cost=_training_cost(profile, spec),
        ))
    run_pages = tuple(spec.page for spec in specs)
    for name in ("roi", "results"):
        if (root / "book" / f"{name}.ipynb").is_file():
            # the results chapter shows the archived study beside the live runs
            inputs = (STUDY_ARCHIVE,) if name == "results" else ()
            chapters.append(Chapter(name, f"book/{name}.ipynb", {"profile": profile, "runs": run_dirs, **real},
                                    depends=("data", *run_pages), inputs=inputs))
    return chapters


#: Cost of one optimizer step relative to a U-Net step without a perceptual term, measured on the
#: demo's runs (2-core CPU). It orders a first build's training pages, longest first; a rebuild uses
#: the times recorded in the run log instead.
_STEP_COST = {"pix2pix": 1.7, "cyclegan": 2.9}
_PERCEPTUAL_STEP_COST = 1.85


def _training_cost(profile: str, spec: RunSpec) -> float:
    """Expected work of a training page: optimizer steps times the cost of one step."""
    training = load_profile(profile, spec.overrides).training
    steps = training.max_epochs * (training.batches_per_epoch or 1)
    return steps * _STEP_COST.get(spec.model, 1.0) * (_PERCEPTUAL_STEP_COST if spec.loss != "none" else 1.0)


STUDY_ARCHIVE = "archive/study"
