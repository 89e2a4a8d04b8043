"""Book orchestration: run every chapter with papermill, then render with Jupyter Book 1.

``tausynth book run --profile demo`` prepares the synthetic cohort, executes each chapter notebook
of ``book/`` with papermill into ``_build/executed/`` (skipping chapters whose inputs are unchanged
since their last success), and ``tausynth book build`` renders the executed notebooks to
``_build/html``. One concept per module:

- :mod:`~tausynth.book.chapters`: the chapters and training pages of a profile, and their costs;
- :mod:`~tausynth.book.executor`: cache keys, papermill, parallel children, the scheduler;
- :mod:`~tausynth.book.runlog`: the record of the last run and the provenance appendix;
- :mod:`~tausynth.book.render`: staging the executed sources and rendering them.
"""

from __future__ import annotations

from tausynth.book.chapters import (
    BUILD,
    STUDY_ARCHIVE,
    Chapter,
    ChapterResult,
    chapters_for,
)
from tausynth.book.executor import (
    run_book,
    threads_per_job,
)
from tausynth.book.render import (
    build_book,
    glued_png,
    stage_sources,
    toc_files,
    training_index_markdown,
)
from tausynth.book.runlog import RUN_LOG, provenance_markdown, read_run_log
from tausynth.data.cohort import cohort_dir, ensure_cohort
from tausynth.runlist import RunSpec

__all__ = [
    "BUILD",
    "RUN_LOG",
    "STUDY_ARCHIVE",
    "Chapter",
    "ChapterResult",
    "RunSpec",
    "build_book",
    "chapters_for",
    "cohort_dir",
    "ensure_cohort",
    "glued_png",
    "provenance_markdown",
    "read_run_log",
    "run_book",
    "stage_sources",
    "toc_files",
    "threads_per_job",
    "training_index_markdown",
]
