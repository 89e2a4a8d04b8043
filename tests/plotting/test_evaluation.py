"""Evaluation figures: they draw what the statistics say (identity line, bias, counts)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from tausynth.errors import TausynthError  # noqa: E402
from tausynth.evaluation.agreement import bland_altman  # noqa: E402
from tausynth.evaluation.staging import confusion_matrix  # noqa: E402
from tausynth.plotting import evaluation as P  # noqa: E402


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(12):
        for region in ("metatemporal", "braak1"):
            real = rng.uniform(1.0, 2.4)
            rows.append({"subject_id": f"s{i}", "diagnosis": ("CN", "MCI", "AD")[i % 3], "braak": i % 7,
                         "region": region, "real": real, "synthetic": real + rng.normal(0.05, 0.1)})
    df = pd.DataFrame(rows)
    df["difference"] = df["synthetic"] - df["real"]
    return df


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_scatter_has_identity_line_per_region(frame):
    fig = P.plot_roi_scatter(frame, ["metatemporal", "braak1"])
    axes = [a for a in fig.axes if a.get_visible()]
    assert [a.get_title() for a in axes] == ["metatemporal", "braak1"]
    for ax in axes:
        ident = [ln for ln in ax.get_lines() if ln.get_label() == "identity"]
        assert len(ident) == 1
        x, y = ident[0].get_data()
        np.testing.assert_allclose(x, y)
    with pytest.raises(TausynthError, match="braak6"):
        P.plot_roi_scatter(frame, ["braak6"])


def test_bland_altman_draws_the_computed_bias_and_limits(frame):
    fig = P.plot_bland_altman(frame, ["braak1"])
    ax = fig.axes[0]
    sub = frame[frame["region"] == "braak1"]
    ba = bland_altman(sub["real"], sub["synthetic"])
    ys = sorted({ln.get_ydata()[0] for ln in ax.get_lines()})
    assert ys == pytest.approx(sorted([ba.loa_low, 0.0, ba.bias, ba.loa_high]))


def test_other_figures_render(frame):
    assert P.plot_residuals_by_group(frame).axes
    assert len([a for a in P.plot_roi_by_stage(frame).axes if a.get_visible()]) == 2
    stages = np.array([0, 1, 2, 3, 3, 1])
    fig = P.plot_confusion(confusion_matrix(stages, np.array([0, 1, 1, 3, 3, 1])), title="staging")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert len(texts) == 16 and texts[2 * 4 + 1] == "1" and texts[3 * 4 + 3] == "2"
    labels = np.zeros((10, 10, 10), int)
    labels[2:5, 2:5, 2:5] = 1006
    labels[6:8, 6:8, 6:8] = 1016
    fig = P.plot_regions(labels, {"braak1": (1006,), "braak3": (1016,)}, background=np.ones(labels.shape))
    assert len(fig.axes) == 3
    vol = np.ones((12, 12, 12))
    fig = P.plot_subject_slices([{"real": vol, "synthetic": vol * 1.1, "title": "best"}])
    assert len(fig.axes) == 9 + 2  # 3 images × 3 planes + 2 color bars


def test_tracking_figure_has_one_bar_per_run_and_draws_the_bound_as_a_line():
    import pandas as pd

    from tausynth.plotting.evaluation import plot_tracking

    tracking = pd.DataFrame({
        "run": ["unet-cyclic", "unet-none", "baseline-regional-regression"], "n": [60, 60, 60],
        "pearson_r": [-0.2, float("nan"), 0.6], "verdict": ["anti-correlated", "does not track", "tracks"]})
    fig = plot_tracking(tracking)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["unet-cyclic", "unet-none"]
    assert [round(p.get_width(), 2) for p in ax.patches[:2]] == [-0.2, 0.0]
    assert {t.get_text().strip() for t in ax.texts} >= {"-0.20", "n/a"}
    assert any(line.get_xdata()[0] == 0.6 and line.get_linestyle() == "--" for line in ax.lines)


def test_roi_stage_panels_of_real_and_synthetic_share_their_range():
    import pandas as pd

    from tausynth.plotting.evaluation import plot_roi_by_stage

    frame = pd.DataFrame({"region": ["braak1"] * 4, "braak": [0, 2, 4, 6], "diagnosis": ["CN", "CN", "AD", "AD"],
                          "real": [1.0, 1.3, 1.8, 2.2], "synthetic": [1.15, 1.16, 1.15, 1.17]})
    real = plot_roi_by_stage(frame, column="real", ncols=1).axes[0].get_ylim()
    synthetic = plot_roi_by_stage(frame, column="synthetic", ncols=1).axes[0].get_ylim()
    # before: the flat synthetic column got its own 1.15-1.17 axis and looked like structure
    assert real == synthetic and real[0] < 1.0 and real[1] > 2.2


def test_runs_on_subject_are_small_multiples_on_the_fixed_scale() -> None:
    from tausynth.plotting.evaluation import plot_runs_on_subject
    from tausynth.plotting.scales import SUVR_RANGE

    real = np.zeros((10, 12, 8))
    real[2:8, 3:9, 2:6] = 1.5
    runs = {f"unet-{k}-standardize-s42": real * (1 + 0.1 * i) for i, k in enumerate(("none", "2d", "2.5d", "3d", "cyclic", "x"))}
    fig = plot_runs_on_subject(real, runs, ncols=4)
    shown = [ax for ax in fig.axes if ax.images and ax.get_label() != "<colorbar>"]
    assert len(shown) == 2 * 7  # coronal and axial for the real PET and six runs
    assert {ax.images[0].get_clim() for ax in shown} == {SUVR_RANGE}
    titles = [ax.get_title() for ax in shown if ax.get_title()]
    assert titles[0] == "real PET" and titles[1] == "unet-none s42"
    with pytest.raises(TausynthError):
        plot_runs_on_subject(real, {})
