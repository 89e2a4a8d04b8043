"""E1–E4 tables, baseline comparison and limitations on hand-made metric tables with known answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tausynth.errors import TausynthError
from tausynth.evaluation import experiments as X
from tausynth.evaluation.collect import Collection

SUBJECTS = [f"s{i}" for i in range(8)]


def _rows(run, model, perceptual, ssim, normalization="standardize", kind="suvr", seed=1, psnr_scale=30.0):
    return [{"run": run, "model": model, "perceptual": perceptual, "normalization": normalization, "seed": seed,
             "subject_id": s, "kind": kind, "ssim": v, "psnr": psnr_scale * v, "mae": 1 - v}
            for s, v in zip(SUBJECTS, ssim, strict=True)]


BASE = np.linspace(0.60, 0.74, 8)


def _table(*parts):
    return pd.DataFrame([r for p in parts for r in p])


def test_variant_grid_values_and_not_run_cells():
    df = _table(_rows("a", "unet", "cyclic", BASE), _rows("b", "unet", "none", BASE - 0.1))
    grid = X.e1_tables(df)["ssim"]
    assert list(grid.index) == ["unet", "unetr", "swinunetr"] and list(grid.columns) == list(X.E1_LOSSES)
    mean, sd = BASE.mean(), BASE.std(ddof=1)
    assert grid.loc["unet", "cyclic"] == f"{mean:.3f} ± {sd:.3f} (n=8)"
    assert grid.loc["unet", "none"] == f"{mean - 0.1:.3f} ± {sd:.3f} (n=8)"
    assert grid.loc["unet", "2.5d"] == X.NOT_RUN and (grid.loc["unetr"] == X.NOT_RUN).all()
    # min–max runs and baselines do not enter E1
    mm = _table(_rows("m", "unet", "2d", BASE, normalization="minmax", kind="suvr_oracle"))
    assert X.e1_tables(pd.concat([df, mm]))["ssim"].loc["unet", "2d"] == X.NOT_RUN
    empty = X.e1_tables(pd.DataFrame())["psnr"]
    assert (empty == X.NOT_RUN).all().all()


def test_e1_tests_compare_cyclic_with_every_other_term():
    df = _table(_rows("a", "unet", "cyclic", BASE), _rows("b", "unet", "none", BASE - 0.05),
                _rows("c", "unet", "2.5d", BASE + 0.02), _rows("d", "unetr", "none", BASE))
    t = X.e1_tests(df)
    assert set(t["baseline"]) == {"none", "2.5d"} and set(t["model"]) == {"unet"}  # unetr has no cyclic run
    none = t[(t["baseline"] == "none") & (t["metric"] == "ssim")].iloc[0]
    assert none["improvement"] == pytest.approx(0.05) and none["status"] == "supports"
    assert none["p_value"] == pytest.approx(2 / 2**8)
    better = t[(t["baseline"] == "2.5d") & (t["metric"] == "psnr")].iloc[0]
    assert better["improvement"] == pytest.approx(-0.6) and better["status"] == "contradicts"
    assert X.e1_tests(pd.DataFrame()).empty


def test_e2_relative_change_and_stated_size():
    df = _table(_rows("p0", "pix2pix", "none", BASE), _rows("p1", "pix2pix", "cyclic", BASE * 1.01))
    t = X.e2_table(df).set_index(["model", "metric"])
    ssim = t.loc[("pix2pix", "ssim")]
    assert ssim["relative change (%)"] == pytest.approx(1.0) and ssim["claimed (%)"] == 2.0
    # a consistent 1 % gain: its bootstrap CI excludes the stated 2 %, so the data contradict the size
    assert ssim["n"] == 8 and ssim["status"] == "contradicts"
    assert t.loc[("cyclegan", "psnr"), "none"] == X.NOT_RUN and t.loc[("cyclegan", "psnr"), "status"] == "missing"


def test_e3_uses_the_oracle_for_minmax_in_suvr_space():
    df = _table(_rows("s", "unet", "cyclic", BASE),
                _rows("m", "unet", "cyclic", BASE - 0.2, normalization="minmax", kind="suvr_oracle"),
                _rows("m", "unet", "cyclic", np.full(8, 0.95), normalization="minmax", kind="minmax"),
                _rows("n", "unet", "none", BASE))
    t = X.e3_table(df).set_index(["perceptual", "metric"])
    row = t.loc[("cyclic", "ssim")]
    assert row["minmax (SUVR, oracle)"].startswith(f"{BASE.mean() - 0.2:.3f}")
    assert row["minmax (own space)"].startswith("0.950")
    assert row["n"] == 8 and row["status"] == "supports"
    assert t.loc[("none", "ssim"), "minmax (SUVR, oracle)"] == X.NOT_RUN and t.loc[("none", "ssim"), "status"] == "missing"


def test_e4_selects_group_and_regions_and_adds_kappa():
    agreement = pd.DataFrame([
        {"run": "a", "model": "unet", "perceptual": "cyclic", "normalization": "standardize", "seed": 1,
         "region": r, "group": g, "n": 5, "pearson_r": 0.9, "icc": 0.8, "icc_form": "ICC(2,1)", "mae": 0.1,
         "bias": 0.02, "loa_low": -0.1, "loa_high": 0.14 if g == "all" else math.nan}
        for r in ("braak56", "metatemporal", "putamen") for g in ("all", "AD")])
    positivity = pd.DataFrame([{"run": "a", "model": "unet", "perceptual": "cyclic", "normalization": "standardize",
                                "seed": 1, "region": "metatemporal", "group": g, "kappa": k, "cut_point": 1.27}
                               for g, k in (("all", 0.6), ("AD", 1.0))])
    t = X.e4_table(agreement, positivity)
    assert list(t["region"]) == ["metatemporal", "braak56"]  # AD-relevant order; off-target excluded
    assert (t["kappa"] == 0.6).all() and t["limits of agreement"].iloc[0] == "[-0.100, +0.140]"
    ad = X.e4_table(agreement, positivity, group="AD")
    assert (ad["kappa"] == 1.0).all() and ad["limits of agreement"].iloc[0] == "n/a (n < 2)"


def test_seed_table_only_with_several_seeds():
    one = _table(_rows("a", "unet", "cyclic", BASE))
    assert X.seed_table(one).empty
    two = _table(_rows("a", "unet", "cyclic", BASE), _rows("b", "unet", "cyclic", BASE + 0.02, seed=2))
    t = X.seed_table(two).iloc[0]
    assert t["n_seeds"] == 2
    lo, hi = BASE.mean(), BASE.mean() + 0.02
    assert t["ssim_seeds"] == f"{(lo + hi) / 2:.3f} ± {np.std([lo, hi], ddof=1):.3f} [{lo:.3f}, {hi:.3f}]"


def test_baseline_comparison_signs():
    runs = _table(_rows("model", "unet", "cyclic", BASE))
    base = _table(_rows("baseline-mean-image", "mean-image", "n/a", BASE - 0.1, normalization="n/a"))
    t = X.baseline_comparison(runs, base).set_index("metric")
    assert t.loc["ssim", "improvement"] == pytest.approx(0.1) and t.loc["ssim", "status"] == "supports"
    assert t.loc["mae", "improvement"] == pytest.approx(0.1)  # lower MAE is better: signed positive
    assert X.baseline_comparison(runs, pd.DataFrame()).empty


def test_limitations_are_computed_from_the_numbers():
    metrics = _table(_rows("a", "unet", "cyclic", BASE))[:3]
    runs = pd.DataFrame([{"run": "a", "epochs_done": 4, "max_epochs": 16, "perceptual_weights": "random"}])
    empty = pd.DataFrame()
    notes = X.limitations(Collection(metrics, empty, empty, empty, empty, runs))
    assert "3 test subject(s)" in notes[0] and "0.25" in notes[0] and "no paired test can reach" in notes[0]
    assert "4 epoch(s) of at most 16" in notes[1] and "random" in notes[2]
    # a time-bounded run and one that does not beat a baseline are named with their numbers
    runs = pd.DataFrame([{"run": "a", "epochs_done": 2, "max_epochs": 16, "steps_done": 80, "stop_reason": "time_limit"}])
    base = _table(_rows("baseline-mean-image", "mean-image", "n/a", BASE + 0.1, normalization="n/a"))
    notes = X.limitations(Collection(_table(_rows("a", "unet", "cyclic", BASE)), empty, empty, empty, empty, runs),
                          baselines=base)
    assert any("time bound" in n and "a (2 epoch(s), 80 steps)" in n for n in notes)
    assert any(n.startswith("Not better than every trivial baseline") and f"mean-image {(BASE + 0.1).mean():.3f}" in n
               for n in notes)
    base = _table(_rows("baseline-mean-image", "mean-image", "n/a", BASE - 0.1, normalization="n/a"))
    notes = X.limitations(Collection(_table(_rows("a", "unet", "cyclic", BASE)), empty, empty, empty, empty, runs),
                          baselines=base)
    assert "Every run beats both trivial baselines on mean SSIM." in notes
    big = X.limitations(Collection(_table(_rows("a", "unet", "cyclic", BASE)), empty, empty, empty, empty, empty))
    assert "0.0078" in big[0] and "consistent effect" in big[0]


def test_pick_reference_run():
    runs = pd.DataFrame([
        {"run": "unetr-cyclic", "model": "unetr", "perceptual": "cyclic", "normalization": "standardize", "seed": 1},
        {"run": "unet-cyclic-s2", "model": "unet", "perceptual": "cyclic", "normalization": "standardize", "seed": 2},
        {"run": "unet-cyclic-s1", "model": "unet", "perceptual": "cyclic", "normalization": "standardize", "seed": 1},
    ])
    assert X.pick_reference_run(runs) == "unet-cyclic-s1"
    assert X.pick_reference_run(runs.iloc[:1]) == "unetr-cyclic"
    assert X.pick_reference_run(runs, "runs/demo/unet-cyclic-s2") == "unet-cyclic-s2"
    with pytest.raises(TausynthError, match="'nope' is not among the runs"):
        X.pick_reference_run(runs, "nope")
