"""SimpleITK or ANTsPy for ``tausynth prepare``: time and accuracy on one raw-like subject.

Measures, on a raw-like subject made from the synthetic cohort (1 mm T1 with scalp, stored LPS;
4-frame PET displaced by a known rigid motion), the two registrations that decide the choice:

* template -> T1 (affine then deformable), scored by the Dice of the warped ICBM152 brain mask with
  the phantom's brain mask;
* PET -> T1 (rigid, mutual information), scored by the mean distance inside the brain between the
  recovered and the known T1 -> PET map.

Measured on 2 shared CPU cores (SimpleITK 2.5.7, antspyx 0.6.3 with its defaults: ``SyN`` and
``Rigid``, no mask), one raw-like subject with a 1 mm T1:

=========  =======  ==================  ==========  ===========  ====================
library    N4 (s)   template→T1 (s)     mask Dice   rigid (s)    PET→T1 error (mm)
=========  =======  ==================  ==========  ===========  ====================
SimpleITK  10.6     14.1                0.986       2.3          0.98
ANTsPy     85.0     177.7               0.791       57.6         0.89
=========  =======  ==================  ==========  ===========  ====================

SimpleITK's template registration measures its cost inside the template's brain (see
:func:`tausynth.prepare.register.affine_then_bspline`); without that mask it reached Dice 0.78 too,
so ANTsPy's low Dice is the scalp, not the library. The choice rests on time (about 10× less) and on
the pins: antspyx 0.6.3 requires ``numpy<2.4`` and ``scipy<1.16``.

Run: ``nice -n 19 python benchmarks/prepare_registration.py --out /tmp/bench``. ANTsPy is not a
dependency (``pip install antspyx``); ``--libraries SimpleITK`` measures SimpleITK alone.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import nibabel as nib
import numpy as np


def _truth(folder: Path) -> tuple[np.ndarray, nib.Nifti1Image]:
    truth = json.loads((folder / "truth.json").read_text())
    return np.asarray(truth["motion"]), nib.load(folder / "truth_mask.nii.gz")


def _brain_points(mask: nib.Nifti1Image) -> np.ndarray:
    ijk = np.argwhere(np.asarray(mask.dataobj) > 0)
    return (mask.affine @ np.c_[ijk, np.ones(len(ijk))].T)[:3].T


def motion_error_mm(recovered: np.ndarray, motion: np.ndarray, mask: nib.Nifti1Image) -> float:
    """Mean distance (mm) inside the brain between two 4×4 T1-world -> PET-world maps."""
    p = np.c_[_brain_points(mask), np.ones(int(np.count_nonzero(np.asarray(mask.dataobj))))]
    return float(np.linalg.norm((p @ recovered.T - p @ motion.T)[:, :3], axis=1).mean())


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two boolean arrays."""
    return float(2 * np.logical_and(a, b).sum() / (a.sum() + b.sum()))


def _bench_sitk(folder: Path) -> dict[str, float]:
    import SimpleITK as sitk

    from tausynth.prepare import register as r
    from tausynth.prepare.template import template_images

    motion, truth_mask = _truth(folder)
    t1 = r.to_sitk(nib.as_closest_canonical(nib.load(folder / "t1.nii.gz")))
    pet4 = nib.load(folder / "pet.nii.gz")
    pet = r.to_sitk(nib.Nifti1Image(np.asarray(pet4.dataobj).mean(axis=-1), pet4.affine))
    tpl = template_images()
    t = time.perf_counter()
    t1 = r.n4_bias_correct(t1)
    out = {"n4_s": time.perf_counter() - t}
    t = time.perf_counter()
    warp = r.affine_then_bspline(t1, r.to_sitk(tpl.t1), r.to_sitk(tpl.mask))
    out["template_s"] = time.perf_counter() - t
    mask_on_truth = r.from_sitk(r.resample(r.to_sitk(tpl.mask), r.to_sitk(truth_mask), warp.transform, "nearest"))
    out["dice"] = dice(np.asarray(mask_on_truth.dataobj) > 0.5, np.asarray(truth_mask.dataobj) > 0)
    brain = r.resample(r.to_sitk(tpl.mask), t1, warp.transform, "nearest") > 0.5
    t = time.perf_counter()
    fit = r.rigid(t1 * sitk.Cast(brain, sitk.sitkFloat32), pet, fixed_mask=sitk.BinaryDilate(brain, [3] * 3))
    out["rigid_s"] = time.perf_counter() - t
    out["rigid_error_mm"] = motion_error_mm(r.transform_to_ras(fit.transform), motion, truth_mask)
    return out


def _bench_ants(folder: Path) -> dict[str, float]:
    import ants

    from tausynth.prepare.template import template_images

    motion, truth_mask = _truth(folder)
    tpl = template_images()
    scratch = folder / "ants"
    scratch.mkdir(exist_ok=True)
    for name, img in (("tpl", tpl.t1), ("mask", tpl.mask)):
        nib.save(img, scratch / f"{name}.nii.gz")
    pet4 = nib.load(folder / "pet.nii.gz")
    nib.save(nib.Nifti1Image(np.asarray(pet4.dataobj).mean(axis=-1), pet4.affine), scratch / "pet.nii.gz")
    t1 = ants.image_read(str(folder / "t1.nii.gz"))
    t = time.perf_counter()
    t1 = ants.n4_bias_field_correction(t1, shrink_factor=4)
    out = {"n4_s": time.perf_counter() - t}
    t = time.perf_counter()
    warp = ants.registration(t1, ants.image_read(str(scratch / "tpl.nii.gz")), type_of_transform="SyN")
    out["template_s"] = time.perf_counter() - t
    truth = ants.image_read(str(folder / "truth_mask.nii.gz"))
    mask = ants.apply_transforms(truth, ants.image_read(str(scratch / "mask.nii.gz")), warp["fwdtransforms"],
                                 interpolator="nearestNeighbor")
    out["dice"] = dice(mask.numpy() > 0.5, truth.numpy() > 0)
    brain = ants.apply_transforms(t1, ants.image_read(str(scratch / "mask.nii.gz")), warp["fwdtransforms"],
                                  interpolator="nearestNeighbor")
    t = time.perf_counter()
    fit = ants.registration(t1 * brain, ants.image_read(str(scratch / "pet.nii.gz")), type_of_transform="Rigid",
                            aff_metric="mattes")
    out["rigid_s"] = time.perf_counter() - t
    tx = ants.read_transform(fit["fwdtransforms"][0])
    lps = np.eye(4)
    lps[:3, :3] = np.asarray(tx.parameters[:9]).reshape(3, 3)
    centre = np.asarray(tx.fixed_parameters)
    lps[:3, 3] = np.asarray(tx.parameters[9:]) + centre - lps[:3, :3] @ centre
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    out["rigid_error_mm"] = motion_error_mm(flip @ lps @ flip, motion, truth_mask)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="scratch folder (the raw-like subject is written there)")
    parser.add_argument("--libraries", default="SimpleITK,ANTsPy", help="comma-separated (default: both)")
    args = parser.parse_args()
    from tausynth.data.synthetic import sample_cohort
    from tausynth.prepare.rawlike import write_rawlike_subject

    folder = Path(args.out) / "sub-0000"
    if not (folder / "truth.json").is_file():
        write_rawlike_subject(folder, sample_cohort(2, 0).iloc[0], 0, 0)
    results = {}
    for name in args.libraries.split(","):
        results[name] = {"SimpleITK": _bench_sitk, "ANTsPy": _bench_ants}[name](folder)
        print(name, {k: round(v, 3) for k, v in results[name].items()}, flush=True)
    (Path(args.out) / "prepare_registration.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
