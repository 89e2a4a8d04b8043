"""One optimization step and one validation step, for the supervised nets and for the two GANs.

Objectives (``L_paper`` is :class:`~tausynth.losses.CombinedLoss`, α·MSE + β·(1 − SSIM) +
γ·perceptual at the schedule's current plane, on the synthetic PET against the real PET):

* supervised (U-Net, UNETR, SwinUNETR): ``L_paper(G(mri), pet)``;
* Pix2Pix: ``L_adv + λ_L1 · L1 + L_paper`` for the generator, then the discriminator's loss;
* CycleGAN: ``L_adv (both directions) + λ_cyc · cycle + λ_cyc · λ_id · identity + L_paper`` on
  the MRI → PET direction, then both discriminators' losses.

Generators step before discriminators (the CycleGAN reference order). Gradients of
``grad_accum_steps`` micro-batches are accumulated (each loss divided by that number), averaged
across ranks, and applied together. Under AMP the networks run inside ``torch.autocast``; the
paper loss is computed in float32 on the upcast output, its perceptual network under its own
autocast.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from tausynth.config import Config
from tausynth.losses import CombinedLoss
from tausynth.models import generator_of
from tausynth.training.distributed import DistContext, average_gradients

__all__ = ["Engine", "build_loss"]


def build_loss(
    cfg: Config, autocast_dtype: torch.dtype | None = None, features: nn.Module | None = None
) -> CombinedLoss:
    """The paper's total loss from the ``loss`` section of ``cfg``.

    ``features`` is the run's frozen perceptual network
    (:func:`tausynth.training.features.build_perceptual_features`); without it, ``loss.weights``
    must name weights that need no data (``"imagenet"``, ``"medicalnet"``, ``"random"``, ``"auto"``
    without calibration, or a path).
    """
    lc = cfg.loss
    options: dict[str, Any] = {}
    if lc.perceptual in ("2d", "2.5d", "cyclic"):
        options = {
            "plane": lc.plane,
            "weights": lc.weights,
            "per_sample_scaling": lc.per_sample_scaling,
            "imagenet_norm": lc.imagenet_norm,
            "scaling": lc.slice_scaling,
            "unit_features": lc.unit_features,
            "skip_empty_slices": lc.skip_empty_slices,
            "slices_per_step": lc.slices_per_step,
            "autocast_dtype": autocast_dtype,
        }
        if lc.max_slices_per_chunk is not None:
            options["max_slices_per_chunk"] = lc.max_slices_per_chunk
    elif lc.perceptual == "3d":
        options = {"weights": lc.weights, "autocast_dtype": autocast_dtype}  # checked by check_weights_for_mode
    if features is not None and lc.perceptual != "none":
        options.pop("weights", None)
        options["features"] = features
    data_range = lc.ssim_data_range if lc.ssim_range == "fixed" else "target"
    return CombinedLoss(lc.alpha, lc.beta, lc.gamma, perceptual=lc.perceptual, data_range=data_range, **options)


class Engine:
    """Optimizers, schedulers, AMP and the step functions of one model.

    Parameters
    ----------
    model : nn.Module
        From :func:`tausynth.models.build` (``.kind`` selects the objective).
    loss : CombinedLoss
    cfg : Config
    device : torch.device
    ctx : DistContext
    amp_dtype : torch.dtype or None
        Autocast dtype (``None``: full precision). A ``GradScaler`` is active only for float16.
    """

    def __init__(
        self,
        model: nn.Module,
        loss: CombinedLoss,
        cfg: Config,
        device: torch.device,
        ctx: DistContext,
        amp_dtype: torch.dtype | None = None,
    ) -> None:
        self.model = model
        self.loss = loss
        self.kind = getattr(model, "kind", "supervised")
        self.device = device
        self.ctx = ctx
        self.accum = cfg.training.grad_accum_steps
        self.amp_dtype = amp_dtype
        t = cfg.training
        if self.kind == "supervised":
            groups = {"g": list(model.parameters())}
            betas = (0.9, 0.999)
        else:
            groups = {"g": model.generator_parameters(), "d": model.discriminator_parameters()}
            betas = (t.gan_beta1, 0.999)
        rates = {"g": t.lr, "d": t.lr if t.d_lr is None else t.d_lr}
        self.optimizers = {k: torch.optim.Adam(p, lr=rates[k], betas=betas) for k, p in groups.items()}
        self.schedulers = {
            k: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=t.cosine_t_max, eta_min=0.0)
            for k, o in self.optimizers.items()
        }
        self.scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
        self._micro = 0

    # ------------------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        return {
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "scaler": self.scaler.state_dict(),
        }

    def load_state_dict(self, data: dict[str, Any]) -> None:
        for k, o in self.optimizers.items():
            o.load_state_dict(data["optimizers"][k])
        for k, s in self.schedulers.items():
            s.load_state_dict(data["schedulers"][k])
        if data.get("scaler"):
            self.scaler.load_state_dict(data["scaler"])

    @property
    def lr(self) -> float:
        return float(self.optimizers["g"].param_groups[0]["lr"])

    def step_schedulers(self) -> None:
        """One ``CosineAnnealingLR`` step per epoch (as the official code)."""
        for s in self.schedulers.values():
            s.step()

    # ------------------------------------------------------------------------------ steps

    @contextlib.contextmanager
    def _autocast(self) -> Iterator[None]:
        if self.amp_dtype is None:
            yield
        else:
            with torch.autocast(self.device.type, dtype=self.amp_dtype):
                yield

    def _backward(self, loss: torch.Tensor) -> None:
        self.scaler.scale(loss / self.accum).backward()

    def _apply(self, keys: tuple[str, ...]) -> None:
        for k in keys:
            opt = self.optimizers[k]
            params = [p for g in opt.param_groups for p in g["params"]]
            average_gradients(params, self.ctx)
            self.scaler.step(opt)
        self.scaler.update()
        for k in keys:
            self.optimizers[k].zero_grad(set_to_none=True)

    def begin_epoch(self) -> None:
        """Start an epoch with empty gradients and a fresh accumulation window."""
        self.model.train()
        self._micro = 0
        for o in self.optimizers.values():
            o.zero_grad(set_to_none=True)

    def train_step(self, batch: dict[str, Any], plane: str, last: bool) -> tuple[dict[str, float], bool]:
        """Forward and backward one micro-batch; step the optimizers at the accumulation boundary.

        Parameters
        ----------
        batch : dict
            A collated sample batch (``"t1"``, ``"pet"``).
        plane : str
            The schedule's plane this epoch.
        last : bool
            Whether this is the epoch's last batch (flushes a partial accumulation window).

        Returns
        -------
        terms : dict of str to float
            Loss components of this micro-batch (``loss``, ``mse``, ``ssim_loss``,
            ``perceptual``; GANs also ``g_total``, their adversarial/L1/cycle/identity terms and
            ``d_loss``).
        stepped : bool
            Whether the optimizers stepped.
        """
        mri = batch["t1"].to(self.device, non_blocking=True)
        pet = batch["pet"].to(self.device, non_blocking=True)
        self._micro += 1
        boundary = last or self._micro % self.accum == 0
        if self.kind == "supervised":
            with self._autocast():
                pred = self.model(mri)
            paper = self.loss(pred.float(), pet, plane)
            self._backward(paper.total)
            terms = paper.as_floats()
            keys: tuple[str, ...] = ("g",)
        else:
            with self._autocast():
                step = self.model.generator_loss(mri, pet)
            paper = self.loss(step.fake_pet.float(), pet, plane)
            g_total = step.total.float() + paper.total
            self._backward(g_total)
            with self._autocast():
                if self.kind == "pix2pix":
                    d_loss = self.model.discriminator_loss(mri, pet, step.fake_pet)
                else:
                    d_loss = self.model.discriminator_loss(mri, pet, step.fake_pet, step.fake_mri)
            self._backward(d_loss.float())
            terms = paper.as_floats()
            terms["g_total"] = float(g_total.detach())
            terms.update({k: float(v.detach()) for k, v in step.terms.items()})
            terms["d_loss"] = float(d_loss.detach())
            keys = ("g", "d")
        if boundary:
            self._apply(keys)
        return terms, boundary

    @torch.no_grad()
    def val_step(self, batch: dict[str, Any], plane: str) -> dict[str, float]:
        """The paper loss of the MRI → PET network on one batch (no augmentation, eval mode)."""
        net = generator_of(self.model)
        net.eval()
        mri = batch["t1"].to(self.device, non_blocking=True)
        pet = batch["pet"].to(self.device, non_blocking=True)
        with self._autocast():
            pred = net(mri)
        return self.loss(pred.float(), pet, plane).as_floats()
