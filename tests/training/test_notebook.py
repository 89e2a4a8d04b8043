"""The training chapter template runs alone with papermill (the CI commands of issue #5)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "book" / "train.ipynb"


def test_committed_notebook_is_clean_and_parameterised() -> None:
    nb = json.loads(NOTEBOOK.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert "parameters" in code[0]["metadata"].get("tags", [])
    params = "".join(code[0]["source"])
    for name in ("profile", "model", "loss", "normalization", "seed", "manifest", "run_dir", "max_epochs"):
        assert f"{name} =" in params, name
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code)
    assert not any("matplotlib.use" in "".join(c["source"]) for c in code)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("model", ["swinunetr", "cyclegan"])
def test_papermill_smoke(model: str, tmp_path: Path, cohort_manifest: Path) -> None:
    import papermill

    out = tmp_path / f"train-{model}.ipynb"
    run_dir = tmp_path / "runs" / model
    papermill.execute_notebook(
        str(NOTEBOOK), str(out), cwd=str(tmp_path), progress_bar=False, kernel_name="python3",
        parameters={"profile": "smoke", "model": model, "manifest": str(cohort_manifest), "run_dir": str(run_dir), "n_examples": 1},
    )
    nb = json.loads(out.read_text())
    images = sum("image/png" in o.get("data", {}) for c in nb["cells"] for o in c.get("outputs", []))
    assert images >= 3  # schedule, losses, one prediction grid
    text = "".join(
        "".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "stream"
    )
    assert f"{model} cyclic standardize seed 42: 4/4 epochs" in text
    assert (run_dir / "provenance.json").is_file() and (run_dir / "checkpoints" / "final_model.pt").is_file()
