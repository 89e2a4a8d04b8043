"""Imaging-based Braak staging: late-to-early rule, stage groups, confusion matrix."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tausynth.errors import TausynthError
from tausynth.evaluation import staging as S


def test_staging_proceeds_from_late_to_early():
    th = S.StagingThresholds()
    assert th.regions == ("braak1", "braak34", "braak56") and th.thresholds == (1.13, 1.27, 1.20)
    assert S.imaging_stage({"braak1": 1.0, "braak34": 1.1, "braak56": 1.1}) == 0
    assert S.imaging_stage({"braak1": 1.14, "braak34": 1.1, "braak56": 1.1}) == 1
    assert S.imaging_stage({"braak1": 1.5, "braak34": 1.28, "braak56": 1.1}) == 2
    # V/VI positive wins even when the earlier composites are negative (hierarchical, late first)
    assert S.imaging_stage({"braak1": 1.0, "braak34": 1.0, "braak56": 1.3}) == 3
    # "greater than": a value on the threshold is negative
    assert S.imaging_stage({"braak1": 1.13, "braak34": 1.27, "braak56": 1.20}) == 0


def test_phantom_stage_staircase_is_staged_correctly():
    # the synthetic cohort's ground-truth means (Braak I, III/IV, V/VI) at stages 0, I, II, IV, V, VI
    staircase = {0: (1.04, 1.13, 1.12), 1: (1.20, 1.14, 1.13), 2: (1.49, 1.15, 1.12),
                 4: (1.92, 1.59, 1.11), 5: (2.06, 2.04, 1.34), 6: (2.19, 2.18, 1.68)}
    for stage, (b1, b34, b56) in staircase.items():
        got = S.imaging_stage({"braak1": b1, "braak34": b34, "braak56": b56})
        assert got == S.braak_group(stage), stage


def test_braak_group_mapping():
    assert [S.braak_group(s) for s in range(7)] == [0, 1, 1, 2, 2, 3, 3]
    np.testing.assert_array_equal(S.braak_group([0.5, 2.9, 6.99]), [0, 1, 3])
    with pytest.raises(TausynthError, match="Braak stage must lie in"):
        S.braak_group(7)


def test_custom_thresholds_and_validation():
    th = S.StagingThresholds(regions=("erc", "b34", "b56"), thresholds=(1.2, 1.4, 1.8))
    assert S.imaging_stage({"erc": 1.3, "b34": 1.3, "b56": 1.3}, th) == 1
    with pytest.raises(TausynthError, match="staging needs region"):
        S.imaging_stage({"braak1": 1.3}, th)
    with pytest.raises(TausynthError, match="3 regions and 3 thresholds"):
        S.StagingThresholds(thresholds=(1.1, 1.2))


def test_thresholds_from_controls_are_mean_plus_two_sd():
    controls = pd.DataFrame({"braak1": [1.0, 1.1, 1.2], "braak34": [1.1, 1.1, 1.1], "braak56": [1.0, 1.2, 1.1]})
    th = S.StagingThresholds.from_controls(controls)
    assert th.thresholds == pytest.approx((1.1 + 2 * 0.1, 1.1, 1.1 + 2 * 0.1))


def _long(values: dict[str, tuple[float, float, float]], column: str) -> pd.DataFrame:
    rows = []
    for sid, vals in values.items():
        for region, v in zip(("braak1", "braak34", "braak56"), vals, strict=True):
            rows.append({"subject_id": sid, "region": region, column: v})
    return pd.DataFrame(rows)


def test_stage_frame_and_confusion_matrix():
    real = _long({"a": (1.0, 1.0, 1.0), "b": (1.5, 1.0, 1.0), "c": (1.6, 1.5, 1.0), "d": (2.0, 2.0, 1.5)}, "real")
    real["synthetic"] = [1.0, 1.0, 1.0, 1.2, 1.0, 1.0, 1.6, 1.5, 1.0, 1.6, 1.5, 1.0]
    r, s = S.stage_frame(real, "real"), S.stage_frame(real, "synthetic")
    assert r.to_dict() == {"a": 0, "b": 1, "c": 2, "d": 3}
    assert s.to_dict() == {"a": 0, "b": 1, "c": 2, "d": 2}
    cm = S.confusion_matrix(r, s)
    assert list(cm.index) == list(S.STAGE_LABELS) == list(cm.columns)
    assert int(cm.to_numpy().sum()) == 4 and int(np.trace(cm.to_numpy())) == 3
    assert cm.loc["V-VI", "III-IV"] == 1
    identity = S.confusion_matrix(r, r)
    assert (identity.to_numpy() == np.diag(np.diag(identity.to_numpy()))).all()
    with pytest.raises(TausynthError, match="ROI table has no values for staging region"):
        S.stage_frame(real[real["region"] != "braak56"], "real")
