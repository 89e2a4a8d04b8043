"""Scans to RAS NIfTI: DICOM folders through ``dcm2niix`` (the PyPI package ships the binary), then reorientation.

``dcm2niix`` is the reference converter (it handles vendor quirks, slice order, mosaic and
multi-frame files, PET decay and rescale factors); it is run as a program, never reimplemented.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np

from tausynth.errors import TausynthError

__all__ = ["dcm2niix_version", "dicom_to_nifti", "load_scan"]


def _binary() -> str:
    import dcm2niix

    return str(dcm2niix.bin)


def dcm2niix_version() -> str:
    """The converter's version line (recorded in provenance)."""
    result = subprocess.run([_binary(), "--version"], capture_output=True, text=True, check=False)
    lines = [ln for ln in (result.stdout + result.stderr).splitlines() if "v1." in ln or "version" in ln.lower()]
    return (lines[0] if lines else result.stdout.strip().splitlines()[-1]).strip()


def dicom_to_nifti(folder: Path, work: Path) -> Path:
    """Convert the one series in ``folder`` with ``dcm2niix``; return the NIfTI it wrote in ``work``.

    Raises
    ------
    TausynthError
        If the converter fails, or the folder holds no series or several (name the series' folder
        instead).
    """
    work.mkdir(parents=True, exist_ok=True)
    out = Path(tempfile.mkdtemp(prefix="dcm2niix-", dir=work))
    result = subprocess.run([_binary(), "-z", "y", "-b", "n", "-f", "%s_%d", "-o", str(out), str(folder)],
                            capture_output=True, text=True, check=False)
    files = sorted(out.glob("*.nii.gz"))
    if result.returncode != 0 or not files:
        last = (result.stderr or result.stdout).strip().splitlines()
        raise TausynthError(f"{folder}: dcm2niix found no convertible DICOM series ({last[-1] if last else 'no output'})")
    if len(files) > 1:
        raise TausynthError(f"{folder}: holds {len(files)} DICOM series ({', '.join(f.name for f in files)}); "
                            "name the folder of one series")
    return files[0]


def load_scan(path: Path, work: Path) -> nib.Nifti1Image:
    """A scan (NIfTI file, or DICOM folder) as a float32 image with RAS+ voxel axes (3D or 4D).

    Reorienting permutes and flips voxel axes only; the world coordinates of every voxel are kept.
    """
    path = Path(path)
    source = dicom_to_nifti(path, work) if path.is_dir() else path
    try:
        img = nib.load(str(source))
        data = np.asarray(img.get_fdata(dtype=np.float32))
    except Exception as exc:  # nibabel raises many types for unreadable files
        raise TausynthError(f"{path}: not a readable NIfTI image ({type(exc).__name__}: {exc})") from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim not in (3, 4):
        raise TausynthError(f"{path}: expected a 3D image or 4D frames, got shape {data.shape}")
    if not np.isfinite(data).all():
        data = np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0)
    return nib.as_closest_canonical(nib.Nifti1Image(data, img.affine))
