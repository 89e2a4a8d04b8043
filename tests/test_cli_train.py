"""`tausynth train` / `tausynth predict`: one-line user errors, Ctrl-C, SIGKILL and exact --resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from tausynth.cli import main
from tausynth.config import dump_config, load_profile
from tausynth.training import load_checkpoint, prepare_run_dir, save_checkpoint

pytestmark = pytest.mark.filterwarnings("ignore::tausynth.losses.PretrainedWeightsUnavailableWarning")


def one_error_line(capsys: pytest.CaptureFixture[str], command: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"tausynth {command}: error: ")
    assert "Traceback" not in err[0]
    return err[0]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--model", "resnet"], "'model.name': unknown value 'resnet'"),
        (["--loss", "4d"], "'loss.perceptual': unknown value '4d'"),
        (["--normalization", "zscore"], "'normalization': unknown value 'zscore'"),
        (["--profile", "huge"], "unknown profile 'huge'"),
    ],
)
def test_unknown_choices_are_one_line_errors(args: list[str], named: str, capsys, tmp_path: Path) -> None:
    argv = ["train", *(["--profile", "smoke"] if "--profile" not in args else []), *args]
    assert main([*argv, "--runs-root", str(tmp_path)]) == 2
    assert named in one_error_line(capsys, "train")
    assert not (tmp_path / "smoke").exists()


def test_config_with_an_unknown_key(capsys, tmp_path: Path) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text("profile: smoke\ntraining:\n  learning_rate: 0.1\n")
    assert main(["train", "--config", str(cfg)]) == 2
    line = one_error_line(capsys, "train")
    assert "'training.learning_rate' is unknown" in line and str(cfg) in line


def test_existing_run_dir_with_another_config(capsys, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    prepare_run_dir(run_dir, load_profile("smoke"))
    assert main(["train", "--profile", "smoke", "--seed", "7", "--run-dir", str(run_dir)]) == 2
    line = one_error_line(capsys, "train")
    assert "exists with a different config (differs in: training.seed)" in line and str(run_dir) in line


def _fake_run(tmp_path: Path, checkpoint_model: str) -> Path:
    run_dir = tmp_path / "run"
    cfg = load_profile("smoke")
    prepare_run_dir(run_dir, cfg)
    save_checkpoint(
        run_dir / "checkpoints" / "final_model.pt",
        {"model_name": checkpoint_model, "kind": "supervised", "model": {"w": torch.zeros(1)},
         "state": {}, "config": dump_config(cfg), "normalization": "minmax", "standardizer": None},
    )
    return run_dir


def test_checkpoint_from_another_model(capsys, tmp_path: Path) -> None:
    run_dir = _fake_run(tmp_path, "swinunetr")
    assert main(["predict", "--run", str(run_dir)]) == 2
    line = one_error_line(capsys, "predict")
    assert "final_model.pt: checkpoint is from model 'swinunetr', not 'unet'" in line
    assert main(["train", "--profile", "smoke", "--run-dir", str(run_dir), "--resume"]) == 2
    assert "checkpoint is from model 'swinunetr'" in one_error_line(capsys, "train")


def test_corrupt_checkpoint(capsys, tmp_path: Path) -> None:
    run_dir = _fake_run(tmp_path, "unet")
    ckpt = run_dir / "checkpoints" / "final_model.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    assert main(["predict", "--run", str(run_dir)]) == 2
    line = one_error_line(capsys, "predict")
    assert f"{ckpt}: corrupt or unreadable checkpoint" in line


# ------------------------------------------------------------------------------------------------
# Real interruptions of a training subprocess


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tausynth.data.synthetic import write_cohort

    out = tmp_path_factory.mktemp("cli-cohort")
    write_cohort(out, n=8, seed=0, resolution=4, progress=False)
    return out / "manifest.csv"


def _train_cmd(config: Path, manifest: Path, run_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "tausynth", "train", "--config", str(config), "--manifest", str(manifest),
            "--run-dir", str(run_dir), "--quiet", *extra]


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 240) -> None:
    start = time.monotonic()
    while not path.is_file():
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() - start < timeout, "no checkpoint appeared"
        time.sleep(0.05)


@pytest.mark.slow
def test_sigint_then_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path: Path, manifest: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({
        "profile": "smoke",
        "model": {"dropout": 0.2},
        "loss": {"perceptual": "none"},
        "data": {"augment": True},
        "training": {"max_epochs": 3, "batch_size": 1, "batches_per_epoch": 2},
    }))
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    ref = tmp_path / "reference"
    done = subprocess.run(_train_cmd(config, manifest, ref), capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "3/3 epochs" in done.stdout.strip().splitlines()[-1]  # the one-line summary

    run_dir = tmp_path / "interrupted"
    final = run_dir / "checkpoints" / "final_model.pt"
    # 1) Ctrl-C after the first epoch's checkpoint: exit 130 with one line, a checkpoint saved
    proc = subprocess.Popen(_train_cmd(config, manifest, run_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    _wait_for(final, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("the run finished before SIGINT arrived")
    assert proc.returncode == 130, err[-2000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("tausynth train: interrupted") and "--resume" in last
    assert "Traceback" not in err
    assert (run_dir / "checkpoints" / "interrupted.pt").is_file()

    # 2) resume, then SIGKILL (no chance to clean up) after its next checkpoint
    epoch_before = load_checkpoint(final)["state"]["epoch"]
    mtime = final.stat().st_mtime_ns
    proc = subprocess.Popen(_train_cmd(config, manifest, run_dir, "--resume"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    start = time.monotonic()
    while final.stat().st_mtime_ns == mtime and proc.poll() is None and time.monotonic() - start < 240:
        time.sleep(0.05)
    proc.kill()
    proc.communicate()
    assert load_checkpoint(final)["state"]["epoch"] >= epoch_before  # never a half-written file

    # 3) resume to the end: the same weights, bit for bit, as the uninterrupted run
    done = subprocess.run(_train_cmd(config, manifest, run_dir, "--resume"), capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    a = load_checkpoint(ref / "checkpoints" / "final_model.pt")
    b = load_checkpoint(final)
    assert b["state"]["epoch"] == 3
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k

    # a finished run is not overwritten by a plain re-run
    again = subprocess.run(_train_cmd(config, manifest, run_dir), capture_output=True, text=True, env=env)
    assert again.returncode == 2 and "already holds a run" in again.stderr
