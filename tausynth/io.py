"""NIfTI and text I/O: float32 images, affine and header kept, atomic writes, content hashes."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import nibabel as nib
import numpy as np

from tausynth.errors import TausynthError

PathLike = str | os.PathLike[str]


def _umask() -> int:
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    The temporary file lives in the destination folder so that the final ``os.replace`` is atomic;
    on error it is removed and ``path`` is left untouched. The file gets the permissions a plain
    ``open`` would give it (``0o666`` less the umask), not the temporary file's private ``0o600``,
    so colleagues can read a shared cohort, run or prediction.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            tmp_path.chmod(0o666 & ~_umask())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def file_lock(path: PathLike) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (created if missing) for the block.

    The lock dies with its holder, so a killed process never leaves it stuck. Without ``fcntl``
    (not POSIX) there are no parallel writers to guard against and the block runs unlocked.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover
        yield
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def check_writable_file(path: PathLike) -> Path:
    """Raise a one-line :class:`TausynthError` now if ``path`` cannot be written as a file.

    Commands call it before long work (a fit, a training run), so that a wrong output path fails
    at once rather than after it. Missing folders are fine (they are created on writing).

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> check_writable_file(folder / "new" / "stats.json") == folder / "new" / "stats.json"
    True
    >>> check_writable_file(folder)
    Traceback (most recent call last):
    ...
    tausynth.errors.TausynthError: ...: is a folder; give the path of a file to write
    """
    path = Path(path)
    if path.is_dir():
        raise TausynthError(f"{path}: is a folder; give the path of a file to write")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise TausynthError(f"{path}: cannot be written, {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise TausynthError(f"{path}: cannot be written, {parent} is read-only or not writable by this user")
    return path


def os_error_line(exc: OSError) -> str:
    """One line for an operating-system error: the file, what went wrong, and what to do.

    Examples
    --------
    >>> import errno
    >>> os_error_line(OSError(errno.ENOSPC, "No space left on device", "/runs/a/last.pt"))
    '/runs/a/last.pt: no space left on device (free some space, or write elsewhere)'
    """
    what = (exc.strerror or type(exc).__name__).lower()
    hint = {
        errno.ENOSPC: " (free some space, or write elsewhere)",
        errno.EACCES: " (choose a folder you can write to)",
        errno.EROFS: " (the file system is read-only; choose another folder)",
    }.get(exc.errno or 0, "")
    where = ": ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
    return f"{where}: {what}{hint}" if where else f"{what}{hint}"


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temp file + rename)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file + rename)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def load_nifti(path: PathLike, dtype: type = np.float32) -> tuple[np.ndarray, np.ndarray, nib.Nifti1Header]:
    """Load a NIfTI image as an array of ``dtype`` with its affine and header.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.nii`` or ``.nii.gz`` file.
    dtype : type, default=numpy.float32
        Data type of the returned array (scaling slopes are applied first).

    Returns
    -------
    data : numpy.ndarray
    affine : numpy.ndarray of shape (4, 4)
    header : nibabel.Nifti1Header

    Raises
    ------
    TausynthError
        If the file is missing or cannot be read as NIfTI (the message names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise TausynthError(f"{path}: file not found")
    try:
        img = nib.load(str(path))
        data = np.asarray(img.get_fdata(dtype=np.float64) if dtype != np.float32 else img.get_fdata(dtype=np.float32))
    except Exception as exc:  # nibabel raises many types for corrupt files
        raise TausynthError(f"{path}: not a readable NIfTI image ({type(exc).__name__}: {exc})") from None
    return data.astype(dtype, copy=False), np.asarray(img.affine, dtype=np.float64), img.header


def save_nifti(
    path: PathLike,
    data: np.ndarray,
    affine: np.ndarray,
    header: nib.Nifti1Header | None = None,
    dtype: type = np.float32,
) -> Path:
    """Save ``data`` as NIfTI atomically, as ``dtype`` (float32 by default, never quantised).

    When a ``header`` is given (e.g. the MRI's, as the official inference code does) its geometry is
    kept but its data type and scaling are replaced, so an integer header cannot quantise the output.
    """
    path = Path(path)
    arr = np.asarray(data).astype(dtype, copy=False)
    hdr = header.copy() if header is not None else None
    img = nib.Nifti1Image(arr, np.asarray(affine, dtype=np.float64), header=hdr)
    img.set_data_dtype(dtype)
    img.header.set_slope_inter(None, None)
    suffix = ".nii.gz" if path.name.endswith(".nii.gz") else ".nii"
    with atomic_path(path, suffix=suffix) as tmp:
        nib.save(img, str(tmp))
    return path


def file_sha256(path: PathLike, chunk: int = 1 << 20) -> str:
    """Return the hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def array_sha256(arr: np.ndarray) -> str:
    """Return the hex SHA-256 of an array's dtype, shape and bytes."""
    h = hashlib.sha256()
    a = np.ascontiguousarray(arr)
    h.update(str(a.dtype).encode())
    h.update(str(a.shape).encode())
    h.update(a.tobytes())
    return h.hexdigest()


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, which a container or ``taskset`` narrows)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
