"""PET frames: each frame rigidly aligned to the frames' mean, then averaged (motion correction).

Frames of a 20–30 min flortaucipir acquisition (often 4–6 × 5 min) differ by head motion of a few
millimetres; averaging them unaligned blurs the image. The mean of the raw frames is the first
reference (it sits near the average head position); one pass of frame-to-mean registration by
normalized correlation (same tracer, same scanner) is enough at these motions.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np

from tausynth.prepare import register

__all__ = ["average_frames"]


def average_frames(pet: nib.Nifti1Image) -> tuple[nib.Nifti1Image, list[np.ndarray]]:
    """Motion-corrected mean of a 4D PET (a 3D PET is returned as it is).

    Returns
    -------
    mean : nibabel.Nifti1Image
        3D, on the PET's grid.
    motions : list of numpy.ndarray
        Per frame, the 4×4 RAS map from the mean's world to the frame's world (identity for 3D).
    """
    data = np.asarray(pet.dataobj, dtype=np.float32)
    if data.ndim == 3:
        return pet, [np.eye(4)]
    reference = register.to_sitk(nib.Nifti1Image(data.mean(axis=-1), pet.affine))
    aligned, motions = [], []
    for k in range(data.shape[3]):
        frame = register.to_sitk(nib.Nifti1Image(data[..., k], pet.affine))
        fit = register.rigid(reference, frame, metric="correlation", levels_mm=(6.0, 3.0), sampling=0.05, seed=k)
        aligned.append(register.resample(frame, reference, fit.transform))
        motions.append(register.transform_to_ras(fit.transform))
    mean = np.mean([np.asarray(register.from_sitk(a).dataobj) for a in aligned], axis=0)
    return nib.Nifti1Image(mean.astype(np.float32), register.from_sitk(aligned[0]).affine), motions
