"""The data manifest: a CSV that names every paired T1w / tau-PET scan and how it may be used.

The schema (documented for users in ``data_manifest/README.md``):

========================  =========  ======================================================
column                    required   allowed values
========================  =========  ======================================================
``subject_id``            yes        any non-empty text (ADNI: the PTID, e.g. ``002_S_0295``)
``t1``, ``pet``           yes        NIfTI path, relative to the manifest's folder or absolute
``manufacturer``          yes        PET scanner maker; aliases normalized to :data:`MANUFACTURERS`
``diagnosis``             yes        :data:`DIAGNOSES`
``split``                 yes        :data:`SPLITS`; a subject keeps one split across sessions
``session``               no         text; ``(subject_id, session)`` is the unique key
``amyloid``               no         :data:`AMYLOID_STATUSES`
``labels``                no         NIfTI of FreeSurfer label IDs on the T1 grid
``mask``, ``refmask``     no         NIfTI {0, 1} brain / SUVR reference-region mask on the T1 grid
``pet_gt``                no         NIfTI, noise-free PET of the synthetic cohort (T1 grid)
``site``, ``scanner_model``  no      text
``age``                   no         number of years
``sex``                   no         :data:`SEXES`
========================  =========  ======================================================

Unknown extra columns are kept untouched, except that a name very close to a known one (a likely
typo such as ``maks``) is reported as a problem.
"""

from __future__ import annotations

import csv
import difflib
import math
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tausynth.errors import TausynthError, ValidationErrors
from tausynth.io import PathLike, load_nifti
from tausynth.vocabulary import DIAGNOSES, MANUFACTURERS, SPLITS

__all__ = [
    "AMYLOID_STATUSES",
    "COLUMNS",
    "DIAGNOSES",
    "EVALUATION_COLUMNS",
    "IMAGE_COLUMNS",
    "MANUFACTURERS",
    "MANUFACTURER_ALIASES",
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "TRAINING_COLUMNS",
    "SEXES",
    "SPLITS",
    "adni_rid",
    "id_problem",
    "load_manifest",
    "scan_label",
    "scan_stem",
    "manufacturer_from_protocol",
    "normalize_manufacturer",
    "parse_imaging_protocol",
    "split_frame",
    "summarise_manifest",
    "validate_manifest",
]

REQUIRED_COLUMNS: tuple[str, ...] = (
    "subject_id",
    "t1",
    "pet",
    "manufacturer",
    "diagnosis",
    "split",
)
#: Canonical column order (the order ``tausynth synth`` writes).
COLUMNS: tuple[str, ...] = (
    "subject_id",
    "session",
    "t1",
    "pet",
    "manufacturer",
    "diagnosis",
    "split",
    "amyloid",
    "labels",
    "mask",
    "refmask",
    "pet_gt",
    "site",
    "scanner_model",
    "age",
    "sex",
)
OPTIONAL_COLUMNS: tuple[str, ...] = tuple(c for c in COLUMNS if c not in REQUIRED_COLUMNS)
#: Columns holding NIfTI paths; every image must lie on the T1 grid.
IMAGE_COLUMNS: tuple[str, ...] = ("t1", "pet", "labels", "mask", "refmask", "pet_gt")
#: The image columns that training and prediction read (the others serve evaluation).
TRAINING_COLUMNS: tuple[str, ...] = ("t1", "pet", "mask")
#: The image columns that evaluation reads.
EVALUATION_COLUMNS: tuple[str, ...] = ("t1", "pet", "mask", "labels", "refmask")
_BINARY_COLUMNS = ("mask", "refmask")
_INTEGER_COLUMNS = ("labels",)

AMYLOID_STATUSES: tuple[str, ...] = ("A+", "A-")
SEXES: tuple[str, ...] = ("F", "M")

#: Manufacturer strings seen in DICOM (0008,0070) and in ADNI's "Imaging Protocol" field, keyed by
#: their normalized form (lower case, commas/periods dropped, whitespace collapsed).
MANUFACTURER_ALIASES: dict[str, str] = {
    "siemens": "Siemens",
    "siemens healthineers": "Siemens",
    "siemens healthcare": "Siemens",
    "siemens healthcare gmbh": "Siemens",
    "siemens medical solutions": "Siemens",
    "siemens ag": "Siemens",
    "siemens ecat": "Siemens",
    "siemens/cti": "Siemens",
    # ECAT HR+ / HRRT scanners were built by CTI PET Systems ("CPS"), acquired by Siemens in 2005.
    "cps": "Siemens",
    "cti": "Siemens",
    "cti pet systems": "Siemens",
    "ge": "GE",
    "ge medical systems": "GE",
    "ge medical systems llc": "GE",
    "ge healthcare": "GE",
    "gems": "GE",
    "general electric": "GE",
    "philips": "Philips",
    "philips medical systems": "Philips",
    "philips healthcare": "Philips",
    "philips medical systems international": "Philips",
}

_SEX_ALIASES = {"f": "F", "female": "F", "m": "M", "male": "M"}
_ADNI_PTID = re.compile(r"^(\d{3})_S_(\d{4})$")


def _alias_key(name: str) -> str:
    return " ".join(name.lower().replace(",", " ").replace(".", " ").split())


def id_problem(value: str) -> str | None:
    """Why ``value`` cannot be a subject id or session (ids become file names), or None when it can.

    Examples
    --------
    >>> id_problem("002_S_0295") is None
    True
    >>> id_problem("../../ESCAPED")
    "'../../ESCAPED' contains a path separator; ids become file names"
    """
    if "/" in value or "\\" in value:
        return f"{value!r} contains a path separator; ids become file names"
    if value in (".", "..") or "\0" in value:
        return f"{value!r} is not a valid file name; ids become file names"
    return None


def scan_label(subject_id: object, session: object = "") -> str:
    """How tables and messages name one scan: ``<subject>``, or ``<subject> (<session>)`` with several.

    Examples
    --------
    >>> scan_label("sub-01"), scan_label("sub-01", "m12"), scan_label("sub-01", float("nan"))
    ('sub-01', 'sub-01 (m12)', 'sub-01')
    """
    ses = "" if session is None or (isinstance(session, float) and math.isnan(session)) else str(session)
    return f"{subject_id} ({ses})" if ses else str(subject_id)


def scan_stem(subject_id: object, session: object = "") -> str:
    """The file-name stem of one scan, ``<subject>`` or ``<subject>_ses-<session>``: the one way ids become names.

    Raises
    ------
    TausynthError
        If an id could leave its folder (a path separator, ``..``); :func:`load_manifest` rejects those.

    Examples
    --------
    >>> scan_stem("sub-01"), scan_stem("sub-01", "m12")
    ('sub-01', 'sub-01_ses-m12')
    """
    sid, ses = str(subject_id), "" if session is None else str(session)
    for value in (sid, ses):
        if value and (bad := id_problem(value)):
            raise TausynthError(bad)
    return f"{sid}_ses-{ses}" if ses else sid


def normalize_manufacturer(name: str) -> str:
    """Map a manufacturer string to one of :data:`MANUFACTURERS`.

    Parameters
    ----------
    name : str
        E.g. ``"SIEMENS"``, ``"GE MEDICAL SYSTEMS"``, ``" Philips Healthcare "``; matching ignores
        case, surrounding/repeated whitespace, commas and periods.

    Returns
    -------
    str
        ``"Siemens"``, ``"GE"`` or ``"Philips"``.

    Raises
    ------
    TausynthError
        If the string is not a known alias; the message names the value and the known set.
    """
    key = _alias_key(str(name))
    for canonical in MANUFACTURERS:
        if key == canonical.lower():
            return canonical
    if key in MANUFACTURER_ALIASES:
        return MANUFACTURER_ALIASES[key]
    raise TausynthError(
        f"unknown manufacturer {name!r}; known: {', '.join(MANUFACTURERS)} "
        "(aliases: tausynth.data.manifest.MANUFACTURER_ALIASES)"
    )


def parse_imaging_protocol(protocol: str) -> dict[str, str]:
    """Split ADNI's "Imaging Protocol" field (``"Manufacturer=SIEMENS;Mfg Model=Biograph mCT;..."``).

    Returns
    -------
    dict
        Keys and values stripped of whitespace; entries without ``=`` are ignored.
    """
    fields: dict[str, str] = {}
    for part in str(protocol).split(";"):
        key, sep, value = part.partition("=")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def manufacturer_from_protocol(protocol: str) -> str:
    """Return the canonical manufacturer named by an ADNI "Imaging Protocol" field.

    Raises
    ------
    TausynthError
        If the field has no ``Manufacturer=`` entry or names an unknown manufacturer.
    """
    fields = {k.lower(): v for k, v in parse_imaging_protocol(protocol).items()}
    if "manufacturer" not in fields:
        raise TausynthError(f"imaging protocol {protocol!r} has no 'Manufacturer=' entry")
    return normalize_manufacturer(fields["manufacturer"])


def adni_rid(ptid: str) -> int:
    """Return ADNI's roster ID (RID) of a PTID: ``"002_S_0295"`` → ``295``.

    ADNI tables keyed by RID (an integer) join to PTID-keyed tables on this value; the three-digit
    prefix is the site.

    Raises
    ------
    TausynthError
        If ``ptid`` does not look like ``NNN_S_NNNN``.
    """
    match = _ADNI_PTID.match(str(ptid).strip())
    if match is None:
        raise TausynthError(
            f"{ptid!r} is not an ADNI PTID of the form NNN_S_NNNN (e.g. 002_S_0295)"
        )
    return int(match.group(2))


# --------------------------------------------------------------------------------------------------
# Reading and schema checks


@dataclass(frozen=True)
class _Row:
    line: int  # line number in the CSV (the header is line 1)
    subject: str
    session: str


def _where(manifest: Path, row: _Row, column: str, file: str | None = None) -> str:
    who = f"subject {row.subject or '<empty>'}"
    if row.session:
        who += f" (session {row.session})"
    text = f"{manifest.name}:{row.line}: {who}, column {column}"
    if file:
        text += f", file {file}"
    return text


def _read_csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise TausynthError(f"{path}: manifest not found")
    try:
        # utf-8-sig: spreadsheet exports often start with a byte-order mark
        df = pd.read_csv(
            path, dtype=str, keep_default_na=False, skipinitialspace=True, encoding="utf-8-sig"
        )
        with open(path, newline="", encoding="utf-8-sig") as fh:
            header = [c.strip() for c in next(csv.reader(fh), [])]
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise TausynthError(
            f"{path}: not a readable CSV manifest ({type(exc).__name__}: {exc})"
        ) from None
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        raise TausynthError(
            f"{path}: repeated column name(s) {', '.join(map(repr, repeated))} in the header"
        )
    df.columns = [str(c).strip() for c in df.columns]
    return df


def _resolve(base: Path, value: str) -> str:
    p = Path(value).expanduser()
    return os.path.abspath(p if p.is_absolute() else base / p)


def _read_manifest(path: PathLike) -> tuple[pd.DataFrame, list[str], list[_Row]]:
    """Read and schema-check a manifest; return the normalized frame, problems and row labels."""
    path = Path(path)
    raw = _read_csv(path)
    problems: list[str] = []
    missing = [c for c in REQUIRED_COLUMNS if c not in raw.columns]
    for column in missing:
        problems.append(f"{path.name}: missing required column {column!r} (file {path})")
    for column in raw.columns:
        if column in COLUMNS:
            continue
        close = difflib.get_close_matches(column, COLUMNS, n=1, cutoff=0.75)
        if close:
            problems.append(
                f"{path.name}: unknown column {column!r}, did you mean {close[0]!r}? (file {path})"
            )
    if missing:
        raise ValidationErrors(problems)
    if len(raw) == 0:
        raise ValidationErrors([*problems, f"{path.name}: the manifest has no rows (file {path})"])

    df = raw.fillna("").apply(lambda col: col.astype(str).str.strip())
    for column in OPTIONAL_COLUMNS:
        if column not in df.columns:
            df[column] = ""
    base = path.parent.absolute()
    rows = [
        _Row(line=i + 2, subject=str(s), session=str(t))
        for i, (s, t) in enumerate(zip(df["subject_id"], df["session"], strict=True))
    ]

    manufacturers, diagnoses, splits, amyloid, sexes, ages = [], [], [], [], [], []
    for i, row in enumerate(rows):
        rec = df.iloc[i]
        if not row.subject:
            problems.append(f"{_where(path, row, 'subject_id')}: empty subject id")
        for column, value in (("subject_id", row.subject), ("session", row.session)):
            if value and (bad := id_problem(value)):
                problems.append(f"{_where(path, row, column)}: {bad}")
        for column in ("t1", "pet"):
            if not rec[column]:
                problems.append(f"{_where(path, row, column)}: empty path")
        try:
            manufacturers.append(normalize_manufacturer(rec["manufacturer"]))
        except TausynthError as exc:
            problems.append(f"{_where(path, row, 'manufacturer')}: {exc}")
            manufacturers.append(rec["manufacturer"])
        diagnoses.append(
            _choice(rec["diagnosis"], DIAGNOSES, str.upper, path, row, "diagnosis", problems)
        )
        splits.append(_choice(rec["split"], SPLITS, str.lower, path, row, "split", problems))
        amyloid.append(
            _choice(
                rec["amyloid"],
                AMYLOID_STATUSES,
                str.upper,
                path,
                row,
                "amyloid",
                problems,
                optional=True,
            )
        )
        sexes.append(
            _choice(
                rec["sex"],
                SEXES,
                lambda v: _SEX_ALIASES.get(v.lower(), v),
                path,
                row,
                "sex",
                problems,
                optional=True,
            )
        )
        ages.append(_age(rec["age"], path, row, problems))

    df["manufacturer"] = manufacturers
    df["diagnosis"] = diagnoses
    df["split"] = splits
    df["amyloid"] = amyloid
    df["sex"] = sexes
    df["age"] = pd.Series(ages, index=df.index, dtype="float64")
    for column in IMAGE_COLUMNS:
        df[column] = [_resolve(base, v) if v else "" for v in df[column]]

    problems.extend(_cross_row_problems(df, rows, path))
    ordered = [c for c in COLUMNS if c in df.columns] + [c for c in df.columns if c not in COLUMNS]
    df = df[ordered].reset_index(drop=True)
    df.attrs["manifest"] = str(path.absolute())
    return df, problems, rows


def _choice(
    value: str,
    allowed: tuple[str, ...],
    canon,
    path: Path,
    row: _Row,
    column: str,
    problems: list[str],
    optional: bool = False,
) -> str:
    if not value:
        if not optional:
            problems.append(
                f"{_where(path, row, column)}: empty value; allowed: {', '.join(allowed)}"
            )
        return ""
    normalized = canon(value)
    if normalized not in allowed:
        problems.append(
            f"{_where(path, row, column)}: invalid value {value!r}; allowed: {', '.join(allowed)}"
        )
        return value
    return normalized


def _age(value: str, path: Path, row: _Row, problems: list[str]) -> float:
    if not value:
        return math.nan
    try:
        age = float(value)
    except ValueError:
        problems.append(
            f"{_where(path, row, 'age')}: invalid value {value!r}; expected a number of years"
        )
        return math.nan
    if not math.isfinite(age) or age < 0:
        problems.append(
            f"{_where(path, row, 'age')}: invalid value {value!r}; expected a number of years"
        )
        return math.nan
    return age


def _cross_row_problems(df: pd.DataFrame, rows: list[_Row], path: Path) -> list[str]:
    problems: list[str] = []
    by_key: dict[tuple[str, str], list[int]] = {}
    for i, row in enumerate(rows):
        if row.subject:
            by_key.setdefault((row.subject, row.session), []).append(i)
    for indices in by_key.values():
        if len(indices) > 1:
            lines = ", ".join(str(rows[i].line) for i in indices)
            for i in indices[1:]:
                problems.append(
                    f"{_where(path, rows[i], 'subject_id')}: duplicate id, (subject_id, session) is not "
                    f"unique (lines {lines}); give each scan of a subject its own session"
                )

    splits_of: dict[str, dict[str, int]] = {}
    for i, row in enumerate(rows):
        split = df["split"].iloc[i]
        if row.subject and split in SPLITS:
            splits_of.setdefault(row.subject, {}).setdefault(split, row.line)
    for subject, seen in splits_of.items():
        if len(seen) > 1:
            where = ", ".join(f"{s} on line {line}" for s, line in seen.items())
            first = next(r for r in rows if r.subject == subject)
            problems.append(
                f"{_where(path, first, 'split')}: subject appears in more than one split ({where}); "
                "a subject must keep one split"
            )

    # One image used by two different subjects means a copy/paste or pairing error (the failure mode
    # of the official code's sorted-glob pairing).
    for column in ("t1", "pet"):
        owners: dict[str, list[int]] = {}
        for i, file in enumerate(df[column]):
            if file:
                owners.setdefault(file, []).append(i)
        for file, indices in owners.items():
            subjects = {rows[i].subject for i in indices}
            if len(subjects) > 1:
                lines = ", ".join(str(rows[i].line) for i in indices)
                for i in indices[1:]:
                    problems.append(
                        f"{_where(path, rows[i], column, file)}: the same file is used by different "
                        f"subjects (lines {lines})"
                    )
    return problems


def load_manifest(path: PathLike) -> pd.DataFrame:
    """Read a manifest CSV, check its schema and normalize its values.

    Parameters
    ----------
    path : str or os.PathLike
        The manifest CSV. Relative image paths are taken relative to its folder.

    Returns
    -------
    pandas.DataFrame
        One row per scan, columns in :data:`COLUMNS` order followed by any extra columns. Every
        optional column is present; missing text and paths are ``""``, a missing age is NaN. Image
        paths are absolute; ``manufacturer``, ``diagnosis``, ``split``, ``amyloid`` and ``sex`` hold
        canonical values. ``df.attrs["manifest"]`` is the manifest's absolute path.

    Raises
    ------
    TausynthError
        If the file is missing or not a CSV.
    ValidationErrors
        For schema problems (missing required columns, invalid values, duplicate ids, a subject in
        two splits), one line each. Files are not opened; see :func:`validate_manifest`.
    """
    df, problems, _ = _read_manifest(path)
    if problems:
        raise ValidationErrors(problems)
    return df


def split_frame(df: pd.DataFrame, split: str) -> pd.DataFrame:
    """Return the rows of ``df`` in ``split`` (``"train"``, ``"val"`` or ``"test"``), re-indexed."""
    if split not in SPLITS:
        raise TausynthError(f"invalid split {split!r}; allowed: {', '.join(SPLITS)}")
    return df[df["split"] == split].reset_index(drop=True)


def summarise_manifest(df: pd.DataFrame) -> str:
    """One line: scans, subjects, subjects per split, scans per manufacturer."""
    n_subjects = df["subject_id"].nunique()
    per_split = df.drop_duplicates("subject_id")["split"].value_counts()
    per_maker = df["manufacturer"].value_counts()
    splits = " / ".join(f"{s} {int(per_split.get(s, 0))}" for s in SPLITS)
    makers = " / ".join(f"{m} {int(per_maker.get(m, 0))}" for m in MANUFACTURERS)
    return f"{len(df)} scans, {n_subjects} subjects, splits {splits}, manufacturers {makers}"


# --------------------------------------------------------------------------------------------------
# File checks


@dataclass(frozen=True)
class _ImageInfo:
    shape: tuple[int, ...] | None = None
    affine: np.ndarray | None = None
    error: str | None = None
    n_nan: int = 0
    n_inf: int = 0
    binary: bool = True
    integer: bool = True
    empty: bool = False


def _inspect(file: str) -> _ImageInfo:
    """Load one image and keep only what the checks need, so volumes are never held together."""
    if not Path(file).is_file():
        return _ImageInfo(error="file not found")
    try:
        data, affine, _ = load_nifti(file)
    except TausynthError as exc:
        message = str(exc)
        return _ImageInfo(error=message.removeprefix(f"{file}: "))
    nan = np.isnan(data)
    n_nan = int(nan.sum())
    n_inf = int(np.isinf(data).sum())
    finite = data[~nan] if n_nan else data
    return _ImageInfo(
        shape=tuple(int(s) for s in data.shape),
        affine=affine,
        n_nan=n_nan,
        n_inf=n_inf,
        binary=bool(np.isin(finite, (0.0, 1.0)).all()),
        integer=bool(np.all(np.isfinite(finite)) and np.all(finite == np.round(finite))),
        empty=not bool(np.any(finite)),
    )


def _file_problems(
    df: pd.DataFrame, rows: list[_Row], path: Path, affine_tolerance: float,
    columns: tuple[str, ...] = IMAGE_COLUMNS, splits: tuple[str, ...] = SPLITS,
) -> Iterator[str]:
    cache: dict[str, _ImageInfo] = {}

    def info(file: str) -> _ImageInfo:
        if file not in cache:
            cache[file] = _inspect(file)
        return cache[file]

    for i, row in enumerate(rows):
        if df["split"].iloc[i] not in splits:
            continue
        t1_file = df["t1"].iloc[i]
        t1 = info(t1_file) if t1_file else None
        for column in columns:
            file = df[column].iloc[i]
            if not file:
                continue
            img = info(file)
            where = _where(path, row, column, file)
            if img.error:
                yield f"{where}: {img.error}"
                continue
            if len(img.shape) != 3:
                yield f"{where}: expected a 3D image, got shape {img.shape}"
                continue
            if img.n_nan or img.n_inf:
                yield f"{where}: contains {img.n_nan} NaN and {img.n_inf} Inf voxel(s)"
            if column in _BINARY_COLUMNS and not img.binary:
                yield f"{where}: a mask must contain only 0 and 1"
            if column in _BINARY_COLUMNS and img.empty:
                yield f"{where}: the mask is empty (no voxel is 1)"
            elif img.empty and column != "labels":
                yield f"{where}: the image is all zero"
            if column in _INTEGER_COLUMNS and not img.integer:
                yield f"{where}: label IDs must be integers"
            if column == "t1" or t1 is None or t1.error or len(t1.shape) != 3:
                continue
            if img.shape != t1.shape:
                yield f"{where}: shape {img.shape} differs from the T1 shape {t1.shape} (t1 {t1_file})"
                continue
            diff = float(np.max(np.abs(img.affine - t1.affine)))
            if diff > affine_tolerance:
                yield (
                    f"{where}: affine differs from the T1 affine by up to {diff:.4g} "
                    f"(tolerance {affine_tolerance:g} mm; t1 {t1_file})"
                )


def validate_manifest(
    path: PathLike, affine_tolerance: float = 1e-3, *, columns: Sequence[str] | None = None,
    splits: Sequence[str] | None = None,
) -> str:
    """Check a manifest and every file it names; report all problems at once.

    Checks: the schema (see :func:`load_manifest`); every image exists, loads and is 3D; no NaN or
    Inf voxel; no image is all zero; ``pet``, ``labels``, ``mask``, ``refmask`` and ``pet_gt`` have
    the T1's shape and an affine within ``affine_tolerance`` of the T1's (largest absolute
    element-wise difference of the 4x4 matrices, i.e. mm for the translation); masks are non-empty
    and {0, 1}; labels are integers. Each file is loaded once and only summary facts are kept, so
    memory stays at one volume.

    ``train``, ``standardize``, ``predict`` and ``evaluate`` make the same checks before any work,
    on the columns and splits that they read.

    Parameters
    ----------
    path : str or os.PathLike
        The manifest CSV.
    affine_tolerance : float, default=1e-3
        Largest allowed absolute difference between an image's affine and its T1's.
    columns : sequence of str, optional
        Image columns whose files are checked (the T1 always is); default all of
        :data:`IMAGE_COLUMNS`. The schema is always checked in full.
    splits : sequence of str, optional
        Only the files of scans in these splits are checked; default all.

    Returns
    -------
    str
        A one-line summary, e.g. ``"120 scans, 40 subjects, splits train 28 / val 6 / test 6,
        manufacturers Siemens 60 / GE 36 / Philips 24"`` (subjects per split, scans per manufacturer).

    Raises
    ------
    ValidationErrors
        One line per problem, each naming the manifest line, subject (and session), column and file.
    TausynthError
        If the manifest itself is missing or unreadable, or ``affine_tolerance`` is negative.
    """
    if not math.isfinite(affine_tolerance) or affine_tolerance < 0:
        raise TausynthError(
            f"affine tolerance must be a non-negative number, got {affine_tolerance!r}"
        )
    unknown = sorted(set(columns or ()) - set(IMAGE_COLUMNS)) + sorted(set(splits or ()) - set(SPLITS))
    if unknown:
        raise TausynthError(f"validate_manifest: unknown column or split {unknown}; columns: "
                            f"{', '.join(IMAGE_COLUMNS)}; splits: {', '.join(SPLITS)}")
    path = Path(path)
    df, problems, rows = _read_manifest(path)
    checked = tuple(c for c in IMAGE_COLUMNS if c == "t1" or columns is None or c in columns)
    problems.extend(_file_problems(df, rows, path, affine_tolerance, checked, tuple(splits or SPLITS)))
    if problems:
        raise ValidationErrors(problems)
    return summarise_manifest(df)
