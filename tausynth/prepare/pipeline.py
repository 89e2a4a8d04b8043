"""``tausynth prepare``: raw T1 and PET scans to a manifest, one subject at a time, resumable and in parallel.

Each scan goes through :data:`STEPS` and ends in ``OUT/<stem>/`` as ``t1``, ``pet`` (SUVR), ``labels``,
``mask`` and ``refmask`` NIfTI files on one grid, and a ``provenance.json`` written last: a scan
whose provenance exists with the same key (code, resolution, input files' names, sizes and times,
:func:`scan_key`) is finished and skipped on a re-run. Every
file is written atomically, so an interrupted run leaves whole files or none. A scan that fails
gets one line naming it and the step (its traceback goes to ``OUT/logs/<stem>.log``) and the others
go on. ``OUT/manifest.csv`` names every prepared scan and is written last.

The output grid is the book's, the same for every scan: ``80×96×80`` voxels of 2 mm (or ``40×48×40``
of 4 mm) of the synthetic cohort, in a template-aligned world. Each scan is placed on it by the
*rigid* part (rotation and translation) of its template registration: heads are put in the same
pose and position, so voxel-wise statistics across scans (the book's mean-image baseline) make
sense, while each brain keeps its own size and shape (no scaling, no warping of the subject's images).
``provenance.json`` holds the map back to the T1's world (``grid_to_t1_ras``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import nibabel as nib
import numpy as np
import pandas as pd

from tausynth.data import atlas
from tausynth.data.manifest import COLUMNS
from tausynth.errors import TausynthError
from tausynth.io import PathLike, atomic_write_text, save_nifti, usable_cores
from tausynth.prepare.raw import RawScan, read_raw

if TYPE_CHECKING:  # SimpleITK is the optional extra 'prepare': imported when a scan is prepared
    import SimpleITK as sitk

__all__ = ["GRID_SHAPES", "OUTPUT_FILES", "RESOLUTIONS", "STATUSES", "STEPS", "StepFailed", "SubjectResult",
           "is_finished", "output_grid", "prepare", "prepare_scan", "rigid_part", "scan_key"]

#: The steps, in order; a failure names one of them.
STEPS: tuple[str, ...] = ("convert", "frames", "bias", "mask", "labels", "pet_to_t1", "suvr", "resample", "write")
#: ``--resolution``: voxel size (mm) of the prepared images.
RESOLUTIONS: tuple[int, ...] = (2, 4)
#: Output grid shape per resolution (the synthetic cohort's, so models and chapters take it as it is).
GRID_SHAPES: dict[int, tuple[int, int, int]] = {2: atlas.GRID_SHAPE, 4: tuple(s // 2 for s in atlas.GRID_SHAPE)}
#: Files of a prepared scan (manifest column -> file name).
OUTPUT_FILES: dict[str, str] = {c: f"{c}.nii.gz" for c in ("t1", "pet", "labels", "mask", "refmask")}
#: A :class:`SubjectResult`'s ``status``.
STATUSES: tuple[str, ...] = ("prepared", "skipped", "failed")
_PROVENANCE = "provenance.json"
#: Plausible volumes (mL) of the template's brain mask (1883 mL) on an adult; outside them the registration failed.
_BRAIN_ML = (600.0, 3200.0)
#: Share of the brain (measured on the T1) that must fit in the output grid.
_MIN_BRAIN_IN_GRID = 0.97
#: Share of the reference region that must lie inside the PET's field of view.
_MIN_REFERENCE_COVERAGE = 0.9


class StepFailed(TausynthError):
    """A step of one scan failed; the message is the one line the user sees."""

    def __init__(self, step: str, message: str) -> None:
        self.step = step
        super().__init__(f"step {step}: {message}")


@dataclass(frozen=True)
class SubjectResult:
    """What happened to one scan: ``status`` is one of :data:`STATUSES`."""

    scan: RawScan
    status: str
    folder: Path
    message: str = ""
    step: str = ""

    @property
    def line(self) -> str:
        """One line for the user: ``subject X: step Y: what went wrong``."""
        return f"subject {self.scan.label}: {self.message}"


@contextlib.contextmanager
def _step(name: str, timings: dict[str, float]) -> Iterator[None]:
    """Time a step; turn any failure inside it into a :class:`StepFailed` naming the step."""
    start = time.perf_counter()
    try:
        yield
    except StepFailed:
        raise
    except Exception as exc:  # one line per failed scan; the traceback is kept in the scan's log
        text = str(exc).strip().splitlines()
        last = text[-1] if text else ""
        if not isinstance(exc, TausynthError):  # a library's error: say which kind, as it may be terse
            last = f"{type(exc).__name__}: {last}".rstrip(": ")
        raise StepFailed(name, last) from exc
    timings[name] = round(time.perf_counter() - start, 2)


def rigid_part(affine: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """The rotation and translation of a 4×4 affine map, without its scaling and shear.

    The rotation is the orthogonal factor of the polar decomposition; the translation makes the
    rigid map send ``centre`` where the affine does. The template is thus placed on the subject
    with the subject's size kept: a large brain stays large.

    Examples
    --------
    >>> a = np.diag([1.1, 0.9, 1.0, 1.0]); a[:3, 3] = (5.0, 0.0, -2.0)
    >>> rigid_part(a, np.zeros(3)).round(6).tolist()[0]
    [1.0, 0.0, 0.0, 5.0]
    """
    u, _, vt = np.linalg.svd(affine[:3, :3])
    rotation = u @ vt
    if np.linalg.det(rotation) < 0:  # a reflection is not a pose
        rotation = u @ np.diag([1.0, 1.0, -1.0]) @ vt
    out = np.eye(4)
    out[:3, :3] = rotation
    out[:3, 3] = (affine @ [*centre, 1.0])[:3] - rotation @ centre
    return out


def output_grid(resolution: int) -> nib.Nifti1Image:
    """An empty image on the output grid: the synthetic cohort's grid (template-aligned world, mm)."""
    affine = atlas.GRID_AFFINE.copy()
    if resolution == 4:  # 2×2×2 blocks of the 2 mm grid, as the cohort's 4 mm images
        affine[:3, :3] *= 2.0
        affine[:3, 3] += 1.0
    return nib.Nifti1Image(np.zeros(GRID_SHAPES[resolution], dtype=np.float32), affine)


def _grid_to_t1(warp_linear: sitk.Transform) -> np.ndarray:
    """The rigid map from the template-aligned output world to the T1's world (RAS, 4×4)."""
    from tausynth.prepare import register as reg

    t1_to_template = reg.transform_to_ras(warp_linear)
    tpl = atlas.load_template()
    centre = (tpl.affine @ [*np.argwhere(tpl.mask > 0.5).mean(axis=0), 1.0])[:3]
    return rigid_part(np.linalg.inv(t1_to_template), centre)


def _files_key(path: Path) -> list[list[object]]:
    """Name, size and modification time of a file, or of every file of a DICOM folder (cheap, unlike hashing)."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return [[p.name if p == path else p.relative_to(path).as_posix(), (st := p.stat()).st_size, st.st_mtime_ns]
            for p in files]


def scan_key(scan: RawScan, resolution: int) -> str:
    """What a prepared scan was made from: the code (every source file), the resolution and the input files."""
    from tausynth.digest import combine, source_digest

    return combine("prepare", source_digest(), resolution, str(scan.t1), _files_key(scan.t1), str(scan.pet),
                   _files_key(scan.pet))


def is_finished(scan: RawScan, out: PathLike, resolution: int) -> bool:
    """Whether ``out/<stem>/`` holds this scan prepared from the same inputs, code and resolution."""
    folder = Path(out) / scan.stem
    try:
        prov = json.loads((folder / _PROVENANCE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    same = prov.get("key") == scan_key(scan, resolution)
    return same and all((folder / f).is_file() for f in OUTPUT_FILES.values())


def _register_and_measure(scan: RawScan, work: Path, resolution: int, timings: dict[str, float]) -> dict:
    """Steps ``convert`` to ``resample``: the prepared arrays, their affine and what provenance records."""
    import SimpleITK as sitk

    from tausynth.prepare import register as reg
    from tausynth.prepare.convert import load_scan
    from tausynth.prepare.frames import average_frames
    from tausynth.prepare.template import template_images

    tpl = template_images()
    with _step("convert", timings):
        t1, pet = load_scan(scan.t1, work / "t1"), load_scan(scan.pet, work / "pet")
        if t1.ndim != 3:
            raise TausynthError(f"{scan.t1}: the T1 has {t1.shape[3]} volumes; expected one")
    with _step("frames", timings):
        pet_mean, motions = average_frames(pet)
    with _step("bias", timings):
        t1s = reg.n4_bias_correct(reg.to_sitk(t1))
    with _step("mask", timings):
        warp = reg.affine_then_bspline(t1s, reg.to_sitk(tpl.t1), reg.to_sitk(tpl.mask))
        brain_t1 = reg.resample(reg.to_sitk(tpl.mask), t1s, warp.transform, "nearest") > 0.5
        grid_img = output_grid(resolution)
        grid = reg.to_sitk(grid_img)
        grid_to_t1 = _grid_to_t1(warp.linear)
        to_t1 = reg.ras_to_transform(grid_to_t1)
        to_template = reg.compose(warp.transform, to_t1)
        mask = reg.from_sitk(reg.resample(reg.to_sitk(tpl.mask), grid, to_template, "nearest")).get_fdata() > 0.5
        brain_ml = float(mask.sum() * resolution**3 / 1000.0)
        if not _BRAIN_ML[0] <= brain_ml <= _BRAIN_ML[1]:
            raise TausynthError(f"brain mask of {brain_ml:.0f} mL, outside {_BRAIN_ML[0]:.0f}–{_BRAIN_ML[1]:.0f} mL: "
                                "the template did not register to the T1 (check the T1's orientation and contrast)")
        native_ml = float(sitk.GetArrayViewFromImage(brain_t1).sum() * np.prod(t1s.GetSpacing()) / 1000.0)
        if brain_ml < _MIN_BRAIN_IN_GRID * native_ml:  # the fixed box cut off part of an unusually large brain
            raise TausynthError(f"only {brain_ml:.0f} of the brain's {native_ml:.0f} mL fit in the output grid")
    with _step("labels", timings):
        labels = np.rint(reg.from_sitk(reg.resample(reg.to_sitk(tpl.labels), grid, to_template, "nearest"))
                         .get_fdata()).astype(np.int16) * mask
        refmask = (reg.from_sitk(reg.resample(reg.to_sitk(tpl.refmask), grid, to_template, "nearest"))
                   .get_fdata() > 0.5) & mask
        _check_regions(labels, refmask)
    with _step("pet_to_t1", timings):
        fixed = sitk.Cast(t1s * sitk.Cast(brain_t1, sitk.sitkFloat32), sitk.sitkFloat32)
        radius = [max(int(round(4.0 / s)), 1) for s in t1s.GetSpacing()]
        fit = reg.rigid(fixed, reg.to_sitk(pet_mean), fixed_mask=sitk.BinaryDilate(brain_t1, radius))
    with _step("suvr", timings):
        to_pet = reg.compose(fit.transform, to_t1)
        pet_grid = reg.from_sitk(reg.resample(reg.to_sitk(pet_mean), grid, to_pet)).get_fdata()
        in_fov = _field_of_view(pet_mean, grid, to_pet)
        coverage = {"reference": float(in_fov[refmask].mean()), "brain": float(in_fov[mask].mean())}
        if coverage["reference"] < _MIN_REFERENCE_COVERAGE:
            raise TausynthError(f"the PET's field of view covers {100 * coverage['reference']:.0f} % of the inferior "
                                f"cerebellar reference region (at least {100 * _MIN_REFERENCE_COVERAGE:.0f} % needed)")
        refmask &= in_fov  # voxels the PET did not see would read 0 and lower the reference mean
        reference = float(pet_grid[refmask].mean(dtype=np.float64))
        if not reference > 0:
            raise TausynthError(f"the PET's mean in the reference region is {reference:g}; expected a positive uptake")
        suvr = (pet_grid / reference * mask).astype(np.float32)
    with _step("resample", timings):
        t1_grid = reg.from_sitk(reg.resample(t1s, grid, to_t1)).get_fdata().astype(np.float32) * mask
    return {
        "arrays": {"t1": t1_grid, "pet": suvr, "labels": labels, "mask": mask.astype(np.uint8),
                   "refmask": refmask.astype(np.uint8)},
        "affine": grid_img.affine,
        "record": {"pet_to_t1_ras": reg.transform_to_ras(fit.transform).tolist(), "pet_to_t1_cost": fit.cost,
                   "grid_to_t1_ras": grid_to_t1.tolist(),
                   "template_cost": warp.cost, "frame_motions_ras": [m.tolist() for m in motions],
                   "max_frame_shift_mm": _max_shift(motions), "brain_ml": round(brain_ml, 1),
                   "brain_ml_on_t1": round(native_ml, 1),
                   "reference_voxels": int(refmask.sum()), "reference_uptake": reference,
                   "pet_field_of_view_coverage": {k: round(v, 4) for k, v in coverage.items()}},
    }


def _check_regions(labels: np.ndarray, refmask: np.ndarray) -> None:
    """Every Braak ROI and the reference region must have voxels, or SUVR and the book cannot be computed."""
    from tausynth.data.regions import region_masks

    sets = atlas.roi_sets()
    region_masks(labels, {k: sets[k] for k in ("braak1", "braak34", "braak56", "metatemporal")},
                 missing="ignore", empty="error")
    if refmask.sum() < 10:
        raise TausynthError(f"the inferior cerebellar reference region has {int(refmask.sum())} voxel(s)")


def _field_of_view(pet: nib.Nifti1Image, grid: sitk.Image, transform: sitk.Transform) -> np.ndarray:
    """Which output voxels the PET saw (inside its field of view, through the PET->T1 transform).

    A PET whose axial field of view stops above the inferior cerebellum is common; the zeros outside
    it would lower the reference mean and raise every SUVR, silently.
    """
    from tausynth.prepare import register as reg

    fov = nib.Nifti1Image(np.ones(pet.shape[:3], dtype=np.float32), pet.affine)
    return reg.from_sitk(reg.resample(reg.to_sitk(fov), grid, transform, "nearest")).get_fdata() > 0.5


def _max_shift(motions: list[np.ndarray]) -> float:
    """Largest displacement (mm) of a point 80 mm from the centre under any frame's motion (a QC number)."""
    corners = np.array([[s * 80.0, t * 80.0, u * 80.0, 1.0] for s in (-1, 1) for t in (-1, 1) for u in (-1, 1)])
    return round(max(float(np.linalg.norm((corners @ (m - np.eye(4)).T)[:, :3], axis=1).max()) for m in motions), 3)


def _provenance(scan: RawScan, resolution: int, timings: dict[str, float], record: dict) -> dict:
    from tausynth import __version__
    from tausynth.prepare.convert import dcm2niix_version
    from tausynth.prepare.register import library_versions
    from tausynth.prepare.template import template_images

    versions = {"tausynth": __version__, **library_versions(), "dcm2niix": dcm2niix_version(),
                "nibabel": nib.__version__, "numpy": np.__version__}
    return {
        "subject_id": scan.subject_id, "session": scan.session, "resolution_mm": resolution,
        "key": scan_key(scan, resolution),
        "inputs": {"t1": str(scan.t1), "pet": str(scan.pet)},
        "registration_library": "SimpleITK",
        "registration_choice": "chosen over ANTsPy by benchmarks/prepare_registration.py (time and accuracy on a "
                               "1 mm raw-like subject, 2 cores); antspyx 0.6.3 also requires numpy<2.4, scipy<1.16",
        "versions": versions, "template": template_images().version, "step_seconds": timings, **record,
    }


def prepare_scan(scan: RawScan, out: PathLike, resolution: int = 2) -> SubjectResult:
    """Prepare one scan into ``out/<stem>/`` (or skip it when already done); never raises for a failed step.

    Returns
    -------
    SubjectResult
        ``prepared``, ``skipped`` (finished earlier) or ``failed`` (with the one-line message; the
        traceback is in ``out/logs/<stem>.log``).
    """
    out = Path(out)
    folder = out / scan.stem
    if is_finished(scan, out, resolution):
        return SubjectResult(scan, "skipped", folder)
    timings: dict[str, float] = {}
    work = out / ".work" / scan.stem
    try:
        result = _register_and_measure(scan, work, resolution, timings)
        with _step("write", timings):
            (folder / _PROVENANCE).unlink(missing_ok=True)  # the scan is unfinished until it is rewritten
            for column, array in result["arrays"].items():
                dtype = {"labels": np.int16, "mask": np.uint8, "refmask": np.uint8}.get(column, np.float32)
                save_nifti(folder / OUTPUT_FILES[column], array, result["affine"], dtype=dtype)
            prov = _provenance(scan, resolution, timings, result["record"])
            atomic_write_text(folder / _PROVENANCE, json.dumps(prov, indent=2))
    except StepFailed as exc:
        log = "".join(traceback.format_exception(exc.__cause__ or exc))
        atomic_write_text(out / "logs" / f"{scan.stem}.log", log)
        return SubjectResult(scan, "failed", folder, str(exc), exc.step)
    finally:
        _remove_tree(work)
    return SubjectResult(scan, "prepared", folder)


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
    with contextlib.suppress(OSError):
        path.parent.rmdir()  # OUT/.work, once no scan is using it


def _run_one(scan: RawScan, out: str, resolution: int, threads: int) -> SubjectResult:
    """A worker's task: limit the registration library's threads, then prepare one scan."""
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    return prepare_scan(scan, out, resolution)


def _map(scans: list[RawScan], out: Path, resolution: int, jobs: int) -> Iterator[SubjectResult]:
    threads = max(usable_cores() // jobs, 1)
    if jobs == 1 or len(scans) < 2:
        yield from (_run_one(s, str(out), resolution, threads) for s in scans)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from tausynth.prepare.template import template_images

    template_images()  # build (and cache on disk) the atlas once, before the workers read it
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_run_one, s, str(out), resolution, threads) for s in scans]
        yield from (f.result() for f in as_completed(futures))


def _manifest(results: list[SubjectResult], out: Path) -> pd.DataFrame:
    rows = []
    for r in results:
        if r.status != "failed":
            rows.append({**r.scan.identity, **{c: f"{r.scan.stem}/{f}" for c, f in OUTPUT_FILES.items()}})
    frame = pd.DataFrame(rows)
    ordered = [c for c in COLUMNS if c in frame.columns] + [c for c in frame.columns if c not in COLUMNS]
    return frame[ordered]


def prepare(raw: PathLike, out: PathLike, resolution: int = 2, jobs: int = 1,
            progress: bool = True) -> list[SubjectResult]:
    """Prepare every scan of ``RAW.csv`` and write ``out/manifest.csv`` naming those that succeeded.

    Parameters
    ----------
    raw : str or os.PathLike
        The raw table (see :mod:`tausynth.prepare.raw`).
    out : str or os.PathLike
        Output folder; scans finished by an earlier run are skipped.
    resolution : {2, 4}, default=2
        Voxel size (mm) of the prepared images.
    jobs : int, default=1
        Scans prepared at a time (processes); the CPU cores are shared between them.
    progress : bool, default=True
        Show a progress bar.

    Returns
    -------
    list of SubjectResult
        In the order of ``RAW.csv``.
    """
    # A text bar: tqdm.auto warns in kernels without ipywidgets, even when the bar is disabled.
    from tqdm import tqdm

    if resolution not in RESOLUTIONS:
        raise TausynthError(f"resolution: {resolution!r} is not one of {', '.join(map(str, RESOLUTIONS))} (mm)")
    if jobs < 1:
        raise TausynthError(f"jobs must be at least 1, got {jobs}")
    missing = [m for m in ("SimpleITK", "dcm2niix") if importlib.util.find_spec(m) is None]
    if missing:
        raise TausynthError(f"prepare needs {', '.join(missing)}; install them with: pip install 'tausynth[prepare]'")
    scans = read_raw(raw)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    done: dict[str, SubjectResult] = {}
    with tqdm(total=len(scans), desc="prepare", unit="scan", disable=not progress) as bar:
        for result in _map(scans, out, resolution, jobs):
            done[result.scan.stem] = result
            bar.set_postfix_str(f"{result.scan.label} {result.status}")
            bar.update()
    results = [done[s.stem] for s in scans]
    manifest = _manifest(results, out)
    if len(manifest):
        atomic_write_text(out / "manifest.csv", manifest.to_csv(index=False))
    else:
        (out / "manifest.csv").unlink(missing_ok=True)
    return results
