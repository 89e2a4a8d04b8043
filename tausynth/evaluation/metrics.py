"""Voxel-wise image metrics of a synthetic PET against the measured PET, per subject.

Every metric is computed **in SUVR space, inside the brain mask**, with the data range stated and
returned with the numbers:

``mse``, ``mae``
    Mean squared / absolute difference over the mask voxels.
``nrmse``
    Root mean squared error divided by a normalization of the target over the mask voxels
    (scikit-image's conventions): ``"euclidean"`` (default) ``sqrt(mean(target²))``, ``"mean"``
    ``mean(target)``, ``"min-max"`` ``max(target) − min(target)``.
``psnr``
    ``10·log10(R² / mse)`` with ``R`` the data range (below); ``inf`` when ``mse == 0``.
``ssim``
    Both images are multiplied by the mask (the skull-stripped convention of the targets), the
    local 3D SSIM map is computed with MONAI's formula and window (Gaussian 11, σ 1.5, k1 0.01,
    k2 0.03, "valid" convolution, so the map covers the window centres at least 5 voxels from the
    border; in float64, see :func:`ssim_map`) and **averaged over the window centres that lie
    inside the mask**. Background-only windows, which are trivially similar, do not inflate it.
``ssim_volume``
    The usual global value, for comparison with other work: the same map averaged over *all*
    window positions, background included (what MONAI's :class:`~monai.metrics.SSIMMetric`
    returns for the masked images).

Data range ``R`` (SSIM constants and PSNR): by default ``"target"``, the maximum minus the minimum
of the *target* inside the mask, per subject; or a fixed number for every subject (for example
the 2.0 the official training loss uses in standardized space). The value used is returned as
``data_range``.

The min–max baseline is also scored in its own space with :func:`minmax_space_metrics`: the
target is min–max scaled the way the baseline's training targets were (:func:`tausynth.suvr.
minmax_normalize`) and the data range is the space's nominal range, 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from tausynth.errors import TausynthError, subject_prefix
from tausynth.suvr import minmax_normalize

__all__ = [
    "NRMSE_NORMALIZATIONS",
    "SSIM_K1",
    "SSIM_K2",
    "SSIM_SIGMA",
    "SSIM_WINDOW",
    "VoxelMetrics",
    "masked_ssim",
    "metrics_row",
    "minmax_space_metrics",
    "resolve_data_range",
    "ssim_map",
    "voxel_metrics",
]

SSIM_WINDOW = 11
"""Gaussian window size of the SSIM (Wang et al. 2004; MONAI's default, the official loss's)."""
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
NRMSE_NORMALIZATIONS = ("euclidean", "mean", "min-max")
"""Allowed values of ``nrmse_normalization`` (scikit-image's ``normalized_root_mse`` names)."""

DataRange = float | Literal["target"]


@dataclass(frozen=True)
class VoxelMetrics:
    """Voxel metrics of one subject (see the module docstring for the definitions).

    Attributes
    ----------
    ssim : float
        SSIM map averaged over the window centres inside the mask.
    ssim_volume : float
        MONAI ``SSIMMetric`` over the whole masked volume (background windows included).
    psnr : float
        dB; ``inf`` for a prediction identical to the target inside the mask.
    mse, mae, nrmse : float
    data_range : float
        The ``R`` used by SSIM and PSNR.
    n_voxels : int
        Number of mask voxels.
    space : str
        Intensity space of the numbers (``"suvr"`` or ``"minmax"``).
    """

    ssim: float
    ssim_volume: float
    psnr: float
    mse: float
    mae: float
    nrmse: float
    data_range: float
    n_voxels: int
    space: str = "suvr"

    def as_dict(self) -> dict[str, Any]:
        """Return the metrics as a plain dict (one row of a per-subject table)."""
        return asdict(self)



def _check_pair(
    prediction: np.ndarray, target: np.ndarray, mask: np.ndarray, subject: object | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pred = np.asarray(prediction, dtype=np.float64)
    tgt = np.asarray(target, dtype=np.float64)
    m = np.asarray(mask)
    if pred.ndim != 3:
        raise TausynthError(f"{subject_prefix(subject)}prediction must be a 3D volume, got shape {pred.shape}")
    if pred.shape != tgt.shape or m.shape != tgt.shape:
        raise TausynthError(
            f"{subject_prefix(subject)}shapes differ: prediction {pred.shape}, target {tgt.shape}, mask {m.shape}"
        )
    m = m if m.dtype == bool else np.nan_to_num(m.astype(np.float64)) > 0.5
    if not m.any():
        raise TausynthError(f"{subject_prefix(subject)}brain mask is empty")
    for what, arr in (("prediction", pred), ("target", tgt)):
        bad = int(np.count_nonzero(~np.isfinite(arr[m])))
        if bad:
            raise TausynthError(f"{subject_prefix(subject)}{what} has {bad} NaN or infinite voxel(s) inside the brain mask")
    return pred, tgt, m


def resolve_data_range(target: np.ndarray, mask: np.ndarray, data_range: DataRange, subject: object | None = None) -> float:
    """Return the numeric data range: ``max − min`` of ``target`` in ``mask`` for ``"target"``, else the number.

    Raises
    ------
    TausynthError
        If ``data_range`` is neither ``"target"`` nor a positive finite number, or the target is
        constant inside the mask.
    """
    if isinstance(data_range, str):
        if data_range != "target":
            raise TausynthError(f"data_range {data_range!r} not allowed; use 'target' or a positive number")
        values = np.asarray(target)[np.asarray(mask, dtype=bool)]
        value = float(values.max() - values.min())
        if not value > 0:
            raise TausynthError(
                f"{subject_prefix(subject)}target is constant inside the brain mask; data_range='target' is undefined"
            )
        return value
    value = float(data_range)
    if not (math.isfinite(value) and value > 0):
        raise TausynthError(f"data_range must be 'target' or a positive finite number, got {data_range!r}")
    return value


def _to_tensor(volume: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(volume, dtype=np.float64))[None, None]


def _gaussian_1d(window: int, sigma: float) -> torch.Tensor:
    # the same window as MONAI's SSIM: taps at -(w-1)/2 … (w-1)/2, normalized to sum 1
    x = torch.arange(window, dtype=torch.float64) - (window - 1) / 2
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


def _filter_valid(volume: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    w = g.numel()
    for shape in ((1, 1, w, 1, 1), (1, 1, 1, w, 1), (1, 1, 1, 1, w)):
        volume = F.conv3d(volume, g.reshape(shape))
    return volume


def ssim_map(
    prediction: np.ndarray,
    target: np.ndarray,
    data_range: float,
    window: int = SSIM_WINDOW,
    sigma: float = SSIM_SIGMA,
) -> np.ndarray:
    """Local 3D SSIM map: MONAI's formula and Gaussian window, "valid" convolution, in float64.

    :func:`monai.metrics.regression.compute_ssim_and_cs` computes the local variances as
    E[x²] − E[x]² in float32, which loses ~0.3 % of SSIM in flat regions at SUVR ≈ 1–2 (catastrophic
    cancellation); this is the same computation, separable and in float64.

    Returns
    -------
    numpy.ndarray
        Shape ``target.shape - (window - 1)`` per axis; element ``i`` is the SSIM of the window
        centred on voxel ``i + window // 2`` of the input.
    """
    shape = np.asarray(target).shape
    if len(shape) != 3 or min(shape) < window:
        raise TausynthError(f"SSIM needs a 3D volume of at least {window} voxels per axis, got shape {shape}")
    x, y = _to_tensor(prediction), _to_tensor(target)
    g = _gaussian_1d(window, sigma)
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    mx, my = _filter_valid(x, g), _filter_valid(y, g)
    vx = _filter_valid(x * x, g) - mx * mx
    vy = _filter_valid(y * y, g) - my * my
    cxy = _filter_valid(x * y, g) - mx * my
    smap = ((2 * mx * my + c1) / (mx * mx + my * my + c1)) * ((2 * cxy + c2) / (vx + vy + c2))
    return smap[0, 0].numpy()


def masked_ssim(
    prediction: np.ndarray,
    target: np.ndarray,
    mask: np.ndarray,
    data_range: float,
    window: int = SSIM_WINDOW,
    sigma: float = SSIM_SIGMA,
    subject: object | None = None,
) -> float:
    """Mean of the SSIM map over the window centres inside ``mask`` (images masked first).

    Raises
    ------
    TausynthError
        If no mask voxel lies at least ``window // 2`` voxels from the border.
    """
    m = np.asarray(mask, dtype=bool)
    smap = ssim_map(np.where(m, prediction, 0.0), np.where(m, target, 0.0), data_range, window, sigma)
    return _centres_mean(smap, m, window, subject)


def _centres_mean(smap: np.ndarray, m: np.ndarray, window: int, subject: object | None) -> float:
    h = window // 2
    centres = m[h:-h, h:-h, h:-h] if h else m
    if not centres.any():
        raise TausynthError(
            f"{subject_prefix(subject)}no brain-mask voxel lies {h} voxels or more from the volume border; "
            f"SSIM with a {window}-voxel window is undefined"
        )
    return float(smap[centres].mean())


def voxel_metrics(
    prediction: np.ndarray,
    target: np.ndarray,
    mask: np.ndarray,
    data_range: DataRange = "target",
    nrmse_normalization: str = "euclidean",
    window: int = SSIM_WINDOW,
    sigma: float = SSIM_SIGMA,
    space: str = "suvr",
    subject: object | None = None,
) -> VoxelMetrics:
    """SSIM, PSNR, MSE, MAE and NRMSE of one subject inside the brain mask.

    Parameters
    ----------
    prediction, target : numpy.ndarray
        3D volumes on the same grid, in the same intensity space (SUVR by default).
    mask : numpy.ndarray
        Brain mask (boolean, or numeric thresholded at 0.5).
    data_range : "target" or float, default="target"
        ``R`` for SSIM and PSNR: ``max − min`` of the target inside the mask, or a fixed value.
    nrmse_normalization : {"euclidean", "mean", "min-max"}, default="euclidean"
    window : int, default=11
        SSIM Gaussian window size (odd).
    sigma : float, default=1.5
        SSIM Gaussian window standard deviation.
    space : str, default="suvr"
        Label of the intensity space, stored with the result.
    subject : object, optional
        Subject identifier for error messages.

    Returns
    -------
    VoxelMetrics

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).uniform(0.8, 2.0, (16, 16, 16))
    >>> m = voxel_metrics(x, x, np.ones(x.shape, bool))
    >>> m.psnr, m.mae, round(m.ssim, 6)
    (inf, 0.0, 1.0)
    """
    if nrmse_normalization not in NRMSE_NORMALIZATIONS:
        raise TausynthError(
            f"nrmse_normalization {nrmse_normalization!r} not allowed; use one of {', '.join(NRMSE_NORMALIZATIONS)}"
        )
    if window < 1 or window % 2 == 0:
        raise TausynthError(f"SSIM window must be a positive odd integer, got {window!r}")
    pred, tgt, m = _check_pair(prediction, target, mask, subject)
    rng = resolve_data_range(tgt, m, data_range, subject)
    p, t = pred[m], tgt[m]
    diff = p - t
    mse = float(np.mean(diff * diff))
    mae = float(np.mean(np.abs(diff)))
    denom = {
        "euclidean": float(np.sqrt(np.mean(t * t))),
        "mean": float(np.mean(t)),
        "min-max": float(t.max() - t.min()),
    }[nrmse_normalization]
    nrmse = math.sqrt(mse) / denom if denom != 0 else float("nan")
    psnr = math.inf if mse == 0 else 10.0 * math.log10(rng * rng / mse)
    smap = ssim_map(np.where(m, pred, 0.0), np.where(m, tgt, 0.0), rng, window, sigma)
    return VoxelMetrics(
        ssim=_centres_mean(smap, m, window, subject),
        ssim_volume=float(smap.mean()),
        psnr=psnr, mse=mse, mae=mae, nrmse=nrmse, data_range=rng, n_voxels=int(m.sum()), space=space,
    )


def minmax_space_metrics(
    prediction_minmax: np.ndarray,
    target_suvr: np.ndarray,
    mask: np.ndarray,
    range_mask: np.ndarray | None = None,
    data_range: DataRange = 1.0,
    subject: object | None = None,
    **kwargs: Any,
) -> VoxelMetrics:
    """Voxel metrics of a min–max-baseline prediction in its own (min–max) space.

    The target SUVR map is min–max scaled exactly as the baseline's training targets were
    (:func:`tausynth.suvr.minmax_normalize`, over ``range_mask`` or the whole volume) and compared
    with the prediction inside ``mask``; the data range defaults to the space's nominal range, 1.

    Parameters
    ----------
    prediction_minmax : numpy.ndarray
        Output of a model trained on min–max-scaled PET.
    target_suvr : numpy.ndarray
        The measured SUVR map.
    mask : numpy.ndarray
        Brain mask in which the metrics are computed.
    range_mask : numpy.ndarray, optional
        Mask over which the target's min and max were taken in training (default: whole volume).
    data_range : "target" or float, default=1.0
    **kwargs
        Passed to :func:`voxel_metrics`.
    """
    target_mm = minmax_normalize(np.asarray(target_suvr, dtype=np.float64), range_mask, subject=subject)
    return voxel_metrics(prediction_minmax, target_mm, mask, data_range=data_range, space="minmax",
                         subject=subject, **kwargs)


def metrics_row(subject_id: str, metrics: VoxelMetrics, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One per-subject table row: ``subject_id``, ``extra`` columns, then the metrics."""
    return {"subject_id": subject_id, **(dict(extra) if extra else {}), **metrics.as_dict()}
