"""Tests for tausynth.models.gan: adversarial losses and the Pix2Pix / CycleGAN objectives."""

from __future__ import annotations

import math

import pytest
import torch
from monai.networks.nets import PatchDiscriminator
from torch import nn

from tausynth.errors import TausynthError
from tausynth.models.gan import CycleGAN, GANLoss, PatchGAN, Pix2Pix, frozen


class Scale(nn.Module):
    """``factor * x`` with a learnable factor (a generator whose outputs are known exactly)."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = nn.Parameter(torch.tensor(float(factor)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.factor * x


class ConstantD(nn.Module):
    """A 'discriminator' that outputs ``value`` per 2×2×2 patch, whatever its input (but keeps a
    gradient path to both its parameter and its input)."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = nn.Parameter(torch.tensor(float(value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = nn.functional.avg_pool3d(x[:, :1], 2)
        return self.value + 0.0 * pooled


def tiny_patchgan(in_channels: int) -> PatchGAN:
    return PatchGAN(
        spatial_dims=3,
        channels=4,
        in_channels=in_channels,
        out_channels=1,
        num_layers_d=2,
        norm="INSTANCE",
    )


@pytest.fixture
def volumes() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(2, 1, 12, 12, 12, generator=gen), torch.randn(
        2, 1, 12, 12, 12, generator=gen
    )


# --- GANLoss -------------------------------------------------------------------------------------


def test_lsgan_golden_values() -> None:
    loss = GANLoss("lsgan")
    ones, zeros = torch.ones(2, 1, 3, 3, 3), torch.zeros(2, 1, 3, 3, 3)
    assert loss(ones, True).item() == 0.0  # D(x) = 1 on real → 0
    assert loss(zeros, False).item() == 0.0
    assert loss(ones, False).item() == 1.0
    assert loss(torch.full((4,), 0.5), True).item() == pytest.approx(0.25)
    assert loss(torch.tensor([0.0, 2.0]), True).item() == pytest.approx(1.0)  # mean of 1 and 1


def test_bce_golden_values() -> None:
    loss = GANLoss("bce")
    assert loss(torch.zeros(5), True).item() == pytest.approx(math.log(2))
    assert loss(torch.zeros(5), False).item() == pytest.approx(math.log(2))
    assert loss(torch.full((3,), 30.0), True).item() == pytest.approx(0.0, abs=1e-12)
    assert loss(torch.full((3,), 2.0), False).item() == pytest.approx(math.log1p(math.exp(2.0)))
    # stable for logits where sigmoid saturates
    assert torch.isfinite(loss(torch.tensor([-200.0, 200.0]), True))


def test_unknown_gan_mode_names_it_and_the_allowed_ones() -> None:
    with pytest.raises(TausynthError, match=r"'wgan'.*lsgan, bce"):
        GANLoss("wgan")


# --- PatchGAN ------------------------------------------------------------------------------------


def test_patchgan_returns_the_last_output_of_monai_patch_discriminator() -> None:
    torch.manual_seed(0)
    ours = tiny_patchgan(2)
    reference = PatchDiscriminator(
        spatial_dims=3, channels=4, in_channels=2, out_channels=1, num_layers_d=2, norm="INSTANCE"
    )
    reference.load_state_dict(ours.state_dict())
    x = torch.randn(1, 2, 16, 16, 16)
    out = ours(x)
    assert isinstance(out, torch.Tensor) and out.shape[:2] == (1, 1)
    assert torch.equal(out, reference(x)[-1])


def test_frozen_records_no_parameter_gradient_and_restores_flags() -> None:
    d = ConstantD(0.5)
    d.value.requires_grad_(True)
    x = torch.ones(1, 1, 2, 2, 2, requires_grad=True)
    with frozen(d):
        assert not d.value.requires_grad
        out = (d(x) * x.mean()).sum()
    assert d.value.requires_grad
    out.backward()  # backward after the block: still no gradient for d
    assert d.value.grad is None and x.grad is not None


# --- Pix2Pix -------------------------------------------------------------------------------------


def test_pix2pix_generator_loss_composition_and_gradients(volumes) -> None:
    mri, pet = volumes
    model = Pix2Pix(Scale(0.5), ConstantD(0.25), gan_mode="lsgan", lambda_l1=100.0)
    step = model.generator_loss(mri, pet)
    fake = 0.5 * mri
    assert torch.allclose(step.fake_pet, fake)
    assert step.terms["adversarial"].item() == pytest.approx((0.25 - 1.0) ** 2)
    assert step.terms["l1"].item() == pytest.approx((fake - pet).abs().mean().item(), rel=1e-6)
    assert step.total.item() == pytest.approx(0.5625 + 100 * step.terms["l1"].item(), rel=1e-6)
    assert step.fake_mri is None
    assert set(step.as_floats()) == {"g_total", "g_adversarial", "g_l1"}
    step.total.backward()
    assert model.generator.factor.grad is not None
    assert model.discriminator.value.grad is None  # the generator step never trains D


def test_pix2pix_discriminator_is_conditional_and_its_loss_trains_only_d(volumes) -> None:
    mri, pet = volumes
    seen = []

    class Probe(ConstantD):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(x.shape[1])
            return super().forward(x)

    model = Pix2Pix(Scale(2.0), Probe(0.5))
    step = model.generator_loss(mri, pet)
    d_loss = model.discriminator_loss(mri, pet, step.fake_pet)
    assert seen == [2, 2, 2]  # concat(MRI, PET) every time
    assert d_loss.item() == pytest.approx(0.5 * ((0.5 - 1) ** 2 + 0.5**2))
    d_loss.backward()
    assert model.discriminator.value.grad is not None
    assert model.generator.factor.grad is None  # fake detached


def test_pix2pix_real_patchgan_trains_end_to_end(volumes) -> None:
    mri, pet = volumes
    model = Pix2Pix(Scale(1.0), tiny_patchgan(2), gan_mode="bce", lambda_l1=100.0)
    d_params = model.discriminator_parameters()
    assert model.discriminator.initial_conv.conv.in_channels == 2
    step = model.generator_loss(mri, pet)
    step.total.backward()
    assert all(p.grad is None for p in d_params)
    model.discriminator_loss(mri, pet, step.fake_pet).backward()
    assert all(p.grad is not None for p in d_params)
    assert len(model.generator_parameters()) == 1


def test_pix2pix_rejects_negative_lambda() -> None:
    with pytest.raises(TausynthError, match="lambda_l1"):
        Pix2Pix(Scale(1.0), ConstantD(0.0), lambda_l1=-1.0)


# --- CycleGAN ------------------------------------------------------------------------------------


def test_cyclegan_generator_loss_golden(volumes) -> None:
    mri, pet = volumes
    # G doubles, F halves: cycles are exact (0); identity terms are known.
    model = CycleGAN(
        Scale(2.0),
        Scale(0.5),
        ConstantD(0.5),
        ConstantD(0.0),
        "lsgan",
        lambda_cycle=10.0,
        lambda_identity=0.5,
    )
    step = model.generator_loss(mri, pet)
    t = {k: v.item() for k, v in step.terms.items()}
    assert t["adversarial_pet"] == pytest.approx(0.25)  # (0.5 - 1)^2
    assert t["adversarial_mri"] == pytest.approx(1.0)  # (0 - 1)^2
    assert t["cycle_mri"] == pytest.approx(0.0, abs=1e-7) and t["cycle_pet"] == pytest.approx(
        0.0, abs=1e-7
    )
    assert t["identity_pet"] == pytest.approx(pet.abs().mean().item(), rel=1e-6)  # |2y - y|
    assert t["identity_mri"] == pytest.approx(0.5 * mri.abs().mean().item(), rel=1e-6)  # |x/2 - x|
    expected = 0.25 + 1.0 + 10 * 0.0 + 10 * 0.5 * (t["identity_pet"] + t["identity_mri"])
    assert step.total.item() == pytest.approx(expected, rel=1e-5)
    assert torch.allclose(step.fake_pet, 2 * mri) and torch.allclose(step.fake_mri, 0.5 * pet)
    step.total.backward()
    assert model.g_mri2pet.factor.grad is not None and model.g_pet2mri.factor.grad is not None
    assert model.d_pet.value.grad is None and model.d_mri.value.grad is None


def test_cyclegan_cycle_terms_and_zero_identity(volumes) -> None:
    mri, pet = volumes
    model = CycleGAN(
        Scale(2.0),
        Scale(2.0),
        ConstantD(1.0),
        ConstantD(1.0),
        lambda_cycle=3.0,
        lambda_identity=0.0,
    )
    step = model.generator_loss(mri, pet)
    assert set(step.terms) == {"adversarial_pet", "adversarial_mri", "cycle_mri", "cycle_pet"}
    # F(G(x)) = 4x: |4x - x| = 3|x|
    assert step.terms["cycle_mri"].item() == pytest.approx(3 * mri.abs().mean().item(), rel=1e-6)
    assert step.total.item() == pytest.approx(
        3.0 * 3 * (mri.abs().mean() + pet.abs().mean()).item(), rel=1e-5
    )


def test_cyclegan_discriminator_loss_golden_and_unconditional(volumes) -> None:
    mri, pet = volumes
    model = CycleGAN(Scale(2.0), Scale(0.5), ConstantD(0.5), ConstantD(0.0))
    step = model.generator_loss(mri, pet)
    loss = model.discriminator_loss(mri, pet, step.fake_pet, step.fake_mri)
    # D_pet = 0.5: (0.25 + 0.25); D_mri = 0: (1 + 0); times 0.5
    assert loss.item() == pytest.approx(0.5 * (0.5 + 1.0))
    loss.backward()
    assert model.d_pet.value.grad is not None and model.g_mri2pet.factor.grad is None
    real = CycleGAN(Scale(1.0), Scale(1.0), tiny_patchgan(1), tiny_patchgan(1))
    assert real.d_pet.initial_conv.conv.in_channels == 1
    assert real.discriminator_loss(mri, pet, mri, pet).ndim == 0


def test_gan_forward_is_the_mri_to_pet_generator(volumes) -> None:
    mri, _ = volumes
    cyc = CycleGAN(Scale(3.0), Scale(0.5), ConstantD(0.0), ConstantD(0.0))
    p2p = Pix2Pix(Scale(3.0), ConstantD(0.0))
    for model in (cyc, p2p):
        assert torch.allclose(model(mri), 3 * mri)
        assert model.divisor == 1  # a bare generator has no padding wrapper
