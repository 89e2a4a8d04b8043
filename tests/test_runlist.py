"""Run lists as data: the profiles' ``runs:`` sections and a user's run-list YAML."""

from pathlib import Path

import pytest

from tausynth.config import profile_dict, profile_source
from tausynth.errors import TausynthError
from tausynth.runlist import RunSpec, load_runs, runs_from_mapping

PAPER = [
    ("unet", "none"), ("unet", "2d"), ("unet", "2.5d"), ("unet", "3d"), ("unet", "cyclic"), ("unetr", "cyclic"),
    ("swinunetr", "cyclic"), ("pix2pix", "none"), ("pix2pix", "cyclic"), ("cyclegan", "none"), ("cyclegan", "cyclic"),
]
QUARTER = {"training": {"batches_per_epoch": 40}}
DEMO = [
    ("unet", "none", {}), ("unet", "cyclic", {}), ("pix2pix", "cyclic", QUARTER), ("cyclegan", "cyclic", QUARTER),
]


def test_shipped_run_lists_are_the_books_runs(tmp_path: Path) -> None:
    from tausynth.book import chapters_for

    demo = load_runs("demo")
    expected = [f"{m}-{loss}-standardize-s42" for m, loss, _ in DEMO]
    assert [r.name for r in demo] == expected  # the names (and order) of cached runs and pages
    assert [r.overrides for r in demo] == [s for _, _, s in DEMO]
    pages = [c for c in chapters_for("demo", tmp_path) if c.output.startswith("runs/")]
    assert [c.name for c in pages] == ["train-" + n.replace(".", "") for n in expected]
    assert pages[1].name == "train-unet-cyclic-standardize-s42" and pages[1].title == "U-Net · cyclic 2.5D perceptual · standardized · seed 42"
    assert [c.parameters.get("settings", {}) for c in pages] == [r.overrides for r in demo]
    assert [r.name for r in load_runs("smoke")] == ["unet-cyclic-standardize-s42", "unet-none-standardize-s42"]
    paper = load_runs("paper")
    assert [r.name for r in paper] == [f"{m}-{loss}-standardize-s42" for m, loss in PAPER] + ["unet-cyclic-minmax-s42"]
    # none of the demo's settings; only the 3D run names its network's pretrained set
    assert {r.name: r.settings for r in paper if r.settings} == {"unet-3d-standardize-s42": (("loss.weights", "medicalnet"),)}


def test_run_list_lives_in_the_profile_yaml_not_in_its_config() -> None:
    for name in ("smoke", "demo", "study", "paper"):
        assert isinstance(profile_source(name)["runs"], list) and "runs" not in profile_dict(name)


def test_the_book_module_still_exports_runspec() -> None:
    from tausynth import book

    assert book.RunSpec is RunSpec


def test_defaults_come_from_the_profile_and_seeds_expand() -> None:
    data = {"runs": [{"model": "unet", "loss": "cyclic"},
                     {"model": "pix2pix", "loss": "2.5d", "normalization": "minmax", "seeds": [1, 2, 3],
                      "settings": {"training.max_epochs": 2, "model.channels": [4, 8]}, "note": "why"}]}
    runs = runs_from_mapping(data, "smoke")
    assert runs[0] == RunSpec("unet", "cyclic", "standardize", 42)
    assert [r.seed for r in runs[1:]] == [1, 2, 3]
    assert {(r.model, r.loss, r.normalization) for r in runs[1:]} == {("pix2pix", "2.5d", "minmax")}
    assert runs[1].overrides == {"training": {"max_epochs": 2}, "model": {"channels": [4, 8]}}
    assert len(set(runs)) == 4  # hashable, even with a list value


def test_a_user_run_list_file_replaces_the_profiles(tmp_path: Path) -> None:
    path = tmp_path / "runs.yaml"
    path.write_text("profile: demo\nruns:\n  - model: unetr\n    loss: 3d\n    seeds: [0, 1]\n")
    assert [r.name for r in load_runs("demo", path)] == ["unetr-3d-standardize-s0", "unetr-3d-standardize-s1"]
    with pytest.raises(TausynthError, match=r"runs\.yaml: profile 'demo' differs from the book's profile 'smoke'"):
        load_runs("smoke", path)
    path.write_text("runs:\n  - {model: unet, loss: none}\ntraining:\n  lr: 1.0\n")
    with pytest.raises(TausynthError, match=r"runs\.yaml: only 'runs' .* not training; put a run's config"):
        load_runs("smoke", path)
    with pytest.raises(TausynthError, match=r"missing\.yaml: run list file not found"):
        load_runs("smoke", tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("entries", "match"),
    [
        ([{"model": "unett", "loss": "none"}],
         r"^profile demo: runs\[0\]\.model: 'unett' is not one of 'unet', 'unetr', 'swinunetr', 'pix2pix', 'cyclegan'$"),
        ([{"loss": "none"}], r"^profile demo: runs\[0\]\.model: missing$"),
        ([{"model": "unet"}], r"^profile demo: runs\[0\]\.loss: missing$"),
        ([{"model": "unet", "loss": "4d"}], r"runs\[0\]\.loss: '4d' is not one of 'none', '2d'"),
        ([{"model": "unet", "loss": "none", "normalization": "zscore"}], r"runs\[0\]\.normalization: 'zscore'"),
        ([{"model": "unet", "loss": "none"}, {"model": "unet", "loss": "2d", "seeds": [1, "2"]}],
         r"^profile demo: runs\[1\]\.seeds: expected non-negative integers, got '2'$"),
        ([{"model": "unet", "loss": "none", "seeds": [True]}], r"runs\[0\]\.seeds: expected non-negative integers"),
        ([{"model": "unet", "loss": "none", "seeds": 7}], r"runs\[0\]\.seeds: expected a non-empty list"),
        ([{"model": "unet", "loss": "none", "seed": 7}], r"runs\[0\]: unknown field\(s\) seed \(known: model, loss"),
        ([{"model": "unet", "loss": "none", "settings": {"training.max_epoch": 3}}],
         r"^profile demo: runs\[0\]\.settings: config field 'training\.max_epoch' is unknown"),
        ([{"model": "unet", "loss": "none", "settings": {"training.max_epochs": "many"}}],
         r"runs\[0\]\.settings: config field 'training\.max_epochs': expected an integer"),
        ([{"model": "unet", "loss": "none", "settings": {"model.name": "unetr"}}],
         r"runs\[0\]\.settings\.model\.name: not settable here \(use the entry's 'model' field\)"),
        ([{"model": "unet", "loss": "none", "settings": {"training": {"lr": 1.0}}}],
         r"runs\[0\]\.settings\.training: give one dotted key per value"),
        ([{"model": "unet", "loss": "none", "settings": ["training.lr"]}], r"runs\[0\]\.settings: expected a mapping"),
        ([{"model": "unet", "loss": "none", "note": 3}], r"runs\[0\]\.note: expected a string"),
        (["unet-none"], r"^profile demo: runs\[0\]: expected a mapping with model and loss"),
        ([{"model": "unet", "loss": "none"}, {"model": "unet", "loss": "none", "seeds": [42]}],
         r"^profile demo: runs\[1\]: run unet-none-standardize-s42 is already made by runs\[0\]$"),
        ([{"model": "unet", "loss": "none", "seeds": [1, 1]}], r"runs\[0\]: run unet-none-standardize-s1 is already"),
        ([], r"^profile demo: 'runs' must be a non-empty list of runs, got \[\]$"),
    ],
)
def test_bad_entries_give_one_line_errors_naming_entry_and_field(entries: list, match: str) -> None:
    with pytest.raises(TausynthError, match=match) as info:
        runs_from_mapping({"runs": entries}, "demo")
    assert "\n" not in str(info.value)


def test_a_missing_list_and_an_unknown_profile_are_errors() -> None:
    with pytest.raises(TausynthError, match=r"^my\.yaml: 'runs' must be a non-empty list of runs, got None$"):
        runs_from_mapping({}, "smoke", "my.yaml")
    with pytest.raises(TausynthError, match=r"unknown profile 'huge'"):
        load_runs("huge")
