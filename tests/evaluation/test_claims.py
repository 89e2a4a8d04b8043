"""Claim verdicts computed on synthetic metric tables: reproduced, not reproduced, inconclusive."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tausynth.errors import TausynthError
from tausynth.evaluation import claims as C


def _metrics(effects: dict[tuple[str, str, str], tuple[float, float]], n: int = 20, seeds=(1, 2),
             noise: float = 0.002, seed: int = 0) -> pd.DataFrame:
    """Metric table: per (model, perceptual, normalization) a multiplicative effect on (ssim, psnr).

    Subjects share a baseline level (0.80 SSIM, 24 dB PSNR, varying by subject) so that variants
    are paired; ``noise`` is per-row relative noise.
    """
    rng = np.random.default_rng(seed)
    base_ssim = rng.uniform(0.75, 0.85, n)
    base_psnr = rng.uniform(22.0, 26.0, n)
    rows = []
    for (model, loss, norm), (e_ssim, e_psnr) in effects.items():
        for s in seeds:
            for i in range(n):
                rows.append({
                    "model": model, "perceptual": loss, "normalization": norm, "seed": s, "subject_id": f"s{i:02d}",
                    "ssim": base_ssim[i] * (1 + e_ssim) * (1 + rng.normal(0, noise)),
                    "psnr": base_psnr[i] * (1 + e_psnr) * (1 + rng.normal(0, noise)),
                })
    return pd.DataFrame(rows)


def _family(cyclic: tuple[float, float], n: int = 20, noise: float = 0.002) -> pd.DataFrame:
    return _metrics({("unet", "2.5d", "standardize"): (0.0, 0.0), ("unet", "3d", "standardize"): (0.0, 0.0),
                     ("unet", "none", "standardize"): (-0.02, -0.02),
                     ("unet", "cyclic", "standardize"): cyclic}, n=n, noise=noise)


def test_claims_are_data():
    assert [c.number for c in C.CLAIMS] == [1, 2, 3, 4]
    assert "2 %" in C.CLAIMS[1].text and "3 %" in C.CLAIMS[1].text


def test_claim1_all_three_outcomes():
    rep = C.claim1(_family((0.01, 0.01)))
    assert rep.outcome == "reproduced"
    assert len(rep.comparisons) == 4 and (rep.comparisons["status"] == "supports").all()
    worse = C.claim1(_family((-0.01, 0.01)))
    assert worse.outcome == "not reproduced" and "ssim" in worse.reason
    tiny = C.claim1(_family((0.01, 0.01), n=5))  # exact Wilcoxon cannot reach p < 0.05 with 5 subjects
    assert tiny.outcome == "inconclusive" and "too few subjects" in tiny.reason
    null = C.claim1(_family((0.0, 0.0), noise=0.01))
    assert null.outcome == "inconclusive"
    missing = C.claim1(_family((0.01, 0.01)).query("perceptual != '3d'"))
    assert missing.outcome == "inconclusive" and "missing runs" in missing.reason and "3d" in missing.reason
    assert C.claim1(_family((0.01, 0.01)).query("perceptual != 'cyclic'")).outcome == "inconclusive"


def test_claim1_verdict_text_states_claim_and_criterion():
    v = C.claim1(_family((0.01, 0.01)))
    text = str(v)
    assert text.startswith("Claim 1: For U-Net-family models")
    assert "Verdict: reproduced" in text and "Wilcoxon" in text and "p < 0.05" in text
    table = C.verdict_table([v])
    assert table.loc[0, "verdict"] == "reproduced" and table.loc[0, "claim"] == 1


def _gans(ssim_gain: float, psnr_gain: float, noise: float = 0.002, n: int = 20) -> pd.DataFrame:
    effects = {}
    for m in ("pix2pix", "cyclegan"):
        effects[(m, "none", "standardize")] = (0.0, 0.0)
        effects[(m, "cyclic", "standardize")] = (ssim_gain, psnr_gain)
    return _metrics(effects, n=n, noise=noise)


def test_claim2_uses_the_stated_sizes():
    assert C.claim2(_gans(0.04, 0.05)).outcome == "reproduced"
    # significant but smaller than claimed, and the CI excludes 2 % / 3 %: not reproduced
    small = C.claim2(_gans(0.005, 0.005))
    assert small.outcome == "not reproduced"
    assert set(small.comparisons["status"]) == {"contradicts"}
    assert (small.comparisons["ci_high"] < small.comparisons["min_relative"]).all()
    # about the claimed size with a lot of noise: neither shown nor excluded
    noisy = C.claim2(_gans(0.025, 0.035, noise=0.06))
    assert noisy.outcome == "inconclusive"
    one_gan = C.claim2(_gans(0.04, 0.05).query("model == 'pix2pix'"))
    assert one_gan.outcome == "inconclusive" and "cyclegan" in one_gan.reason
    assert "SSIM ≥ 2 %" in one_gan.criterion and "PSNR ≥ 3 %" in one_gan.criterion


def test_claim3_standardization_against_minmax():
    def table(effect):
        return _metrics({("unet", "cyclic", "minmax"): (0.0, 0.0), ("unet", "cyclic", "standardize"): effect})

    assert C.claim3(table((0.01, 0.02))).outcome == "reproduced"
    assert C.claim3(table((-0.01, -0.02))).outcome == "not reproduced"
    assert C.claim3(table((0.01, 0.02)).query("normalization == 'standardize'")).outcome == "inconclusive"
    with pytest.raises(TausynthError, match="no 'normalization' column"):
        C.claim3(table((0.0, 0.0)).drop(columns="normalization"))


def _roi(cyclic_error: float, n: int = 16) -> pd.DataFrame:
    rng = np.random.default_rng(4)
    real = rng.uniform(1.0, 2.5, (n, 4))
    rows = []
    for loss, err in (("none", 0.10), ("cyclic", cyclic_error)):
        for i in range(n):
            for k, region in enumerate(C.AD_REGIONS):
                e = err * (1 + 0.1 * rng.standard_normal())
                rows.append({"model": "unet", "perceptual": loss, "normalization": "standardize", "seed": 1,
                             "subject_id": f"s{i}", "diagnosis": "AD", "region": region, "real": real[i, k],
                             "synthetic": real[i, k] - e})
    return pd.DataFrame(rows)


def test_claim4_regional_error():
    wide = C.roi_error_table(_roi(0.05))
    assert {f"abs_error_{r}" for r in C.AD_REGIONS} <= set(wide.columns)
    assert wide.loc[wide["perceptual"] == "cyclic", "abs_error_metatemporal"].mean() == pytest.approx(0.05, rel=0.1)
    assert C.claim4(_roi(0.05)).outcome == "reproduced"
    assert C.claim4(_roi(0.15)).outcome == "not reproduced"
    assert C.claim4(_roi(0.05, n=4)).outcome == "inconclusive"  # too few subjects
    assert C.claim4(_roi(0.05).query("perceptual == 'cyclic'")).outcome == "inconclusive"
    with pytest.raises(TausynthError, match="no values for region"):
        C.claim4(_roi(0.05), regions=("braak6",))


def test_judge_rule_on_hand_made_statuses():
    def comps(*statuses):
        return pd.DataFrame({"status": list(statuses), "metric": "ssim", "variant": "cyclic", "baseline": "none"})

    assert C.judge(comps("supports", "supports"))[0] == "reproduced"
    assert C.judge(comps("supports", "contradicts"))[0] == "not reproduced"
    assert C.judge(comps("supports", "neutral"))[0] == "inconclusive"
    assert C.judge(comps("supports", "insufficient"))[0] == "inconclusive"
    assert C.judge(comps("contradicts", "missing"))[0] == "not reproduced"
    assert C.judge(comps("supports", "missing"))[0] == "inconclusive"
    assert C.judge(pd.DataFrame())[0] == "inconclusive"


def test_compare_pairs_only_shared_seed_averaged_subjects():
    from scipy import stats

    rows = [{"model": "unet", "perceptual": loss, "seed": seed, "subject_id": f"s{i}",
             "ssim": 0.8 + 0.01 * i + (0.01 * (i + 1) if loss == "cyclic" else 0.0) + shift}
            for seed, shift in ((1, 0.0), (2, 0.02)) for i in range(8) for loss in ("none", "cyclic")]
    df = pd.DataFrame(rows)
    df = df[~((df["perceptual"] == "cyclic") & (df["subject_id"] == "s0"))]  # s0 lacks the variant
    out = C.compare(df, "perceptual", "none", "cyclic", ["ssim"], by=["model"])
    assert len(out) == 1
    row = out.iloc[0]
    assert row["variant"] == "cyclic" and row["n"] == 7
    assert row["mean_diff"] == pytest.approx(np.mean(0.01 * np.arange(2, 9)))
    assert row["p_value"] == pytest.approx(stats.wilcoxon(0.01 * np.arange(2, 9)).pvalue)
