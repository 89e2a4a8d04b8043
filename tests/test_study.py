"""The study runner: trains a run list out of the book, resumes it, and archives its tables."""

from __future__ import annotations

import pytest

from tausynth import study
from tausynth.errors import TausynthError
from tausynth.evaluation.archive import load_archive
from tausynth.runlist import load_runs


def test_the_study_profile_is_the_demo_recipe_with_seeds():
    from tausynth.config import load_profile

    demo, cfg = load_profile("demo").to_dict(), load_profile("study").to_dict()
    assert {k: v for k, v in cfg.items() if k != "profile"} == {k: v for k, v in demo.items() if k != "profile"}
    specs = load_runs("study")
    unet = {(s.loss, s.normalization) for s in specs if s.model == "unet"}
    assert unet == {(m, "standardize") for m in ("none", "2d", "2.5d", "cyclic", "3d")} | {("cyclic", "minmax")}
    assert {s.seed for s in specs if s.model == "unet"} == {42, 43, 44}
    assert {s.model for s in specs} == {"unet", "unetr", "swinunetr", "pix2pix", "cyclegan"}


@pytest.mark.slow
def test_run_resume_and_archive(tmp_path):
    runs = tmp_path / "runs.yaml"
    runs.write_text("runs:\n  - {model: unet, loss: none}\n")
    lines: list[str] = []
    assert study.run_study("smoke", root=tmp_path, jobs=1, runs=runs, log=lines.append) == {
        "unet-none-standardize-s42": "finished"}
    with pytest.raises(TausynthError, match="no finished run"):
        study.archive_study("smoke", root=tmp_path / "elsewhere", runs=runs, log=lines.append)
    out = study.archive_study("smoke", root=tmp_path, runs=runs, log=lines.append)
    col, base, info = load_archive(out)
    assert set(col.runs["run"]) == {"unet-none-standardize-s42"} and info["missing_runs"] == []
    assert "baseline-regional-regression" in set(base.agreement["run"])
    # a second call reuses the finished run (same status, nothing retrained)
    mtime = (tmp_path / "runs" / "smoke" / "unet-none-standardize-s42" / "metrics.csv").stat().st_mtime_ns
    assert study.run_study("smoke", root=tmp_path, jobs=1, runs=runs, log=lines.append)["unet-none-standardize-s42"] == "finished"
    assert (tmp_path / "runs" / "smoke" / "unet-none-standardize-s42" / "metrics.csv").stat().st_mtime_ns == mtime
