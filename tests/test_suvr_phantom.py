"""Standardization checks on the synthetic cohort (in memory, 4 mm).

The synthetic cohort knows the true manufacturer distortion (``pet`` vs the undistorted ``pet_gt``),
so the checks measure how much of it by-manufacturer standardization removes:

* travelling subjects (the same people scanned on all three manufacturers; the statistics are fitted
  on these scans, so every manufacturer sees the same case mix by construction);
* a stratified cohort (same case mix per manufacturer, N = 120; all subjects are the fitting set);
* a confounded cohort (AD enriched on Philips): standardization then removes real disease signal.

"Error" = meta-temporal SUVR of the scan (observed, or standardized and inverted to the Siemens
scale) minus the meta-temporal SUVR of its ground truth, both measured on the 4 mm label map.

The three cohorts share one seed, so they share subjects: each (subject, manufacturer) scan is
simulated once (about 200 scans, ~0.45 s of CPU each).

Seed 7 is the seed of the reference implementation's cohort. The travelling and
confounded checks hold for other seeds too (0, 1 checked); the stratified "SD after <= 0.02" check
does not (0.032 and 0.043 for seeds 0 and 1, 0.014 here): with ~24 Philips subjects, mu_m and
sigma_m carry case-mix sampling noise (who happened to be scanned there) of that size.
"""

from __future__ import annotations

import numpy as np
import pytest

from tausynth.data.atlas import roi_sets
from tausynth.data.synthetic import MANUFACTURERS, sample_cohort
from tausynth.harmonization import (
    Scan,
    fit_on_scans,
    manufacturer_error_summary,
    roi_table,
    simulate_scans,
    travelling_comparison,
)

pytestmark = pytest.mark.slow

SEED = 7
N_COHORT = 120
N_TRAVELLING = 20
SD_ROW = "between-manufacturer SD"


@pytest.fixture(scope="module")
def metatemporal() -> tuple[int, ...]:
    return roi_sets()["metatemporal"]


@pytest.fixture(scope="module")
def cache() -> dict:
    return {}


@pytest.fixture(scope="module")
def stratified(cache: dict) -> list[Scan]:
    return simulate_scans(sample_cohort(N_COHORT, SEED), SEED, cache=cache)


@pytest.fixture(scope="module")
def travelling(stratified: list[Scan], cache: dict) -> list[Scan]:
    cohort = sample_cohort(N_COHORT, SEED)
    requests = [(i, m) for i in range(N_TRAVELLING) for m in MANUFACTURERS]
    return simulate_scans(cohort, SEED, requests, cache=cache)


@pytest.fixture(scope="module")
def confounded(stratified: list[Scan], cache: dict) -> list[Scan]:
    return simulate_scans(sample_cohort(N_COHORT, SEED, confound=True), SEED, cache=cache)


def test_travelling_subjects_bias_and_voxel_mae(travelling: list[Scan], metatemporal: tuple[int, ...]) -> None:
    assert len({s.subject_id for s in travelling}) >= 20
    assert {s.manufacturer for s in travelling} == set(MANUFACTURERS)
    std = fit_on_scans(travelling, reference="Siemens")
    table = travelling_comparison(travelling, std, metatemporal, reference="Siemens")
    means = table.groupby("manufacturer")[["bias_raw", "bias_std", "mae_raw", "mae_std"]].mean()
    assert set(means.index) == {"GE", "Philips"}
    # the phantom's distortion: GE reads low, Philips high (by design: -0.088 / +0.047)
    assert means.loc["GE", "bias_raw"] < -0.05 and means.loc["Philips", "bias_raw"] > 0.02
    for man, row in means.iterrows():
        assert abs(row["bias_std"]) <= 0.03, (man, row.to_dict())
        assert abs(row["bias_std"]) <= 0.40 * abs(row["bias_raw"]), (man, row.to_dict())
        assert row["mae_std"] <= 0.50 * row["mae_raw"], (man, row.to_dict())


def test_stratified_cohort_between_manufacturer_spread(stratified: list[Scan], metatemporal: tuple[int, ...]) -> None:
    assert len(stratified) >= 120
    std = fit_on_scans(stratified, reference="Siemens")
    summary = manufacturer_error_summary(roi_table(stratified, std, metatemporal))
    assert summary.loc[SD_ROW, "error_raw"] >= 0.04, summary
    assert summary.loc[SD_ROW, "error_std"] <= 0.02, summary
    # Siemens is the reference scale and undistorted: its error is noise only
    assert abs(summary.loc["Siemens", "error_raw"]) < 0.02


def test_standardized_suvr_keeps_the_tau_burden_minmax_does_not(
    stratified: list[Scan], metatemporal: tuple[int, ...]
) -> None:
    std = fit_on_scans(stratified, reference="Siemens")
    table = roi_table(stratified, std, metatemporal)
    r_std = np.corrcoef(table["truth"], table["standardized"])[0, 1]
    r_minmax = np.corrcoef(table["truth"], table["minmax"])[0, 1]
    r_oracle = np.corrcoef(table["truth"], table["oracle_suvr"])[0, 1]
    assert r_std > 0.98
    assert r_minmax < r_std - 0.2  # min-max rescales each subject by its own extreme voxels
    assert r_oracle > 0.95  # ... which only the true PET's range (an oracle) can undo


def test_confounded_cohort_philips_error_changes_sign(confounded: list[Scan], metatemporal: tuple[int, ...]) -> None:
    by_dx = {(s.manufacturer, s.diagnosis) for s in confounded}
    assert ("Philips", "AD") in by_dx
    share_ad = {
        m: np.mean([s.diagnosis == "AD" for s in confounded if s.manufacturer == m]) for m in MANUFACTURERS
    }
    assert share_ad["Philips"] > 2 * share_ad["Siemens"]
    std = fit_on_scans(confounded, reference="Siemens")
    summary = manufacturer_error_summary(roi_table(confounded, std, metatemporal))
    before, after = summary.loc["Philips", "error_raw"], summary.loc["Philips", "error_std"]
    assert before > 0 and after < 0, summary
    assert np.sign(before) != np.sign(after)
