"""Regional SUVR: phantom ground truth, hand-computed weighted means, GM restriction, error messages."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tausynth.errors import TausynthError
from tausynth.evaluation import roi as R


def _toy() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels: 1006 (entorhinal, 4 voxels), 2006 (8 voxels), 12 (putamen, 3 voxels); a GM map."""
    labels = np.zeros((6, 6, 6), np.int16)
    image = np.ones(labels.shape)
    gm = np.ones(labels.shape)
    labels[0, 0, :4] = 1006
    image[0, 0, :4] = 2.0
    labels[1, :2, :4] = 2006
    image[1, :2, :4] = 1.0
    image[1, 0, 0] = 5.0
    gm[1, 0, 0] = 0.2  # excluded by the GM >= 0.5 rule
    labels[2, 0, :3] = 12
    image[2, 0, :3] = [1.0, 2.0, 6.0]
    gm[2, 0, :3] = 0.1  # putamen is label-only: GM is ignored
    return image, labels, gm


def test_composite_mean_is_volume_weighted_and_gm_restricted():
    image, labels, gm = _toy()
    regions = {"braak1": (1006, 2006), "putamen": (12,)}
    masks = R.region_masks(labels, regions, gm)
    means = R.region_means(image, masks)
    # 4 voxels at 2.0 and 7 surviving voxels at 1.0: (8 + 7) / 11, not the mean of hemisphere means
    assert means["braak1"] == pytest.approx(15 / 11, abs=1e-12)
    assert means["putamen"] == pytest.approx(3.0, abs=1e-12)
    no_gm = R.region_means(image, R.region_masks(labels, regions))
    assert no_gm["braak1"] == pytest.approx((8 + 7 + 5) / 12, abs=1e-12)


def test_region_sets_are_fresh_editable_parameters():
    a = R.braak_regions()
    assert list(a) == list(R.BRAAK_REGIONS)
    assert a["braak1"] == (1006, 2006) and a["braak2"] == (17, 53)
    assert set(a["metatemporal"]) == {18, 54, 1006, 2006, 1007, 2007, 1009, 2009, 1015, 2015, 1016, 2016}
    assert set(a["braak34"]) == set(a["braak3"]) | set(a["braak4"])
    a["braak1"] = (1,)
    assert R.braak_regions()["braak1"] == (1006, 2006)
    assert set(R.off_target_regions()) == {"putamen", "pallidum", "caudate", "thalamus", "choroid"}
    with pytest.raises(TausynthError, match="unknown region.*'nope'"):
        R.braak_regions(("braak1", "nope"))


def test_missing_label_and_empty_region_name_subject_and_region():
    image, labels, gm = _toy()
    with pytest.raises(TausynthError, match=r"subject sub-07: region 'braak3': label\(s\) 1007, 1016 absent"):
        R.region_masks(labels, {"braak3": (1016, 1007)}, subject="sub-07")
    gm0 = gm.copy()
    gm0[labels == 1006] = 0.0
    gm0[labels == 2006] = 0.0
    with pytest.raises(TausynthError, match=r"subject sub-07: region 'braak1' is empty \(no voxel with GM >= 0.5"):
        R.region_masks(labels, {"braak1": (1006, 2006)}, gm0, subject="sub-07")
    # "ignore" measures the IDs present
    masks = R.region_masks(labels, {"erc": (1006, 9999)}, missing="ignore")
    assert masks["erc"].sum() == 4
    with pytest.raises(TausynthError, match="missing='skip' not allowed; use one of error, ignore"):
        R.region_masks(labels, {"erc": (1006,)}, missing="skip")


def test_subject_rows_and_frame():
    image, labels, gm = _toy()
    regions = {"braak1": (1006, 2006), "putamen": (12,)}
    rows = R.subject_roi_rows("s1", image, image * 1.1, labels, regions, gm, extra={"diagnosis": "AD"})
    df = R.roi_frame(rows)
    assert list(df["region"]) == ["braak1", "putamen"]
    assert (df["diagnosis"] == "AD").all()
    np.testing.assert_allclose(df["difference"], 0.1 * df["real"], rtol=1e-12)
    assert list(df["n_voxels"]) == [11, 3]
    with pytest.raises(TausynthError, match="subject s1: synthetic PET shape"):
        R.subject_roi_rows("s1", image, image[:-1], labels, regions)


def test_off_target_report_and_spill_in():
    rng = np.random.default_rng(0)
    rows = []
    for i in range(12):
        cp = rng.uniform(1.0, 2.0)
        for region, real in (("choroid", cp), ("braak2", 1.0 + 0.3 * cp), ("putamen", rng.uniform(1.2, 1.5))):
            rows.append({"subject_id": f"s{i}", "diagnosis": "CN" if i < 6 else "AD", "region": region,
                         "real": real, "synthetic": 1.4})  # the model predicts a constant
    df = R.roi_frame(rows)
    report = R.off_target_report(df)
    assert set(report["region"]) == {"putamen", "choroid"}
    assert report["off_target"].all()
    assert report["pearson_r"].isna().all()  # constant synthetic values: NaN, no crash
    spill = R.spill_in_correlation(df)
    assert spill["r_real"] == pytest.approx(1.0)
    assert np.isnan(spill["r_synthetic"])
    with pytest.raises(TausynthError, match="none of the off-target regions"):
        R.off_target_report(df[df["region"] == "braak2"])


def _subject_gm(row: pd.Series, index: int, seed: int) -> np.ndarray:
    """Re-run the generator's anatomy stage to get the subject's GM fraction (not exposed publicly)."""
    import tausynth.data.synthetic as syn

    p = syn.SubjectParams.from_any(row)
    rng = np.random.default_rng(seed * 100003 + index)
    r_tau, r_anat, _, _ = rng.spawn(4)
    tau, anat = syn._draw_tau(r_tau), syn._draw_anat(r_anat)
    return syn._subject_anatomy(syn._grid(), p, anat, syn._regional_model(p, tau, anat), r_anat).gm


@pytest.mark.slow
def test_roi_means_reproduce_the_phantom_ground_truth_table():
    import tausynth.data.synthetic as syn

    seed = 5
    cohort = syn.sample_cohort(8, seed)
    for index in (0, 7):
        row = cohort.iloc[index]
        subject = syn.simulate_subject(row, index, seed, resolution=2)
        img = subject[2]
        gm = _subject_gm(row, index, seed)
        regions = {
            **R.braak_regions(("braak1", "braak34", "braak56", "metatemporal", "inferiortemporal", "hippocampus")),
            **R.off_target_regions(("putamen", "choroid")),
        }
        masks = R.region_masks(img.labels, regions, gm, label_only=syn.LABEL_ONLY_ROIS, subject=row["subject_id"])
        means = R.region_means(img.pet_gt, masks)
        assert set(means) == set(syn.ROI_TABLE)
        for name in syn.ROI_TABLE:
            assert means[name] == pytest.approx(subject.roi[f"gt_{name}"], abs=1e-6), name
