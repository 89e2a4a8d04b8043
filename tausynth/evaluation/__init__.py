"""Evaluation of synthetic tau PET: voxel metrics, Braak-region agreement, staging, tables and claims.

Submodules
----------
:mod:`~tausynth.evaluation.metrics`
    SSIM (3D, MONAI), PSNR, MSE, MAE, NRMSE per subject in SUVR space inside the brain mask.
:mod:`~tausynth.evaluation.roi`
    Region sets (Braak I–VI, composites, meta-temporal, off-target) and GM-restricted,
    volume-weighted regional SUVR of real and synthetic PET.
:mod:`~tausynth.evaluation.agreement`
    Pearson r, ICC(2,1), MAE, Bland–Altman, tau-positivity Cohen's κ, overall and by diagnosis.
:mod:`~tausynth.evaluation.staging`
    Imaging-based Braak staging (late to early composites) and confusion matrices.
:mod:`~tausynth.evaluation.tables`
    Mean ± SD tables, paired Wilcoxon tests, seed spread.
:mod:`~tausynth.evaluation.claims`
    The paper's four claims and verdicts computed from metric tables.
:mod:`~tausynth.evaluation.baselines`, :mod:`~tausynth.evaluation.regional`
    Trivial baselines (mean image, linearly rescaled T1) and the regional regression that bounds
    what the T1 carries about regional tau.
:mod:`~tausynth.evaluation.tracking`
    Per run, in words: does the synthetic tau track the real tau (r, AD vs CN, staging κ)?
:mod:`~tausynth.evaluation.evaluate`
    ``tausynth evaluate --run DIR``: a run's predictions to CSV tables and figures.
"""

from tausynth.evaluation.agreement import (
    POSITIVITY_CUT,
    agreement_stats,
    agreement_table,
    bland_altman,
    cohens_kappa,
    icc,
    pearson,
    positivity_table,
)
from tausynth.evaluation.claims import (
    CLAIMS,
    Verdict,
    claim1,
    claim2,
    claim3,
    claim4,
    verdict_table,
)
from tausynth.evaluation.evaluate import RunEvaluation, evaluate_predictions, evaluate_run
from tausynth.evaluation.metrics import VoxelMetrics, minmax_space_metrics, voxel_metrics
from tausynth.evaluation.roi import (
    braak_regions,
    off_target_regions,
    off_target_report,
    region_masks,
    region_means,
    roi_frame,
    subject_roi_rows,
)
from tausynth.evaluation.staging import (
    StagingThresholds,
    braak_group,
    confusion_matrix,
    imaging_stage,
    stage_frame,
)
from tausynth.evaluation.tables import rank_subjects, seed_spread, summary_table
from tausynth.evaluation.tracking import tracking_sentences, tracking_table

__all__ = [
    "CLAIMS",
    "POSITIVITY_CUT",
    "RunEvaluation",
    "StagingThresholds",
    "Verdict",
    "VoxelMetrics",
    "agreement_stats",
    "agreement_table",
    "bland_altman",
    "braak_group",
    "braak_regions",
    "claim1",
    "claim2",
    "claim3",
    "claim4",
    "cohens_kappa",
    "confusion_matrix",
    "evaluate_predictions",
    "evaluate_run",
    "icc",
    "imaging_stage",
    "minmax_space_metrics",
    "off_target_regions",
    "off_target_report",
    "pearson",
    "positivity_table",
    "rank_subjects",
    "region_masks",
    "region_means",
    "roi_frame",
    "seed_spread",
    "stage_frame",
    "subject_roi_rows",
    "summary_table",
    "tracking_sentences",
    "tracking_table",
    "verdict_table",
    "voxel_metrics",
]
