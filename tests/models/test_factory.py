"""Tests for tausynth.models.factory: every model builds, keeps shapes, learns, and is described."""

from __future__ import annotations

import inspect
import json
from types import SimpleNamespace

import monai
import pytest
import torch
from monai.networks.nets import UNet

from tausynth.config import ModelConfig, load_profile
from tausynth.errors import TausynthError
from tausynth.models import (
    MODEL_NAMES,
    SWINUNETR_MIN_SIZE,
    CycleGAN,
    Pix2Pix,
    SpatialPadCrop,
    build,
    describe,
    generator_of,
    predict_pet,
)

# Tiny sizes so that every model runs in well under a second (SwinUNETR still pads to 64³).
TINY = dict(
    channels=(4, 8, 16),
    strides=(2, 2),
    dropout=0.0,
    feature_size=12,
    hidden_size=48,
    mlp_dim=96,
    num_heads=4,
    depths=(1, 1, 1, 1),
    swin_num_heads=(3, 3, 3, 3),
    d_channels=4,
    d_num_layers=2,
)
SHAPE = (40, 48, 40)
ODD = (37, 45, 41)
EXPECTED_DIVISOR = {"unet": 4, "unetr": 16, "swinunetr": 32, "pix2pix": 4, "cyclegan": 4}
EXPECTED_KIND = {
    "unet": "supervised",
    "unetr": "supervised",
    "swinunetr": "supervised",
    "pix2pix": "pix2pix",
    "cyclegan": "cyclegan",
}
PARAMS = [pytest.param(n, marks=pytest.mark.slow) if n == "swinunetr" else n for n in MODEL_NAMES]


def tiny(**overrides: object) -> SimpleNamespace:
    return SimpleNamespace(**{**TINY, **overrides})


_CACHE: dict[str, torch.nn.Module] = {}


def tiny_model(name: str) -> torch.nn.Module:
    if name not in _CACHE:
        torch.manual_seed(0)
        _CACHE[name] = build(name, tiny(), spatial_shape=SHAPE)
    return _CACHE[name]


@pytest.mark.parametrize("name", PARAMS)
def test_output_shape_equals_input_shape(name: str) -> None:
    model = tiny_model(name).eval()
    for shape in (SHAPE, ODD):
        x = torch.randn(1, 1, *shape)
        with torch.no_grad():
            y = model(x)
        assert y.shape == x.shape
        assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", PARAMS)
def test_attributes_divisor_and_kind(name: str) -> None:
    model = tiny_model(name)
    assert model.name == name
    assert model.kind == EXPECTED_KIND[name]
    assert model.divisor == EXPECTED_DIVISOR[name]
    gen = generator_of(model)
    assert isinstance(gen, SpatialPadCrop) and gen.divisor == EXPECTED_DIVISOR[name]
    if model.kind != "supervised":
        assert model.generator is gen is model.g_mri2pet


@pytest.mark.parametrize("name", PARAMS)
def test_gradient_reaches_every_generator_parameter(name: str) -> None:
    torch.manual_seed(1)
    model = build(name, tiny(), spatial_shape=ODD).train()
    x, target = torch.randn(1, 1, *ODD), torch.randn(1, 1, *ODD)
    loss = torch.nn.functional.mse_loss(model(x), target)
    loss.backward()
    # MONAI's TransformerBlock always creates a cross-attention norm, unused without cross-attention
    params = {k: p for k, p in generator_of(model).named_parameters() if "cross_attn" not in k}
    missing = [k for k, p in params.items() if p.grad is None]
    assert not missing
    nonzero = sum(bool(p.grad.abs().sum() > 0) for p in params.values())
    assert nonzero / len(params) > 0.9


@pytest.mark.parametrize("name", ["pix2pix", "cyclegan"])
def test_gan_step_trains_generators_then_discriminators(name: str) -> None:
    torch.manual_seed(2)
    model = build(name, tiny(), spatial_shape=ODD)
    mri, pet = torch.randn(1, 1, *ODD), torch.randn(1, 1, *ODD)
    step = model.generator_loss(mri, pet)
    assert step.fake_pet.shape == pet.shape
    step.total.backward()
    assert all(p.grad is not None for p in model.generator_parameters())
    assert all(p.grad is None for p in model.discriminator_parameters())
    args = (step.fake_pet,) if name == "pix2pix" else (step.fake_pet, step.fake_mri)
    model.discriminator_loss(mri, pet, *args).backward()
    assert all(p.grad is not None for p in model.discriminator_parameters())


def test_unknown_name_is_a_one_line_error_listing_the_allowed_names() -> None:
    with pytest.raises(TausynthError) as info:
        build("vnet", tiny())
    message = str(info.value)
    assert "\n" not in message and "'vnet'" in message
    assert all(n in message for n in MODEL_NAMES)


def test_default_unet_is_the_official_network() -> None:
    model = build("unet", ModelConfig())
    official = UNet(
        spatial_dims=3,
        in_channels=1,
        out_channels=1,
        channels=(64, 128, 256, 512, 1024),
        strides=(2, 2, 2, 2),
        dropout=0.2,
    )
    assert model.divisor == 16
    ours = model.net.state_dict()
    assert {k: v.shape for k, v in ours.items()} == {
        k: v.shape for k, v in official.state_dict().items()
    }
    assert sum(p.numel() for p in model.parameters()) == 31_636_937
    assert (model.net.act, model.net.norm, model.net.num_res_units, model.net.dropout) == (
        official.act,
        official.norm,
        0,
        0.2,
    )
    official.load_state_dict(
        ours
    )  # an official checkpoint loads into model.net (keys prefixed "net.")
    model.eval(), official.eval()
    x = torch.randn(1, 1, 32, 32, 48)
    with torch.no_grad():
        assert torch.allclose(model(x), official(x))
    # 16³ would leave a 1³ bottleneck, which fails under instance norm: padded to 32 per dimension
    assert model.padded_shape((16, 16, 16)) == (32, 32, 32) and model.padded_shape(
        (40, 48, 40)
    ) == (48, 48, 48)
    assert model(torch.randn(1, 1, 16, 16, 16)).shape == (1, 1, 16, 16, 16)


def test_default_config_is_the_paper_unet_when_config_is_none() -> None:
    assert describe(build("unet"))["parameters"] == 31_636_937


def test_unet_divisor_is_the_product_of_strides() -> None:
    assert build("unet", tiny(channels=(2, 4, 8, 16, 32), strides=(2, 2, 2, 2))).divisor == 16
    assert build("unet", tiny(channels=(2, 4, 8), strides=(2, 3))).divisor == 6
    assert build("unet", tiny(channels=(2, 4, 8), strides=(2, 1))).divisor == 2


def test_unetr_img_size_is_the_padded_data_shape() -> None:
    model = tiny_model("unetr")
    assert model.fixed_shape == (48, 48, 48)
    assert describe(model)["networks"]["net"]["kwargs"]["img_size"] == [48, 48, 48]
    assert model.net.vit.patch_embedding.n_patches == 27  # (48 / 16)^3
    big = build("unetr", tiny(), spatial_shape=(80, 96, 80))
    assert big.fixed_shape == (80, 96, 80) and big.net.vit.patch_embedding.n_patches == 5 * 6 * 5
    with pytest.raises(TausynthError, match="fixed input shape"):
        model(torch.zeros(1, 1, 49, 48, 48))


def test_unetr_needs_a_shape_and_takes_it_from_a_full_config() -> None:
    with pytest.raises(TausynthError, match="spatial shape"):
        build("unetr", tiny())
    full = SimpleNamespace(model=tiny(), data=SimpleNamespace(shape=(33, 17, 16)))
    assert build("unetr", full).fixed_shape == (48, 32, 16)
    assert build("unetr", full, spatial_shape=(16, 16, 16)).fixed_shape == (16, 16, 16)


def test_swinunetr_pads_every_dimension_to_at_least_64() -> None:
    model = build("swinunetr", tiny())
    assert model.divisor == 32 and SWINUNETR_MIN_SIZE == 64
    assert model.padded_shape(SHAPE) == (64, 64, 64)
    assert model.padded_shape((20, 70, 96)) == (64, 96, 96)
    kwargs = describe(model)["networks"]["net"]["kwargs"]
    assert "img_size" not in kwargs and kwargs["feature_size"] == 12
    assert kwargs["window_size"] == 7


def test_swinunetr_window_size_reaches_monai() -> None:
    model = build("swinunetr", tiny(window_size=4))
    assert describe(model)["networks"]["net"]["kwargs"]["window_size"] == 4
    attention = next(m for m in model.modules() if type(m).__name__ == "WindowAttention")
    assert tuple(attention.window_size) == (4, 4, 4)


def test_monai_swinunetr_facts_documented_in_the_factory() -> None:
    from monai.networks.nets.swin_unetr import PatchMerging, SwinUNETR

    with pytest.raises(TypeError):  # img_size removed in MONAI 1.5
        SwinUNETR(img_size=(64, 64, 64), in_channels=1, out_channels=1, feature_size=12)
    assert inspect.signature(SwinUNETR).parameters["patch_norm"].default is False  # as 1.3.2
    merging = PatchMerging(dim=1, spatial_dims=3)
    seen = []
    merging.norm.register_forward_hook(lambda _m, inputs, _o: seen.append(inputs[0]))
    block = torch.arange(8.0).reshape(1, 2, 2, 2, 1)
    merging(block)
    # fixed in MONAI 1.5: all 8 voxels of the 2×2×2 block (1.3.2 took 6 distinct, 2 twice)
    assert sorted(seen[0].flatten().tolist()) == list(range(8))


def test_gan_structure_and_parameter_counts() -> None:
    p2p, cyc, unet = build("pix2pix", tiny()), build("cyclegan", tiny()), build("unet", tiny())
    assert isinstance(p2p, Pix2Pix) and isinstance(cyc, CycleGAN)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    n_unet = count(unet)
    n_d1 = count(cyc.d_pet)
    # the conditional discriminator differs only by the extra input channel of its first 4³ conv
    assert count(p2p.discriminator) - n_d1 == TINY["d_channels"] * 4**3
    assert count(p2p) == n_unet + n_d1 + TINY["d_channels"] * 4**3
    assert count(cyc) == 2 * n_unet + 2 * n_d1
    assert p2p.adversarial.mode == cyc.adversarial.mode == "lsgan"
    assert (p2p.lambda_l1, cyc.lambda_cycle, cyc.lambda_identity) == (100.0, 10.0, 0.5)
    assert isinstance(p2p.discriminator.initial_conv.conv, torch.nn.Conv3d)
    norms = [m for m in p2p.discriminator.modules() if isinstance(m, torch.nn.InstanceNorm3d)]
    assert norms and not any(
        isinstance(m, torch.nn.BatchNorm3d) for m in p2p.discriminator.modules()
    )


def test_gan_options_are_read_from_the_config() -> None:
    p2p = build("pix2pix", tiny(gan_mode="bce", lambda_l1=50, d_norm="batch"))
    assert p2p.adversarial.mode == "bce" and p2p.lambda_l1 == 50.0
    assert any(isinstance(m, torch.nn.BatchNorm3d) for m in p2p.discriminator.modules())
    cyc = build("cyclegan", tiny(lambda_cycle=5, lambda_identity=0))
    assert (cyc.lambda_cycle, cyc.lambda_identity) == (5.0, 0.0)


@pytest.mark.parametrize(
    ("name", "overrides", "pattern"),
    [
        ("unet", {"strides": (2, 2, 2)}, r"model\.strides"),
        ("unet", {"channels": (4,), "strides": ()}, r"model\.(strides|channels)"),
        ("unet", {"dropout": 1.5}, r"model\.dropout"),
        ("unet", {"channels": (4, -8, 16)}, r"model\.channels"),
        ("pix2pix", {"gan_mode": "wgan"}, r"model\.gan_mode.*'wgan'.*lsgan, bce"),
        ("pix2pix", {"d_norm": "group"}, r"model\.d_norm.*'group'.*instance, batch"),
        ("cyclegan", {"lambda_cycle": -1}, r"model\.lambda_cycle"),
        ("swinunetr", {"feature_size": 16}, r"model\.feature_size.*12"),
        ("swinunetr", {"swin_num_heads": (5, 5, 5, 5)}, r"model\.swin_num_heads"),
        ("swinunetr", {"depths": (1, 1)}, r"model\.depths"),
        ("swinunetr", {"window_size": 0}, r"model\.window_size"),
        ("unetr", {"hidden_size": 50}, r"model\.hidden_size"),
    ],
)
def test_bad_config_values_name_the_field(name: str, overrides: dict, pattern: str) -> None:
    with pytest.raises(TausynthError, match=pattern):
        build(name, tiny(**overrides), spatial_shape=SHAPE)


def test_bad_spatial_shape() -> None:
    with pytest.raises(TausynthError, match="spatial_shape"):
        build("unet", tiny(), spatial_shape=(40, 48))


@pytest.mark.parametrize("name", ["unet", "pix2pix"])
def test_builds_from_the_smoke_profile(name: str) -> None:
    cfg = load_profile("smoke", {"model": {"name": name}})
    model = build(cfg.model.name, cfg)
    assert model.divisor == 4  # smoke strides (2, 2)
    assert describe(model)["spatial_shape"] == list(cfg.data.shape)


def test_predict_pet_uses_the_generator_without_gradients() -> None:
    x = torch.randn(1, 1, *ODD, requires_grad=True)
    for name in ("unet", "cyclegan"):
        model = tiny_model(name).eval()
        y = predict_pet(model, x)
        assert not y.requires_grad and y.shape == x.shape
        with torch.no_grad():
            assert torch.equal(y, generator_of(model)(x))


def test_describe_is_json_and_records_versions() -> None:
    record = json.loads(json.dumps(describe(tiny_model("cyclegan"))))
    assert (
        record["monai_version"] == monai.__version__
        and record["torch_version"] == torch.__version__
    )
    assert record["name"] == "cyclegan" and record["kind"] == "cyclegan" and record["divisor"] == 4
    assert record["parameters"] == sum(p.numel() for p in tiny_model("cyclegan").parameters())
    assert record["networks"]["generators"]["kwargs"]["channels"] == [4, 8, 16]
    assert record["networks"]["discriminators"]["kwargs"]["in_channels"] == 1
    assert record["networks"]["lambda_identity"] == 0.5
