"""Losses: the cyclic 2.5D perceptual loss, its plane schedule, the baselines and the total loss."""

from tausynth.losses._weights import PretrainedWeightsUnavailableWarning
from tausynth.losses.combined import CombinedLoss, LossComponents
from tausynth.losses.medicalnet import MedicalNetPerceptualLoss, resnet10_medicalnet
from tausynth.losses.perceptual import (
    CHUNK_PIXELS,
    PERCEPTUAL_MODES,
    PLANE_AXES,
    PerceptualLoss,
    SlicePerceptualLoss,
    vgg16_cache_path,
    vgg16_relu4_3,
)
from tausynth.losses.schedule import (
    PLANES,
    cosine_lr,
    is_phase_start,
    parse_cycle_factor,
    plane_at_epoch,
    plane_phases,
    switch_epochs,
)

__all__ = [
    "CHUNK_PIXELS",
    "PERCEPTUAL_MODES",
    "PLANES",
    "PLANE_AXES",
    "CombinedLoss",
    "LossComponents",
    "MedicalNetPerceptualLoss",
    "PerceptualLoss",
    "PretrainedWeightsUnavailableWarning",
    "SlicePerceptualLoss",
    "cosine_lr",
    "is_phase_start",
    "parse_cycle_factor",
    "plane_at_epoch",
    "plane_phases",
    "resnet10_medicalnet",
    "switch_epochs",
    "vgg16_cache_path",
    "vgg16_relu4_3",
]
