"""Agreement statistics against textbook examples, and the edge cases of the issue."""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score

from tausynth.errors import TausynthError
from tausynth.evaluation import agreement as A

# Shrout & Fleiss (1979), Table 2: 6 targets rated by 4 judges
SHROUT_FLEISS = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]])


@pytest.mark.parametrize(("form", "published"), [("ICC(1,1)", 0.17), ("ICC(2,1)", 0.29), ("ICC(3,1)", 0.71)])
def test_icc_matches_shrout_and_fleiss_table_2(form, published):
    assert A.icc(SHROUT_FLEISS, form) == pytest.approx(published, abs=0.005)


def test_icc_exact_values_from_the_mean_squares():
    # Shrout & Fleiss Table 3 ANOVA, exact: BMS 1349/120 (11.24), WMS 451/72 (6.26), JMS 2339/72
    # (32.49), EMS 367/360 (1.02), n = 6, k = 4
    bms, wms, jms, ems, n, k = 1349 / 120, 451 / 72, 2339 / 72, 367 / 360, 6, 4
    assert A.icc(SHROUT_FLEISS, "ICC(1,1)") == pytest.approx((bms - wms) / (bms + 3 * wms), rel=1e-12)
    assert A.icc(SHROUT_FLEISS, "ICC(2,1)") == pytest.approx(
        (bms - ems) / (bms + (k - 1) * ems + k * (jms - ems) / n), rel=1e-12)
    assert A.icc(SHROUT_FLEISS, "ICC(3,1)") == pytest.approx((bms - ems) / (bms + 3 * ems), rel=1e-12)


def test_absolute_agreement_icc_penalises_an_offset_consistency_does_not():
    x = np.linspace(1.0, 2.5, 10)
    ratings = np.column_stack([x, x + 0.3])
    assert A.icc(ratings, "ICC(3,1)") == pytest.approx(1.0)
    assert A.icc(ratings, "ICC(2,1)") < 0.9
    assert math.isnan(A.icc(np.ones((5, 2))))
    with pytest.raises(TausynthError, match=re.escape("ICC form 'ICC(2,2)' not allowed; use one of ICC(1,1), ICC(2,1), ICC(3,1)")):
        A.icc(ratings, "ICC(2,2)")


def test_cohens_kappa_textbook_and_sklearn():
    # 50 items: yes/yes 20, yes/no 5, no/yes 10, no/no 15 -> p_o 0.70, p_e 0.50, kappa 0.40
    a = ["y"] * 25 + ["n"] * 25
    b = ["y"] * 20 + ["n"] * 5 + ["y"] * 10 + ["n"] * 15
    assert A.cohens_kappa(a, b) == pytest.approx(0.4, abs=1e-12)
    rng = np.random.default_rng(0)
    for _ in range(5):
        x, y = rng.integers(0, 3, 40), rng.integers(0, 3, 40)
        assert A.cohens_kappa(x, y) == pytest.approx(cohen_kappa_score(x, y), abs=1e-12)
    assert A.cohens_kappa([True] * 4, [True] * 4) == 1.0  # one class, perfect agreement


def test_bland_altman_hand_example():
    ba = A.bland_altman([1, 2, 3, 4], [1.1, 2.3, 2.8, 4.2])
    # differences 0.1, 0.3, -0.2, 0.2: mean 0.1, SD sqrt(0.14 / 3)
    sd = math.sqrt(0.14 / 3)
    assert ba.bias == pytest.approx(0.1)
    assert ba.sd_diff == pytest.approx(sd)
    assert (ba.loa_low, ba.loa_high) == pytest.approx((0.1 - 1.96 * sd, 0.1 + 1.96 * sd))
    assert ba.n == 4


def test_identical_values_agree_perfectly():
    real = np.array([1.05, 1.10, 1.31, 1.60, 2.20, 1.25])
    stats = A.agreement_stats(real, real)
    assert stats["pearson_r"] == pytest.approx(1.0)
    assert stats["icc"] == pytest.approx(1.0)
    assert stats["mae"] == 0.0 and stats["bias"] == 0.0 and stats["sd_diff"] == 0.0
    assert A.positivity_agreement(real, real)["kappa"] == 1.0


def test_constant_prediction_gives_nan_r_without_warnings_or_crash():
    real = [1.1, 1.3, 1.7, 2.0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = A.pearson(real, [1.4] * 4)
        stats = A.agreement_stats(real, [1.4] * 4)
    assert math.isnan(res.r) and res.note == "constant synthetic values"
    assert math.isnan(stats["pearson_r"]) and stats["pearson_note"] == "constant synthetic values"
    assert stats["mae"] == pytest.approx(np.mean(np.abs(np.array(real) - 1.4)))
    assert math.isnan(A.pearson([1, 2], [1, 2]).r)  # n < 3


def test_positivity_uses_a_strict_cut_and_counts_disagreements():
    real = [1.10, 1.27, 1.30, 1.80, 1.20]
    synth = [1.28, 1.20, 1.35, 1.60, 1.10]
    res = A.positivity_agreement(real, synth, cut_point=A.POSITIVITY_CUT)
    assert A.POSITIVITY_CUT == 1.27
    assert (res["n_pos_real"], res["n_pos_synthetic"], res["n_false_pos"], res["n_false_neg"]) == (2, 3, 1, 0)
    assert res["kappa"] == pytest.approx(cohen_kappa_score([0, 0, 1, 1, 0], [1, 0, 1, 1, 0]))


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(2)
    rows = []
    for i in range(18):
        dx = ("CN", "MCI", "AD")[i % 3]
        for region in ("metatemporal", "braak1"):
            real = rng.uniform(1.0, 2.4)
            rows.append({"subject_id": f"s{i}", "diagnosis": dx, "region": region, "real": real,
                         "synthetic": real + rng.normal(0.05, 0.1)})
    return pd.DataFrame(rows)


def test_agreement_table_overall_and_by_diagnosis():
    df = _frame()
    table = A.agreement_table(df, by="diagnosis")
    assert len(table) == 2 * 4
    assert list(table["group"][:4]) == ["all", "AD", "CN", "MCI"]
    row = table[(table["region"] == "braak1") & (table["group"] == "MCI")].iloc[0]
    sub = df[(df["region"] == "braak1") & (df["diagnosis"] == "MCI")]
    assert row["n"] == 6
    assert row["pearson_r"] == pytest.approx(np.corrcoef(sub["real"], sub["synthetic"])[0, 1])
    assert row["bias"] == pytest.approx((sub["synthetic"] - sub["real"]).mean())
    assert row["icc_form"] == "ICC(2,1)"
    pos = A.positivity_table(df)
    assert list(pos["group"]) == ["all", "AD", "CN", "MCI"] and pos["n"].tolist() == [18, 6, 6, 6]
    with pytest.raises(TausynthError, match="region 'braak6' has no values"):
        A.agreement_table(df, regions=["braak6"])
    with pytest.raises(TausynthError, match="column 'dx' not in the ROI table"):
        A.agreement_table(df, by="dx")
