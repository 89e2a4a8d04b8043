"""Training: the supervised and adversarial loops with the paper's semantics, checkpoints, DDP.

:func:`train` runs or resumes one run folder; :func:`predict_run` writes its predictions in SUVR.
See :mod:`tausynth.training.state` for the paper's plane-switch and early-stopping rules,
:mod:`tausynth.training.checkpoint` for what a checkpoint holds, :mod:`tausynth.training.run` for
the run folder and provenance, and :mod:`tausynth.training.distributed` for ``torchrun``.
"""

from tausynth.training.checkpoint import load_checkpoint, save_checkpoint
from tausynth.training.engine import Engine, build_loss
from tausynth.training.inputs import PetNormalizer, derive_seed
from tausynth.training.predict import load_trained_model, predict_run, prediction_examples
from tausynth.training.run import (
    RunPaths,
    config_differences,
    default_run_name,
    needs_restart,
    prepare_run_dir,
    read_provenance,
    read_run_config,
    run_dir_for,
)
from tausynth.training.state import EpochDecision, PaperSchedule, TrainingState
from tausynth.training.trainer import (
    TrainingInterrupted,
    TrainResult,
    init_output_bias,
    resolve_device,
    train,
)

__all__ = [
    "Engine",
    "EpochDecision",
    "PaperSchedule",
    "PetNormalizer",
    "RunPaths",
    "TrainResult",
    "TrainingInterrupted",
    "TrainingState",
    "build_loss",
    "config_differences",
    "default_run_name",
    "init_output_bias",
    "derive_seed",
    "needs_restart",
    "load_checkpoint",
    "load_trained_model",
    "predict_run",
    "prediction_examples",
    "prepare_run_dir",
    "read_provenance",
    "read_run_config",
    "resolve_device",
    "run_dir_for",
    "save_checkpoint",
    "train",
]
