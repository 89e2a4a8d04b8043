"""The template side of ``prepare``: nilearn's offline ICBM152 T1 and brain mask, and a DK-compatible atlas on it.

Nothing is downloaded. The T1 and brain mask are the ICBM152 2009a images that nilearn ships (2 mm).
The atlas is the synthetic cohort's own label map (:func:`tausynth.data.atlas.load_template`): built
from the same ICBM152 tissue maps, in the same world space, with FreeSurfer Desikan–Killiany/aseg
label IDs, so the Braak ROIs (:func:`tausynth.data.atlas.roi_sets`) and the inferior cerebellar
grey-matter reference (:class:`tausynth.data.atlas.ReferenceRegion`, which needs the template's GM
map and MNI coordinates, hence is cut in template space) are the ones the manifest schema and the
book use. It is an ellipsoid approximation of Desikan–Killiany, not FreeSurfer's parcellation of
the subject; for real studies the labels can be replaced by a FreeSurfer run, column by column.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import nibabel as nib
import numpy as np

from tausynth.data import atlas

__all__ = ["TemplateImages", "template_images"]


@dataclass(frozen=True)
class TemplateImages:
    """Template-space images (RAS world = MNI mm).

    Attributes
    ----------
    t1 : nibabel.Nifti1Image
        ICBM152 2009a T1 (skull-stripped, 2 mm).
    mask : nibabel.Nifti1Image
        Its brain mask (0/1).
    labels : nibabel.Nifti1Image
        FreeSurfer label IDs (int16) on the atlas grid.
    refmask : nibabel.Nifti1Image
        Inferior cerebellar grey matter (0/1) on the atlas grid.
    version : str
        The atlas version (:data:`tausynth.data.atlas.TEMPLATE_VERSION`), for provenance.
    """

    t1: nib.Nifti1Image
    mask: nib.Nifti1Image
    labels: nib.Nifti1Image
    refmask: nib.Nifti1Image
    version: str


@functools.lru_cache(maxsize=1)
def template_images() -> TemplateImages:
    """Load the template images once per process (nilearn's files and the cached atlas)."""
    from nilearn import datasets

    t1 = datasets.load_mni152_template(resolution=2)
    mask = datasets.load_mni152_brain_mask(resolution=2)
    tpl = atlas.load_template()
    refmask = tpl.reference_mask().astype(np.uint8)
    return TemplateImages(
        t1=nib.Nifti1Image(np.asarray(t1.get_fdata(), dtype=np.float32), t1.affine),
        mask=nib.Nifti1Image((mask.get_fdata() > 0.5).astype(np.float32), mask.affine),
        labels=nib.Nifti1Image(np.asarray(tpl.labels, dtype=np.int16), tpl.affine),
        refmask=nib.Nifti1Image(refmask, tpl.affine),
        version=tpl.version,
    )
