from pathlib import Path

import pytest

from tausynth.config import Config, dump_config, load_config, load_profile
from tausynth.errors import TausynthError


@pytest.mark.parametrize("name", ["smoke", "demo", "paper"])
def test_profiles_load_and_round_trip(name: str, tmp_path: Path) -> None:
    cfg = load_profile(name)
    assert cfg.profile == name
    path = tmp_path / "run.yaml"
    path.write_text(dump_config(cfg))
    assert load_config(path) == cfg


def test_paper_profile_is_the_official_hyperparameters() -> None:
    cfg = load_profile("paper")
    t, loss, model = cfg.training, cfg.loss, cfg.model
    assert (t.max_epochs, t.cycle_duration, t.cycle_factor) == (1000, 120, "2/3")
    assert (t.lr, t.batch_size, t.patience, t.seed) == (5e-4, 12, 30, 42)
    assert t.cosine_t_max == 60
    assert (loss.alpha, loss.beta, loss.gamma, loss.ssim_data_range) == (1.0, 1.0, 0.5, 2.0)
    assert loss.perceptual == "cyclic"
    assert model.channels == (64, 128, 256, 512, 1024)
    assert model.strides == (2, 2, 2, 2) and model.dropout == 0.2
    assert not t.amp  # fp32: the official code has no autocast


def test_paper_profile_says_bf16_is_an_option() -> None:
    from importlib import resources

    text = resources.files("tausynth.profiles").joinpath("paper.yaml").read_text(encoding="utf-8")
    assert "amp: false" in text and "bf16" in text and "amp: true" in text


def test_overrides_merge_into_nested_sections() -> None:
    cfg = load_profile("smoke", {"model": {"name": "unetr"}, "training": {"seed": 7}})
    assert cfg.model.name == "unetr"
    assert cfg.training.seed == 7
    assert cfg.model.channels == load_profile("smoke").model.channels


def test_dotted_overrides_nest_and_merge_without_touching_the_base() -> None:
    from tausynth.config import dotted_overrides, merge_overrides

    nested = dotted_overrides([("training.amp", False), ("training.max_minutes", 1.5), ("normalization", "minmax")])
    assert nested == {"training": {"amp": False, "max_minutes": 1.5}, "normalization": "minmax"}
    base = {"training": {"amp": True, "lr": 0.1}, "model": {"name": "unet"}}
    merged = merge_overrides(base, nested)
    assert merged == {"training": {"amp": False, "lr": 0.1, "max_minutes": 1.5}, "model": {"name": "unet"},
                      "normalization": "minmax"}
    assert base == {"training": {"amp": True, "lr": 0.1}, "model": {"name": "unet"}}
    assert dotted_overrides([]) == {}


def test_demo_profile_is_a_small_but_complete_cpu_setting() -> None:
    cfg = load_profile("demo")
    assert cfg.data.n_subjects >= 90  # enough per manufacturer for the standardization statistics
    assert cfg.training.amp and cfg.training.cpu_amp and cfg.loss.slices_per_step == 1
    assert cfg.model.feature_size is not None and cfg.model.feature_size % 12 == 0  # SwinUNETR's rule
    paper = load_profile("paper")
    assert paper.loss.slices_per_step is None  # every slice, as the paper


def test_unknown_key_is_rejected_with_its_dotted_path(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("profile: smoke\ntraining:\n  max_epoch: 3\n")
    with pytest.raises(TausynthError, match=r"'training\.max_epoch' is unknown"):
        load_config(path)


def test_old_british_field_name_gets_the_new_spelling(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("profile: smoke\nnormalisation: standardize\n")
    with pytest.raises(TausynthError, match=r"'normalisation' is now spelled 'normalization'$"):
        load_config(path)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("profile: smoke\nmodel:\n  name: resnet\n", r"'model\.name': unknown value 'resnet'"),
        ("profile: smoke\nnormalization: zscore\n", r"'normalization': unknown value"),
        ("profile: smoke\ntraining:\n  max_epochs: many\n", r"'training\.max_epochs': expected an integer"),
        ("profile: smoke\ndata:\n  shape: [1, 2]\n", r"'data\.shape': expected 3 values"),
        ("profile: nonsense\n", r"unknown profile 'nonsense'"),
        ("- a\n- b\n", r"expected a mapping"),
        ("a: [\n", r"not valid YAML"),
    ],
)
def test_bad_configs_give_one_line_errors(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(text)
    with pytest.raises(TausynthError, match=match) as info:
        load_config(path)
    assert "\n" not in str(info.value)
    assert str(path) in str(info.value) or "profile" in str(info.value)


def test_defaults_are_the_paper() -> None:
    assert Config().training.cosine_t_max == 60


def test_model_fields_match_the_model_factory_defaults() -> None:
    from tausynth.models.factory import DEFAULTS

    model = Config().model
    for key, value in DEFAULTS.items():
        assert getattr(model, key) == value, key


@pytest.mark.parametrize(
    ("section", "match"),
    [
        ({"cycle_duration": 1}, r"'training\.cycle_duration': must be >= 2 .*T_max"),
        ({"batch_size": 0}, r"'training\.batch_size': must be >= 1"),
        ({"batches_per_epoch": 0}, r"'training\.batches_per_epoch'"),
        ({"val_subjects": 0}, r"'training\.val_subjects'"),
        ({"max_minutes": -1}, r"'training\.max_minutes': must be > 0"),
        ({"amp_dtype": "float8"}, r"'training\.amp_dtype': unknown value 'float8'"),
        ({"device": "tpu"}, r"'training\.device': unknown value 'tpu'"),
    ],
)
def test_training_values_are_checked(section: dict, match: str) -> None:
    with pytest.raises(TausynthError, match=match):
        load_profile("smoke", {"training": section})


def test_cpu_profiles_take_documented_shortcuts_and_paper_does_not() -> None:
    paper, demo = load_profile("paper").training, load_profile("demo").training
    assert paper.batches_per_epoch is None and paper.val_subjects is None and paper.max_minutes is None
    assert paper.cosine_t_max == 60 and demo.cosine_t_max >= 2  # T_max 1 would zero the LR every other epoch
    smoke = load_profile("smoke")
    assert smoke.training.max_epochs == 4 and smoke.model.hidden_size % smoke.model.num_heads == 0


def test_a_run_list_is_not_configuration(tmp_path: Path) -> None:
    # a user config may carry a run list for the book (tausynth.runlist reads it; Config does not)
    path = tmp_path / "run.yaml"
    path.write_text("profile: smoke\ntraining:\n  max_epochs: 3\nruns:\n  - {model: unet, loss: none}\n")
    assert load_config(path) == load_profile("smoke", {"training": {"max_epochs": 3}})
@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"data": {"augment_padding": "wrap"}}, r"'data\.augment_padding': unknown value 'wrap' \(allowed: zeros, border, reflection\)"),
        ({"training": {"val_reduction": "median"}}, r"'training\.val_reduction': unknown value 'median'"),
        ({"loss": {"ssim_range": "data"}}, r"'loss\.ssim_range': unknown value 'data' \(allowed: fixed, target\)"),
        ({"loss": {"slice_scaling": "batch"}}, r"'loss\.slice_scaling': unknown value 'batch' \(allowed: slice, volume\)"),
        ({"training": {"early_stopping": "never"}}, r"'training\.early_stopping': unknown value 'never' \(allowed: official, third_axial\)"),
        ({"loss": {"perceptual": "3d", "weights": "imagenet"}}, r"'loss\.weights': 'imagenet' .*3d uses 'medicalnet' \(options for 3d: auto, medicalnet, calibrated, random, or a path\)"),
        ({"loss": {"perceptual": "cyclic", "weights": "medicalnet"}}, r"'loss\.weights': 'medicalnet' .*cyclic uses 'imagenet'"),
        ({"loss": {"perceptual": "2d", "weights": "medicalnet"}}, r"'loss\.weights': 'medicalnet' .*2d uses 'imagenet'"),
    ],
)
def test_fidelity_options_are_validated(overrides: dict, match: str) -> None:
    with pytest.raises(TausynthError, match=match):
        load_profile("smoke", overrides)


def test_defaults_follow_the_official_code() -> None:
    cfg = Config()
    assert cfg.data.augment_padding == "zeros"
    assert cfg.training.amp is False and load_profile("paper").training.amp is False
    assert (cfg.loss.ssim_range, cfg.loss.ssim_data_range) == ("fixed", 2.0)
    assert cfg.loss.slice_scaling == "slice" and load_profile("paper").loss.slice_scaling == "slice"
    assert cfg.training.early_stopping == "official" and cfg.training.val_reduction == "batch_mean"
    assert all(load_profile(p).training.early_stopping == "official" for p in ("smoke", "demo", "paper"))


@pytest.mark.parametrize(
    ("perceptual", "weights"),
    [("3d", "medicalnet"), ("3d", "auto"), ("3d", "random"), ("3d", "/some/state_dict.pt"), ("cyclic", "imagenet"),
     ("2.5d", "auto"), ("none", "imagenet"), ("none", "medicalnet"), ("3d", "another-named-set")],
)
def test_weights_that_fit_the_mode_pass(perceptual: str, weights: str) -> None:
    assert load_profile("smoke", {"loss": {"perceptual": perceptual, "weights": weights}}).loss.weights == weights


def test_the_paper_profile_with_the_3d_loss_names_the_weights_field(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("profile: paper\nloss:\n  perceptual: 3d\n")  # the profile asks for imagenet
    with pytest.raises(TausynthError, match=r"run\.yaml: config field 'loss\.weights'") as info:
        load_config(path)
    assert "\n" not in str(info.value)
    path.write_text("profile: paper\nloss:\n  perceptual: 3d\n  weights: medicalnet\n")
    assert load_config(path).loss.weights == "medicalnet"
