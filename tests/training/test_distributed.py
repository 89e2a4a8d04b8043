"""DDP on CPU: two gloo processes under torchrun share each epoch's training split; rank 0 writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from tausynth.data.manifest import load_manifest

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path

    manifest, run_dir, out = sys.argv[1:4]
    rank = int(os.environ["RANK"])
    writes = []
    if rank > 0:  # every file of a run is written through os.replace (atomic writes): record them
        real_replace = os.replace
        def spy(src, dst, *a, **k):
            writes.append(str(dst))
            return real_replace(src, dst, *a, **k)
        os.replace = spy

    import warnings
    warnings.simplefilter("ignore")
    from tausynth.config import load_profile
    from tausynth.training import train

    seen = []
    cfg = load_profile("smoke", {
        "loss": {"perceptual": "none"},
        "training": {"max_epochs": 2, "batch_size": 1, "batches_per_epoch": None},
    })
    result = train(cfg, run_dir, manifest=manifest, progress=False, log=lambda s: None,
                   on_batch=lambda e, b: seen.append([e, list(b["subject_id"])]))
    Path(out, f"rank{rank}.json").write_text(json.dumps(
        {"seen": seen, "writes": writes, "world": result.provenance.get("world_size")}))
    """
)


@pytest.mark.slow
def test_two_gloo_ranks_split_each_epoch_and_only_rank0_writes(tmp_path: Path, cohort_manifest: Path) -> None:
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT)
    run_dir, out = tmp_path / "run", tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(script), str(cohort_manifest), str(run_dir), str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    frame = load_manifest(cohort_manifest)
    train_ids = sorted(frame.loc[frame["split"] == "train", "subject_id"])
    assert len(train_ids) % 2 == 0  # so the sampler repeats nobody
    for epoch in (0, 1):
        per_rank = [[s for e, ids in r["seen"] if e == epoch for s in ids] for r in ranks]
        assert all(per_rank), "each rank trains on its own shard"
        assert not set(per_rank[0]) & set(per_rank[1])
        assert sorted(per_rank[0] + per_rank[1]) == train_ids  # the whole split, exactly once
    orders = [[s for e, ids in ranks[0]["seen"] if e == epoch for s in ids] for epoch in (0, 1)]
    assert ranks[0]["world"] == 2
    assert orders[0] != orders[1] or len(orders[0]) == 1  # reshuffled per epoch (set_epoch)
    assert ranks[1]["writes"] == []  # rank 1 wrote nothing
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert list(metrics["samples"]) == [len(train_ids)] * 2  # counts summed over both ranks
    assert (run_dir / "checkpoints" / "final_model.pt").is_file()


VAL_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import torch
    import torch.distributed as dist
    from tausynth.training.distributed import init_distributed
    from tausynth.training.trainer import validation_terms

    ctx = init_distributed("cpu")
    # rank 0: a full batch and a partial one; rank 1: one full batch
    batches = [[({"loss": 1.0}, 2), ({"loss": 4.0}, 1)], [({"loss": 10.0}, 2)]][ctx.rank]
    out = {r: validation_terms(batches, r, ctx, torch.device("cpu")) for r in ("batch_mean", "sample_mean")}
    if ctx.rank == 0:
        with open(sys.argv[1], "w") as fh:
            json.dump({r: [t["loss"], n] for r, (t, n) in out.items()}, fh)
    dist.destroy_process_group()
    """
)


@pytest.mark.slow
def test_validation_reduction_sums_batches_or_samples_over_ranks(tmp_path: Path) -> None:
    script = tmp_path / "ddp_val.py"
    script.write_text(VAL_SCRIPT)
    out = tmp_path / "val.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script), str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(out.read_text())
    assert got["batch_mean"] == pytest.approx([(1.0 + 4.0 + 10.0) / 3, 3])  # the mean over all 3 batches
    assert got["sample_mean"] == pytest.approx([(2 * 1.0 + 4.0 + 2 * 10.0) / 5, 5])
