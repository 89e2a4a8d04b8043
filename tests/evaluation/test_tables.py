"""Result tables: mean ± SD over seed-averaged subjects, seed spread, paired Wilcoxon."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tausynth.evaluation import tables as T


def _table() -> pd.DataFrame:
    rows = []
    for seed, shift in ((1, 0.0), (2, 0.02)):
        for i in range(8):
            for loss, gain in (("none", 0.0), ("cyclic", 0.01 * (i + 1))):
                rows.append({"model": "unet", "perceptual": loss, "seed": seed, "subject_id": f"s{i}",
                             "ssim": 0.8 + 0.01 * i + gain + shift})
    return pd.DataFrame(rows)


def test_format_mean_sd():
    assert T.format_mean_sd(0.81234, 0.0456) == "0.812 ± 0.046"
    assert T.format_mean_sd(math.inf, math.nan) == "inf"
    assert T.format_mean_sd(1.0, math.nan, 2) == "1.00"


def test_summary_averages_seeds_per_subject_first():
    df = _table()
    table = T.summary_table(df, ["model", "perceptual"], ["ssim"])
    row = table[table["perceptual"] == "none"].iloc[0]
    per_subject = 0.8 + 0.01 * np.arange(8) + 0.01  # mean over the two seeds
    assert row["n_subjects"] == 8 and row["n_seeds"] == 2
    assert row["ssim_mean"] == pytest.approx(per_subject.mean())
    assert row["ssim_sd"] == pytest.approx(per_subject.std(ddof=1))
    assert row["ssim"] == T.format_mean_sd(per_subject.mean(), per_subject.std(ddof=1))


def test_seed_spread():
    spread = T.seed_spread(_table(), ["perceptual"], ["ssim"])
    row = spread[spread["perceptual"] == "none"].iloc[0]
    base = 0.8 + 0.01 * np.arange(8).mean()
    assert row["n_seeds"] == 2
    assert (row["ssim_seed_min"], row["ssim_seed_max"]) == pytest.approx((base, base + 0.02))
    assert row["ssim_seed_sd"] == pytest.approx(np.std([base, base + 0.02], ddof=1))


def test_paired_test_matches_scipy_and_handles_degenerate_input():
    rng = np.random.default_rng(0)
    a = rng.normal(0.8, 0.05, 12)
    b = a + rng.normal(0.01, 0.02, 12)
    res = T.paired_test(a, b)
    assert res["p_value"] == pytest.approx(stats.wilcoxon(b - a).pvalue)
    assert res["mean_diff"] == pytest.approx(np.mean(b - a))
    assert res["relative_diff"] == pytest.approx(np.mean(b - a) / np.mean(a))
    assert res["min_p"] == pytest.approx(2.0 ** -11)
    same = T.paired_test(a, a)
    assert same["p_value"] == 1.0 and same["mean_diff"] == 0.0
    inf = T.paired_test([10.0, 20.0, math.inf], [11.0, 21.0, math.inf])
    assert inf["n"] == 2 and inf["n_dropped"] == 1
    assert math.isnan(T.paired_test([], [])["p_value"])


def test_bootstrap_ci_is_deterministic_and_brackets_the_estimate():
    rng = np.random.default_rng(1)
    a = rng.normal(10, 1, 30)
    b = a * 1.05
    lo, hi = T.bootstrap_ci(a, b, "relative")
    assert lo < 0.05 + 1e-9 and hi > 0.05 - 1e-9 and hi - lo < 1e-9 + 0.01
    assert T.bootstrap_ci(a, b, "relative") == (lo, hi)
    dlo, dhi = T.bootstrap_ci(a, a + rng.normal(0.5, 0.2, 30), "difference")
    assert dlo < 0.5 < dhi


def test_rank_subjects():
    df = pd.DataFrame({"subject_id": ["a", "b", "c", "a", "b", "c"], "mae": [0.1, 0.3, 0.2, 0.1, 0.1, 0.2],
                       "seed": [1, 1, 1, 2, 2, 2]})
    assert T.rank_subjects(df, "mae", k=1, higher_is_better=False) == (["a"], ["b"])
    best, worst = T.rank_subjects(df, "mae", k=2, higher_is_better=True)
    assert best == ["b", "c"] and worst == ["a", "b"]  # ties broken by subject id
