"""``RAW.csv``: the scans ``tausynth prepare`` starts from, checked before any work.

``RAW.csv`` has the manifest's identity columns (``subject_id``, ``manufacturer``, ``diagnosis``,
``split``; optionally ``session``, ``amyloid``, ``age``, ``sex``, ``site``, ``scanner_model``) and
two image columns, ``t1`` and ``pet``, each naming a NIfTI file or a folder of DICOM files
(relative to the CSV's folder, or absolute). The schema is the manifest's own
(:func:`tausynth.data.manifest.load_manifest`), so a ``RAW.csv`` that passes here gives a manifest
that passes ``tausynth validate``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from tausynth.data.manifest import IMAGE_COLUMNS, load_manifest, scan_label, scan_stem
from tausynth.errors import ValidationErrors
from tausynth.io import PathLike

__all__ = ["RawScan", "read_raw"]

_DERIVED = ("labels", "mask", "refmask", "pet_gt")


@dataclass(frozen=True)
class RawScan:
    """One row of ``RAW.csv``.

    Attributes
    ----------
    subject_id, session : str
    t1, pet : pathlib.Path
        A NIfTI file or a DICOM folder each.
    identity : dict of str to str
        The row's non-image columns, normalized (written to the prepared manifest unchanged).
    """

    subject_id: str
    session: str
    t1: Path
    pet: Path
    identity: dict[str, str] = field(default_factory=dict)

    @property
    def stem(self) -> str:
        """File-name stem of the scan's output folder (``<subject>`` or ``<subject>_ses-<session>``)."""
        return scan_stem(self.subject_id, self.session)

    @property
    def label(self) -> str:
        """How messages name the scan."""
        return scan_label(self.subject_id, self.session)


def _text(value: object) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:g}"
    return str(value)


def read_raw(path: PathLike) -> list[RawScan]:
    """Read and check ``RAW.csv``: the manifest schema, and that every ``t1`` and ``pet`` exists.

    Raises
    ------
    ValidationErrors
        One line per problem, naming the line, subject, column and path; derived columns
        (``labels``, ``mask``, ``refmask``, ``pet_gt``) are refused, since ``prepare`` makes them.
    TausynthError
        If the file is missing or not a CSV.
    """
    path = Path(path)
    df = load_manifest(path)
    problems = [f"{path.name}: column {c!r} is made by prepare; remove it from the raw table"
                for c in _DERIVED if df[c].astype(bool).any()]
    scans = []
    for i, row in df.iterrows():
        for column in ("t1", "pet"):
            target = Path(row[column])
            if not (target.is_file() or (target.is_dir() and any(target.iterdir()))):
                problems.append(f"{path.name}:{int(i) + 2}: subject {row['subject_id']}, column {column}: "
                                f"{target} is neither a file nor a non-empty DICOM folder")
        identity = {c: _text(row[c]) for c in df.columns if c not in IMAGE_COLUMNS}
        scans.append(RawScan(str(row["subject_id"]), str(row["session"]), Path(row["t1"]), Path(row["pet"]), identity))
    if problems:
        raise ValidationErrors(problems)
    return scans
