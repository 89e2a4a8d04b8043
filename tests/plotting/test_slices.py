"""The one orthogonal-slice helper: orientation, default voxel, centroid."""

from __future__ import annotations

import numpy as np
import pytest

from tausynth.errors import TausynthError
from tausynth.plotting.slices import PLANE_AXIS, center_voxel, orthogonal_slices, plane_slice


@pytest.mark.parametrize("plane", ["sagittal", "coronal", "axial"])
def test_plane_slice_drawn_lower_is_the_rot90_drawn_upper(plane: str) -> None:
    # origin="lower" on the transposed slice shows what origin="upper" shows of np.rot90 of the raw slice
    vol = np.random.default_rng(0).random((5, 6, 7))
    raw = np.take(vol, 2, axis=PLANE_AXIS[plane])
    np.testing.assert_array_equal(np.flipud(plane_slice(vol, plane, 2)), np.rot90(raw))


def test_orthogonal_slices_default_to_the_middle_voxel_and_keep_the_order() -> None:
    vol = np.zeros((5, 6, 7))
    vol[2, 3, 3] = 1.0
    shown = orthogonal_slices(vol, planes=("axial", "sagittal"))
    assert [p for p, _ in shown] == ["axial", "sagittal"]
    assert all(s.max() == 1.0 for _, s in shown)
    assert orthogonal_slices(vol, voxel=(0, 0, 0))[0][1].max() == 0.0


def test_center_voxel_of_a_mask_is_its_rounded_centroid() -> None:
    mask = np.zeros((9, 9, 9), bool)
    mask[1:4, 5:9, 2] = True
    expected = tuple(int(round(c)) for c in np.argwhere(mask).mean(axis=0))
    assert center_voxel(mask) == expected == (2, 6, 2)


def test_center_voxel_weights_by_magnitude() -> None:
    vol = np.zeros((5, 1, 1))
    vol[0], vol[4] = -3.0, 1.0  # |−3| pulls the center toward index 0
    assert center_voxel(vol) == (1, 0, 0)


def test_unknown_plane_is_one_line_naming_it() -> None:
    with pytest.raises(TausynthError, match="plane: 'oblique' is not one of"):
        plane_slice(np.zeros((2, 2, 2)), "oblique", 0)
