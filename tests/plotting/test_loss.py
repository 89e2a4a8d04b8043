"""Loss-chapter figures draw what the schedule and the volumes say."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402

from tausynth.losses.schedule import cosine_lr, plane_phases  # noqa: E402
from tausynth.plotting import loss as P  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_plane_slice_orientation():
    vol = np.arange(4 * 5 * 6).reshape(4, 5, 6)
    assert P.plane_slice(vol, "sagittal", 1).shape == (6, 5)
    np.testing.assert_array_equal(P.plane_slice(vol, "axial", 2), vol[:, :, 2].T)
    np.testing.assert_array_equal(P.plane_slice(vol, "coronal", 3), vol[:, 3, :].T)
    assert P.center_voxel(np.zeros((4, 6, 8))) == (2, 3, 4)
    one = np.zeros((5, 5, 5))
    one[1, 2, 4] = 1
    assert P.center_voxel(one) == (1, 2, 4)


def test_plot_planes_draws_the_cut():
    rng = np.random.default_rng(0)
    vol = rng.random((6, 7, 8))
    fig = P.plot_planes(vol, (1, 2, 3))
    images = [ax.images[0].get_array() for ax in fig.axes[:3]]
    np.testing.assert_array_equal(images[0], vol[:, :, 3].T)  # axial
    np.testing.assert_array_equal(images[1], vol[:, 2, :].T)  # coronal
    np.testing.assert_array_equal(images[2], vol[1, :, :].T)  # sagittal


def test_plot_schedule_bands_and_lr():
    fig = P.plot_schedule(40, 5, "1/2", 1e-3, 2)
    ax, ax_lr = fig.axes[:2]
    phases = plane_phases(40, 5, "1/2")
    bars = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bars) == len(phases)
    for bar, (start, stop, plane) in zip(bars, phases, strict=True):
        verts = bar.get_paths()[0].vertices
        assert verts[:, 0].min() == pytest.approx(start) and verts[:, 0].max() == pytest.approx(stop)
        assert matplotlib.colors.to_hex(bar.get_facecolor()[0]) == P.PLANE_COLORS[plane]
    np.testing.assert_allclose(ax_lr.lines[0].get_ydata(), cosine_lr(1e-3, 2, 40))


def test_feature_maps_and_gradients_and_cost_table():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, padding=1), torch.nn.ReLU())
    vol = np.random.default_rng(1).random((8, 9, 10)).astype(np.float32)
    fig = P.plot_feature_maps(vol, net, n_maps=3)
    assert len(fig.axes) == 12
    g = np.random.default_rng(2).standard_normal((8, 9, 10))
    fig = P.plot_gradients(g, g + 1e-3, "axial", 4)
    np.testing.assert_allclose(fig.axes[2].images[0].get_array(), np.full((9, 8), -1e-3))
    table = P.cost_table([{"what": "loop", "seconds": 2.0}, {"what": "ours", "seconds": 0.5}])
    assert table.loc["ours", "speed-up"] == pytest.approx(4.0)
