"""Checkpoints: atomic, weights-only loading, RNG states, clear one-line errors."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from tausynth.errors import TausynthError
from tausynth.training.checkpoint import (
    capture_rng,
    load_checkpoint,
    load_model_state,
    restore_rng,
    save_checkpoint,
)


def payload(model_name: str = "unet", **extra: object) -> dict:
    net = torch.nn.Linear(3, 2)
    return {
        "model_name": model_name,
        "kind": "supervised",
        "model": net.state_dict(),
        "state": {"epoch": 2, "plane": "coronal", "best_val": float("inf"), "patience_counter": 0},
        "config": "profile: smoke\n",
        "normalization": "standardize",
        "standardizer": None,
        "rng": capture_rng(),
        **extra,
    }


def test_round_trip_keeps_tensors_and_plain_values(tmp_path: Path) -> None:
    data = payload()
    path = save_checkpoint(tmp_path / "ck.pt", data)
    back = load_checkpoint(path, model_name="unet")
    assert back["state"] == data["state"] and math_inf(back["state"]["best_val"])
    for k, v in data["model"].items():
        assert torch.equal(back["model"][k], v)
    assert back["format"] == "tausynth-checkpoint"
    assert not list(tmp_path.glob(".ck.pt.*"))  # no temp file left behind


def math_inf(x: float) -> bool:
    return x == float("inf")


def test_rng_states_restore_every_generator() -> None:
    saved = capture_rng()
    a = (random.random(), np.random.rand(), torch.rand(3))
    restore_rng(saved)
    b = (random.random(), np.random.rand(), torch.rand(3))
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])


def test_rng_states_survive_a_weights_only_file(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "ck.pt", payload())
    rng = load_checkpoint(path)["rng"]
    torch.manual_seed(123)
    restore_rng(rng)
    x = torch.rand(2)
    restore_rng(rng)
    assert torch.equal(x, torch.rand(2))


def test_other_model_is_a_one_line_error(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "ck.pt", payload("unetr"))
    with pytest.raises(TausynthError, match=r"ck\.pt: checkpoint is from model 'unetr', not 'unet'") as info:
        load_checkpoint(path, model_name="unet")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_checkpoint_is_a_one_line_error(tmp_path: Path, damage: str) -> None:
    path = save_checkpoint(tmp_path / "ck.pt", payload())
    raw = path.read_bytes()
    path.write_bytes({"truncate": raw[: len(raw) // 2], "garbage": b"not a checkpoint" * 10, "empty": b""}[damage])
    with pytest.raises(TausynthError, match=r"ck\.pt: corrupt or unreadable checkpoint") as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)


class Evil:
    pass


def test_loading_is_weights_only(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"format": "tausynth-checkpoint", "obj": Evil()}, path)
    with pytest.raises(TausynthError, match="refused to load .*weights_only=True"):
        load_checkpoint(path)


def test_not_a_tausynth_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save({"model": torch.nn.Linear(2, 2).state_dict()}, path)
    with pytest.raises(TausynthError, match="not a tausynth checkpoint"):
        load_checkpoint(path)
    with pytest.raises(TausynthError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_failed_write_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = save_checkpoint(tmp_path / "ck.pt", payload())
    before = path.read_bytes()

    def broken_save(obj: object, f: object) -> None:
        Path(f).write_bytes(b"partial")  # type: ignore[arg-type]
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, payload())
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]


def test_weights_that_do_not_fit_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(TausynthError, match=r"x\.pt: checkpoint weights do not fit"):
        load_model_state(torch.nn.Linear(4, 2), torch.nn.Linear(3, 2).state_dict(), tmp_path / "x.pt")
