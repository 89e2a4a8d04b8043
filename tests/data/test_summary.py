import pandas as pd
import pytest

from tausynth.data import summary


@pytest.fixture
def subjects() -> pd.DataFrame:
    return pd.DataFrame({
        "subject_id": [f"sub-{i}" for i in range(6)],
        "session": ["", "", "", "", "", ""],
        "diagnosis": ["AD", "CN", "CN", "MCI", "AD", "CN"],
        "amyloid": ["A+", "A-", "A+", "A+", "A+", "A-"],
        "age": [70.0, 72.0, 74.0, 76.0, 80.0, 60.0],
        "sex": ["F", "M", "F", "F", "M", "M"],
        "braak": [6, 0, 2, 3, 5, 1],
        "stage_cont": [6.5, 0.2, 2.4, 3.1, 5.9, 1.5],
        "manufacturer": ["GE", "Siemens", "Siemens", "Philips", "GE", "Siemens"],
        "pet_metatemporal": [2.0, 1.1, 1.3, 1.5, 1.8, 1.2],
    })


def test_groups_are_ordered_cn_mci_ad_and_negative_first(subjects: pd.DataFrame) -> None:
    table = summary.cohort_table(subjects)
    assert list(table.index) == ["CN A-", "CN A+", "MCI A+", "AD A+", "all"]
    assert table.loc["CN A-", "N"] == 2 and table.loc["all", "N"] == 6
    assert table.loc["AD A+", "age"] == "75.0 ± 7.1"
    assert table.loc["all", "female %"] == 50


def test_stage_counts_cover_all_seven_stages(subjects: pd.DataFrame) -> None:
    counts = summary.stage_by_diagnosis(subjects)
    assert list(counts.columns) == ["0", "I", "II", "III", "IV", "V", "VI"]
    assert counts.to_numpy().sum() == len(subjects)
    assert counts.loc["AD A+", "V"] == 1 and counts.loc["AD A+", "VI"] == 1


def test_manufacturer_crosstab_has_margins(subjects: pd.DataFrame) -> None:
    tab = summary.manufacturer_crosstab(subjects)
    assert list(tab.columns) == ["CN", "MCI", "AD", "all"]
    assert tab.loc["all", "all"] == 6 and tab.loc["Siemens", "CN"] == 3


def test_stage_examples_span_the_range_and_match_scans(subjects: pd.DataFrame) -> None:
    picks = summary.pick_stage_examples(subjects, k=3)
    assert list(picks["stage_cont"]) == [0.2, 2.4, 6.5]
    scans = subjects.assign(session=float("nan"), t1=[f"t1-{i}" for i in range(6)]).iloc[::-1]
    matched = summary.match_scans(scans, picks)
    assert list(matched["subject_id"]) == list(picks["subject_id"])


def test_roi_by_group_formats_mean_and_sd(subjects: pd.DataFrame) -> None:
    table = summary.roi_by_group(subjects, ("metatemporal",))
    assert table.loc["AD A+ (2)", "metatemporal"] == "1.90 ± 0.14"
