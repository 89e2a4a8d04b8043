"""Registration, bias correction and resampling with SimpleITK: the only module that calls it.

SimpleITK was chosen over ANTsPy by measurement (``benchmarks/prepare_registration.py``, whose
docstring holds the numbers): on a 1 mm raw-like T1 and 2 cores, rigid PET→T1 accuracy was alike
(0.98 vs 0.89 mm) and every step took about a tenth of the time (N4 11 s vs 85 s, template 14 s vs
178 s, rigid 2 s vs 58 s); and ``antspyx`` 0.6.3 requires ``numpy<2.4`` and ``scipy<1.16``, which the
pinned set cannot satisfy. Each prepared scan's ``provenance.json`` records the library and versions.

Images cross the boundary as nibabel images (RAS world, what the rest of the package uses) and
become SimpleITK images here, whose physical space is LPS: x and y change sign. Transforms are kept
as SimpleITK transforms mapping *fixed* (T1) physical points to *moving* physical points, which is
how ITK resamples; :func:`transform_to_ras` gives the 4×4 RAS matrix of a rigid or affine one.
"""

from __future__ import annotations

from dataclasses import dataclass

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from tausynth.vocabulary import check_choice

__all__ = [
    "INTERPOLATIONS",
    "METRICS",
    "Registration",
    "affine_then_bspline",
    "compose",
    "from_sitk",
    "library_versions",
    "n4_bias_correct",
    "ras_to_transform",
    "resample",
    "rigid",
    "to_sitk",
    "transform_to_ras",
]

_LPS = np.diag([-1.0, -1.0, 1.0])
#: ``metric``: Mattes mutual information (T1 and PET) or normalized correlation (PET frames).
METRICS: tuple[str, ...] = ("mattes", "correlation")
#: ``interpolation``: linear for intensities, nearest neighbour for masks and labels.
INTERPOLATIONS: tuple[str, ...] = ("linear", "nearest")


@dataclass(frozen=True)
class Registration:
    """A transform (fixed physical point -> moving physical point) and the final value of its cost.

    ``linear`` is the affine stage of a deformable registration (``None`` otherwise).
    """

    transform: sitk.Transform
    cost: float
    metric: str
    linear: sitk.Transform | None = None


def library_versions() -> dict[str, str]:
    """Versions of the registration library (recorded in each subject's provenance)."""
    return {"SimpleITK": sitk.Version.VersionString(), "ITK": sitk.Version.ITKVersionString()}


def to_sitk(img: nib.Nifti1Image) -> sitk.Image:
    """A 3D nibabel image as a float32 SimpleITK image in the same world (RAS -> LPS physical space)."""
    data = np.asarray(img.dataobj, dtype=np.float32)
    out = sitk.GetImageFromArray(np.ascontiguousarray(data.transpose(2, 1, 0)))
    affine = np.asarray(img.affine, dtype=np.float64)
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    out.SetSpacing(spacing.tolist())
    out.SetOrigin((_LPS @ affine[:3, 3]).tolist())
    out.SetDirection((_LPS @ affine[:3, :3] / spacing).flatten().tolist())
    return out


def from_sitk(image: sitk.Image, dtype: type = np.float32) -> nib.Nifti1Image:
    """A SimpleITK image as a nibabel image (LPS physical space -> RAS world)."""
    data = sitk.GetArrayFromImage(image).transpose(2, 1, 0).astype(dtype)
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    affine = np.eye(4)
    affine[:3, :3] = _LPS @ direction * np.asarray(image.GetSpacing())
    affine[:3, 3] = _LPS @ np.asarray(image.GetOrigin())
    return nib.Nifti1Image(data, affine)


def transform_to_ras(transform: sitk.Transform) -> np.ndarray:
    """The 4×4 RAS-world matrix of a linear SimpleITK transform (fixed world -> moving world)."""
    composite = sitk.CompositeTransform(transform)
    # Probe the transform at four points: exact for any affine map, whatever its class.
    probes = np.array([[0.0, 0, 0], [100.0, 0, 0], [0, 100.0, 0], [0, 0, 100.0]])
    mapped = np.array([composite.TransformPoint(p.tolist()) for p in probes])
    lin = (mapped[1:] - mapped[0]).T / 100.0
    m_lps = np.eye(4)
    m_lps[:3, :3], m_lps[:3, 3] = lin, mapped[0]
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    return flip @ m_lps @ flip


def _pyramid(reg: sitk.ImageRegistrationMethod, fixed: sitk.Image, levels_mm: tuple[float, ...]) -> None:
    """Multi-resolution levels given in mm, so that a 1 mm and a 2 mm T1 are registered alike."""
    voxel = min(fixed.GetSpacing())
    reg.SetShrinkFactorsPerLevel([max(int(round(level / voxel)), 1) for level in levels_mm])
    reg.SetSmoothingSigmasPerLevel([level / 2.0 for level in levels_mm])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()


def ras_to_transform(matrix: np.ndarray) -> sitk.AffineTransform:
    """The SimpleITK transform of a 4×4 RAS-world matrix (the inverse of :func:`transform_to_ras` for linear maps)."""
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    lps = flip @ np.asarray(matrix, dtype=float) @ flip
    out = sitk.AffineTransform(3)
    out.SetMatrix(lps[:3, :3].flatten().tolist())
    out.SetTranslation(lps[:3, 3].tolist())
    return out


def compose(*transforms: sitk.Transform) -> sitk.CompositeTransform:
    """``compose(a, b)`` maps a point through ``b`` first, then ``a`` (as functions compose)."""
    return sitk.CompositeTransform(list(transforms))


def _sampling_seed(seed: int) -> int:
    """The seed SimpleITK is given: its seed 0 means "the wall clock", which would make every run differ."""
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return seed + 1


def _method(metric: str, fixed: sitk.Image, levels_mm: tuple[float, ...], sampling: float,
            iterations: int, fixed_mask: sitk.Image | None, seed: int) -> sitk.ImageRegistrationMethod:
    reg = sitk.ImageRegistrationMethod()
    if check_choice("metric", metric, METRICS) == "mattes":
        reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    else:
        reg.SetMetricAsCorrelation()
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(sampling, _sampling_seed(seed))
    if fixed_mask is not None:
        reg.SetMetricFixedMask(fixed_mask)
    reg.SetInterpolator(sitk.sitkLinear)
    _pyramid(reg, fixed, levels_mm)
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=1.0, minStep=1e-4, numberOfIterations=iterations,
                                                 relaxationFactor=0.6, gradientMagnitudeTolerance=1e-6)
    reg.SetOptimizerScalesFromPhysicalShift()
    return reg


def rigid(fixed: sitk.Image, moving: sitk.Image, *, metric: str = "mattes", fixed_mask: sitk.Image | None = None,
          initial: sitk.Euler3DTransform | None = None, levels_mm: tuple[float, ...] = (4.0, 2.0), sampling: float = 0.2, iterations: int = 200,
          seed: int = 0) -> Registration:
    """Rigid (6 degrees of freedom) registration of ``moving`` to ``fixed``.

    Parameters
    ----------
    fixed, moving : SimpleITK.Image
    metric : {"mattes", "correlation"}, default="mattes"
        Mattes mutual information (different modalities) or normalized correlation (PET frames).
    fixed_mask : SimpleITK.Image, optional
        Only fixed voxels inside it drive the cost (the brain, not the scalp).
    initial : SimpleITK.Euler3DTransform, optional
        Starting transform; default: the images' centres of mass aligned.
    levels_mm : tuple of float, default=(4.0, 2.0)
        Multi-resolution pyramid: the voxel size (mm) of each level, smoothed by half of it.
    sampling : float, default=0.2
        Fraction of fixed voxels sampled at random (with ``seed``: the result is reproducible).
    """
    if initial is None:
        initial = sitk.CenteredTransformInitializer(fixed, moving, sitk.Euler3DTransform(),
                                                    sitk.CenteredTransformInitializerFilter.MOMENTS)
    reg = _method(metric, fixed, levels_mm, sampling, iterations, fixed_mask, seed)
    start = sitk.Euler3DTransform(initial)  # a copy: the caller's transform is left as it was
    reg.SetInitialTransform(start, inPlace=True)
    reg.Execute(fixed, moving)
    return Registration(start, float(reg.GetMetricValue()), metric)


def _brain_mask_of(fixed: sitk.Image, moving_mask: sitk.Image, transform: sitk.Transform, dilate_mm: float) -> sitk.Image:
    """The template brain mask on the fixed grid, dilated: where the cost is measured (no scalp)."""
    radius = [max(int(round(dilate_mm / s)), 1) for s in fixed.GetSpacing()]
    return sitk.BinaryDilate(resample(moving_mask, fixed, transform, "nearest") > 0.5, radius)


def affine_then_bspline(fixed: sitk.Image, moving: sitk.Image, moving_mask: sitk.Image, *,
                        mesh_mm: float = 40.0, iterations: int = 20, seed: int = 0) -> Registration:
    """Affine, then B-spline (deformable) registration by mutual information: the template onto a T1.

    The template is skull-stripped and the T1 is not, so the cost is measured only inside the
    template's brain mask carried onto the T1 (dilated): first as placed by aligning the centres of
    mass and principal axes (moments), then as placed by the affine. Without that mask the bright
    scalp pulls the affine outwards (brain-mask Dice 0.78 instead of 0.98 on the raw-like subject).
    The deformable stage is a cubic B-spline with control points ``mesh_mm`` apart, fitted on a
    4 mm then 2 mm pyramid. Returns the composite transform (affine, then B-spline).
    """
    init = sitk.CenteredTransformInitializer(fixed, moving, sitk.AffineTransform(3),
                                             sitk.CenteredTransformInitializerFilter.MOMENTS)
    affine = sitk.AffineTransform(init)
    reg = _method("mattes", fixed, (4.0, 2.0), 0.2, 200, _brain_mask_of(fixed, moving_mask, init, 8.0), seed)
    reg.SetInitialTransform(affine, inPlace=True)
    reg.Execute(fixed, moving)
    size = np.asarray(fixed.GetSize()) * np.asarray(fixed.GetSpacing())
    bspline = sitk.BSplineTransformInitializer(fixed, [max(int(round(s / mesh_mm)), 1) for s in size], order=3)
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(0.05, _sampling_seed(seed))
    reg.SetMetricFixedMask(_brain_mask_of(fixed, moving_mask, affine, 4.0))
    reg.SetInterpolator(sitk.sitkLinear)
    _pyramid(reg, fixed, (4.0, 2.0))
    reg.SetOptimizerAsLBFGSB(gradientConvergenceTolerance=1e-5, numberOfIterations=iterations,
                             maximumNumberOfCorrections=5)
    reg.SetMovingInitialTransform(affine)
    reg.SetInitialTransform(bspline, inPlace=True)
    reg.Execute(fixed, moving)
    return Registration(sitk.CompositeTransform([affine, bspline]), float(reg.GetMetricValue()), "mattes", affine)


def n4_bias_correct(image: sitk.Image, mask: sitk.Image | None = None, fit_mm: float = 4.0,
                    iterations: tuple[int, ...] = (50, 50, 30)) -> sitk.Image:
    """N4 bias-field correction, fitted on ``fit_mm`` voxels and applied at full resolution (the field is smooth).

    Without a ``mask`` the head is found by Otsu's threshold (air is dark on a T1).
    """
    image = sitk.Cast(image, sitk.sitkFloat32)
    if mask is None:
        mask = sitk.OtsuThreshold(image, 0, 1, 200)
    shrink = [max(int(round(fit_mm / s)), 1) for s in image.GetSpacing()]
    small = sitk.Shrink(image, shrink)
    small_mask = sitk.Shrink(mask, shrink)
    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    n4.SetMaximumNumberOfIterations(list(iterations))
    n4.Execute(small, small_mask)
    log_field = n4.GetLogBiasFieldAsImage(image)
    return sitk.Cast(image / sitk.Exp(sitk.Cast(log_field, sitk.sitkFloat32)), sitk.sitkFloat32)


def resample(moving: sitk.Image, reference: sitk.Image, transform: sitk.Transform | None = None,
             interpolation: str = "linear") -> sitk.Image:
    """``moving`` on ``reference``'s grid through ``transform`` (reference point -> moving point); 0 outside.

    ``interpolation`` is ``"linear"`` for intensities and ``"nearest"`` for labels.
    """
    check_choice("interpolation", interpolation, INTERPOLATIONS)
    interp = {"linear": sitk.sitkLinear, "nearest": sitk.sitkNearestNeighbor}[interpolation]
    transform = transform if transform is not None else sitk.Transform(3, sitk.sitkIdentity)
    return sitk.Resample(moving, reference, transform, interp, 0.0, moving.GetPixelID())
