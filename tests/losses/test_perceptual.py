"""Algorithm 1 batched over slices: equivalence with the official per-slice loop, options, weights policy."""

from __future__ import annotations

import socket
import subprocess
import sys
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tausynth.errors import TausynthError
from tausynth.losses import _weights
from tausynth.losses._weights import PretrainedWeightsUnavailableWarning
from tausynth.losses.perceptual import (
    PLANE_AXES,
    VGG16_IMAGENET_FILE,
    PerceptualLoss,
    SlicePerceptualLoss,
    vgg16_cache_path,
    vgg16_relu4_3,
)
from tausynth.losses.reference import per_slice_loop_loss

PLANES = ("axial", "coronal", "sagittal")
SHAPE = (2, 1, 13, 11, 9)  # B = 2, non-cubic


def loop_loss(features, pred, target, plane, *, imagenet=False, skip_empty=False):
    """The official per-slice loop (Algorithm 1), written out independently of the package."""
    axis = {"sagittal": 2, "coronal": 3, "axial": 4}[plane]
    losses = []
    for i in range(pred.shape[axis]):
        p = pred.select(axis, i)  # (B, 1, H, W)
        t = target.select(axis, i)
        if skip_empty and t.max() == t.min():
            continue
        p = (p - p.min()) / (p.max() - p.min() + 1e-8)
        t = (t - t.min()) / (t.max() - t.min() + 1e-8)
        p, t = p.repeat(1, 3, 1, 1), t.repeat(1, 3, 1, 1)
        if imagenet:
            mean = torch.tensor([0.485, 0.456, 0.406], dtype=p.dtype).view(1, 3, 1, 1)
            std = torch.tensor([0.229, 0.224, 0.225], dtype=p.dtype).view(1, 3, 1, 1)
            p, t = (p - mean) / std, (t - mean) / std
        losses.append(F.mse_loss(features(p), features(t)))
    return sum(losses) / len(losses)


def small_vgg_like(seed: int = 0, dtype=torch.float32) -> nn.Module:
    """A tiny VGG-like extractor (conv/ReLU/pool) so the many equivalence cases stay fast."""
    gen = torch.Generator().manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(inplace=True),
    )
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, generator=gen)
            nn.init.uniform_(m.bias, -0.1, 0.1, generator=gen)
    return net.to(dtype).requires_grad_(False).eval()


def volumes(shape=SHAPE, dtype=torch.float32, seed=0, background=True):
    gen = torch.Generator().manual_seed(seed)
    target = torch.rand(shape, generator=gen, dtype=torch.float64)
    pred = target + 0.3 * torch.randn(shape, generator=gen, dtype=torch.float64)
    if background:  # constant background slices on every axis, as in a padded brain volume
        for t in (pred, target):
            t[:, :, 0] = -1.0
            t[:, :, :, -1] = -1.0
            t[..., 0] = -1.0
    return pred.to(dtype), target.to(dtype)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.fixture(scope="module")
def vgg_random() -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PretrainedWeightsUnavailableWarning)
        return vgg16_relu4_3("random")


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    """An empty torch hub cache, the once-per-process warning reset, and no network at all."""
    saved = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    monkeypatch.setattr(_weights, "_WARNED", set())

    def no_network(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    yield tmp_path / "hub"
    torch.hub.set_dir(saved)


# --- equivalence with the per-slice loop --------------------------------------------------------


@pytest.mark.parametrize("plane", PLANES)
@pytest.mark.parametrize("chunk", [1, 4, None])
@pytest.mark.parametrize("eager", [True, False])
def test_equals_loop_float32(plane, chunk, eager):
    feats = small_vgg_like()
    pred, target = volumes()
    pred_ref = pred.clone().requires_grad_(True)
    ref = loop_loss(feats, pred_ref, target, plane)
    (g_ref,) = torch.autograd.grad(ref, pred_ref)

    loss = SlicePerceptualLoss(feats, max_slices_per_chunk=chunk, eager_backward=eager)
    pred_ours = pred.clone().requires_grad_(True)
    value = loss(pred_ours, target, plane)
    (g,) = torch.autograd.grad(value, pred_ours)
    assert abs(float(value.detach()) - float(ref.detach())) <= 1e-5 * abs(float(ref.detach()))
    assert rel(g, g_ref) <= 1e-2


@pytest.mark.parametrize("plane", PLANES)
def test_equals_loop_float64_gradients(plane):
    feats = small_vgg_like(dtype=torch.float64)
    pred, target = volumes(dtype=torch.float64, seed=1)
    pred_ref = pred.clone().requires_grad_(True)
    ref = loop_loss(feats, pred_ref, target, plane)
    (g_ref,) = torch.autograd.grad(ref, pred_ref)
    pred_ours = pred.clone().requires_grad_(True)
    value = SlicePerceptualLoss(feats, max_slices_per_chunk=3)(pred_ours, target, plane)
    (g,) = torch.autograd.grad(value, pred_ours)
    assert value.dtype == torch.float64
    assert abs(float(value.detach()) - float(ref.detach())) <= 1e-12 * abs(float(ref.detach()))
    assert rel(g, g_ref) <= 1e-8


@pytest.mark.parametrize("plane", PLANES)
def test_real_vgg16_equals_loop(plane, vgg_random):
    pred, target = volumes(shape=(2, 1, 10, 12, 8), seed=2)
    pred_ref = pred.clone().requires_grad_(True)
    ref = loop_loss(vgg_random, pred_ref, target, plane)
    (g_ref,) = torch.autograd.grad(ref, pred_ref)
    pred_ours = pred.clone().requires_grad_(True)
    value = SlicePerceptualLoss(vgg_random, max_slices_per_chunk=4)(pred_ours, target, plane)
    (g,) = torch.autograd.grad(value, pred_ours)
    assert abs(float(value.detach()) - float(ref.detach())) <= 1e-5 * abs(float(ref.detach()))
    assert rel(g, g_ref) <= 1e-2


def test_package_reference_loop_matches_test_loop():
    feats = small_vgg_like()
    pred, target = volumes(seed=3)
    for plane in PLANES:
        a = per_slice_loop_loss(feats, pred, target, plane)
        b = loop_loss(feats, pred, target, plane)
        assert float(a) == pytest.approx(float(b), rel=1e-6)


def test_loss_is_zero_for_identical_volumes_and_positive_otherwise():
    feats = small_vgg_like()
    pred, target = volumes(seed=4)
    loss = SlicePerceptualLoss(feats)
    assert float(loss(target, target, "axial")) == 0.0
    assert float(loss(pred, target, "axial")) > 0.0


def test_invariant_to_positive_affine_intensity_change_of_pred():
    # joint min-max per slice: a * pred + b (a > 0) scales to the same [0, 1] slices
    feats = small_vgg_like()
    pred, target = volumes(dtype=torch.float64, seed=5)
    feats = feats.double()
    loss = SlicePerceptualLoss(feats)
    for plane in PLANES:
        base = float(loss(pred, target, plane))
        assert float(loss(3.0 * pred - 7.0, target, plane)) == pytest.approx(base, rel=1e-6)


class Recorder(nn.Module):
    """Records the image sizes it sees; returns its input as features."""

    def __init__(self) -> None:
        super().__init__()
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, x):
        self.shapes.append(tuple(x.shape))
        return x


@pytest.mark.parametrize("plane", PLANES)
def test_plane_to_axis_mapping(plane):
    rec = Recorder()
    shape = (2, 1, 7, 6, 5)
    pred, target = volumes(shape=shape)
    SlicePerceptualLoss(rec, max_slices_per_chunk=None, channels_last=False)(pred, target, plane)
    axis = PLANE_AXES[plane]
    hw = tuple(s for d, s in enumerate(shape) if d >= 2 and d != axis)
    n_images = shape[0] * shape[axis]
    assert rec.shapes == [(n_images, 3, *hw)] * 2  # target then prediction, all slices at once
    assert PLANE_AXES == {"sagittal": 2, "coronal": 3, "axial": 4}


def test_joint_batch_scaling_couples_samples_and_per_sample_option_decouples():
    feats = small_vgg_like()
    pred, target = volumes(background=False, seed=6)
    target[1] *= 5.0  # a brighter second sample changes the joint min-max of every slice
    pred[1] *= 5.0
    joint = SlicePerceptualLoss(feats)
    per = SlicePerceptualLoss(feats, per_sample_scaling=True)
    singles = [float(per(pred[i : i + 1], target[i : i + 1], "axial")) for i in range(2)]
    # per-sample scaling: the batch loss is the mean of the samples' losses
    assert float(per(pred, target, "axial")) == pytest.approx(sum(singles) / 2, rel=1e-5)
    # the paper's joint scaling: it is not (sample 0 is scaled by sample 1's range)
    assert float(joint(pred, target, "axial")) != pytest.approx(sum(singles) / 2, rel=1e-3)
    assert float(joint(pred, target, "axial")) == pytest.approx(float(loop_loss(feats, pred, target, "axial")), rel=1e-5)


def test_imagenet_norm_option_matches_loop_with_normalization():
    feats = small_vgg_like()
    pred, target = volumes(seed=7)
    ours = SlicePerceptualLoss(feats, imagenet_norm=True)(pred, target, "coronal")
    assert float(ours) == pytest.approx(float(loop_loss(feats, pred, target, "coronal", imagenet=True)), rel=1e-5)
    plain = SlicePerceptualLoss(feats)(pred, target, "coronal")
    assert float(ours) != pytest.approx(float(plain), rel=1e-3)


def test_background_slices_count_unless_skipped():
    feats = small_vgg_like()
    pred, target = volumes(seed=8)
    target[..., -3:] = 0.0  # three empty axial slices; the prediction is not empty there
    keep_all = SlicePerceptualLoss(feats)(pred, target, "axial")
    assert float(keep_all) == pytest.approx(float(loop_loss(feats, pred, target, "axial")), rel=1e-5)
    skipped = SlicePerceptualLoss(feats, skip_empty_slices=True)
    p = pred.clone().requires_grad_(True)
    value = skipped(p, target, "axial")
    ref = loop_loss(feats, pred, target, "axial", skip_empty=True)
    assert float(value.detach()) == pytest.approx(float(ref), rel=1e-5)
    assert float(value.detach()) != pytest.approx(float(keep_all), rel=1e-3)
    (g,) = torch.autograd.grad(value, p)
    assert torch.all(g[..., -3:] == 0) and g[..., :-3].abs().sum() > 0
    # all slices empty: zero, still differentiable
    flat = torch.zeros_like(target)
    q = pred.clone().requires_grad_(True)
    zero = skipped(q, flat, "axial")
    assert float(zero.detach()) == 0.0
    zero.backward()


def test_no_gradient_into_target():
    feats = small_vgg_like()
    pred, target = volumes(seed=9)
    pred.requires_grad_(True)
    target.requires_grad_(True)
    for eager in (True, False):
        value = SlicePerceptualLoss(feats, eager_backward=eager)(pred, target, "sagittal")
        g_pred, g_target = torch.autograd.grad(value, (pred, target), allow_unused=True)
        assert g_pred is not None and g_target is None


def test_no_grad_mode_gives_same_value():
    feats = small_vgg_like()
    pred, target = volumes(seed=10)
    loss = SlicePerceptualLoss(feats, max_slices_per_chunk=2)
    with torch.no_grad():
        a = loss(pred, target, "axial")
    b = loss(pred.clone().requires_grad_(True), target, "axial")
    assert float(a) == pytest.approx(float(b.detach()), rel=1e-6)


def test_bf16_autocast_close_to_fp32(vgg_random):
    pred, target = volumes(shape=(2, 1, 16, 16, 12), seed=11)
    exact = SlicePerceptualLoss(vgg_random)(pred, target, "axial")
    p = pred.clone().requires_grad_(True)
    fast = SlicePerceptualLoss(vgg_random, autocast_dtype=torch.bfloat16)(p, target, "axial")
    assert fast.dtype == torch.float32
    assert float(fast.detach()) == pytest.approx(float(exact), rel=0.02)
    fast.backward()
    assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0


def test_injected_extractor_is_frozen_and_stays_in_eval():
    feats = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    loss = SlicePerceptualLoss(feats)
    assert not any(p.requires_grad for p in feats.parameters())
    loss.train()
    assert loss.training and not feats.training
    assert loss.weights_source == "custom"


def test_input_and_option_validation():
    feats = small_vgg_like()
    loss = SlicePerceptualLoss(feats)
    pred, target = volumes()
    with pytest.raises(TausynthError, match=r"'transverse'.*'axial', 'coronal', 'sagittal'"):
        loss(pred, target, "transverse")
    with pytest.raises(ValueError, match="differ in shape"):
        loss(pred, target[:, :, :-1], "axial")
    with pytest.raises(ValueError, match=r"\(B, 1, X, Y, Z\)"):
        loss(pred[:, 0], target[:, 0], "axial")
    with pytest.raises(TausynthError, match="max_slices_per_chunk"):
        SlicePerceptualLoss(feats, max_slices_per_chunk=0)
    with pytest.raises(TausynthError, match="autocast_dtype"):
        SlicePerceptualLoss(feats, autocast_dtype=torch.float64)


# --- perceptual modes --------------------------------------------------------------------------


def test_modes():
    feats = small_vgg_like()
    pred, target = volumes(seed=12)
    per_plane = {p: float(loop_loss(feats, pred, target, p)) for p in PLANES}
    assert float(PerceptualLoss("2.5d", features=feats)(pred, target)) == pytest.approx(
        sum(per_plane.values()) / 3, rel=1e-5
    )
    two_d = PerceptualLoss("2d", plane="coronal", features=feats)
    assert float(two_d(pred, target, "axial")) == pytest.approx(per_plane["coronal"], rel=1e-5)
    cyclic = PerceptualLoss("cyclic", features=feats)
    for p in PLANES:
        assert float(cyclic(pred, target, p)) == pytest.approx(per_plane[p], rel=1e-5)
    with pytest.raises(TausynthError, match="cyclic"):
        cyclic(pred, target)
    none = PerceptualLoss("none")
    assert float(none(pred, target, "axial")) == 0.0 and none.weights_source is None
    with pytest.raises(TausynthError, match=r"'3D'.*'none', '2d', '2.5d', 'cyclic', '3d'"):
        PerceptualLoss("3D")
    with pytest.raises(TausynthError, match="do not apply"):
        PerceptualLoss("3d", features=nn.Identity(), max_slices_per_chunk=4)


# --- weights policy (offline) ------------------------------------------------------------------


def test_auto_without_cache_is_random_warns_once_and_never_downloads(empty_hub):
    with pytest.warns(PretrainedWeightsUnavailableWarning, match=VGG16_IMAGENET_FILE) as record:
        net = vgg16_relu4_3("auto")
    assert len(record) == 1
    assert net.weights_source == "random"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = vgg16_relu4_3("auto")  # second time in the process: silent
    assert again.weights_source == "random"
    loss = SlicePerceptualLoss()
    assert loss.weights_source == "random"


def test_imagenet_missing_is_a_one_line_error_naming_the_cache_file(empty_hub):
    with pytest.raises(TausynthError) as info:
        vgg16_relu4_3("imagenet")
    msg = str(info.value)
    assert str(vgg16_cache_path()) in msg and str(empty_hub) in msg
    assert "\n" not in msg


def test_imagenet_loaded_from_cache_file(empty_hub, vgg_random):
    # a stand-in for torchvision's file: a whole-VGG16 state dict (features.* and classifier.*)
    donor = vgg16_relu4_3("random", seed=7)
    state = {f"features.{k}": v for k, v in donor.state_dict().items()}
    state["features.24.weight"] = torch.zeros(512, 512, 3, 3)  # beyond relu4_3: ignored
    state["classifier.0.weight"] = torch.zeros(2, 2)
    path = vgg16_cache_path()
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    for policy in ("imagenet", "auto"):
        net = vgg16_relu4_3(policy)
        assert net.weights_source == "imagenet"
        assert torch.equal(net[0].weight, donor[0].weight) and torch.equal(net[21].bias, donor[21].bias)
    assert not torch.equal(net[0].weight, vgg_random[0].weight)


def test_weights_from_state_dict_path(tmp_path, empty_hub):
    donor = vgg16_relu4_3("random", seed=3)
    path = tmp_path / "vgg_features.pt"
    torch.save(donor.state_dict(), path)
    net = vgg16_relu4_3(path)
    assert net.weights_source == f"file:{path}"
    assert torch.equal(net[19].weight, donor[19].weight)
    bad = tmp_path / "bad.pt"
    torch.save({"0.weight": torch.zeros(1)}, bad)
    with pytest.raises(TausynthError, match="bad.pt"):
        vgg16_relu4_3(bad)
    with pytest.raises(TausynthError, match="missing.pt"):
        vgg16_relu4_3(tmp_path / "missing.pt")
    with pytest.raises(TausynthError, match=r"'imagenett'.*'imagenet', 'random', 'auto'"):
        vgg16_relu4_3("imagenett")


def test_random_weights_are_seeded_and_leave_global_rng_alone():
    state = torch.get_rng_state()
    a, b, c = vgg16_relu4_3("random"), vgg16_relu4_3("random"), vgg16_relu4_3("random", seed=1)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert not torch.equal(a[0].weight, c[0].weight)
    assert len(a) == 23 and isinstance(a[-1], nn.ReLU) and a[-2].out_channels == 512
    assert not a.training and not any(p.requires_grad for p in a.parameters())
    a.train()
    assert not a.training


@pytest.mark.slow
def test_random_weights_identical_in_another_process():
    code = (
        "import torch; from tausynth.losses.perceptual import vgg16_relu4_3; "
        "n = vgg16_relu4_3('random'); print(sum(float(p.double().sum()) for p in n.parameters()).hex())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    here = sum(float(p.double().sum()) for p in vgg16_relu4_3("random").parameters()).hex()
    assert out.stdout.strip() == here


def test_none_autocast_is_exact_inside_a_callers_autocast_region():
    feats = small_vgg_like()
    pred, target = volumes(seed=13)
    loss = SlicePerceptualLoss(feats)
    exact = loss(pred, target, "axial")
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        inside = loss(pred, target, "axial")
    assert float(inside) == float(exact)


@pytest.mark.parametrize("plane", PLANES)
def test_slices_per_step_is_the_mean_over_the_drawn_slices(plane):
    feats = small_vgg_like()
    pred, target = volumes()
    axis = PLANE_AXES[plane]
    n = pred.shape[axis]
    sub = SlicePerceptualLoss(feats, slices_per_step=3)
    torch.manual_seed(5)
    value = sub(pred, target, plane)
    torch.manual_seed(5)
    drawn = torch.randperm(n)[:3].sort().values
    # per-slice min–max scaling makes each slice's term independent of the others
    expected = loop_loss(feats, pred.index_select(axis, drawn), target.index_select(axis, drawn), plane)
    assert float(value) == pytest.approx(float(expected), rel=1e-5)
    # as many or more slices than the plane has: the paper's loss, exactly
    full = SlicePerceptualLoss(feats)(pred, target, plane)
    assert float(SlicePerceptualLoss(feats, slices_per_step=n)(pred, target, plane)) == pytest.approx(float(full), rel=1e-6)


def test_slices_per_step_is_unbiased_over_all_subsets():
    from itertools import combinations

    feats = small_vgg_like()
    pred, target = volumes()
    plane, k = "axial", 2
    axis = PLANE_AXES[plane]
    n = pred.shape[axis]
    subsets = [torch.tensor(c) for c in combinations(range(n), k)]
    mean_of_estimates = sum(
        float(loop_loss(feats, pred.index_select(axis, c), target.index_select(axis, c), plane)) for c in subsets
    ) / len(subsets)
    full = float(SlicePerceptualLoss(feats)(pred, target, plane))
    assert mean_of_estimates == pytest.approx(full, rel=1e-5)
    # and the draw is random: two calls without reseeding use different slices
    sub = SlicePerceptualLoss(feats, slices_per_step=k)
    torch.manual_seed(0)
    values = {round(float(sub(pred, target, plane)), 8) for _ in range(6)}
    assert len(values) > 1


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "3"])
def test_slices_per_step_rejects_bad_values(bad):
    with pytest.raises(TausynthError, match="slices_per_step"):
        SlicePerceptualLoss(small_vgg_like(), slices_per_step=bad)


# --- slice scaling ("volume", beyond the paper) -------------------------------------------------


def volume_scaled_loop(features, pred, target, plane):
    """Every slice of both volumes scaled by each target volume's min and max, written out here."""
    axis = {"sagittal": 2, "coronal": 3, "axial": 4}[plane]
    lo = target.flatten(1).amin(1).view(-1, 1, 1, 1)
    hi = target.flatten(1).amax(1).view(-1, 1, 1, 1)
    losses = []
    for i in range(pred.shape[axis]):
        p = (pred.select(axis, i) - lo) / (hi - lo + 1e-8)
        t = (target.select(axis, i) - lo) / (hi - lo + 1e-8)
        losses.append(F.mse_loss(features(p.repeat(1, 3, 1, 1)), features(t.repeat(1, 3, 1, 1))))
    return sum(losses) / len(losses)


@pytest.mark.parametrize("plane", PLANES)
@pytest.mark.parametrize("eager", [True, False])
def test_volume_scaling_equals_its_loop_with_gradients(plane, eager):
    feats = small_vgg_like(dtype=torch.float64)
    # no constant background: its max-pool ties make the (sub)gradient depend on the memory layout
    pred, target = volumes(dtype=torch.float64, seed=11, background=False)
    target[1] *= 3.0  # a second sample with another range: the range is per sample
    loss = SlicePerceptualLoss(feats, scaling="volume", eager_backward=eager, max_slices_per_chunk=3)
    x = pred.clone().requires_grad_(True)
    got = loss(x, target, plane)
    (g_got,) = torch.autograd.grad(got, x)
    y = pred.clone().requires_grad_(True)
    ref = volume_scaled_loop(feats, y, target, plane)
    (g_ref,) = torch.autograd.grad(ref, y)
    assert float(got) == pytest.approx(float(ref), rel=1e-10)
    assert rel(g_got, g_ref) < 1e-10


def test_volume_scaling_sees_intensity_level_and_spreads_the_gradient():
    # the paper's scaling cannot tell a slice from a brighter copy of it; "volume" can
    feats = small_vgg_like(dtype=torch.float64)
    _, target = volumes(dtype=torch.float64, seed=12, background=False)
    brighter = 1.5 * target
    paper = SlicePerceptualLoss(feats)
    volume = SlicePerceptualLoss(feats, scaling="volume")
    assert float(paper(brighter, target, "axial")) == pytest.approx(0.0, abs=1e-12)
    assert float(volume(brighter, target, "axial")) > 1e-3
    assert float(volume(target, target, "axial")) == 0.0
    # the paper's gradient piles onto each predicted slice's extremes; "volume" spreads it
    pred = (target + 0.1 * torch.randn(target.shape, generator=torch.Generator().manual_seed(0),
                                       dtype=torch.float64)).requires_grad_(True)
    share = {}
    for name, module in (("slice", paper), ("volume", volume)):
        (g,) = torch.autograd.grad(module(pred, target, "axial"), pred)
        s = pred.detach().movedim(4, 0).flatten(1)
        extremes = torch.zeros_like(s, dtype=torch.bool)
        rows = torch.arange(s.shape[0])
        extremes[rows, s.argmax(1)] = extremes[rows, s.argmin(1)] = True
        gs = g.movedim(4, 0).flatten(1)
        share[name] = float((gs[extremes] ** 2).sum() / (gs**2).sum())
    assert share["volume"] < share["slice"]


def test_scaling_option_is_validated():
    with pytest.raises(TausynthError, match=r"scaling: 'target' is not one of 'slice', 'volume'"):
        SlicePerceptualLoss(small_vgg_like(), scaling="target")


def test_unit_features_compare_directions_summed_over_channels():
    feats = small_vgg_like(dtype=torch.float64)
    pred, target = volumes(dtype=torch.float64, seed=13, background=False)
    loss = SlicePerceptualLoss(feats, unit_features=True, max_slices_per_chunk=2)
    per_slice = []
    for i in range(pred.shape[4]):  # axial, written out
        p, t = (s.select(4, i) for s in (pred, target))
        p, t = ((s - s.min()) / (s.max() - s.min() + 1e-8) for s in (p, t))
        fp, ft = feats(p.repeat(1, 3, 1, 1)), feats(t.repeat(1, 3, 1, 1))
        fp, ft = (f / torch.sqrt((f * f).sum(1, keepdim=True) + 1e-10) for f in (fp, ft))
        per_slice.append((fp - ft).pow(2).sum(1).mean())
    assert float(loss(pred, target, "axial")) == pytest.approx(float(sum(per_slice) / len(per_slice)), rel=1e-10)
    # feature magnitudes no longer count: scaling the network's last layer leaves the term unchanged,
    # so a balance factor has to ride on the loss (loss_scale)
    scaled = small_vgg_like(dtype=torch.float64)
    scaled[3].weight.data *= 5.0
    scaled[3].bias.data *= 5.0
    assert float(SlicePerceptualLoss(scaled, unit_features=True)(pred, target, "axial")) == pytest.approx(
        float(loss(pred, target, "axial")), rel=1e-9)
    scaled.loss_scale = 3.0
    assert float(SlicePerceptualLoss(scaled, unit_features=True)(pred, target, "axial")) == pytest.approx(
        3.0 * float(loss(pred, target, "axial")), rel=1e-9)
