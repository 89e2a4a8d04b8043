"""Figures of the training chapter, on a hand-made metrics table."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from tausynth.errors import TausynthError
from tausynth.losses.schedule import switch_epochs
from tausynth.plotting import training as figs


def metrics(gan: bool = False) -> pd.DataFrame:
    planes = ["axial"] * 3 + ["coronal"] * 3 + ["sagittal"] * 2 + ["axial"] * 2
    rows = []
    for e, p in enumerate(planes):
        row = {
            "epoch": e, "plane": p, "phase_start": e in (0, 3, 6, 8), "lr": 1e-3 * (e % 2), "steps": 2, "samples": 4,
            "train_loss": 2.0 - 0.1 * e, "train_mse": 1.0, "train_ssim_loss": 0.5, "train_perceptual": 0.1,
            "val_loss": [5, 4, 4.5, 6, 3, 3.5, 7, 6.5, 2, 2.5][e], "val_mse": 1.0, "val_ssim_loss": 0.5,
            "val_perceptual": 0.1, "improved": e in (0, 1, 3, 4, 6, 7, 8), "seconds": 1.0,
        }
        if gan:
            row.update(train_g_total=50.0, train_d_loss=0.3)
        rows.append(row)
    return pd.DataFrame(rows)


def test_schedule_table_recovers_the_phases_and_their_best() -> None:
    table = figs.schedule_table(metrics())
    assert list(table["plane"]) == ["axial", "coronal", "sagittal", "axial"]
    assert list(table["epochs"]) == [3, 3, 2, 2]
    assert list(table["best_epoch"]) == [1, 4, 7, 8]
    assert list(table["first_epoch"]) == [0, 3, 6, 8]


def test_figures_draw_every_component() -> None:
    fig = figs.plot_losses(metrics(gan=True))
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible() and ax.axison]
    assert titles[:4] == ["total loss", "mse", "1 − SSIM", "perceptual"]
    assert "g_total" in titles and "d_loss" in titles and titles[-1].startswith("learning rate")
    fig = figs.plot_schedule(metrics(), switch_epochs(10, 3, "2/3"), max_epochs=10)
    assert fig.axes[0].get_xlim() == (0.0, 10.0)


def test_prediction_grid_has_three_planes_and_four_columns() -> None:
    vol = np.random.default_rng(0).random((10, 12, 8)).astype(np.float32)
    fig = figs.plot_prediction_grid(vol, vol, vol + 0.1, title="x")
    images = [ax for ax in fig.axes if ax.images]
    assert len(images) == 12
    diff = images[3].images[0].get_array()
    assert np.allclose(diff, 0.1, atol=1e-5)


def test_provenance_table_flags_missing_values() -> None:
    table = figs.provenance_table({"run_dir": "r", "perceptual_weights": "random", "time_limit_minutes": None})
    values = dict(zip(table["item"], table["value"], strict=True))
    assert values["perceptual weights"] == "random" and values["time limit (min)"] == "—"


def test_prediction_grid_shows_suvr_on_the_books_fixed_scale_for_every_subject():
    import numpy as np

    from tausynth.plotting.scales import SUVR_DIFF, SUVR_RANGE
    from tausynth.plotting.training import plot_prediction_grid

    rng = np.random.default_rng(0)
    for level in (1.0, 2.4):  # a healthy and a high-tau subject
        pet = level + 0.1 * rng.random((8, 8, 8))
        fig = plot_prediction_grid(rng.random((8, 8, 8)), pet, pet + 0.05, space="SUVR")
        real, synthetic, diff = (fig.axes[i].get_images()[0] for i in (1, 2, 3))
        assert real.get_clim() == synthetic.get_clim() == SUVR_RANGE
        assert diff.get_clim() == (-SUVR_DIFF, SUVR_DIFF)


def test_prediction_examples_are_small_multiples_on_one_scale() -> None:
    rng = np.random.default_rng(1)
    examples = [{"subject_id": f"s{i}", "manufacturer": "GE", "space": "min-max",
                 "t1": rng.random((8, 10, 6)), "pet": scale * rng.random((8, 10, 6)),
                 "pred": scale * rng.random((8, 10, 6))} for i, scale in enumerate((1.0, 3.0))]
    fig = figs.plot_prediction_examples(examples, plane="coronal")
    panels = [ax for ax in fig.axes if ax.images and ax.get_label() != "<colorbar>"][:8]
    assert [ax.get_ylabel() for ax in panels[::4]] == ["s0\nGE", "s1\nGE"]
    assert panels[1].images[0].get_clim() == panels[5].images[0].get_clim()  # real PET, both rows
    assert panels[3].images[0].get_clim() == panels[7].images[0].get_clim()  # difference, both rows
    assert panels[1].images[0].get_array().shape == np.rot90(examples[0]["pet"][:, 5, :]).shape


@pytest.mark.parametrize("bad, message", [({"plane": "oblique"}, "plane: 'oblique' is not one of"), ({"examples": []}, "no examples")])
def test_prediction_examples_reject_bad_input(bad: dict, message: str) -> None:
    vol = np.zeros((4, 4, 4))
    kwargs = {"examples": [{"subject_id": "s", "space": "SUVR", "t1": vol, "pet": vol, "pred": vol}], **bad}
    with pytest.raises((ValueError, TausynthError), match=message):
        figs.plot_prediction_examples(**kwargs)
