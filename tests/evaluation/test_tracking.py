"""Per-run tracking verdicts: the rule, the staging κ and the sentences that name the bound."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from tausynth.evaluation import tracking as T


def _agreement(run: str, r: float, p: float, ad: float, cn: float) -> pd.DataFrame:
    return pd.DataFrame({"run": [run] * 3, "region": ["metatemporal"] * 3, "group": ["all", "AD", "CN"],
                         "n": [30, 8, 12], "pearson_r": [r, 0.1, 0.1], "pearson_p": [p, 0.5, 0.5],
                         "real_mean": [1.5, 2.0, 1.2], "synthetic_mean": [1.4, ad, cn]})


@pytest.mark.parametrize(
    ("r", "p", "ad", "cn", "verdict"),
    [
        (0.6, 0.001, 1.5, 1.2, "tracks"),
        (0.6, 0.001, 1.1, 1.2, "does not track"),  # correlated, but AD below CN: not disease tracking
        (0.3, 0.20, 1.5, 1.2, "does not track"),  # not significant
        (-0.55, 0.01, 1.1, 1.2, "anti-correlated"),
        (math.nan, math.nan, 1.4, 1.4, "does not track"),  # a constant prediction (the mean image)
    ],
)
def test_verdict_rule(r, p, ad, cn, verdict):
    assert T.tracking_table(_agreement("x", r, p, ad, cn)).loc[0, "verdict"] == verdict


def test_staging_kappa_uses_the_true_stage_and_linear_weights():
    staging = pd.DataFrame({"run": ["x"] * 4, "subject_id": list("abcd"), "stage_real": [0, 0, 0, 0],
                            "stage_synthetic": [0, 1, 2, 3], "stage_true": [0, 1, 3, 3]})
    table = T.tracking_table(_agreement("x", 0.6, 0.01, 1.5, 1.2), staging)
    # off by one stage on one subject: linear weights give partial credit (unweighted κ would be 0.67)
    # weighted disagreement observed 1/12, expected 11/24 (categories 0-3): κ = 1 - 2/11
    assert table.loc[0, "stage_kappa"] == pytest.approx(9 / 11, abs=1e-9)
    no_spread = staging.assign(stage_true=0, stage_synthetic=0)
    assert math.isnan(T.tracking_table(_agreement("x", 0.6, 0.01, 1.5, 1.2), no_spread).loc[0, "stage_kappa"])


def test_sentences_name_the_regional_regression_bound():
    agreement = pd.concat([_agreement("unet", -0.5, 0.01, 1.1, 1.2), _agreement(T.BOUND_RUN, 0.62, 1e-6, 1.7, 1.3)])
    lines = T.tracking_sentences(T.tracking_table(agreement))
    unet = next(line for line in lines if line.startswith("`unet`"))
    assert "anti-correlated" in unet and "regional-regression bound from the T1 alone: r = 0.62" in unet
    assert "AD 1.10 vs CN 1.20" in unet
    assert T.tracking_sentences(T.tracking_table(agreement), runs=["unet"]) == [unet]
    assert T.tracking_table(pd.DataFrame()).empty


def test_variant_tracking_spreads_seeds_and_sets_the_bar_from_the_bound():
    agreement = pd.concat([_agreement("u-s1", 0.62, 0.001, 1.5, 1.2), _agreement("u-s2", 0.48, 0.001, 1.5, 1.2),
                           _agreement("v-s1", 0.20, 0.1, 1.5, 1.2), _agreement(T.BOUND_RUN, 0.60, 1e-6, 1.7, 1.3)])
    runs = pd.DataFrame({"run": ["u-s1", "u-s2", "v-s1"], "model": ["unet", "unet", "unetr"],
                         "perceptual": ["cyclic"] * 3, "normalization": ["standardize"] * 3, "seed": [1, 2, 1]})
    out = T.variant_tracking(T.tracking_table(agreement), runs).set_index("model")
    assert out.loc["unet", "n_seeds"] == 2 and out.loc["unet", "r_mean"] == pytest.approx(0.55)
    assert out.loc["unet", "r_seeds"] == "s1: 0.62, s2: 0.48" and out.loc["unet", "tracks"] == 2
    # bar = min(0.5, 0.60 - 0.15) = 0.45
    assert out.loc["unet", "bar"] == pytest.approx(0.45) and out.loc["unet", "meets_bar"]
    assert not out.loc["unetr", "meets_bar"] and math.isnan(out.loc["unetr", "r_sd"])
    without_bound = T.variant_tracking(T.tracking_table(agreement[agreement["run"] != T.BOUND_RUN]), runs)
    assert set(without_bound["bar"]) == {T.TRACKING_FLOOR}


def test_min_max_variants_are_flagged_as_oracles_never_meeting_the_bar():
    agreement = pd.concat([_agreement("m-s1", 0.96, 1e-9, 2.0, 1.2), _agreement(T.BOUND_RUN, 0.60, 1e-6, 1.7, 1.3)])
    runs = pd.DataFrame({"run": ["m-s1"], "model": ["unet"], "perceptual": ["cyclic"], "normalization": ["minmax"],
                         "seed": [1]})
    row = T.variant_tracking(T.tracking_table(agreement), runs).iloc[0]
    assert row["oracle"] and not row["meets_bar"]
