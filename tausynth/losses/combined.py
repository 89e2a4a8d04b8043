"""The total loss of the paper: α·MSE + β·(1 − SSIM) + γ·perceptual."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from tausynth.losses.perceptual import PerceptualLoss
from tausynth.losses.ssim import SeparableSSIMLoss


class LossComponents(NamedTuple):
    """The total loss and its unweighted components (scalar tensors).

    ``ssim`` is the SSIM *loss* ``1 − SSIM``; ``perceptual`` is 0 in mode ``"none"``.
    """

    total: torch.Tensor
    mse: torch.Tensor
    ssim: torch.Tensor
    perceptual: torch.Tensor

    def as_floats(self) -> dict[str, float]:
        """The components as Python floats, keyed ``loss``, ``mse``, ``ssim_loss``, ``perceptual``."""
        return {
            "loss": float(self.total.detach()),
            "mse": float(self.mse.detach()),
            "ssim_loss": float(self.ssim.detach()),
            "perceptual": float(self.perceptual.detach()),
        }


class CombinedLoss(nn.Module):
    """``alpha * MSE + beta * (1 - SSIM) + gamma * perceptual`` (paper: α = 1, β = 1, γ = 0.5).

    Parameters
    ----------
    alpha, beta, gamma : float, default=1.0, 1.0, 0.5
        Weights of the MSE, SSIM and perceptual terms.
    perceptual : str or PerceptualLoss or None, default="cyclic"
        A mode of :class:`~tausynth.losses.perceptual.PerceptualLoss` (``"none"``, ``"2d"``,
        ``"2.5d"``, ``"cyclic"``, ``"3d"``), a ready module, or ``None`` (same as ``"none"``).
    data_range : float or "target", default=2.0
        SSIM data range (the official code: 2.0); ``"target"`` derives it from each target volume
        (its max − min). SSIM is MONAI's 3D ``SSIMLoss`` (Gaussian window
        11, σ 1.5, k1 0.01, k2 0.03), computed with a separable window
        (:class:`~tausynth.losses.ssim.SeparableSSIMLoss`, equal to float32 rounding and ~10× faster);
        every spatial dimension must be at least 11.
    **perceptual_options
        Passed to :class:`~tausynth.losses.perceptual.PerceptualLoss` when ``perceptual`` is a mode
        (``plane``, ``weights``, ``features``, ``max_slices_per_chunk``, ``autocast_dtype``, ...).

    Examples
    --------
    >>> loss = CombinedLoss(perceptual="cyclic", weights="random")  # doctest: +SKIP
    >>> out = loss(pred, target, plane="axial")  # doctest: +SKIP
    >>> out.total.backward(); log(out.as_floats())  # doctest: +SKIP
    """

    def __init__(
        self,
        alpha: float = 1.0,
        beta: float = 1.0,
        gamma: float = 0.5,
        perceptual: str | PerceptualLoss | None = "cyclic",
        *,
        data_range: float | str = 2.0,
        **perceptual_options: object,
    ) -> None:
        super().__init__()
        self.alpha, self.beta, self.gamma = float(alpha), float(beta), float(gamma)
        if isinstance(perceptual, PerceptualLoss):
            if perceptual_options:
                raise TypeError("perceptual options apply only when `perceptual` is a mode name")
            self.perceptual = perceptual
        else:
            self.perceptual = PerceptualLoss(perceptual or "none", **perceptual_options)  # type: ignore[arg-type]
        self.ssim = SeparableSSIMLoss(data_range=data_range)
        self.data_range = self.ssim.data_range

    def shares(self, terms: dict[str, float]) -> dict[str, float]:
        """Each weighted term's share of the total: ``share_mse``, ``share_ssim``, ``share_perceptual``.

        ``terms`` holds ``loss``, ``mse``, ``ssim_loss`` and ``perceptual`` (e.g. an epoch's means,
        :meth:`LossComponents.as_floats`); the shares of means are what ``metrics.csv`` records.
        The three shares add up to 1 (NaN when the total is 0).

        Examples
        --------
        >>> CombinedLoss(perceptual="none").shares({"loss": 2.0, "mse": 1.0, "ssim_loss": 1.0, "perceptual": 0.0})
        {'share_mse': 0.5, 'share_ssim': 0.5, 'share_perceptual': 0.0}
        """
        weighted = {
            "share_mse": self.alpha * terms["mse"],
            "share_ssim": self.beta * terms["ssim_loss"],
            "share_perceptual": self.gamma * terms["perceptual"],
        }
        total = sum(weighted.values())
        return {k: (v / total if total else float("nan")) for k, v in weighted.items()}

    @property
    def mode(self) -> str:
        """The perceptual mode."""
        return self.perceptual.mode

    @property
    def weights_source(self) -> str | None:
        """Source of the perceptual extractor's weights, for provenance (``None`` in mode ``"none"``)."""
        return self.perceptual.weights_source

    def forward(self, pred: torch.Tensor, target: torch.Tensor, plane: str | None = None) -> LossComponents:
        """Compute the total loss and its components.

        Parameters
        ----------
        pred, target : torch.Tensor
            ``(B, 1, X, Y, Z)`` volumes.
        plane : {"axial", "coronal", "sagittal"}, optional
            The schedule's current plane; required in ``"cyclic"`` mode, ignored otherwise.
        """
        mse = nn.functional.mse_loss(pred, target)
        ssim = self.ssim(pred, target)
        perc = self.perceptual(pred, target, plane)
        total = self.alpha * mse + self.beta * ssim + self.gamma * perc
        return LossComponents(total=total, mse=mse, ssim=ssim, perceptual=perc)
