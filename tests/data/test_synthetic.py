"""Tests of the synthetic cohort generator: its ground-truth checks."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tausynth.cli import main as cli_main
from tausynth.data import atlas
from tausynth.data import synthetic as syn
from tausynth.errors import TausynthError
from tausynth.io import load_nifti

SEED = 7


def _params(**kw) -> syn.SubjectParams:
    base = dict(subject_id="sub-0000", diagnosis="AD", amyloid="A+", age=74.0, sex="F",
                stage_cont=4.5, braak=4, manufacturer="Siemens", split="train")
    base.update(kw)
    return syn.SubjectParams(**base)


@pytest.fixture(scope="module")
def subject() -> syn.SyntheticSubject:
    return syn.simulate_subject(_params(), 3, SEED)


# ---------------------------------------------------------------------------------------------
# cohort sampling
# ---------------------------------------------------------------------------------------------


def test_sample_cohort_columns_and_values():
    df = syn.sample_cohort(40, SEED)
    assert list(df.columns) == ["subject_id", "diagnosis", "amyloid", "age", "sex", "stage_cont", "braak",
                                "manufacturer", "split"]
    assert df["subject_id"].tolist() == [f"sub-{i:04d}" for i in range(40)]
    assert set(df["diagnosis"]) <= {"CN", "MCI", "AD"} and set(df["amyloid"]) <= {"A+", "A-"}
    assert set(df["sex"]) <= {"F", "M"} and set(df["manufacturer"]) <= set(syn.MANUFACTURERS)
    assert df["age"].between(55, 92).all()
    assert (df["braak"] == np.floor(df["stage_cont"])).all() and df["stage_cont"].between(0, 7).all()
    # no Braak V–VI among amyloid-negative subjects
    assert (df.loc[df["amyloid"] == "A-", "braak"] <= 4).all()


def test_sample_cohort_is_deterministic_and_seed_dependent():
    pd.testing.assert_frame_equal(syn.sample_cohort(30, 3), syn.sample_cohort(30, 3))
    assert not syn.sample_cohort(30, 3).equals(syn.sample_cohort(30, 4))
    # demographics of subject i do not depend on the cohort size
    cols = ["diagnosis", "amyloid", "age", "sex", "stage_cont"]
    pd.testing.assert_frame_equal(syn.sample_cohort(10, 3)[cols], syn.sample_cohort(30, 3)[cols].iloc[:10])


def test_sample_cohort_distribution_matches_the_design():
    df = syn.sample_cohort(3000, 11)
    share = df["diagnosis"].value_counts(normalize=True)
    assert abs(share["CN"] - 0.40) < 0.03 and abs(share["AD"] - 0.25) < 0.03
    pos = df.groupby("diagnosis")["amyloid"].apply(lambda a: (a == "A+").mean())
    assert abs(pos["CN"] - 0.30) < 0.05 and abs(pos["AD"] - 0.90) < 0.04
    ad_pos = df[(df["diagnosis"] == "AD") & (df["amyloid"] == "A+")]
    assert abs((ad_pos["braak"] >= 5).mean() - 0.70) < 0.06


def test_stratified_manufacturers_have_the_same_case_mix():
    df = syn.sample_cohort(600, 5)
    overall = df["manufacturer"].value_counts(normalize=True)
    for name, share in (("Siemens", 0.5), ("GE", 0.3), ("Philips", 0.2)):
        assert abs(overall[name] - share) < 0.02
    # systematic sampling inside each stratum: every dx gets the shares up to rounding per stratum
    for _, group in df.groupby("diagnosis"):
        frac = group["manufacturer"].value_counts(normalize=True)
        assert abs(frac["Siemens"] - 0.5) < 0.03 and abs(frac["Philips"] - 0.2) < 0.03


def test_confounded_assignment_enriches_ad_on_philips():
    df = syn.sample_cohort(600, 5, confound=True)
    ad = df[df["diagnosis"] == "AD"]["manufacturer"].value_counts(normalize=True)
    other = df[df["diagnosis"] != "AD"]["manufacturer"].value_counts(normalize=True)
    assert abs(ad["Philips"] - 0.5) < 0.04 and abs(ad["Siemens"] - 0.2) < 0.04
    assert abs(other["Philips"] - 0.1) < 0.03
    assert abs(df["manufacturer"].value_counts(normalize=True)["Siemens"] - 0.5) < 0.03
    rnd = syn.sample_cohort(600, 5, assignment="random")
    assert abs(rnd["manufacturer"].value_counts(normalize=True)["Siemens"] - 0.5) < 0.07


@settings(max_examples=40, deadline=None)
@given(n=st.integers(8, 150), seed=st.integers(0, 10_000))
def test_splits_are_non_empty_and_stratified(n, seed):
    df = syn.sample_cohort(n, seed)
    counts = df["split"].value_counts()
    assert set(counts.index) == {"train", "val", "test"}
    assert abs(counts["train"] / n - 0.70) <= 1.5 / n + 0.01
    for dx, group in df.groupby("diagnosis"):
        if len(group) >= 20:
            assert abs((group["split"] == "train").mean() - 0.70) < 0.1, dx


@pytest.mark.parametrize(
    "kwargs, match",
    [({"n": 0, "seed": 1}, "n must be"), ({"n": 5, "seed": -1}, "seed must be"),
     ({"n": 5, "seed": 1, "assignment": "rr"}, "assignment='rr'")],
)
def test_sample_cohort_rejects_bad_arguments(kwargs, match):
    with pytest.raises(TausynthError, match=match):
        syn.sample_cohort(**kwargs)


def test_subject_params_validation():
    with pytest.raises(TausynthError, match="unknown manufacturer 'Canon'; known: Siemens, GE, Philips"):
        syn.simulate_subject(_params(manufacturer="Canon"), 0, 0)
    with pytest.raises(TausynthError, match="diagnosis='FTD'"):
        syn.SubjectParams.from_any({**dataclasses.asdict(_params()), "diagnosis": "FTD"})
    with pytest.raises(TausynthError, match="resolution"):
        syn.simulate_subject(_params(), 0, 0, resolution=3)
    assert syn.canonical_manufacturer("ge") == "GE"


# ---------------------------------------------------------------------------------------------
# one subject: determinism, geometry, normalization
# ---------------------------------------------------------------------------------------------


def test_same_seed_is_bit_identical_and_different_seeds_differ(subject):
    again = syn.simulate_subject(_params(), 3, SEED)
    for res in (2, 4):
        for key in syn.IMAGE_KEYS:
            np.testing.assert_array_equal(getattr(again[res], key), getattr(subject[res], key))
    assert again.roi == subject.roi
    other_seed = syn.simulate_subject(_params(), 3, SEED + 1, resolution=2)
    other_index = syn.simulate_subject(_params(), 4, SEED, resolution=2)
    for other in (other_seed, other_index):
        assert not np.array_equal(other[2].t1, subject[2].t1)
        assert not np.array_equal(other[2].pet, subject[2].pet)
        assert not np.array_equal(other[2].labels, subject[2].labels)


def test_geometry_and_dtypes(subject):
    im2, im4 = subject[2], subject[4]
    for im, shape, origin, vox in ((im2, (80, 96, 80), (-78, -112, -72), 2), (im4, (40, 48, 40), (-77, -111, -71), 4)):
        np.testing.assert_array_equal(im.affine[:3, 3], origin)
        np.testing.assert_array_equal(im.affine[:3, :3], np.eye(3) * vox)
        for key in syn.IMAGE_KEYS:
            assert getattr(im, key).shape == shape, key
        assert im.t1.dtype == im.pet.dtype == im.pet_gt.dtype == np.float32
        assert im.labels.dtype == np.int16 and im.mask.dtype == np.uint8
    # the 4 mm block centres are the means of the 2 mm voxel centres
    np.testing.assert_allclose(im4.affine[:3, 3], im2.affine[:3, 3] + 1.0)


def test_4mm_images_are_block_means_of_the_2mm_ones(subject):
    im2, im4 = subject[2], subject[4]
    for key in ("t1", "pet", "pet_gt"):
        blocks = getattr(im2, key).astype(np.float64).reshape(40, 2, 48, 2, 40, 2).mean(axis=(1, 3, 5))
        np.testing.assert_allclose(getattr(im4, key), blocks, atol=1e-6, rtol=0)
    mask_blocks = im2.mask.reshape(40, 2, 48, 2, 40, 2).mean(axis=(1, 3, 5))
    np.testing.assert_array_equal(im4.mask, (mask_blocks >= 0.5).astype(np.uint8))
    # labels: each 4 mm label is the most frequent of its 8 children
    rng = np.random.default_rng(0)
    for i, j, k in rng.integers(0, (40, 48, 40), size=(300, 3)):
        block = im2.labels[2 * i:2 * i + 2, 2 * j:2 * j + 2, 2 * k:2 * k + 2].ravel()
        values, counts = np.unique(block, return_counts=True)
        assert im4.labels[i, j, k] == values[np.argmax(counts)]


def test_block_mode_breaks_ties_towards_the_smallest_label():
    labels = np.zeros((2, 2, 2), dtype=np.int16)
    labels.flat[:4] = 17
    labels.flat[4:] = 8
    assert syn.block_mode(labels)[0, 0, 0] == 8


def test_images_are_plausible(subject):
    im = subject[2]
    brain = im.mask.astype(bool)
    assert np.all(im.t1[~brain] == 0) and np.all(im.pet[~brain] == 0) and np.all(im.labels[~brain] == 0)
    assert 150_000 < brain.sum() < 330_000  # template 235 375 voxels, head scale ±3 SD
    wm = np.isin(im.labels, (2, 41))
    ventricles = np.isin(im.labels, (4, 43))
    assert 0.85 < np.median(im.t1[wm]) < 1.15 and np.median(im.t1[ventricles]) < 0.5
    assert np.median(im.pet[ventricles]) < np.median(im.pet[wm])
    assert np.all(im.refmask <= im.mask) and im.refmask.sum() > 5000


def test_reference_region_mean_of_ground_truth_is_one(subject):
    for res, tol in ((2, 1e-5), (4, 0.02)):
        im = subject[res]
        ref = im.refmask.astype(bool)
        assert abs(im.pet_gt[ref].mean(dtype=np.float64) - 1.0) < tol
    im = subject[2]
    assert abs(im.pet[im.refmask.astype(bool)].mean(dtype=np.float64) - 1.0) < 0.02  # Siemens: no distortion


def test_suvr_is_invariant_to_the_global_scale(subject):
    doubled = syn.simulate_subject(_params(), 3, SEED, resolution=2, dose_scale=2.0)
    np.testing.assert_allclose(doubled[2].pet, subject[2].pet, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(doubled[2].pet_gt, subject[2].pet_gt)


def test_travelling_subject_keeps_anatomy_and_tau(subject):
    scans = {m: syn.simulate_subject(_params(), 3, SEED, manufacturer=m, resolution=2) for m in ("GE", "Philips")}
    scans["Siemens"] = subject
    for m, scan in scans.items():
        assert scan.params.manufacturer == m
        for key in ("labels", "pet_gt", "mask", "refmask"):
            np.testing.assert_array_equal(getattr(scan[2], key), getattr(subject[2], key))
        assert scan.roi["hippocampus_gm_ml"] == subject.roi["hippocampus_gm_ml"]
    assert not np.array_equal(scans["GE"][2].pet, subject[2].pet)
    assert not np.array_equal(scans["GE"][2].t1, subject[2].t1)
    assert len({round(s.native_fwhm_mm, 6) for s in scans.values()}) == 3
    # GE compresses contrast and shifts down; Philips shifts up (by design)
    brain = subject[2].mask.astype(bool)
    means = {m: s[2].pet[brain].mean() for m, s in scans.items()}
    assert means["GE"] < means["Siemens"] < means["Philips"]
    # naming the params' own manufacturer is the same as no override
    same = syn.simulate_subject(_params(), 3, SEED, manufacturer="siemens", resolution=2)
    np.testing.assert_array_equal(same[2].pet, subject[2].pet)


def test_measure_rois_on_a_toy_volume():
    labels = np.array([[[1006, 1006, 2006, 12, 12, 0]]], dtype=np.int16)
    image = np.array([[[1.0, 3.0, 5.0, 2.0, 4.0, 9.0]]], dtype=np.float32)
    gm = np.array([[[0.9, 0.2, 0.6, 0.1, 0.1, 1.0]]], dtype=np.float32)
    rois = syn.measure_rois(image, labels, gm, names=("braak1", "putamen", "choroid"))
    assert rois["braak1"] == pytest.approx(3.0)  # voxels 0 and 2 (GM >= 0.5), volume-weighted
    assert rois["putamen"] == pytest.approx(3.0)  # label only
    assert np.isnan(rois["choroid"])
    with pytest.raises(TausynthError, match="unknown ROI"):
        syn.measure_rois(image, labels, gm, names=("nope",))


# ---------------------------------------------------------------------------------------------
# tau spreading
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_braak_ordered_spreading():
    stages = np.arange(0.0, 7.0, 0.5)
    roi = [
        syn.simulate_subject(_params(stage_cont=float(s), braak=int(s)), 5, SEED, resolution=2).roi for s in stages
    ]
    meta = np.array([r["gt_metatemporal"] for r in roi])
    # non-decreasing; the tolerance covers the partial-volume wobble of the stage-driven ventricular
    # expansion before any meta-temporal region is involved (~2e-4 SUVR)
    assert np.all(np.diff(meta) >= -2e-3), meta
    assert meta[-1] - meta[0] > 1.0
    excess = {k: np.array([r[f"gt_{k}"] for r in roi]) - roi[0][f"gt_{k}"] for k in ("braak1", "braak34", "braak56")}
    at = {float(s): i for i, s in enumerate(stages)}
    assert excess["braak1"][at[1.5]] > 0.15 and abs(excess["braak56"][at[1.5]]) < 0.03
    assert abs(excess["braak34"][at[1.5]]) < 0.05
    # Braak V/VI excess > 0.2 only once stage V is half reached
    assert np.all(excess["braak56"][stages <= 5.0] < 0.2) and np.all(excess["braak56"][stages >= 5.5] > 0.2)
    assert excess["braak34"][at[4.0]] > excess["braak34"][at[3.0]] + 0.1


# ---------------------------------------------------------------------------------------------
# cohort-level checks (one N = 100 cohort per session, ROI tables only)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def cohort_rois() -> pd.DataFrame:
    df = syn.sample_cohort(100, SEED)
    rows = [
        {**row._asdict(), **syn.simulate_subject(row._asdict(), i, SEED, resolution=2).roi}
        for i, row in enumerate(df.itertuples(index=False))
    ]
    return pd.DataFrame(rows)


@pytest.mark.slow
def test_group_ordering(cohort_rois):
    group = cohort_rois.groupby(["diagnosis", "amyloid"])
    meta = group["pet_metatemporal"].mean()
    assert meta[("AD", "A+")] > meta[("MCI", "A+")] > meta[("CN", "A-")]
    assert meta[("AD", "A+")] - meta[("CN", "A-")] > 0.5
    assert 1.05 <= meta[("CN", "A-")] <= 1.20
    assert 1.2 <= group["pet_putamen"].mean()[("CN", "A-")] <= 1.6


@pytest.mark.slow
def test_manufacturer_distortion_is_recovered(cohort_rois):
    tpl = atlas.load_template()
    sel = np.isin(tpl.labels, atlas.roi_sets()["metatemporal"]) & (tpl.gm >= 0.5)
    z = atlas.world_coordinates(tpl.shape, tpl.affine)[2]
    z_bar = float(((np.broadcast_to(z, tpl.shape)[sel] - 10.0) / 60.0).mean())
    models = syn.manufacturer_models()
    for name, group in cohort_rois.groupby("manufacturer"):
        m = models[name]
        slope, intercept = np.polyfit(group["gt_metatemporal"], group["pet_metatemporal"], 1)
        expected = m.gain * (1 + m.bias) * (1 + m.tilt * z_bar)
        assert abs(slope - expected) < 0.04, (name, slope, expected)
        if name == "Siemens":
            resid = group["pet_metatemporal"] - (slope * group["gt_metatemporal"] + intercept)
            assert resid.std() < 0.03


@pytest.mark.slow
def test_mri_tau_coupling(cohort_rois):
    r_hippo = np.corrcoef(cohort_rois["hippocampus_gm_ml"], cohort_rois["pet_braak1"])[0, 1]
    r_vent = np.corrcoef(cohort_rois["ventricles_csf_ml"], cohort_rois["stage_cont"])[0, 1]
    assert r_hippo < -0.3 and r_vent > 0.5


# ---------------------------------------------------------------------------------------------
# on disk
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_write_cohort_outputs(tmp_path):
    out = tmp_path / "cohort"
    manifest = syn.write_cohort(out, n=3, seed=2, resolution=4, progress=False)
    assert list(manifest.columns) == list(syn.MANIFEST_COLUMNS)
    on_disk = pd.read_csv(out / "manifest.csv", keep_default_na=False)
    assert list(on_disk.columns) == list(syn.MANIFEST_COLUMNS) and len(on_disk) == 3
    assert (on_disk["session"] == "").all() and set(on_disk["site"]) == {"synthetic"}
    cohort = syn.sample_cohort(3, 2)
    for col in ("subject_id", "diagnosis", "amyloid", "sex", "split", "manufacturer"):
        assert on_disk[col].tolist() == cohort[col].tolist()
    for key in syn.IMAGE_KEYS:
        for rel in on_disk[key]:
            assert not rel.startswith("/") and (out / rel).is_file()
    first = syn.simulate_subject(cohort.iloc[0], 0, 2, resolution=4)
    for key in syn.IMAGE_KEYS:
        data, affine, _ = load_nifti(out / on_disk.loc[0, key])
        assert data.shape == (40, 48, 40)
        np.testing.assert_allclose(affine, syn.GRID4_AFFINE)
        np.testing.assert_array_equal(data, getattr(first[4], key).astype(np.float32))
    subjects = pd.read_csv(out / "subjects.csv")
    assert len(subjects) == 3
    for name in syn.ROI_TABLE:
        assert subjects.loc[0, f"pet_{name}"] == pytest.approx(first.roi[f"pet_{name}"])
        assert f"gt_{name}" in subjects.columns
    for col in ("stage_cont", "braak", "native_fwhm_mm", "hippocampus_gm_ml", "metatemporal_gm_ml",
                "ventricles_csf_ml"):
        assert col in subjects.columns

    # a previous cohort may be overwritten; files the new one does not name are removed
    syn.write_cohort(out, n=2, seed=3, resolution=4, progress=False)
    assert not (out / "sub-0002").exists()
    assert len(pd.read_csv(out / "manifest.csv")) == 2


def test_write_cohort_refuses_foreign_folders(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(TausynthError, match="not a tausynth synthetic cohort"):
        syn.write_cohort(tmp_path, n=2, seed=0, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(TausynthError, match="not a folder"):
        syn.write_cohort(tmp_path / "file", n=2, seed=0, progress=False)
    with pytest.raises(TausynthError, match="resolution"):
        syn.write_cohort(tmp_path / "new", n=2, seed=0, resolution=3, progress=False)


@pytest.mark.slow
def test_write_travelling_cohort(tmp_path):
    manifest = syn.write_cohort(tmp_path / "trav", n=2, seed=1, resolution=4, travelling=True, progress=False)
    assert len(manifest) == 6
    assert not manifest.duplicated(["subject_id", "session"]).any()
    assert set(manifest["session"]) == {"ses-siemens", "ses-ge", "ses-philips"}
    for sid, rows in manifest.groupby("subject_id"):
        assert rows["split"].nunique() == 1
        assert sorted(rows["manufacturer"]) == sorted(syn.MANUFACTURERS)
        for key in ("labels", "pet_gt"):
            arrays = [load_nifti(tmp_path / "trav" / rel)[0] for rel in rows[key]]
            for a in arrays[1:]:
                np.testing.assert_array_equal(a, arrays[0])
        pets = [load_nifti(tmp_path / "trav" / rel)[0] for rel in rows["pet"]]
        assert not np.array_equal(pets[0], pets[1])
        assert all(rel.startswith(f"{sid}/ses-") for rel in rows["t1"])


@pytest.mark.slow
def test_cli_synth_end_to_end(tmp_path, capsys):
    out = tmp_path / "cli"
    assert cli_main(["synth", "--n", "2", "--seed", "4", "--out", str(out), "--quiet"]) == 0
    assert "wrote 2 scans" in capsys.readouterr().out
    assert len(pd.read_csv(out / "manifest.csv")) == 2
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "x.txt").write_text("x")
    assert cli_main(["synth", "--n", "2", "--out", str(foreign), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a tausynth synthetic cohort" in err


def test_write_cohort_is_the_same_with_worker_processes(tmp_path):
    one = syn.write_cohort(tmp_path / "one", n=4, seed=5, progress=False)
    two = syn.write_cohort(tmp_path / "two", n=4, seed=5, progress=False, workers=2)
    pd.testing.assert_frame_equal(one, two)
    for rel in one["pet"]:
        assert (tmp_path / "one" / rel).read_bytes() == (tmp_path / "two" / rel).read_bytes()
    with pytest.raises(TausynthError, match="workers must be at least 1"):
        syn.write_cohort(tmp_path / "three", n=2, seed=5, progress=False, workers=0)
