"""3D Pix2Pix and CycleGAN: generator + PatchGAN discriminator pairs and their original objectives.

The paper adds its cyclic 2.5D perceptual loss to each GAN's **original** objective. The originals' weights are not given for 3D, so we take the 2D papers' defaults:

* Pix2Pix (Isola et al. 2017): ``L_G = L_adv(D(x, G(x))) + λ_L1 · |G(x) − y|₁`` with λ_L1 = 100;
  the discriminator is **conditional**, it sees ``concat(MRI, PET)`` (2 channels).
* CycleGAN (Zhu et al. 2017): ``L_G = L_adv(D_pet(G(x))) + L_adv(D_mri(F(y)))
  + λ_cyc · (|F(G(x)) − x|₁ + |G(F(y)) − y|₁) + λ_cyc · λ_id · (|G(y) − y|₁ + |F(x) − x|₁)`` with
  λ_cyc = 10 and λ_id = 0.5 (so the identity weight is 5); the discriminators are
  **unconditional** (1 channel). Our data are paired, but CycleGAN's objective does not use the
  pairing; the training loop adds the paper's loss on ``(G(x), y)``, which does.
* The adversarial loss is LSGAN (least squares, as CycleGAN) by default, or the original GAN's
  binary cross-entropy (as Pix2Pix), see :class:`GANLoss`.
* Each discriminator's loss is ``0.5 · (L(D(real), 1) + L(D(fake), 0))``, as in both official
  codes. CycleGAN's history buffer of 50 generated images is not used: with the small batches of
  3D training it would mostly hold stale volumes.

Generators are built by :func:`tausynth.models.build` from the same MONAI U-Net as the ``unet``
model, with a **linear** output: Pix2Pix and CycleGAN end in ``tanh`` because their images are in
[−1, 1], but our PET targets are standardized SUVR, which is unbounded.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

import torch
from monai.networks.nets import PatchDiscriminator
from torch import nn

from tausynth.errors import TausynthError

__all__ = [
    "GAN_MODES",
    "CycleGAN",
    "GANLoss",
    "GeneratorStep",
    "PatchGAN",
    "Pix2Pix",
    "frozen",
]

GAN_MODES = ("lsgan", "bce")


def check_gan_mode(mode: str) -> str:
    """Return ``mode`` if it is one of :data:`GAN_MODES`, else raise a one-line error."""
    if mode not in GAN_MODES:
        raise TausynthError(f"gan_mode: unknown value {mode!r} (allowed: {', '.join(GAN_MODES)})")
    return mode


class GANLoss(nn.Module):
    """Adversarial loss on raw discriminator outputs (logits), with target 1 (real) or 0 (fake).

    Our own rather than MONAI's ``PatchAdversarialLoss``: MONAI's least-squares criterion passes the
    output through a LeakyReLU first and its BCE uses sigmoid + ``BCELoss``; the original LSGAN is a
    plain MSE and BCE-with-logits is the numerically stable form.

    Parameters
    ----------
    mode : {"lsgan", "bce"}, default="lsgan"
        ``"lsgan"``: mean squared error to the target; ``"bce"``: binary cross-entropy with logits.

    Examples
    --------
    >>> loss = GANLoss("lsgan")
    >>> float(loss(torch.ones(2, 1, 3, 3, 3), target_is_real=True))
    0.0
    """

    def __init__(self, mode: str = "lsgan") -> None:
        super().__init__()
        self.mode = check_gan_mode(mode)

    def forward(self, prediction: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        """Mean loss of ``prediction`` against a constant target of 1 (real) or 0 (fake)."""
        target = torch.full_like(prediction, 1.0 if target_is_real else 0.0)
        if self.mode == "lsgan":
            return nn.functional.mse_loss(prediction, target)
        return nn.functional.binary_cross_entropy_with_logits(prediction, target)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"


class PatchGAN(PatchDiscriminator):
    """MONAI's :class:`~monai.networks.nets.PatchDiscriminator`, returning only its final patch logits.

    MONAI's returns the list of every layer's output (for feature matching); the GAN objectives
    here use only the last one, a ``(B, 1, *patches)`` map of logits without activation.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(x)[-1]


class GeneratorStep(NamedTuple):
    """The generator side of one GAN step.

    Attributes
    ----------
    total : torch.Tensor
        The weighted original objective of the generator(s); the training loop adds the paper's
        loss on ``(fake_pet, pet)`` to it before ``backward()``.
    terms : dict of str to torch.Tensor
        The unweighted components, for logging.
    fake_pet : torch.Tensor
        ``G(mri)``, kept in the graph (for the paper's loss) -- the discriminator step detaches it.
    fake_mri : torch.Tensor or None
        CycleGAN's ``F(pet)``; ``None`` for Pix2Pix.
    """

    total: torch.Tensor
    terms: dict[str, torch.Tensor]
    fake_pet: torch.Tensor
    fake_mri: torch.Tensor | None = None

    def as_floats(self) -> dict[str, float]:
        """``{"g_total": ..., "g_<term>": ...}`` as Python floats."""
        out = {"g_total": float(self.total.detach())}
        out.update({f"g_{k}": float(v.detach()) for k, v in self.terms.items()})
        return out


@contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Record no gradient for ``module``'s parameters inside the block (gradients still flow
    through it to its inputs), then restore each parameter's ``requires_grad``.

    Autograd decides at forward time which leaves need a gradient, so a generator loss computed
    here never accumulates gradients in the discriminator, whenever ``backward()`` is called.
    """
    saved = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in saved:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in saved:
            p.requires_grad_(flag)


def _check_weight(name: str, value: float) -> float:
    value = float(value)
    if not value >= 0:
        raise TausynthError(f"{name}: expected a non-negative number, got {value!r}")
    return value


class _GAN(nn.Module):
    """Shared parts of the GAN containers."""

    kind = "gan"

    @property
    def generator(self) -> nn.Module:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def divisor(self) -> int:
        """Spatial divisor of the MRI→PET generator (its padding wrapper handles any shape)."""
        return int(getattr(self.generator, "divisor", 1))

    def forward(self, mri: torch.Tensor) -> torch.Tensor:
        """MRI → PET with the generator, so a GAN predicts like a supervised model."""
        return self.generator(mri)

    def generator_parameters(self) -> list[nn.Parameter]:
        """Parameters of the generator(s), for the generator optimizer."""
        raise NotImplementedError  # pragma: no cover

    def discriminator_parameters(self) -> list[nn.Parameter]:
        """Parameters of the discriminator(s), for the discriminator optimizer."""
        raise NotImplementedError  # pragma: no cover


class Pix2Pix(_GAN):
    """Conditional GAN MRI → PET with a conditional PatchGAN discriminator (Isola et al. 2017).

    Parameters
    ----------
    generator : nn.Module
        MRI → PET, ``(B, 1, *S) → (B, 1, *S)``.
    discriminator : nn.Module
        Takes ``concat(MRI, PET)`` ``(B, 2, *S)`` and returns patch logits.
    gan_mode : {"lsgan", "bce"}, default="lsgan"
    lambda_l1 : float, default=100.0
        Weight of the L1 term.

    Examples
    --------
    >>> step = model.generator_loss(mri, pet)  # doctest: +SKIP
    >>> (step.total + paper_loss(step.fake_pet, pet).total).backward(); opt_g.step()  # doctest: +SKIP
    >>> opt_d.zero_grad(); model.discriminator_loss(mri, pet, step.fake_pet).backward()  # doctest: +SKIP
    """

    kind = "pix2pix"

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        gan_mode: str = "lsgan",
        lambda_l1: float = 100.0,
    ) -> None:
        super().__init__()
        self.g_mri2pet = generator
        self.discriminator = discriminator
        self.adversarial = GANLoss(gan_mode)
        self.lambda_l1 = _check_weight("lambda_l1", lambda_l1)

    @property
    def generator(self) -> nn.Module:
        """The MRI → PET generator."""
        return self.g_mri2pet

    def discriminate(self, mri: torch.Tensor, pet: torch.Tensor) -> torch.Tensor:
        """Patch logits of the conditional discriminator on ``concat(mri, pet)``."""
        return self.discriminator(torch.cat([mri, pet], dim=1))

    def generator_loss(
        self, mri: torch.Tensor, pet: torch.Tensor, fake_pet: torch.Tensor | None = None
    ) -> GeneratorStep:
        """``L_adv(D(mri, G(mri)) → real) + λ_L1 · |G(mri) − pet|₁``.

        ``fake_pet`` may be passed if already computed; the discriminator receives no gradient.
        """
        fake = self.g_mri2pet(mri) if fake_pet is None else fake_pet
        with frozen(self.discriminator):
            adv = self.adversarial(self.discriminate(mri, fake), True)
        l1 = nn.functional.l1_loss(fake, pet)
        total = adv + self.lambda_l1 * l1
        return GeneratorStep(total=total, terms={"adversarial": adv, "l1": l1}, fake_pet=fake)

    def discriminator_loss(
        self, mri: torch.Tensor, pet: torch.Tensor, fake_pet: torch.Tensor
    ) -> torch.Tensor:
        """``0.5 · (L(D(mri, pet), real) + L(D(mri, fake_pet), fake))``; ``fake_pet`` is detached."""
        real = self.adversarial(self.discriminate(mri, pet), True)
        fake = self.adversarial(self.discriminate(mri, fake_pet.detach()), False)
        return 0.5 * (real + fake)

    def generator_parameters(self) -> list[nn.Parameter]:
        return list(self.g_mri2pet.parameters())

    def discriminator_parameters(self) -> list[nn.Parameter]:
        return list(self.discriminator.parameters())


class CycleGAN(_GAN):
    """Two generators (MRI → PET, PET → MRI) and two unconditional PatchGANs (Zhu et al. 2017).

    Parameters
    ----------
    g_mri2pet, g_pet2mri : nn.Module
        The generators ``G`` and ``F``, ``(B, 1, *S) → (B, 1, *S)``.
    d_pet, d_mri : nn.Module
        Discriminators on PET and on MRI volumes (1 channel each).
    gan_mode : {"lsgan", "bce"}, default="lsgan"
    lambda_cycle : float, default=10.0
        Weight of the cycle-consistency L1 terms.
    lambda_identity : float, default=0.5
        Identity weight **relative to** ``lambda_cycle`` (the identity terms are weighted
        ``lambda_cycle * lambda_identity``, 5 by default); 0 skips the identity terms.
    """

    kind = "cyclegan"

    def __init__(
        self,
        g_mri2pet: nn.Module,
        g_pet2mri: nn.Module,
        d_pet: nn.Module,
        d_mri: nn.Module,
        gan_mode: str = "lsgan",
        lambda_cycle: float = 10.0,
        lambda_identity: float = 0.5,
    ) -> None:
        super().__init__()
        self.g_mri2pet = g_mri2pet
        self.g_pet2mri = g_pet2mri
        self.d_pet = d_pet
        self.d_mri = d_mri
        self.adversarial = GANLoss(gan_mode)
        self.lambda_cycle = _check_weight("lambda_cycle", lambda_cycle)
        self.lambda_identity = _check_weight("lambda_identity", lambda_identity)

    @property
    def generator(self) -> nn.Module:
        """The MRI → PET generator ``G``."""
        return self.g_mri2pet

    def generator_loss(self, mri: torch.Tensor, pet: torch.Tensor) -> GeneratorStep:
        """Adversarial (both directions) + λ_cyc · cycle + λ_cyc · λ_id · identity.

        The discriminators receive no gradient from this loss.
        """
        fake_pet = self.g_mri2pet(mri)
        fake_mri = self.g_pet2mri(pet)
        with frozen(self.d_pet), frozen(self.d_mri):
            adv_pet = self.adversarial(self.d_pet(fake_pet), True)
            adv_mri = self.adversarial(self.d_mri(fake_mri), True)
        cycle_mri = nn.functional.l1_loss(self.g_pet2mri(fake_pet), mri)
        cycle_pet = nn.functional.l1_loss(self.g_mri2pet(fake_mri), pet)
        terms = {
            "adversarial_pet": adv_pet,
            "adversarial_mri": adv_mri,
            "cycle_mri": cycle_mri,
            "cycle_pet": cycle_pet,
        }
        total = adv_pet + adv_mri + self.lambda_cycle * (cycle_mri + cycle_pet)
        if self.lambda_identity > 0:
            terms["identity_pet"] = nn.functional.l1_loss(self.g_mri2pet(pet), pet)
            terms["identity_mri"] = nn.functional.l1_loss(self.g_pet2mri(mri), mri)
            weight = self.lambda_cycle * self.lambda_identity
            total = total + weight * (terms["identity_pet"] + terms["identity_mri"])
        return GeneratorStep(total=total, terms=terms, fake_pet=fake_pet, fake_mri=fake_mri)

    def discriminator_loss(
        self, mri: torch.Tensor, pet: torch.Tensor, fake_pet: torch.Tensor, fake_mri: torch.Tensor
    ) -> torch.Tensor:
        """Sum over both discriminators of ``0.5 · (L(D(real), real) + L(D(fake), fake))``."""
        loss_pet = self.adversarial(self.d_pet(pet), True) + self.adversarial(
            self.d_pet(fake_pet.detach()), False
        )
        loss_mri = self.adversarial(self.d_mri(mri), True) + self.adversarial(
            self.d_mri(fake_mri.detach()), False
        )
        return 0.5 * (loss_pet + loss_mri)

    def generator_parameters(self) -> list[nn.Parameter]:
        return [*self.g_mri2pet.parameters(), *self.g_pet2mri.parameters()]

    def discriminator_parameters(self) -> list[nn.Parameter]:
        return [*self.d_pet.parameters(), *self.d_mri.parameters()]
