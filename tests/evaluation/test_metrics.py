"""Voxel metrics: hand-computed SSIM/PSNR/NRMSE, mask semantics, edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from tausynth.errors import TausynthError
from tausynth.evaluation import metrics as M
from tausynth.suvr import minmax_normalize


def _gauss_1d(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size) - (size - 1) / 2
    w = np.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


def _ssim_map_numpy(x: np.ndarray, y: np.ndarray, data_range: float, size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """Wang et al. (2004) SSIM with a separable Gaussian window, "valid" part only (float64)."""
    w = _gauss_1d(size, sigma)

    def filt(a: np.ndarray) -> np.ndarray:
        for ax in range(3):
            a = ndimage.correlate1d(a, w, axis=ax, mode="constant")
        h = size // 2
        return a[h:-h, h:-h, h:-h]

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = filt(x), filt(y)
    vx, vy, cxy = filt(x * x) - mx**2, filt(y * y) - my**2, filt(x * y) - mx * my
    return ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))


@pytest.fixture
def pair():
    rng = np.random.default_rng(3)
    shape = (24, 24, 22)
    target = ndimage.gaussian_filter(rng.uniform(0.8, 2.4, shape), 1.0)
    pred = target + rng.normal(0, 0.08, shape)
    mask = np.zeros(shape, bool)
    mask[6:18, 5:19, 5:17] = True  # every mask voxel can be a window centre
    return pred, target * mask, mask


def test_ssim_map_matches_the_gaussian_window_formula(pair):
    pred, target, _ = pair
    got = M.ssim_map(pred, target, data_range=2.0)
    want = _ssim_map_numpy(pred, target, 2.0)
    assert got.shape == tuple(s - 10 for s in target.shape)
    np.testing.assert_allclose(got, want, atol=1e-10)


def test_masked_ssim_is_the_map_mean_over_window_centres_in_the_mask(pair):
    pred, target, mask = pair
    rng = float(target[mask].max() - target[mask].min())
    want_map = _ssim_map_numpy(np.where(mask, pred, 0), np.where(mask, target, 0), rng)
    want = want_map[mask[5:-5, 5:-5, 5:-5]].mean()
    m = M.voxel_metrics(pred, target, mask)
    assert m.data_range == pytest.approx(rng)
    assert m.ssim == pytest.approx(want, abs=1e-10)
    assert m.ssim_volume == pytest.approx(want_map.mean(), abs=1e-10)
    assert abs(m.ssim - m.ssim_volume) > 1e-3  # the two definitions really differ here


def test_global_ssim_is_monai_ssimmetric():
    # values in [0, 1] with strong local variance, where MONAI's float32 arithmetic is accurate
    import torch
    from monai.metrics import SSIMMetric

    rng = np.random.default_rng(1)
    target = ndimage.gaussian_filter(rng.uniform(0, 1, (20, 22, 18)), 1.0)
    pred = np.clip(target + rng.normal(0, 0.05, target.shape), 0, 1)
    mask = np.ones(target.shape, bool)
    ours = M.voxel_metrics(pred, target, mask, data_range=1.0).ssim_volume
    t = lambda a: torch.as_tensor(a, dtype=torch.float32)[None, None]  # noqa: E731
    monai = float(SSIMMetric(spatial_dims=3, data_range=1.0)(t(pred), t(target)).mean())
    assert ours == pytest.approx(monai, abs=1e-4)


def test_ssim_of_two_constant_images_is_the_luminance_term():
    # no variance: contrast-structure term is c2/c2 = 1, SSIM = (2ab + c1)/(a² + b² + c1)
    a, b, r = 1.0, 2.0, 1.0
    x, y = np.full((12, 12, 12), a), np.full((12, 12, 12), b)
    c1 = (0.01 * r) ** 2
    m = M.voxel_metrics(x, y, np.ones(x.shape, bool), data_range=r)
    assert m.ssim == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), abs=1e-6)


def test_psnr_mse_mae_nrmse_hand_values():
    target = np.zeros((12, 12, 12))
    mask = np.zeros(target.shape, bool)
    mask[1:11, 1:11, 1:11] = True
    target[mask] = np.linspace(1.0, 3.0, mask.sum())
    pred = target + 0.1 * mask
    m = M.voxel_metrics(pred, target, mask, data_range=2.0)
    t = target[mask]
    assert m.mse == pytest.approx(0.01)
    assert m.mae == pytest.approx(0.1)
    assert m.psnr == pytest.approx(10 * math.log10(4.0 / 0.01))
    assert m.nrmse == pytest.approx(0.1 / math.sqrt(np.mean(t**2)))
    assert m.n_voxels == 1000
    m_mean = M.voxel_metrics(pred, target, mask, nrmse_normalization="mean")
    m_mm = M.voxel_metrics(pred, target, mask, nrmse_normalization="min-max")
    assert m_mean.nrmse == pytest.approx(0.1 / 2.0)
    assert m_mm.nrmse == pytest.approx(0.1 / 2.0)
    # "target" data range = max - min of the target inside the mask
    assert m_mean.data_range == pytest.approx(2.0)


def test_identical_prediction_gives_perfect_scores_and_infinite_psnr(pair):
    _, target, mask = pair
    m = M.voxel_metrics(target, target, mask)
    assert m.ssim == pytest.approx(1.0, abs=1e-6)
    assert m.ssim_volume == pytest.approx(1.0, abs=1e-6)
    assert m.mae == 0.0 and m.mse == 0.0 and m.nrmse == 0.0
    assert m.psnr == math.inf
    assert M.metrics_row("s1", m)["psnr"] == math.inf


def test_voxels_outside_the_mask_do_not_count(pair):
    pred, target, mask = pair
    garbage = np.where(mask, pred, 50.0)
    a, b = M.voxel_metrics(pred, target, mask), M.voxel_metrics(garbage, target, mask)
    for field in ("ssim", "ssim_volume", "psnr", "mse", "mae", "nrmse", "data_range"):
        assert getattr(a, field) == pytest.approx(getattr(b, field), rel=1e-9)


def test_background_padding_inflates_only_the_global_ssim(pair):
    pred, target, mask = pair
    small = M.voxel_metrics(pred, target, mask)
    pad = ((10, 10), (10, 10), (10, 10))
    big = M.voxel_metrics(np.pad(pred * mask, pad), np.pad(target, pad), np.pad(mask, pad))
    assert big.ssim == pytest.approx(small.ssim, abs=1e-6)
    assert big.ssim_volume > small.ssim_volume + 0.01
    assert big.ssim_volume > big.ssim + 0.02


def test_minmax_space_metrics():
    rng = np.random.default_rng(0)
    mask = np.zeros((14, 14, 14), bool)
    mask[2:12, 2:12, 2:12] = True
    target = rng.uniform(0.8, 2.5, mask.shape) * mask
    perfect = minmax_normalize(target)
    m = M.minmax_space_metrics(perfect, target, mask)
    assert m.space == "minmax" and m.data_range == 1.0
    assert m.mae == 0.0 and m.psnr == math.inf
    off = M.minmax_space_metrics(perfect + 0.05 * mask, target, mask)
    assert off.mae == pytest.approx(0.05)
    assert off.psnr == pytest.approx(10 * math.log10(1.0 / 0.0025))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"data_range": "max"}, "data_range 'max' not allowed"),
        ({"data_range": -1.0}, "positive finite"),
        ({"nrmse_normalization": "l2"}, "nrmse_normalization 'l2' not allowed; use one of euclidean, mean, min-max"),
        ({"window": 10}, "odd"),
    ],
)
def test_bad_options_are_rejected_with_the_allowed_values(pair, kwargs, match):
    pred, target, mask = pair
    with pytest.raises(TausynthError, match=match):
        M.voxel_metrics(pred, target, mask, **kwargs)


def test_input_errors_name_the_subject(pair):
    pred, target, mask = pair
    with pytest.raises(TausynthError, match="subject s7: shapes differ"):
        M.voxel_metrics(pred[:-1], target, mask, subject="s7")
    with pytest.raises(TausynthError, match="subject s7: brain mask is empty"):
        M.voxel_metrics(pred, target, np.zeros_like(mask), subject="s7")
    with pytest.raises(TausynthError, match="subject s7: target is constant"):
        M.voxel_metrics(pred, np.ones_like(target), mask, subject="s7")
    bad = pred.copy()
    bad[mask.nonzero()[0][0], mask.nonzero()[1][0], mask.nonzero()[2][0]] = np.nan
    with pytest.raises(TausynthError, match="subject s7: prediction has 1 NaN"):
        M.voxel_metrics(bad, target, mask, subject="s7")
    with pytest.raises(TausynthError, match="at least 11 voxels"):
        M.voxel_metrics(pred[:8], target[:8], mask[:8])
