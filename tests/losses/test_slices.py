"""The slices the perceptual loss sees, per plane."""

from __future__ import annotations

import torch

from tausynth.losses.slices import minmax_slices, plane_slices


def test_each_slice_is_scaled_on_its_own() -> None:
    s = torch.stack([torch.linspace(0, 2, 12).view(1, 3, 4), torch.linspace(5, 6, 12).view(1, 3, 4)])
    out = minmax_slices(s)
    assert torch.allclose(out.amin(dim=(1, 2, 3)), torch.zeros(2))
    assert torch.allclose(out.amax(dim=(1, 2, 3)), torch.ones(2))


def test_planes_follow_the_loss_axes_and_drop_empty_slices() -> None:
    vol = torch.zeros(1, 6, 5, 4)
    vol[0, 1:5, 2:4, 1:3] = torch.rand(4, 2, 2) + 1
    labels = (vol > 0).long() * 7
    out = plane_slices([vol, 2 * vol + 3], labels=[labels, labels])
    assert out["sagittal"][0].shape == (8, 1, 5, 4)  # 4 non-empty x-slices per volume
    assert out["coronal"][0].shape == (4, 1, 6, 4)
    assert out["axial"][0].shape == (4, 1, 6, 5)
    assert out["axial"][1].shape == (4, 6, 5) and set(out["axial"][1].unique().tolist()) == {0, 7}
    # min-max per slice: an affine change of the volume gives the same slices
    half = out["sagittal"][0].shape[0] // 2
    torch.testing.assert_close(out["sagittal"][0][:half], out["sagittal"][0][half:], rtol=1e-5, atol=1e-6)


def test_stride_keeps_every_kth_index() -> None:
    vol = torch.rand(1, 8, 3, 3) + 0.1
    assert plane_slices([vol], planes=("sagittal",), stride=3)["sagittal"][0].shape[0] == 3
