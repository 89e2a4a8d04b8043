"""Unit tests for tausynth.suvr on small hand-made arrays (the cohort checks are in test_suvr_phantom)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tausynth.cli import main
from tausynth.data.regions import region_masks, region_means
from tausynth.errors import TausynthError
from tausynth.harmonization import (
    Scan,
    fit_on_scans,
    manufacturer_error_summary,
    roi_table,
    travelling_comparison,
)
from tausynth.io import load_nifti, save_nifti
from tausynth.suvr import (
    FORMAT_VERSION,
    ManufacturerStandardizer,
    check_pet,
    fit_from_manifest,
    minmax_normalize,
    minmax_range,
    oracle_minmax_inverse,
    reference_mean,
    region_mean,
    suvr,
)

SHAPE = (6, 7, 5)


def _one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    msg = str(exc.value)
    assert "\n" not in msg, msg
    return msg


def _volume(rng: np.random.Generator, loc: float = 1.2, scale: float = 0.3) -> np.ndarray:
    return rng.normal(loc, scale, SHAPE).astype(np.float32)


def _mask(rng: np.random.Generator) -> np.ndarray:
    m = np.zeros(SHAPE, bool)
    m[1:-1, 1:-1, 1:-1] = True
    m &= rng.random(SHAPE) > 0.2
    return m


@pytest.fixture
def cohort() -> dict[str, list]:
    """Nine subjects on three manufacturers with distinct distributions, with splits."""
    rng = np.random.default_rng(3)
    mans = ["Siemens", "GE", "Philips"] * 3
    loc = {"Siemens": 1.2, "GE": 1.1, "Philips": 1.3}
    scale = {"Siemens": 0.3, "GE": 0.25, "Philips": 0.2}
    vols = [_volume(rng, loc[m], scale[m]) for m in mans]
    masks = [_mask(rng) for _ in mans]
    splits = ["train"] * 6 + ["val", "test", "test"]
    ids = [f"sub-{i:02d}" for i in range(len(mans))]
    return {"volumes": vols, "masks": masks, "manufacturers": mans, "splits": splits, "ids": ids}


def _train(c: dict[str, list]) -> tuple[list, list, list]:
    keep = [i for i, s in enumerate(c["splits"]) if s == "train"]
    return ([c["volumes"][i] for i in keep], [c["masks"][i] for i in keep], [c["manufacturers"][i] for i in keep])


# ------------------------------------------------------------------------------------------- SUVR


def test_suvr_reference_mean_is_one_and_scale_invariant() -> None:
    rng = np.random.default_rng(0)
    pet = rng.uniform(0.5, 3.0, SHAPE).astype(np.float32)
    ref = np.zeros(SHAPE, bool)
    ref[:2, :3, :2] = True
    out = suvr(pet, ref)
    assert out.dtype == np.float32
    assert np.mean(out[ref], dtype=np.float64) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(suvr(pet * 7.5, ref), out, rtol=1e-6)
    np.testing.assert_allclose(out * reference_mean(pet, ref), pet, rtol=1e-6)
    # an integer 0/1 mask is the same as the boolean one
    np.testing.assert_array_equal(suvr(pet, ref.astype(np.uint8)), out)


def test_suvr_golden_value() -> None:
    pet = np.full(SHAPE, 2.0, np.float64)
    pet[0, 0, 0] = 4.0
    ref = np.zeros(SHAPE, bool)
    ref[0, 0, :2] = True  # mean of 4 and 2 = 3
    out = suvr(pet, ref)
    assert out.dtype == np.float64
    assert out[0, 0, 0] == pytest.approx(4 / 3) and out[1, 1, 1] == pytest.approx(2 / 3)


def test_suvr_bad_inputs_name_the_culprit() -> None:
    pet = np.ones(SHAPE, np.float32)
    with pytest.raises(TausynthError) as exc:
        suvr(pet, np.zeros(SHAPE, bool), subject="sub-07")
    assert "sub-07" in _one_line(exc) and "reference mask is empty" in str(exc.value)
    ref = np.zeros(SHAPE, bool)
    ref[0, 0, 0] = True
    with pytest.raises(TausynthError) as exc:
        suvr(np.zeros(SHAPE), ref, subject="sub-08")
    assert "sub-08" in _one_line(exc) and "all zero" in str(exc.value)
    bad = pet.copy()
    bad[2, 2, 2] = np.nan
    with pytest.raises(TausynthError) as exc:
        suvr(bad, ref, subject="sub-09")
    assert "sub-09" in _one_line(exc) and "NaN" in str(exc.value)
    with pytest.raises(TausynthError) as exc:
        suvr(pet, ref[:-1])
    assert "shape" in _one_line(exc)
    neg = -pet
    with pytest.raises(TausynthError) as exc:
        suvr(neg, ref)
    assert "positive" in _one_line(exc)


def test_check_pet_converts_integers_and_rejects_empty() -> None:
    assert check_pet(np.ones(SHAPE, np.int16)).dtype == np.float32
    with pytest.raises(TausynthError, match="empty"):
        check_pet(np.zeros((0, 3)))


def test_region_mean_golden_and_gm_restriction() -> None:
    vol = np.arange(np.prod(SHAPE), dtype=np.float64).reshape(SHAPE)
    labels = np.zeros(SHAPE, np.int16)
    labels[0, 0, :3] = 1006  # values 0, 1, 2
    labels[1, 0, 0] = 2006  # value 35
    gm = np.ones(SHAPE)
    gm[0, 0, 0] = 0.2
    assert region_mean(vol, labels, [1006]) == pytest.approx(1.0)
    assert region_mean(vol, labels, [1006, 2006]) == pytest.approx((0 + 1 + 2 + 35) / 4)
    assert region_mean(vol, labels, [1006, 2006], gm=gm) == pytest.approx((1 + 2 + 35) / 3)
    masks = region_masks(labels, {"erc": [1006, 2006], "l": [1006]})
    assert region_means(vol, masks) == pytest.approx({"erc": 9.5, "l": 1.0})
    with pytest.raises(TausynthError) as exc:
        region_mean(vol, labels, [17, 53], name="hippocampus")
    assert "hippocampus" in _one_line(exc)
    with pytest.raises(TausynthError, match="GM >= 0.99"):
        region_mean(vol, labels, [1006], gm=gm * 0.5, gm_min=0.99)


# -------------------------------------------------------------------------- standardization: fit


def test_fit_statistics_match_float64_reference(cohort: dict[str, list]) -> None:
    vols, masks, mans = _train(cohort)
    std = ManufacturerStandardizer().fit(vols, masks, mans)
    assert std.manufacturers == ["GE", "Philips", "Siemens"]
    for m in std.manufacturers:
        values = np.concatenate([v[k].astype(np.float64) for v, k, mm in zip(vols, masks, mans, strict=True) if mm == m])
        s = std.stats_[m]
        assert s.mean == pytest.approx(values.mean(), rel=1e-12)
        assert s.std == pytest.approx(values.std(), rel=1e-12)
        assert (s.n_subjects, s.n_voxels) == (2, values.size)
    allv = np.concatenate([v[k].astype(np.float64) for v, k in zip(vols, masks, strict=True)])
    assert std.pooled_.mean == pytest.approx(allv.mean(), rel=1e-12)
    assert std.pooled_.std == pytest.approx(allv.std(), rel=1e-12)
    # the background is excluded: changing voxels outside the masks changes nothing
    vols2 = [np.where(k, v, 99.0).astype(np.float32) for v, k in zip(vols, masks, strict=True)]
    assert ManufacturerStandardizer().fit(vols2, masks, mans).stats_ == std.stats_


def test_fit_accumulates_in_float64() -> None:
    # float32 accumulation of 2e6 voxels around 1000 loses the 1e-3 spread completely
    rng = np.random.default_rng(1)
    vols = [(1000 + rng.normal(0, 1e-3, (100, 100, 100))).astype(np.float32) for _ in range(2)]
    masks = [np.ones((100, 100, 100), bool)] * 2
    std = ManufacturerStandardizer().fit(vols, masks, ["GE", "GE"])
    exact = np.concatenate([v.ravel().astype(np.float64) for v in vols])
    assert std.stats_["GE"].mean == pytest.approx(exact.mean(), rel=1e-12)
    assert std.stats_["GE"].std == pytest.approx(exact.std(), rel=1e-6)


def test_fit_accepts_generators_and_transform_gives_unit_stats(cohort: dict[str, list]) -> None:
    vols, masks, mans = _train(cohort)
    std = ManufacturerStandardizer().fit((v for v in vols), iter(masks), iter(mans))
    for m in std.manufacturers:
        z = np.concatenate([std.transform(v, m)[k].astype(np.float64) for v, k, mm in zip(vols, masks, mans, strict=True) if mm == m])
        assert z.mean() == pytest.approx(0.0, abs=1e-6) and z.std() == pytest.approx(1.0, abs=1e-6)


def test_statistics_depend_only_on_subjects_passed_to_fit(cohort: dict[str, list]) -> None:
    before = ManufacturerStandardizer().fit(*_train(cohort))
    changed = dict(cohort)
    changed["volumes"] = [
        v if s == "train" else (v * 5 + 3).astype(np.float32) for v, s in zip(cohort["volumes"], cohort["splits"], strict=True)
    ]
    changed["masks"] = [k if s == "train" else np.ones(SHAPE, bool) for k, s in zip(cohort["masks"], cohort["splits"], strict=True)]
    after = ManufacturerStandardizer().fit(*_train(changed))
    assert after.to_dict() == before.to_dict()
    # ...whereas changing a training image does change them
    changed["volumes"][0] = changed["volumes"][0] * 2
    assert ManufacturerStandardizer().fit(*_train(changed)).stats_["Siemens"] != before.stats_["Siemens"]


def test_reference_defaults_to_most_subjects_and_can_be_chosen(cohort: dict[str, list]) -> None:
    vols, masks, mans = _train(cohort)
    extra = ManufacturerStandardizer().fit([*vols, vols[1]], [*masks, masks[1]], [*mans, "GE"])
    assert extra.reference_ == "GE"
    chosen = ManufacturerStandardizer(reference="Philips").fit(vols, masks, mans)
    assert chosen.reference_ == "Philips"
    with pytest.raises(TausynthError) as exc:
        ManufacturerStandardizer(reference="Philips").fit(vols[:2], masks[:2], mans[:2])
    assert "Philips" in _one_line(exc)


def test_fit_bad_inputs_name_the_culprit(cohort: dict[str, list]) -> None:
    vols, masks, mans = _train(cohort)
    ids = [f"sub-{i}" for i in range(len(vols))]
    nan = vols[2].copy()
    nan[3, 3, 3] = np.nan
    with pytest.raises(TausynthError) as exc:
        ManufacturerStandardizer().fit([*vols[:2], nan], masks[:3], mans[:3], subject_ids=ids[:3])
    assert "sub-2" in _one_line(exc) and "NaN" in str(exc.value)
    with pytest.raises(TausynthError) as exc:
        ManufacturerStandardizer().fit([vols[0], np.zeros(SHAPE)], masks[:2], mans[:2], subject_ids=ids[:2])
    assert "sub-1" in _one_line(exc) and "all zero" in str(exc.value)
    with pytest.raises(TausynthError) as exc:
        ManufacturerStandardizer().fit(vols[:2], [masks[0], np.zeros(SHAPE)], mans[:2])
    assert "#1" in _one_line(exc) and "brain mask is empty" in str(exc.value)
    with pytest.raises(TausynthError) as exc:
        ManufacturerStandardizer().fit(vols[:2], masks[:2], ["Siemens", "Toshiba"], subject_ids=ids[:2])
    assert "sub-1" in _one_line(exc) and "Toshiba" in str(exc.value)
    with pytest.raises(TausynthError) as exc:
        ManufacturerStandardizer().fit(vols[:3], masks[:2], mans[:3])
    assert "different lengths" in _one_line(exc)
    with pytest.raises(TausynthError) as exc:
        ManufacturerStandardizer().fit([], [], [])
    assert "no subjects" in _one_line(exc)
    with pytest.raises(TausynthError) as exc:
        ManufacturerStandardizer().fit([np.ones(SHAPE)], [np.ones(SHAPE)], ["GE"])
    assert "GE" in _one_line(exc) and "zero spread" in str(exc.value)
    with pytest.raises(TausynthError) as exc:
        ManufacturerStandardizer(fallback="nearest")  # type: ignore[arg-type]
    assert "'nearest'" in _one_line(exc) and "pooled" in str(exc.value)


# -------------------------------------------------------------------- standardization: mapping


@settings(max_examples=40, deadline=None)
@given(
    loc=st.floats(0.5, 3.0), scale=st.floats(0.05, 1.0), seed=st.integers(0, 2**16),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_inverse_of_transform_is_identity(loc: float, scale: float, seed: int, dtype: type) -> None:
    rng = np.random.default_rng(seed)
    vols = [rng.normal(loc, scale, SHAPE).astype(dtype) for _ in range(3)]
    std = ManufacturerStandardizer().fit(vols, [np.ones(SHAPE, bool)] * 3, ["Siemens", "GE", "GE"])
    x = np.abs(rng.normal(loc, scale, SHAPE)).astype(dtype)
    for m in ("Siemens", "GE"):
        z = std.transform(x, m)
        assert z.dtype == dtype
        np.testing.assert_allclose(std.inverse(z, m), x, rtol=0, atol=1e-6)


def test_transform_golden_and_reference_scale(cohort: dict[str, list]) -> None:
    std = ManufacturerStandardizer(reference="Siemens").fit(*_train(cohort))
    ge, si = std.stats_["GE"], std.stats_["Siemens"]
    x = cohort["volumes"][7].astype(np.float64)
    np.testing.assert_allclose(std.transform(x, "GE"), (x - ge.mean) / ge.std, rtol=1e-12)
    z = std.transform(x, "GE")
    np.testing.assert_allclose(std.inverse_to_reference(z), z * si.std + si.mean, rtol=1e-12)
    np.testing.assert_allclose(std.inverse_to_reference(z, "Philips"), std.inverse(z, "Philips"), rtol=1e-12)
    np.testing.assert_allclose(std.to_reference_scale(x, "GE"), std.inverse_to_reference(z), rtol=1e-12)
    # the reference manufacturer's own data is unchanged by harmonization to its own scale
    np.testing.assert_allclose(std.to_reference_scale(x, "Siemens"), x, atol=1e-12)


def test_manufacturer_names_go_through_the_manifest_mapping_table(cohort: dict[str, list]) -> None:
    from tausynth.data.manifest import normalize_manufacturer

    std = ManufacturerStandardizer().fit(*_train(cohort))
    x = cohort["volumes"][6]
    for alias, canonical in (("SIEMENS", "Siemens"), (" Siemens Healthineers ", "Siemens"), ("GE MEDICAL SYSTEMS", "GE")):
        assert normalize_manufacturer(alias) == canonical
        np.testing.assert_array_equal(std.transform(x, alias), std.transform(x, canonical))
        assert std.stats_for(alias) == std.stats_[canonical]
    # fitting with aliases gives the same statistics as fitting with canonical names
    vols, masks, mans = _train(cohort)
    aliased = [{"Siemens": "SIEMENS", "GE": "GE Healthcare", "Philips": "Philips Medical Systems"}[m] for m in mans]
    assert ManufacturerStandardizer().fit(vols, masks, aliased).to_dict() == std.to_dict()


def test_unknown_or_unseen_manufacturer(cohort: dict[str, list]) -> None:
    vols, masks, mans = _train(cohort)
    keep = [i for i, m in enumerate(mans) if m != "Philips"]
    std = ManufacturerStandardizer().fit([vols[i] for i in keep], [masks[i] for i in keep], [mans[i] for i in keep])
    x = cohort["volumes"][8]
    with pytest.raises(TausynthError) as exc:
        std.transform(x, "Philips", subject="sub-08")
    msg = _one_line(exc)
    assert "sub-08" in msg and "'Philips'" in msg and "fallback='pooled'" in msg and "GE, Siemens" in msg
    with pytest.raises(TausynthError) as exc:
        std.inverse(x, "Toshiba")
    assert "Toshiba" in _one_line(exc)
    with pytest.raises(TausynthError) as exc:
        std.inverse_to_reference(x, "Philips")
    assert "Philips" in _one_line(exc)

    pooled = ManufacturerStandardizer(fallback="pooled").fit([vols[i] for i in keep], [masks[i] for i in keep], [mans[i] for i in keep])
    p = pooled.pooled_
    with pytest.warns(UserWarning, match="Philips"):
        z = pooled.transform(x, "Philips")
    np.testing.assert_allclose(z, (x.astype(np.float64) - p.mean) / p.std, rtol=1e-6)
    with pytest.warns(UserWarning, match="Toshiba"):
        np.testing.assert_allclose(pooled.inverse(z, "Toshiba"), x, atol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pooled.transform(x, "GE")  # seen manufacturers use their own statistics, silently


def test_transform_rejects_bad_volumes_and_unfitted(cohort: dict[str, list]) -> None:
    with pytest.raises(TausynthError) as exc:
        ManufacturerStandardizer().transform(cohort["volumes"][0], "GE")
    assert "not fitted" in _one_line(exc)
    std = ManufacturerStandardizer().fit(*_train(cohort))
    with pytest.raises(TausynthError) as exc:
        std.transform(np.zeros(SHAPE), "GE", subject="sub-05")
    assert "sub-05" in _one_line(exc) and "all zero" in str(exc.value)
    with pytest.raises(TausynthError) as exc:
        std.transform(np.full(SHAPE, np.nan), "GE", subject="sub-06")
    assert "sub-06" in _one_line(exc) and "NaN" in str(exc.value)


# ---------------------------------------------------------------------------------- persistence


def test_save_load_transform_identical(cohort: dict[str, list], tmp_path) -> None:
    std = ManufacturerStandardizer(reference="GE").fit(*_train(cohort))
    path = std.save(tmp_path / "stats.json")
    loaded = ManufacturerStandardizer.load(path)
    for x, m in zip(cohort["volumes"], cohort["manufacturers"], strict=True):
        np.testing.assert_array_equal(loaded.transform(x, m), std.transform(x, m))
        z = std.transform(x, m)
        np.testing.assert_array_equal(loaded.inverse(z, m), std.inverse(z, m))
        np.testing.assert_array_equal(loaded.inverse_to_reference(z), std.inverse_to_reference(z))
    data = json.loads(path.read_text())
    assert data["format_version"] == FORMAT_VERSION
    assert data["manufacturers"] == ["GE", "Philips", "Siemens"]
    assert data["reference"] == "GE" and data["fallback"] == "error"
    assert data["stats"]["Philips"]["n_voxels"] == std.stats_["Philips"].n_voxels
    assert data["stats"]["Philips"]["n_subjects"] == 2
    assert ManufacturerStandardizer.from_dict(std.to_dict()).to_dict() == std.to_dict()
    assert ManufacturerStandardizer.load(path, fallback="pooled").fallback == "pooled"
    assert not list(tmp_path.glob(".stats.json.*"))  # no temporary file left behind


def test_summary_frame(cohort: dict[str, list]) -> None:
    std = ManufacturerStandardizer().fit(*_train(cohort))
    df = std.summary_frame()
    assert list(df.columns) == ["manufacturer", "subjects", "voxels", "mean", "std"]
    assert list(df["manufacturer"]) == ["GE", "Philips", "Siemens", "(pooled)"]
    assert df["voxels"].iloc[:3].sum() == df["voxels"].iloc[3]
    assert df.set_index("manufacturer").loc["GE", "mean"] == std.stats_["GE"].mean


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda t: t[: len(t) // 2], "not valid JSON"),
        (lambda t: "\x00\xff garbage", "not valid JSON"),
        (lambda t: t.replace('"format_version": 1', '"format_version": 99'), "format_version 99"),
        (lambda t: t.replace('"std"', '"sd"', 1), "incomplete"),
        (lambda t: json.dumps({**json.loads(t), "manufacturers": ["GE"]}), "does not match"),
        (lambda t: json.dumps({**json.loads(t), "reference": "Canon"}), "'Canon'"),
        (lambda t: "[1, 2]", "expected a JSON object"),
    ],
)
def test_corrupt_stats_json_names_the_file(cohort: dict[str, list], tmp_path, edit, expected: str) -> None:
    path = ManufacturerStandardizer().fit(*_train(cohort)).save(tmp_path / "stats.json")
    path.write_text(edit(path.read_text()))
    with pytest.raises(TausynthError) as exc:
        ManufacturerStandardizer.load(path)
    msg = _one_line(exc)
    assert str(path) in msg and expected in msg


def test_negative_std_in_json_rejected(cohort: dict[str, list], tmp_path) -> None:
    d = ManufacturerStandardizer().fit(*_train(cohort)).to_dict()
    d["stats"]["GE"]["std"] = -1.0
    (tmp_path / "s.json").write_text(json.dumps(d))
    with pytest.raises(TausynthError, match="positive std"):
        ManufacturerStandardizer.load(tmp_path / "s.json")
    with pytest.raises(TausynthError, match="not found"):
        ManufacturerStandardizer.load(tmp_path / "missing.json")


# ------------------------------------------------------------------------------------- min–max


def test_minmax_range_removes_affine_distortion_but_also_tau_burden() -> None:
    rng = np.random.default_rng(5)
    x = rng.uniform(0.4, 2.5, SHAPE)
    mask = np.ones(SHAPE, bool)
    n = minmax_normalize(x, mask)
    assert n.min() == 0.0 and n.max() == pytest.approx(1.0)
    # a per-subject affine (manufacturer-like) distortion is removed exactly ...
    np.testing.assert_allclose(minmax_normalize(0.9 * x + 0.05, mask), n, atol=1e-12)
    # ... and so is a real doubling of tau burden: the absolute SUVR scale is gone
    np.testing.assert_allclose(minmax_normalize(2.0 * x, mask), n, atol=1e-12)
    # the whole volume is used by default (background 0 of a skull-stripped PET = the minimum)
    x0 = x.copy()
    x0[0] = 0
    assert minmax_range(x0) == (0.0, pytest.approx(x0.max()))


def test_oracle_minmax_inverse_needs_the_true_range() -> None:
    rng = np.random.default_rng(6)
    x = rng.uniform(0.4, 2.5, SHAPE).astype(np.float32)
    lo, hi = minmax_range(x)
    n = minmax_normalize(x)
    np.testing.assert_allclose(oracle_minmax_inverse(n, lo, hi), x, atol=1e-6)
    # with any other range (e.g. another subject's) the SUVR values are wrong
    assert np.abs(oracle_minmax_inverse(n, lo, hi * 1.2) - x).max() > 0.1
    with pytest.raises(TausynthError, match="true_min < true_max"):
        oracle_minmax_inverse(n, 1.0, 1.0)
    with pytest.raises(TausynthError, match="constant"):
        minmax_normalize(np.ones(SHAPE))
    with pytest.raises(TausynthError, match="sub-3.*NaN"):
        minmax_normalize(np.full(SHAPE, np.nan), subject="sub-3")


# ---------------------------------------------------------------------------- manifest and CLI


def _write_manifest(root, cohort: dict[str, list]) -> pd.DataFrame:
    """Write the cohort as NIfTI + a manifest with the synthetic generator's columns."""
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    rows = []
    for i, (v, k, m, s, sid) in enumerate(
        zip(cohort["volumes"], cohort["masks"], cohort["manufacturers"], cohort["splits"], cohort["ids"], strict=True)
    ):
        d = root / sid
        save_nifti(d / "pet.nii.gz", v, affine)
        save_nifti(d / "t1.nii.gz", np.abs(v) + 0.1, affine)
        save_nifti(d / "mask.nii.gz", k.astype(np.float32), affine)
        rows.append({
            "subject_id": sid, "session": "ses-1", "t1": f"{sid}/t1.nii.gz", "pet": f"{sid}/pet.nii.gz",
            "manufacturer": m, "diagnosis": "CN", "split": s, "mask": f"{sid}/mask.nii.gz", "age": 70 + i,
        })
    df = pd.DataFrame(rows)
    df.to_csv(root / "manifest.csv", index=False)
    return df


def test_fit_from_manifest_and_cli(cohort: dict[str, list], tmp_path, capsys) -> None:
    _write_manifest(tmp_path, cohort)
    manifest = tmp_path / "manifest.csv"
    std = fit_from_manifest(manifest)
    expected = ManufacturerStandardizer().fit(*_train(cohort))
    for m in expected.manufacturers:
        assert std.stats_[m].mean == pytest.approx(expected.stats_[m].mean, rel=1e-12)
        assert std.stats_[m].n_voxels == expected.stats_[m].n_voxels

    out = tmp_path / "stats.json"
    assert main(["standardize", "--manifest", str(manifest), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for m in ("GE", "Philips", "Siemens"):
        assert m in printed and f"{expected.stats_[m].mean:.4f}" in printed
    assert "subjects" in printed and "voxels" in printed
    assert ManufacturerStandardizer.load(out).to_dict() == std.to_dict()

    # changing val/test images on disk leaves the statistics unchanged
    for sid, s in zip(cohort["ids"], cohort["splits"], strict=True):
        if s != "train":
            pet = tmp_path / sid / "pet.nii.gz"
            data, aff, _ = load_nifti(pet)
            save_nifti(pet, data * 3 + 1, aff)
    out2 = tmp_path / "stats2.json"
    assert main(["standardize", "--manifest", str(manifest), "--out", str(out2)]) == 0
    assert out2.read_text() == out.read_text()

    out3 = tmp_path / "stats3.json"
    argv = ["standardize", "--manifest", str(manifest), "--out", str(out3), "--fallback", "pooled", "--reference", "GE"]
    assert main(argv) == 0
    saved = json.loads(out3.read_text())
    assert (saved["fallback"], saved["reference"]) == ("pooled", "GE")


def test_cli_user_errors_are_one_line(cohort: dict[str, list], tmp_path, capsys) -> None:
    df = _write_manifest(tmp_path, cohort)
    pet = tmp_path / cohort["ids"][0] / "pet.nii.gz"
    save_nifti(pet, np.zeros(SHAPE), np.diag([4.0, 4.0, 4.0, 1.0]))
    rc = main(["standardize", "--manifest", str(tmp_path / "manifest.csv"), "--out", str(tmp_path / "s.json")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert err.startswith("tausynth standardize: error:") and df["subject_id"][0] in err and "all zero" in err
    assert not (tmp_path / "s.json").exists()


# ------------------------------------------------------------------ experiments and figures


def _scans(rng: np.random.Generator) -> list[Scan]:
    """Three travelling subjects on three scanners with a known affine distortion per scanner."""
    distortion = {"Siemens": (1.0, 0.0), "GE": (0.9, -0.05), "Philips": (1.0, 0.06)}
    labels = np.zeros(SHAPE, np.int16)
    labels[2:4, 2:5, 1:4] = 1006
    mask = np.zeros(SHAPE, bool)
    mask[1:-1, 1:-1, 1:-1] = True
    ref = np.zeros(SHAPE, bool)
    ref[1, 1:3, 1:3] = True
    out = []
    for i, dx in enumerate(["CN", "MCI", "AD"]):
        truth = np.where(mask, rng.uniform(0.8, 1.4, SHAPE) + 0.4 * i * (labels > 0), 0).astype(np.float32)
        for m, (gain, bias) in distortion.items():
            pet = np.where(mask, gain * truth + bias, 0).astype(np.float32)
            out.append(Scan(f"sub-{i}", m, dx, "A+", "train", pet, mask, labels, ref, truth))
    return out


def test_experiment_tables_on_an_exactly_affine_distortion() -> None:
    scans = _scans(np.random.default_rng(11))
    std = fit_on_scans(scans, reference="Siemens")
    # the same subjects everywhere and a purely affine distortion: standardization undoes it exactly
    trav = travelling_comparison(scans, std, [1006], reference="Siemens")
    assert set(trav["manufacturer"]) == {"GE", "Philips"} and len(trav) == 6
    assert trav["bias_raw"].abs().min() > 0.01
    np.testing.assert_allclose(trav[["bias_std", "mae_std"]], 0, atol=1e-5)
    table = roi_table(scans, std, [1006])
    np.testing.assert_allclose(table["error_std"], 0, atol=1e-5)
    np.testing.assert_allclose(table.loc[table.manufacturer == "Philips", "error_raw"], 0.06, atol=1e-5)
    # brain-mask min-max removes a per-subject affine distortion exactly, so do its (oracle) inverse
    np.testing.assert_allclose(table[["error_minmax", "error_oracle"]], 0, atol=1e-5)
    np.testing.assert_allclose(trav[["bias_minmax", "mae_minmax"]], 0, atol=1e-5)
    summary = manufacturer_error_summary(table)
    assert summary.loc["between-manufacturer SD", "error_raw"] > 0.03
    assert summary.loc["between-manufacturer SD", "error_std"] < 1e-5
    with pytest.raises(TausynthError, match="sub-0: no Siemens scan"):
        travelling_comparison([s for s in scans if s.manufacturer != "Siemens"], std, [1006])


def test_suvr_figures_draw(tmp_path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tausynth.plotting import suvr as figs

    scans = _scans(np.random.default_rng(12))
    std = fit_on_scans(scans, reference="Siemens")
    table = roi_table(scans, std, [1006])
    trav = travelling_comparison(scans, std, [1006])
    summary = manufacturer_error_summary(table)
    made = [
        figs.plot_reference_region(scans[0].pet, scans[0].refmask, t1=scans[0].pet),
        figs.plot_voxel_histograms(scans, std),
        figs.plot_roi_by_group(table),
        figs.plot_travelling(trav),
        figs.plot_manufacturer_errors({"a": summary, "b": summary}),
        figs.plot_normalization_scatter(table),
        figs.plot_normalization_maps(scans[:2], std),
    ]
    n_panels = [len([a for a in f.axes if a.get_label() != "<colorbar>"]) for f in made]
    assert n_panels == [6, 2, 2, 2, 2, 3, 6]
    # the travelling figure prints the computed MAE reduction (here 100 %: exactly affine)
    texts = [t.get_text() for t in made[3].axes[1].texts]
    assert texts == ["−100 %", "−100 %"]
    for i, f in enumerate(made):
        f.savefig(tmp_path / f"{i}.png")
        plt.close(f)
