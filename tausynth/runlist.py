"""The run list of a profile: which training runs its book executes, as data.

Each shipped profile's YAML (``tausynth/profiles/<name>.yaml``) has a ``runs:`` section; a user's
YAML file with such a section replaces it (``tausynth book run --runs my-runs.yaml``). An entry is

.. code-block:: yaml

    runs:
      - model: unetr            # unet | unetr | swinunetr | pix2pix | cyclegan
        loss: cyclic            # none | 2d | 2.5d | cyclic | 3d
        normalization: minmax   # optional; default: the profile's top-level normalization
        seeds: [42, 43]         # optional; default: [the profile's training.seed]
        settings:               # optional dotted config keys this run sets over the profile
          model.feature_size: 8
        note: why this run sets them   # optional, for the reader only

and expands to one :class:`RunSpec` per seed. Every field is checked when the list is loaded, with
one-line errors naming the file (or profile), the entry and the field, e.g.
``profile demo: runs[3].model: 'unett' is not one of 'unet', 'unetr', ...``.

Examples
--------
>>> from tausynth.runlist import load_runs, runs_from_mapping
>>> [spec.name for spec in load_runs("smoke")]
['unet-cyclic-standardize-s42', 'unet-none-standardize-s42']
>>> runs = runs_from_mapping({"runs": [{"model": "unet", "loss": "2d", "seeds": [1, 2]}]}, "smoke")
>>> [spec.page for spec in runs]
['train-unet-2d-standardize-s1', 'train-unet-2d-standardize-s2']
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tausynth.config import (
    MODELS,
    NORMALIZATIONS,
    PERCEPTUAL_MODES,
    RUNS_KEY,
    dotted_overrides,
    load_profile,
    merge_overrides,
    plain_data,
    profile_source,
    read_yaml,
)
from tausynth.errors import TausynthError

#: Fields of one run-list entry.
ENTRY_FIELDS = ("model", "loss", "normalization", "seeds", "settings", "note")
#: Config keys an entry sets through its own fields, so its settings may not.
_OWN_KEYS = {"model.name": "model", "loss.perceptual": "loss", "normalization": "normalization",
             "training.seed": "seeds", "profile": None}


@dataclass(frozen=True)
class RunSpec:
    """One training run of a profile's book: a (model, loss, normalization, seed) variant.

    Examples
    --------
    >>> spec = RunSpec("unetr", "2.5d", settings=(("model.feature_size", 8),))
    >>> spec.name, spec.page
    ('unetr-2.5d-standardize-s42', 'train-unetr-25d-standardize-s42')
    >>> spec.overrides
    {'model': {'feature_size': 8}}
    """

    model: str
    loss: str
    normalization: str = "standardize"
    seed: int = 42
    #: ``(dotted config key, value)`` pairs this run sets over the profile, e.g. a time bound
    settings: tuple[tuple[str, Any], ...] = ()

    @property
    def overrides(self) -> dict[str, Any]:
        """The run's settings as nested config overrides (empty for most runs)."""
        return plain_data(dotted_overrides(self.settings))

    @property
    def name(self) -> str:
        """Run folder name, as :func:`tausynth.training.default_run_name` makes it."""
        return f"{self.model}-{self.loss}-{self.normalization}-s{self.seed}"

    @property
    def page(self) -> str:
        """File stem of the run's page (no dots, so Sphinx sees one suffix)."""
        return "train-" + self.name.replace(".", "")

    @property
    def title(self) -> str:
        """Page and table-of-contents title: every field of the run, so that no two pages share one.

        Examples
        --------
        >>> RunSpec("unet", "cyclic").title
        'U-Net · cyclic 2.5D perceptual · standardized · seed 42'
        """
        models = {"unet": "U-Net", "unetr": "UNETR", "swinunetr": "SwinUNETR", "pix2pix": "Pix2Pix",
                  "cyclegan": "CycleGAN"}
        losses = {"none": "no perceptual loss", "2d": "2D perceptual", "2.5d": "2.5D perceptual",
                  "cyclic": "cyclic 2.5D perceptual", "3d": "3D perceptual"}
        norm = {"standardize": "standardized", "minmax": "min–max"}.get(self.normalization, self.normalization)
        return f"{models.get(self.model, self.model)} · {losses.get(self.loss, self.loss)} · {norm} · seed {self.seed}"


def _frozen(value: Any) -> Any:
    """``value`` with lists as tuples, so a RunSpec stays hashable."""
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    return value


def _choice(value: Any, allowed: tuple[str, ...], where: str) -> str:
    if not isinstance(value, str) or value not in allowed:
        options = ", ".join(repr(a) for a in allowed)
        raise TausynthError(f"{where}: {value!r} is not one of {options}")
    return value


def _entry(item: Any, index: int, profile: str, defaults: Mapping[str, Any], source: str) -> list[RunSpec]:
    """The runs of one entry, every field checked."""
    at = f"{source}: runs[{index}]"
    if not isinstance(item, Mapping):
        raise TausynthError(f"{at}: expected a mapping with model and loss, got {item!r}")
    unknown = sorted(str(k) for k in item if k not in ENTRY_FIELDS)
    if unknown:
        raise TausynthError(f"{at}: unknown field(s) {', '.join(unknown)} (known: {', '.join(ENTRY_FIELDS)})")
    for required in ("model", "loss"):
        if required not in item:
            raise TausynthError(f"{at}.{required}: missing")
    model = _choice(item["model"], MODELS, f"{at}.model")
    loss = _choice(item["loss"], PERCEPTUAL_MODES, f"{at}.loss")
    normalization = _choice(item.get("normalization", defaults["normalization"]), NORMALIZATIONS,
                            f"{at}.normalization")
    seeds = item.get("seeds", [defaults["seed"]])
    if not isinstance(seeds, list) or not seeds:
        raise TausynthError(f"{at}.seeds: expected a non-empty list of integers, got {seeds!r}")
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise TausynthError(f"{at}.seeds: expected non-negative integers, got {seed!r}")
    note = item.get("note")
    if note is not None and not isinstance(note, str):
        raise TausynthError(f"{at}.note: expected a string, got {note!r}")
    settings = item.get("settings") or {}
    if not isinstance(settings, Mapping):
        raise TausynthError(f"{at}.settings: expected a mapping of dotted config keys to values, got {settings!r}")
    pairs = []
    for key, value in settings.items():
        if not isinstance(key, str) or not key or any(not part for part in key.split(".")):
            raise TausynthError(f"{at}.settings: {key!r} is not a dotted config key")
        if key in _OWN_KEYS:
            own = _OWN_KEYS[key]
            hint = f"use the entry's '{own}' field" if own else "a run list belongs to one profile"
            raise TausynthError(f"{at}.settings.{key}: not settable here ({hint})")
        if isinstance(value, Mapping):
            raise TausynthError(f"{at}.settings.{key}: give one dotted key per value (e.g. {key}.name), "
                                "not a section")
        pairs.append((key, _frozen(value)))
    if pairs:  # the config's own checks (unknown keys, types, allowed values), as this entry's run sees them
        own = {"model": {"name": model}, "loss": {"perceptual": loss}, "normalization": normalization}
        try:
            load_profile(profile, merge_overrides(own, dotted_overrides(settings.items())))
        except TausynthError as exc:
            raise TausynthError(f"{at}.settings: {exc}") from None
    return [RunSpec(model, loss, normalization, seed, tuple(pairs)) for seed in seeds]


def runs_from_mapping(data: Mapping[str, Any], profile: str, source: str | None = None) -> tuple[RunSpec, ...]:
    """The runs of a mapping's ``runs`` list, for ``profile``, every entry checked.

    Parameters
    ----------
    data : mapping
        Holds the ``runs`` list (e.g. a profile's or a user's YAML, as loaded).
    profile : str
        The profile the runs belong to: it gives the default normalization and seed, and the
        settings are checked against it.
    source : str, optional
        Where ``data`` comes from, the prefix of every error (default: ``"profile <profile>"``).

    Returns
    -------
    tuple of RunSpec
        One run per entry and seed, in the list's order.

    Raises
    ------
    TausynthError
        On a missing or malformed list, an invalid field, or two entries making the same run; the
        one-line message names the source, the entry and the field.

    Examples
    --------
    >>> data = {"runs": [{"model": "unet", "loss": "cyclic", "settings": {"training.max_epochs": 2}}]}
    >>> runs_from_mapping(data, "demo")[0].overrides
    {'training': {'max_epochs': 2}}
    >>> runs_from_mapping({"runs": [{"model": "unett", "loss": "none"}]}, "demo")
    Traceback (most recent call last):
    ...
    tausynth.errors.TausynthError: profile demo: runs[0].model: 'unett' is not one of 'unet', 'unetr', 'swinunetr', 'pix2pix', 'cyclegan'
    """
    source = source or f"profile {profile}"
    cfg = load_profile(profile)  # validates the profile's name
    defaults = {"normalization": cfg.normalization, "seed": cfg.training.seed}
    if not isinstance(data, Mapping):
        raise TausynthError(f"{source}: expected a mapping with a '{RUNS_KEY}' list")
    items = data.get(RUNS_KEY)
    if not isinstance(items, list) or not items:
        raise TausynthError(f"{source}: '{RUNS_KEY}' must be a non-empty list of runs, got {items!r}")
    runs: list[RunSpec] = []
    first: dict[str, int] = {}
    for index, item in enumerate(items):
        for spec in _entry(item, index, profile, defaults, source):
            if spec.page in first:
                raise TausynthError(f"{source}: runs[{index}]: run {spec.name} is already made by "
                                    f"runs[{first[spec.page]}]")
            first[spec.page] = index
            runs.append(spec)
    return tuple(runs)


def load_runs(profile: str, path: str | Path | None = None) -> tuple[RunSpec, ...]:
    """The training runs of ``profile``'s book: its YAML's ``runs`` list, or that of a user's file.

    Parameters
    ----------
    profile : {"smoke", "demo", "study", "paper"}
        The profile; its run list is used unless ``path`` is given.
    path : path, optional
        A YAML file whose ``runs`` list replaces the profile's. Besides ``runs`` it may hold only
        ``profile`` (which must then be ``profile``): the book's configuration is the profile's, a
        run's own changes go in its ``settings``.

    Returns
    -------
    tuple of RunSpec
        The runs, in order.

    Examples
    --------
    >>> runs = load_runs("demo")
    >>> len(runs), runs[0].name, runs[2].overrides
    (4, 'unet-none-standardize-s42', {'training': {'batches_per_epoch': 40}})
    >>> len(load_runs("study"))
    24
    """
    if path is None:
        return runs_from_mapping(profile_source(profile), profile)
    path = Path(path)
    if not path.is_file():
        raise TausynthError(f"{path}: run list file not found")
    data = read_yaml(path.read_text(encoding="utf-8"), str(path))
    other = sorted(str(k) for k in data if k not in (RUNS_KEY, "profile"))
    if other:
        raise TausynthError(f"{path}: only '{RUNS_KEY}' (and 'profile') are read from a run list, not "
                            f"{', '.join(other)}; put a run's config changes in its settings")
    if "profile" in data and data["profile"] != profile:
        raise TausynthError(f"{path}: profile {data['profile']!r} differs from the book's profile {profile!r}")
    return runs_from_mapping(data, profile, str(path))
