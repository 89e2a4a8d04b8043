"""In-domain pretraining of VGG16 features on PET slices."""

from __future__ import annotations

import pytest
import torch

from tausynth.errors import TausynthError
from tausynth.losses.indomain import PretrainConfig, pretrain_vgg16


def _slices(with_labels: bool) -> dict:
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(12, 1, 16, 16, generator=gen)
    labels = (images[:, 0] > 0.5).long() * 17 if with_labels else None
    return {"axial": (images, labels), "coronal": (images[:6], None if labels is None else labels[:6])}


@pytest.mark.parametrize("objective", ["labels", "denoise"])
def test_pretraining_learns_and_is_deterministic(objective: str) -> None:
    cfg = PretrainConfig(objective=objective, steps=20, batch_size=4, lr=1e-3, autocast=False)
    a = pretrain_vgg16(_slices(True), cfg)
    b = pretrain_vgg16(_slices(True), cfg)
    assert a.features.weights_source == f"indomain-{objective}"
    assert len(a.loss_curve) == 2 and a.loss_curve[-1] < a.loss_curve[0]
    for (_, pa), (_, pb) in zip(a.features.state_dict().items(), b.features.state_dict().items(), strict=True):
        torch.testing.assert_close(pa, pb)
    assert not any(p.requires_grad for p in a.features.parameters())
    assert a.record()["config"]["objective"] == objective
    if objective == "labels":
        assert a.n_classes == 2


def test_labels_objective_needs_labels() -> None:
    with pytest.raises(TausynthError, match="needs label maps"):
        pretrain_vgg16(_slices(False), PretrainConfig(objective="labels", steps=1))


def test_unknown_objective_is_named() -> None:
    with pytest.raises(TausynthError, match="'contrastive' is not one of 'labels', 'denoise'"):
        PretrainConfig(objective="contrastive")
