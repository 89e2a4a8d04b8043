"""Finding a chapter's runs, their status and their manifest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tausynth.errors import TausynthError
from tausynth.evaluation import discovery


def test_find_and_resolve_runs(tmp_path, cohort, make_run):
    root = tmp_path / "runs" / "smoke"
    done = make_run(root, cohort, "a-done", predict=False)
    make_run(root, cohort, "b-paused", status="paused", predict=False)
    (root / "baselines").mkdir()  # not a run: no config.yaml
    assert discovery.find_runs(root) == [done]
    assert [p.name for p in discovery.find_runs(root, finished_only=False)] == ["a-done", "b-paused"]
    chosen, skipped = discovery.resolve_runs([], "smoke", tmp_path / "runs")
    assert chosen == [done] and [(p.name, s) for p, s in skipped] == [("b-paused", "paused")]
    assert discovery.resolve_runs("[x/r1, x/r2]", "smoke")[0] == [Path("x/r1"), Path("x/r2")]
    assert discovery.resolve_runs("x/r1, x/r2", "smoke")[0] == [Path("x/r1"), Path("x/r2")]
    assert discovery.resolve_runs(None, "nothing-here", tmp_path)[0] == []
    assert discovery.evaluation_dir(done) == done / "evaluation"
    assert discovery.evaluation_dir(done, "val") == done / "evaluation" / "val"


def test_run_manifest_and_final_checkpoint_name_what_is_missing(tmp_path, cohort, make_run):
    run = make_run(tmp_path, cohort, "r", predict=False)
    assert discovery.run_manifest(run) == (cohort / "manifest.csv").resolve()
    assert discovery.final_checkpoint(run) == run / "checkpoints" / "final_model.pt"
    with pytest.raises(TausynthError, match=r"nowhere\.csv: manifest not found \(evaluating"):
        discovery.run_manifest(run, tmp_path / "nowhere.csv")
    (run / "provenance.json").write_text("{not json")
    assert discovery.run_status(run) == "unknown" and discovery.run_provenance(run) == {}
    with pytest.raises(TausynthError, match=r"provenance\.json: no data manifest recorded"):
        discovery.run_manifest(run)
    (run / "checkpoints" / "final_model.pt").unlink()
    with pytest.raises(TausynthError, match=r"final_model\.pt: not found; train the run first"):
        discovery.final_checkpoint(run)


def test_perceptual_shares_first_last_min_or_nan(tmp_path, cohort, make_run):
    run = make_run(tmp_path, cohort, "r", predict=False)
    assert all(np.isnan(v) for v in discovery.perceptual_shares(run).values())  # no metrics.csv yet
    pd.DataFrame({"epoch": [2, 0, 1], "train_share_perceptual": [0.3, 0.1, 0.05]}).to_csv(run / "metrics.csv", index=False)
    assert discovery.perceptual_shares(run) == {"perceptual_share_first": 0.1, "perceptual_share_last": 0.3,
                                                "perceptual_share_min": 0.05}
