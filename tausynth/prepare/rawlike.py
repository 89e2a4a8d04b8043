"""Raw-like scans with known truth, made from the synthetic cohort: what ``tausynth prepare`` is tested on.

A phantom subject (:func:`tausynth.data.synthetic.simulate_subject`, 2 mm MNI-like grid) is turned
into what a scanner archive holds:

* a **T1** at ``t1_voxel_mm`` (1 mm by default) with extra-cerebral tissue (a CSF rim, a dark skull
  and a bright scalp built from the distance to the brain, since nilearn's ICBM152 template is
  skull-stripped), a smooth bias field and Rician noise, stored **LPS** (voxel axes flipped), in
  arbitrary scanner units;
* a **PET** on its own anisotropic grid and field of view, displaced in world space by a known
  rigid motion, as ``n_frames`` noisy frames in Bq/mL with small inter-frame motion (a 4D NIfTI);
* optionally the T1 as an MR **DICOM series**, and the PET as a dynamic PET DICOM series (one file
  per slice and frame, each with its own rescale slope), written with pydicom.

The truth is what the phantom knows: the PET's world displacement, the brain mask and the
meta-temporal SUVR in the phantom's own labels and reference region. World coordinates are shared:
the T1 keeps the phantom's world space, so the truth needs no registration to be compared.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from tausynth.data import atlas, synthetic
from tausynth.data.regions import region_mean
from tausynth.io import PathLike, atomic_write_text, save_nifti

__all__ = ["RawTruth", "rigid_matrix", "score_prepared", "write_dicom_series", "write_rawlike_subject"]

#: Centre of rotation of the simulated head motion (MNI mm, about the middle of the brain).
MOTION_CENTRE = (0.0, -18.0, 10.0)
#: PET activity (Bq/mL) of SUVR 1.
_ACTIVITY_PER_SUVR = 4000.0


@dataclass(frozen=True)
class RawTruth:
    """What the phantom knows about one raw-like subject.

    Attributes
    ----------
    motion : numpy.ndarray of shape (4, 4)
        Rigid map from T1 world (mm) to PET world: the PET shows the head moved by this.
    frame_motions : list of numpy.ndarray
        Each frame's own map from T1 world to that frame's world.
    mask_affine : numpy.ndarray
        Affine of the phantom's grid.
    metatemporal_suvr : float
        Meta-temporal mean of the phantom PET over the phantom's labels, divided by its mean in the
        phantom's reference region.
    """

    motion: np.ndarray
    frame_motions: list[np.ndarray]
    mask_affine: np.ndarray
    metatemporal_suvr: float

    def to_json(self) -> str:
        """The truth as JSON (matrices as nested lists)."""
        return json.dumps({"motion": self.motion.tolist(), "frame_motions": [m.tolist() for m in self.frame_motions],
                           "mask_affine": self.mask_affine.tolist(), "metatemporal_suvr": self.metatemporal_suvr},
                          indent=2)


def rigid_matrix(rotation_deg: tuple[float, float, float], translation_mm: tuple[float, float, float],
                 centre: tuple[float, float, float] = MOTION_CENTRE) -> np.ndarray:
    """4×4 rigid matrix: rotations about x, y then z (degrees) around ``centre``, then a translation.

    Examples
    --------
    >>> m = rigid_matrix((0, 0, 90), (1, 0, 0), centre=(0, 0, 0))
    >>> np.round(m @ [1, 0, 0, 1], 6).tolist()
    [1.0, 1.0, 0.0, 1.0]
    """
    ax, ay, az = (math.radians(a) for a in rotation_deg)
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    r = rz @ ry @ rx
    c = np.asarray(centre, dtype=float)
    m = np.eye(4)
    m[:3, :3] = r
    m[:3, 3] = c - r @ c + np.asarray(translation_mm, dtype=float)
    return m


def _sample(volume: np.ndarray, src_affine: np.ndarray, shape: tuple[int, ...], affine: np.ndarray,
            world_to_src: np.ndarray | None = None, order: int = 1) -> np.ndarray:
    """``volume`` (on ``src_affine``) sampled on the grid (``shape``, ``affine``), through an optional world map."""
    m = np.linalg.inv(src_affine) @ (np.eye(4) if world_to_src is None else world_to_src) @ affine
    return ndimage.affine_transform(volume, m[:3, :3], m[:3, 3], output_shape=shape, order=order,
                                    mode="constant", cval=0.0).astype(np.float32)


def _grid(lo: tuple[float, ...], hi: tuple[float, ...], voxel: tuple[float, ...]) -> tuple[tuple[int, ...], np.ndarray]:
    shape = tuple(int(round((h - lo_) / v)) for lo_, h, v in zip(lo, hi, voxel, strict=True))
    affine = np.diag([*voxel, 1.0])
    affine[:3, 3] = lo
    return shape, affine


def _head_t1(img: synthetic.SubjectImages, voxel_mm: float, rng: np.random.Generator) -> nib.Nifti1Image:
    """The phantom T1 on a 1 mm-like head grid with CSF rim, skull and scalp, bias and noise, stored LPS."""
    shape, affine = _grid((-96.0, -132.0, -84.0), (96.0, 98.0, 104.0), (voxel_mm,) * 3)
    brain = _sample(img.t1, img.affine, shape, affine)
    inside = _sample(img.mask.astype(np.float32), img.affine, shape, affine) >= 0.5
    dist = ndimage.distance_transform_edt(~inside, sampling=voxel_mm)
    # Tissue outside the brain, by distance (mm): CSF rim, compact bone, fatty scalp, then air.
    shell = np.select([dist <= 0, dist <= 3, dist <= 8, dist <= 14], [0.0, 0.25, 0.06, 0.9], 0.0)
    t1 = brain + ndimage.gaussian_filter(shell.astype(np.float32), 0.8 / voxel_mm)
    zz = np.linspace(-1, 1, shape[2])[None, None, :]
    xx = np.linspace(-1, 1, shape[0])[:, None, None]
    t1 = t1 * np.exp(0.15 * zz - 0.1 * xx * xx)  # a smooth receive-coil bias N4 has to remove
    noise = rng.normal(0.0, 0.02, size=(2, *shape)).astype(np.float32)
    t1 = np.sqrt((t1 + noise[0]) ** 2 + noise[1] ** 2) * 800.0
    ras = nib.Nifti1Image(t1.astype(np.float32), affine)
    lps = nib.orientations.ornt_transform(nib.io_orientation(affine), nib.orientations.axcodes2ornt("LPS"))
    return ras.as_reoriented(lps)


def _pet_frames(img: synthetic.SubjectImages, motion: np.ndarray, frame_motions: list[np.ndarray],
                rng: np.random.Generator) -> nib.Nifti1Image:
    """4D PET in Bq/mL on its own grid: frame k shows the phantom moved by ``frame_motions[k]``."""
    shape, affine = _grid((-100.0, -125.0, -86.0), (105.0, 95.0, 100.0), (2.5, 2.5, 3.0))
    frames = []
    for m in frame_motions:
        suvr = _sample(img.pet, img.affine, shape, affine, world_to_src=np.linalg.inv(m))
        activity = suvr * _ACTIVITY_PER_SUVR
        sd = 0.04 * np.sqrt(np.maximum(activity, 0.0) * _ACTIVITY_PER_SUVR)  # count-like noise, 5-min frames
        frames.append(activity + ndimage.gaussian_filter(rng.normal(0.0, 1.0, shape), 0.8) * 2.0 * sd)
    return nib.Nifti1Image(np.stack(frames, axis=-1).astype(np.float32), affine)


def _truth_suvr(img: synthetic.SubjectImages) -> float:
    reference = float(img.pet[img.refmask > 0].mean(dtype=np.float64))
    return region_mean(img.pet, img.labels, atlas.roi_sets()["metatemporal"], name="metatemporal") / reference


def write_rawlike_subject(
    out: PathLike, params: object, index: int, seed: int = 0, *,
    rotation_deg: tuple[float, float, float] = (4.0, -3.0, 6.0),
    translation_mm: tuple[float, float, float] = (7.0, -5.0, 10.0),
    n_frames: int = 4, frame_jitter: float = 1.0, t1_voxel_mm: float = 1.0, dicom: bool = False,
    pet_dicom: bool = False,
) -> tuple[dict[str, str], RawTruth]:
    """Write one raw-like subject and its truth under ``out``.

    The scans are ``t1.nii.gz`` (or ``t1_dicom/``) and ``pet.nii.gz`` (or ``pet_dicom/``); the truth
    is ``truth.json`` and the phantom's brain mask, labels and reference region
    (``truth_mask.nii.gz``, ``truth_labels.nii.gz``, ``truth_refmask.nii.gz``, on the phantom's grid).

    Parameters
    ----------
    out : str or os.PathLike
        Subject folder (created).
    params : SubjectParams, mapping or pandas.Series
        The phantom subject (a row of :func:`tausynth.data.synthetic.sample_cohort`).
    index, seed : int
        The phantom's index and cohort seed.
    rotation_deg, translation_mm : tuple of float
        The PET's known rigid displacement (about :data:`MOTION_CENTRE`).
    n_frames : int, default=4
        PET frames; frame ``k`` adds a random motion of up to ``frame_jitter`` degrees and mm.
    t1_voxel_mm : float, default=1.0
        Voxel size of the T1 (1 mm as scanners deliver it; 2 mm keeps quick tests quick).
    dicom : bool, default=False
        Write the T1 as a DICOM series (``t1_dicom/``) instead of NIfTI.
    pet_dicom : bool, default=False
        Write the PET frames as a dynamic PET DICOM series (``pet_dicom/``) instead of a 4D NIfTI.

    Returns
    -------
    paths : dict
        ``{"t1": ..., "pet": ...}``, the files or folder written.
    truth : RawTruth
    """
    out = Path(out)
    rng = np.random.default_rng(seed * 7919 + index)
    img = synthetic.simulate_subject(params, index, seed, resolution=2)[2]
    motion = rigid_matrix(rotation_deg, translation_mm)
    jitter = [rigid_matrix(tuple(rng.uniform(-frame_jitter, frame_jitter, 3)), tuple(rng.uniform(-frame_jitter, frame_jitter, 3)))
              for _ in range(n_frames)]
    frame_motions = [j @ motion for j in jitter]
    t1 = _head_t1(img, t1_voxel_mm, rng)
    paths = {"pet": str(out / "pet.nii.gz")}
    if dicom:
        paths["t1"] = str(write_dicom_series(out / "t1_dicom", t1, patient=str(getattr(params, "subject_id", index))))
    else:
        paths["t1"] = str(save_nifti(out / "t1.nii.gz", np.asarray(t1.dataobj), t1.affine))
    pet = _pet_frames(img, motion, frame_motions, rng)
    if pet_dicom:
        paths["pet"] = str(write_dicom_series(out / "pet_dicom", pet, patient=str(getattr(params, "subject_id", index))))
    else:
        save_nifti(out / "pet.nii.gz", np.asarray(pet.dataobj), pet.affine)
    truth = RawTruth(motion, frame_motions, img.affine, _truth_suvr(img))
    atomic_write_text(out / "truth.json", truth.to_json())
    save_nifti(out / "truth_mask.nii.gz", img.mask, img.affine, dtype=np.uint8)
    save_nifti(out / "truth_labels.nii.gz", img.labels, img.affine, dtype=np.int16)
    save_nifti(out / "truth_refmask.nii.gz", img.refmask, img.affine, dtype=np.uint8)
    return paths, truth


def _dicom_slice(folder: Path, modality: str, uids: dict[str, str], number: int) -> object:
    """An empty DICOM file of the series (its header, no pixels yet)."""
    import pydicom.uid as u
    from pydicom.dataset import FileDataset, FileMetaDataset

    meta = FileMetaDataset()
    storage = u.MRImageStorage if modality == "MR" else u.PositronEmissionTomographyImageStorage
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = storage, u.generate_uid()
    meta.TransferSyntaxUID = u.ExplicitVRLittleEndian
    ds = FileDataset(str(folder / f"im{number:05d}.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = uids["study"], uids["series"]
    ds.FrameOfReferenceUID, ds.InstanceNumber, ds.SeriesNumber = uids["frame_of_reference"], number, 1
    ds.Modality, ds.PatientID, ds.PatientName = modality, uids["patient"], uids["patient"]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    return ds


def _pet_timing(ds: object, frame: int, n_frames: int, n_slices: int, slice_index: int) -> None:
    """Dynamic-PET tags: ``dcm2niix`` stacks the frames by them (5-minute frames from 80 min p.i.)."""
    start_s = 80 * 60 + frame * 300
    ds.SeriesType, ds.Units, ds.DecayCorrection = ["DYNAMIC", "IMAGE"], "BQML", "START"
    ds.NumberOfSlices, ds.NumberOfTimeSlices = n_slices, n_frames
    ds.ImageIndex = frame * n_slices + slice_index + 1
    ds.ActualFrameDuration, ds.FrameReferenceTime = 300_000, 1000.0 * (start_s + 150)
    ds.AcquisitionTime = f"{10 + start_s // 3600:02d}{start_s // 60 % 60:02d}{start_s % 60:02d}.000000"
    ds.SeriesTime, ds.AcquisitionDate, ds.SeriesDate = "102000.000000", "20260101", "20260101"


def write_dicom_series(folder: PathLike, img: nib.Nifti1Image, patient: str = "anon") -> Path:
    """Write an image as a DICOM series with pydicom: a 3D T1 as MR, 4D frames as dynamic PET.

    One int16 file per axial slice (and frame), each with its own rescale slope, as PET scanners
    write them. DICOM's patient coordinates are LPS: the NIfTI (RAS) world's x and y change sign,
    and each slice's position is the world position of its first voxel.
    """
    import pydicom
    from pydicom.uid import generate_uid

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data = np.asarray(img.dataobj, dtype=np.float32)
    frames = data[..., None] if data.ndim == 3 else data
    modality = "MR" if data.ndim == 3 else "PT"
    a = np.diag([-1.0, -1.0, 1.0, 1.0]) @ img.affine  # voxel -> LPS
    spacing = np.sqrt((a[:3, :3] ** 2).sum(axis=0))
    rows, cols = a[:3, 1] / spacing[1], a[:3, 0] / spacing[0]
    uids = {"study": generate_uid(), "series": generate_uid(), "frame_of_reference": generate_uid(),
            "patient": patient}
    n_slices, n_frames = frames.shape[2], frames.shape[3]
    for t in range(n_frames):
        for k in range(n_slices):
            ds = _dicom_slice(folder, modality, uids, t * n_slices + k + 1)
            ds.Manufacturer = "SIEMENS"
            ds.SeriesDescription = "T1w MPRAGE (raw-like)" if modality == "MR" else "AV1451 4x5min (raw-like)"
            if modality == "PT":
                _pet_timing(ds, t, n_frames, n_slices, k)
            ds.ImageOrientationPatient = [*(float(v) for v in cols), *(float(v) for v in rows)]
            ds.ImagePositionPatient = [float(v) for v in (a @ [0, 0, k, 1])[:3]]
            ds.PixelSpacing = [float(spacing[1]), float(spacing[0])]
            ds.SliceThickness = ds.SpacingBetweenSlices = float(spacing[2])
            ds.Rows, ds.Columns = data.shape[1], data.shape[0]
            plane = frames[:, :, k, t]
            slope = max(float(np.abs(plane).max()), 1.0) / 30000.0
            ds.RescaleSlope, ds.RescaleIntercept = slope, 0.0
            ds.PixelData = np.round(plane.T / slope).astype(np.int16).tobytes()  # rows = second voxel axis
            pydicom.dcmwrite(ds.filename, ds, enforce_file_format=True)
    return folder


def score_prepared(prepared: PathLike, raw: PathLike) -> dict[str, float]:
    """How far a prepared scan (``prepared``, a folder of ``tausynth prepare``'s output) is from the truth in ``raw``.

    Returns
    -------
    dict
        - ``registration_error_mm``: mean distance, over the phantom's brain voxels, between the
          recovered and the known T1 -> PET world maps;
        - ``mask_dice``: Dice of the prepared brain mask with the phantom's, on the prepared grid
          (through the recorded grid -> T1 map);
        - ``metatemporal_suvr``, ``true_metatemporal_suvr``, ``metatemporal_error_pct``: the
          prepared meta-temporal SUVR (prepared labels and reference region), the phantom's, and
          the relative error (%);
        - ``phantom_regions_suvr``, ``phantom_regions_error_pct``: the same with the phantom's own
          labels and reference region carried onto the prepared grid. This leaves out the warped
          atlas and keeps the registration, the frame averaging and the resampling of the PET.
    """
    prepared, raw = Path(prepared), Path(raw)
    truth = json.loads((raw / "truth.json").read_text(encoding="utf-8"))
    prov = json.loads((prepared / "provenance.json").read_text(encoding="utf-8"))
    truth_mask = nib.load(raw / "truth_mask.nii.gz")
    ijk = np.argwhere(np.asarray(truth_mask.dataobj) > 0)
    points = (truth_mask.affine @ np.c_[ijk, np.ones(len(ijk))].T).T
    moved = points @ (np.asarray(prov["pet_to_t1_ras"]) - np.asarray(truth["motion"])).T
    mask = nib.load(prepared / "mask.nii.gz")
    phantom = _sample(np.asarray(truth_mask.dataobj, dtype=np.float32), truth_mask.affine, mask.shape,
                      mask.affine, world_to_src=np.asarray(prov["grid_to_t1_ras"]), order=0) > 0.5
    ours = np.asarray(mask.dataobj) > 0
    pet = np.asarray(nib.load(prepared / "pet.nii.gz").dataobj, dtype=np.float32)
    labels = np.asarray(nib.load(prepared / "labels.nii.gz").dataobj)
    meta = atlas.roi_sets()["metatemporal"]
    suvr = region_mean(pet, labels, meta, name="metatemporal")
    on_grid = {name: _sample(np.asarray(nib.load(raw / f"truth_{name}.nii.gz").dataobj, dtype=np.float32),
                             truth_mask.affine, mask.shape, mask.affine,
                             world_to_src=np.asarray(prov["grid_to_t1_ras"]), order=0)
               for name in ("labels", "refmask")}
    phantom_regions = (region_mean(pet, np.rint(on_grid["labels"]).astype(int), meta, name="metatemporal")
                       / float(pet[on_grid["refmask"] > 0.5].mean(dtype=np.float64)))
    return {
        "registration_error_mm": float(np.linalg.norm(moved[:, :3], axis=1).mean()),
        "mask_dice": float(2 * (ours & phantom).sum() / (ours.sum() + phantom.sum())),
        "metatemporal_suvr": suvr,
        "true_metatemporal_suvr": float(truth["metatemporal_suvr"]),
        "metatemporal_error_pct": 100.0 * abs(suvr / truth["metatemporal_suvr"] - 1.0),
        "phantom_regions_suvr": phantom_regions,
        "phantom_regions_error_pct": 100.0 * abs(phantom_regions / truth["metatemporal_suvr"] - 1.0),
    }
