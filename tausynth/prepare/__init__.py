"""From raw scans to a manifest: ``tausynth prepare`` (DICOM or NIfTI, PET frames, registration, masks, labels, SUVR).

Modules, one concept each: :mod:`~tausynth.prepare.raw` (the raw table), :mod:`~tausynth.prepare.convert`
(DICOM to RAS NIfTI), :mod:`~tausynth.prepare.frames` (PET motion correction),
:mod:`~tausynth.prepare.register` (SimpleITK registration, N4, resampling),
:mod:`~tausynth.prepare.template` (ICBM152 template and its DK-compatible atlas),
:mod:`~tausynth.prepare.pipeline` (per-scan steps, resume, parallel runs, the manifest) and
:mod:`~tausynth.prepare.rawlike` (raw-like test scans with known truth). The QC report is drawn by
:mod:`tausynth.plotting.prepare`.
"""

from tausynth.prepare.pipeline import RESOLUTIONS, STEPS, SubjectResult, prepare, prepare_scan

__all__ = ["RESOLUTIONS", "STEPS", "SubjectResult", "prepare", "prepare_scan"]
