"""Content digests: the one home of the cache keys (book chapters, evaluations, baselines).

A cached result is reused only when everything it was computed from is unchanged: its input files
and the code. The code is keyed as a whole, the package version plus a hash of every source file of
the package, because a result depends on more modules than the one that computes it (an evaluation
reads the ROI sets of ``data/atlas.py`` and the statistics of ``suvr.py``, for example); keying a
hand-kept list of modules went stale once.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

from tausynth import __version__
from tausynth.io import file_sha256

__all__ = ["PACKAGE", "combine", "source_digest"]

#: The package's source folder.
PACKAGE = Path(__file__).resolve().parent
_SOURCES = {".py", ".yaml"}


def combine(*parts: Any) -> str:
    """One SHA-256 of JSON-serialisable ``parts`` (dict keys sorted, so their order does not matter).

    Examples
    --------
    >>> combine({"a": 1, "b": 2}) == combine({"b": 2, "a": 1}) != combine({"a": 1})
    True
    """
    h = hashlib.sha256()
    for part in parts:
        h.update(json.dumps(part, sort_keys=True, default=str).encode())
        h.update(b"\0")
    return h.hexdigest()


@functools.lru_cache(maxsize=8)
def source_digest(package: Path = PACKAGE) -> str:
    """The package version plus the content of every source file (``.py``, ``.yaml``) of ``package``.

    An editable install changes without a new version, so the files count. Cached for the process
    (a running kernel does not see edited code either).
    """
    files = sorted(p for p in Path(package).rglob("*") if p.suffix in _SOURCES and "__pycache__" not in p.parts)
    return combine(__version__, [(p.relative_to(package).as_posix(), file_sha256(p)) for p in files])
