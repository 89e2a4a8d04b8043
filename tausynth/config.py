"""Typed run configuration: dataclasses loaded from YAML, unknown keys rejected.

Three profiles ship as package data (``tausynth/profiles/*.yaml``):

``smoke``
    Tests and CI: a handful of synthetic subjects, a tiny grid, a few steps.
``demo``
    ``make book`` on a laptop CPU: 96 synthetic subjects at 4 mm, small networks, 15 short epochs.
``paper``
    The official hyper-parameters, verbatim, for GPUs and real data.

Examples
--------
>>> from tausynth.config import load_profile
>>> cfg = load_profile("paper")
>>> cfg.training.cosine_t_max
60
"""

from __future__ import annotations

import dataclasses
import fractions
import math
import re
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml

from tausynth.errors import TausynthError
from tausynth.vocabulary import (  # noqa: F401 (re-exported: the config's vocabulary)
    CACHE_MODES,
    MODELS,
    NORMALIZATIONS,
    PERCEPTUAL_MODES,
    PLANES,
    SLICE_SCALINGS,
)

PROFILES = ("smoke", "demo", "study", "paper")
#: Largest ``training.max_epochs`` accepted (the paper trains for 1000).
MAX_EPOCHS = 100_000
#: A profile YAML may name another under this key: its configuration (not its runs) is the base.
BASE_KEY = "base"
VAL_REDUCTIONS = ("batch_mean", "sample_mean")
EARLY_STOPPING_RULES = ("official", "third_axial")
PADDING_MODES = ("zeros", "border", "reflection")  # of the elastic and affine augmentations


PERCEPTUAL_WEIGHTS: dict[str, tuple[str, ...]] = {
    "2d": ("auto", "imagenet", "calibrated", "indomain", "random"),
    "3d": ("auto", "medicalnet", "calibrated", "random"),
}
"""Named ``loss.weights`` of the 2D modes' VGG16 (``2d``, ``2.5d``, ``cyclic``) and of the 3D mode's
ResNet-10; a state-dict path is also accepted (see :mod:`tausynth.training.features`)."""


def perceptual_kind(mode: str) -> str:
    """The network a perceptual mode uses: ``"3d"`` (ResNet-10) for ``"3d"``, else ``"2d"`` (VGG16)."""
    return "3d" if mode == "3d" else "2d"


def check_weights_for_mode(mode: str, weights: str) -> None:
    """Reject named perceptual weights that do not exist for the mode's network (one-line :class:`TausynthError`).

    ``"imagenet"`` and ``"indomain"`` are for the 2D modes' VGG16, ``"medicalnet"`` for the 3D
    mode's ResNet-10; any other value that is not a named set is taken as a state-dict path.

    Examples
    --------
    >>> check_weights_for_mode("3d", "medicalnet"); check_weights_for_mode("cyclic", "calibrated")
    >>> check_weights_for_mode("3d", "imagenet")
    Traceback (most recent call last):
    ...
    tausynth.errors.TausynthError: config field 'loss.weights': 'imagenet' is for the 2D modes' VGG16; loss.perceptual 3d uses 'medicalnet' (options for 3d: auto, medicalnet, calibrated, random, or a path)
    """
    if mode == "none":
        return
    kind = perceptual_kind(mode)
    named = {w for ws in PERCEPTUAL_WEIGHTS.values() for w in ws}
    if weights not in named or weights in PERCEPTUAL_WEIGHTS[kind]:
        return
    options = ", ".join(PERCEPTUAL_WEIGHTS[kind])
    if kind == "3d":
        raise TausynthError(
            f"config field 'loss.weights': {weights!r} is for the 2D modes' VGG16; loss.perceptual 3d uses "
            f"'medicalnet' (options for 3d: {options}, or a path)"
        )
    raise TausynthError(
        f"config field 'loss.weights': {weights!r} is for the 3d mode's ResNet-10; loss.perceptual {mode} "
        f"uses 'imagenet' (options for 2d, 2.5d and cyclic: {options}, or a path)"
    )


@dataclass(frozen=True)
class DataConfig:
    """Where the images come from and how they are shaped."""

    source: str = "synthetic"  # "synthetic" or "manifest"
    manifest: str | None = None
    n_subjects: int = 24
    seed: int = 0
    resolution: int = 4
    shape: tuple[int, int, int] = (40, 48, 40)
    confound: bool = False
    augment: bool = True
    # what the elastic and affine augmentations put at the voxels they pull in from outside the
    # volume: "zeros" (the official code), "border" or "reflection". With standardized PET the
    # background is about -3, so zeros leave a non-background value at the moved borders.
    augment_padding: str = "zeros"
    cache: str = "memory"


@dataclass(frozen=True)
class ModelConfig:
    """Network choice and size (MONAI defaults elsewhere)."""

    name: str = "unet"
    channels: tuple[int, ...] = (64, 128, 256, 512, 1024)
    strides: tuple[int, ...] = (2, 2, 2, 2)
    dropout: float = 0.2
    # UNETR / SwinUNETR (None: MONAI's default feature size, UNETR 16, SwinUNETR 24)
    feature_size: int | None = None
    hidden_size: int = 768
    mlp_dim: int = 3072
    num_heads: int = 12
    depths: tuple[int, int, int, int] = (2, 2, 2, 2)
    swin_num_heads: tuple[int, int, int, int] = (3, 6, 12, 24)
    window_size: int = 7  # SwinUNETR's attention window (MONAI's default and the paper's)
    use_checkpoint: bool = False
    # Pix2Pix / CycleGAN (the original papers' defaults)
    gan_mode: str = "lsgan"
    lambda_l1: float = 100.0
    lambda_cycle: float = 10.0
    lambda_identity: float = 0.5
    d_channels: int = 64
    d_num_layers: int = 3
    d_norm: str = "instance"


@dataclass(frozen=True)
class LossConfig:
    """Total loss α·MSE + β·(1 − SSIM) + γ·perceptual and the perceptual options."""

    perceptual: str = "cyclic"
    plane: str = "axial"  # the fixed plane of the "2d" mode
    alpha: float = 1.0
    beta: float = 1.0
    gamma: float = 0.5
    ssim_data_range: float = 2.0  # the official code's SSIM data range (used when ssim_range is "fixed")
    # "fixed": SSIM's stability constants use ssim_data_range (the official code); "target": each
    # target volume's own range, max - min (C1 = (0.01 L)^2, C2 = (0.03 L)^2 with that L)
    ssim_range: str = "fixed"
    # weights of the perceptual network (PERCEPTUAL_WEIGHTS; tausynth.training.features): "auto"
    # (pretrained if cached, else "calibrated"), "calibrated", "indomain" (2D only), "random", a
    # state-dict path, or the pretrained set of the mode's network: "imagenet" (VGG16 of the
    # 2d / 2.5d / cyclic modes) or "medicalnet" (ResNet-10 of the 3d mode)
    weights: str = "auto"
    # objective of the "indomain" VGG16 pretraining: "denoise" (self-supervised) or "labels" (atlas labels)
    indomain_objective: str = "denoise"
    indomain_steps: int = 300  # optimizer steps of that pretraining (batches of 32 slices)
    # offline networks ("calibrated", "indomain") only: null keeps the unit-variance scale; a number r
    # scales the term so that, for the mean training image, gamma * perceptual = r * (alpha * MSE +
    # beta * (1 - SSIM)) (an untrained network's feature scale is arbitrary; see the loss chapter)
    perceptual_balance: float | None = None
    per_sample_scaling: bool = False
    imagenet_norm: bool = False
    # "slice": each slice scaled by its own min and max (Algorithm 1); "volume" (beyond the paper):
    # prediction and target slices by the target volume's min and max (see the loss chapter)
    slice_scaling: str = "slice"
    # beyond the paper: compare unit-length relu4_3 feature vectors (LPIPS; as the 3D term does)
    unit_features: bool = False
    skip_empty_slices: bool = False
    max_slices_per_chunk: int | None = None
    slices_per_step: int | None = None  # None: every slice (the paper); k: k random slices per step

    def __post_init__(self) -> None:
        check_weights_for_mode(self.perceptual, self.weights)
        if self.perceptual_balance is not None and not self.perceptual_balance > 0:
            raise TausynthError(f"config field 'loss.perceptual_balance': must be > 0 or null, got {self.perceptual_balance!r}")
        if self.indomain_steps < 1:
            raise TausynthError(f"config field 'loss.indomain_steps': must be >= 1, got {self.indomain_steps!r}")


@dataclass(frozen=True)
class TrainingConfig:
    """Optimization, plane schedule (Algorithm 2) and early stopping."""

    max_epochs: int = 1000
    cycle_duration: int = 120
    cycle_factor: str = "2/3"
    lr: float = 5e-4
    batch_size: int = 12
    # None: one pass over the training split per epoch (the paper); N: only the first N batches of
    # each epoch's shuffled order (a CPU demo shortcut; metrics.csv records the batches done)
    batches_per_epoch: int | None = None
    # None: validate on the whole val split (the paper); N: on its first N scans (a CPU demo shortcut)
    val_subjects: int | None = None
    # how the epoch's validation loss averages the batches: "batch_mean" (the official code: the
    # mean of the per-batch means, so a short last batch weighs as much as a full one) or
    # "sample_mean" (weighted by batch size: the mean over validation scans)
    val_reduction: str = "batch_mean"
    patience: int = 30
    # when epochs without improvement count towards patience: "official" (the official code: after
    # the third axial phase's first epoch, axial_starts[2]; after epoch 0 when the run has fewer
    # than three axial phases) or "third_axial" (from axial_starts[2] itself; never with fewer than
    # three axial phases)
    early_stopping: str = "official"
    seed: int = 42
    grad_accum_steps: int = 1
    # False: fp32, as the official code; True: bf16 autocast on CUDA (see amp_dtype), a speed option
    # (on the CPU only with cpu_amp)
    amp: bool = False
    amp_dtype: str = "bfloat16"  # "float16" adds a GradScaler
    cpu_amp: bool = False
    gan_beta1: float = 0.5  # Adam beta1 of the GAN optimizers (Pix2Pix / CycleGAN defaults)
    # learning rate of the GAN discriminators (None: training.lr, as the generators); the original
    # Pix2Pix and CycleGAN use 2e-4 for both
    d_lr: float | None = None
    # beyond the paper: start the output bias of the MRI -> PET network at the mean of the
    # normalized training PET (standardized SUVR is about -3 in the background, most of a volume;
    # from a bias of 0, SwinUNETR took ~12 CPU epochs to get there; the U-Net does better without)
    init_output_bias: bool = False
    deterministic: bool = True
    device: str = "auto"  # "auto" (CUDA when available), "cpu" or "cuda"
    num_workers: int = 0
    max_minutes: float | None = None  # stop after the epoch that passes this wall time

    def __post_init__(self) -> None:
        for name in ("max_epochs", "cycle_duration", "batch_size", "patience", "grad_accum_steps"):
            value = getattr(self, name)
            if value < 1:
                raise TausynthError(f"config field 'training.{name}': must be >= 1, got {value!r}")
        if self.max_epochs > MAX_EPOCHS:
            raise TausynthError(
                f"config field 'training.max_epochs': at most {MAX_EPOCHS} (the plane schedule is planned epoch by "
                f"epoch), got {self.max_epochs!r}"
            )
        try:
            factor = float(fractions.Fraction(self.cycle_factor))
        except (ValueError, ZeroDivisionError):
            raise TausynthError(
                f"config field 'training.cycle_factor': {self.cycle_factor!r} is not a number or a fraction such as '2/3'"
            ) from None
        if not (math.isfinite(factor) and factor > 0):
            raise TausynthError(f"config field 'training.cycle_factor': must be > 0, got {self.cycle_factor!r}")
        if self.cosine_t_max < 1:
            raise TausynthError(
                f"config field 'training.cycle_duration': must be >= 2 so that the cosine T_max "
                f"int((T + 0.5) / 2) is at least 1, got {self.cycle_duration!r}"
            )
        if self.batches_per_epoch is not None and self.batches_per_epoch < 1:
            raise TausynthError(
                f"config field 'training.batches_per_epoch': must be >= 1 or null, got {self.batches_per_epoch!r}"
            )
        if self.val_subjects is not None and self.val_subjects < 1:
            raise TausynthError(f"config field 'training.val_subjects': must be >= 1 or null, got {self.val_subjects!r}")
        if self.num_workers < 0:
            raise TausynthError(f"config field 'training.num_workers': must be >= 0, got {self.num_workers!r}")
        if not self.lr > 0:
            raise TausynthError(f"config field 'training.lr': must be > 0, got {self.lr!r}")
        if self.d_lr is not None and not self.d_lr > 0:
            raise TausynthError(f"config field 'training.d_lr': must be > 0 or null, got {self.d_lr!r}")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise TausynthError(f"config field 'training.max_minutes': must be > 0, got {self.max_minutes!r}")

    @property
    def cosine_t_max(self) -> int:
        """``T_max`` of the official ``CosineAnnealingLR``: ``int((T + 0.5) / 2)``."""
        return int((self.cycle_duration + 0.5) / 2)


@dataclass(frozen=True)
class Config:
    """A complete, resolved run configuration."""

    profile: str = "paper"
    normalization: str = "standardize"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)

    def to_dict(self) -> dict[str, Any]:
        """Return a plain, YAML-serialisable dict (tuples become lists)."""
        return plain_data(dataclasses.asdict(self))


_CHOICES: dict[str, tuple[str, ...]] = {
    "profile": PROFILES,
    "normalization": NORMALIZATIONS,
    "data.source": ("synthetic", "manifest"),
    "data.cache": CACHE_MODES,
    "data.augment_padding": PADDING_MODES,
    "model.name": MODELS,
    "loss.perceptual": PERCEPTUAL_MODES,
    "loss.plane": PLANES,
    "loss.ssim_range": ("fixed", "target"),
    "loss.slice_scaling": SLICE_SCALINGS,
    "loss.indomain_objective": ("denoise", "labels"),
    "model.gan_mode": ("lsgan", "bce"),
    "model.d_norm": ("instance", "batch"),
    "training.amp_dtype": ("bfloat16", "float16"),
    "training.val_reduction": VAL_REDUCTIONS,
    "training.early_stopping": EARLY_STOPPING_RULES,
    "training.device": ("auto", "cpu", "cuda"),
}

T = TypeVar("T")


def plain_data(obj: Any) -> Any:
    """``obj`` with tuples turned into lists, recursively through dicts and lists (YAML/JSON-ready)."""
    if isinstance(obj, dict):
        return {k: plain_data(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain_data(v) for v in obj]
    return obj


_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp``; convert lists to tuples."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, where)
            except TausynthError as exc:
                errors.append(str(exc))
        raise TausynthError(errors[0] if errors else f"config field '{where}': invalid value {value!r}")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise TausynthError(f"config field '{where}': expected a list, got {value!r}")
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], where) for v in value)
        if len(args) != len(value):
            raise TausynthError(f"config field '{where}': expected {len(args)} values, got {len(value)}")
        return tuple(_coerce(v, a, where) for v, a in zip(value, args, strict=True))
    if tp is float:
        if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
            value = float(value)  # YAML 1.1 (PyYAML) reads 1e-3, without a dot, as a string
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TausynthError(f"config field '{where}': expected a number, got {value!r}")
        if not math.isfinite(value):
            raise TausynthError(f"config field '{where}': expected a finite number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TausynthError(f"config field '{where}': expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise TausynthError(f"config field '{where}': expected true or false, got {value!r}")
        return value
    if tp is str:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)  # e.g. a cycle factor written as 0.5
        if not isinstance(value, str):
            raise TausynthError(f"config field '{where}': expected a string, got {value!r}")
        return value
    raise TausynthError(f"config field '{where}': unsupported type {tp!r}")  # pragma: no cover


#: Fields renamed when the package settled on one (American) spelling: an old configuration gets a hint.
RENAMED_FIELDS: dict[str, str] = {"normalisation": "normalization"}


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys and wrong types.

    Error messages name the dotted field path, e.g. ``config field 'training.max_epoch' is unknown``.
    """
    if not isinstance(data, dict):
        raise TausynthError(f"config section '{prefix or '<root>'}': expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    renamed = [k for k in unknown if RENAMED_FIELDS.get(k) in names]
    if renamed:
        old = renamed[0]
        raise TausynthError(f"config field '{prefix}{old}' is now spelled '{prefix}{RENAMED_FIELDS[old]}'")
    if unknown:
        where = ", ".join(f"'{prefix}{k}'" for k in unknown)
        raise TausynthError(f"config field {where} is unknown (known: {', '.join(sorted(names))})")
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        where = f"{prefix}{key}"
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = from_dict(tp, value, prefix=f"{where}.")  # type: ignore[arg-type]
        else:
            kwargs[key] = _coerce(value, tp, where)
            if where in _CHOICES and kwargs[key] not in _CHOICES[where]:
                allowed = ", ".join(_CHOICES[where])
                raise TausynthError(f"config field '{where}': unknown value {kwargs[key]!r} (allowed: {allowed})")
    return cls(**kwargs)


def merge_overrides(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``override`` into a copy of ``base`` (nested sections merge, other values replace)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_overrides(out[key], value)
        else:
            out[key] = value
    return out


def dotted_overrides(items: Any) -> dict[str, Any]:
    """Nested overrides from ``(dotted_key, value)`` pairs, e.g. ``("training.amp", False)``."""
    out: dict[str, Any] = {}
    for key, value in items:
        *sections, last = str(key).split(".")
        node = out
        for section in sections:
            node = node.setdefault(section, {})
        node[last] = value
    return out


def read_yaml(text: str, source: str) -> dict[str, Any]:
    """A YAML mapping read safely from ``text``; one line naming ``source`` if it is not valid YAML or not a mapping."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TausynthError(f"{source}: not valid YAML ({exc.__class__.__name__})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise TausynthError(f"{source}: expected a mapping at the top level")
    return data


#: Top-level key of a profile (or user YAML) that holds the book's run list, not configuration:
#: :mod:`tausynth.runlist` reads it, the config loaders leave it out.
RUNS_KEY = "runs"


def profile_source(name: str) -> dict[str, Any]:
    """Return everything a shipped profile's YAML holds: its configuration and its ``runs`` list.

    A profile with a ``base: <other>`` key is the other profile's configuration with its own
    values merged over it (its ``runs`` list is its own).
    """
    if name not in PROFILES:
        raise TausynthError(f"unknown profile {name!r} (allowed: {', '.join(PROFILES)})")
    text = resources.files("tausynth.profiles").joinpath(f"{name}.yaml").read_text(encoding="utf-8")
    data = read_yaml(text, f"profile {name}")
    base = data.pop(BASE_KEY, None)
    if base is not None:
        if base == name or base not in PROFILES:
            raise TausynthError(f"profile {name}: base {base!r} must be another profile ({', '.join(PROFILES)})")
        inherited = profile_source(str(base))
        inherited.pop(RUNS_KEY, None)
        data = merge_overrides(inherited, data)
    data["profile"] = name
    return data


def profile_dict(name: str) -> dict[str, Any]:
    """Return the raw configuration mapping of a shipped profile (without its ``runs`` list)."""
    data = profile_source(name)
    data.pop(RUNS_KEY, None)
    return data


def load_profile(name: str, overrides: dict[str, Any] | None = None) -> Config:
    """Load a shipped profile (``smoke``, ``demo``, ``study`` or ``paper``), optionally with overrides.

    Parameters
    ----------
    name : str
        Profile name.
    overrides : dict, optional
        Nested mapping merged over the profile, e.g. ``{"model": {"name": "unetr"}}``.
    """
    return from_dict(Config, merge_overrides(profile_dict(name), overrides or {}))


def load_config(path: str | Path) -> Config:
    """Load a run configuration from YAML; a ``profile`` key selects the base profile.

    A ``runs`` list in the file (a batch of book runs, see :mod:`tausynth.runlist`) is not
    configuration and is ignored here. A relative ``data.manifest`` is relative to the config
    file's folder (so the pair moves together), and is returned absolute.
    """
    path = Path(path)
    if not path.is_file():
        raise TausynthError(f"{path}: config file not found")
    data = read_yaml(path.read_text(encoding="utf-8"), str(path))
    data.pop(RUNS_KEY, None)
    if not data:
        raise TausynthError(f"{path}: the config file is empty; give at least a 'profile' (smoke, demo, study or paper)")
    base = profile_dict(data["profile"]) if isinstance(data.get("profile"), str) else {}
    section = data.get("data")
    if isinstance(section, dict) and isinstance(section.get("manifest"), str) and section["manifest"]:
        manifest = Path(section["manifest"]).expanduser()
        if not manifest.is_absolute():
            data = {**data, "data": {**section, "manifest": str((path.parent / manifest).resolve())}}
    try:
        return from_dict(Config, merge_overrides(base, data))
    except TausynthError as exc:
        raise TausynthError(f"{path}: {exc}") from None


def dump_config(cfg: Config) -> str:
    """Serialise ``cfg`` to YAML (the resolved form written into each run folder)."""
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
