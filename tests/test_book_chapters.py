"""The ROI-analysis and results chapters, executed with papermill on two tiny trained runs.

A module-scoped fixture trains two smoke-profile U-Nets (cyclic and no perceptual term, 2 epochs)
on an 18-subject synthetic cohort in a temporary runs root, through the training API. The chapters
then predict, evaluate and plot them: what ``tausynth book run --profile smoke`` does with its runs.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from tausynth.cli import main

BOOK = Path(__file__).resolve().parents[1] / "book"
CHAPTERS = ("roi", "results")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from tausynth.config import load_profile
    from tausynth.data.synthetic import write_cohort
    from tausynth.training import train

    root = tmp_path_factory.mktemp("chapters")
    write_cohort(root / "cohort", n=18, seed=0, resolution=4, progress=False)  # 3 test subjects
    runs = []
    for loss in ("cyclic", "none"):
        cfg = load_profile("smoke", {"loss": {"perceptual": loss}, "training": {"max_epochs": 2, "val_subjects": 1}})
        run = root / "runs" / "smoke" / f"unet-{loss}-standardize-s42"
        train(cfg, run, manifest=root / "cohort" / "manifest.csv", progress=False, log=lambda line: None)
        runs.append(run)
    return root, runs


def _execute(name: str, root: Path, runs: list[Path]) -> nbformat.NotebookNode:
    import papermill

    out = root / f"{name}-out.ipynb"
    papermill.execute_notebook(str(BOOK / f"{name}.ipynb"), str(out), cwd=str(root), kernel_name="python3",
                               parameters={"profile": "smoke", "runs": [str(r) for r in runs]}, progress_bar=False)
    return nbformat.read(out, as_version=4)


def _outputs(nb: nbformat.NotebookNode) -> tuple[int, str, list[str]]:
    images, text, errors = 0, [], []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            if o.output_type == "error":
                errors.append(f"{o.ename}: {o.evalue}")
            elif o.output_type == "stream":
                text.append(o.text)
            else:
                data = o.get("data", {})
                images += "image/png" in data
                text += [data.get("text/markdown", ""), data.get("text/plain", "")]
    return images, "\n".join(text), errors


@pytest.mark.parametrize("name", CHAPTERS)
def test_committed_notebook_is_clean(name):
    nb = nbformat.read(BOOK / f"{name}.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", [])
    assert all(not c.outputs and c.execution_count is None for c in code)
    source = "\n".join(c.source for c in code)
    assert "matplotlib.use" not in source
    for param in ("profile", "runs", "manifest", "split", "reference_run"):
        assert f"\n{param} = " in "\n" + code[0].source


@pytest.mark.slow
def test_cli_evaluate_predicts_a_trained_run_first(trained, capsys):
    _, runs = trained
    assert main(["evaluate", "--run", str(runs[1]), "--split", "val", "--no-figures"]) == 0
    out = capsys.readouterr().out
    assert "no predictions of split 'val' yet; predicting them first" in out
    assert (runs[1] / "predictions" / "val" / "predictions.csv").is_file()
    assert (runs[1] / "evaluation" / "val" / "per_subject.csv").is_file()


@pytest.mark.slow
def test_roi_chapter(trained):
    root, runs = trained
    images, text, errors = _outputs(_execute("roi", root, runs))
    assert not errors
    # regions (2), SUVR by stage (2), staging confusion (1 + 2 against the true stage), scatter, Bland–Altman, residuals
    assert images >= 9
    assert "Reference run for the per-region figures: `unet-cyclic-standardize-s42`" in text
    assert "ICC(2,1)" in text and "staging thresholds" in text


@pytest.mark.slow
def test_results_chapter(trained):
    root, runs = trained
    images, text, errors = _outputs(_execute("results", root, runs))
    assert not errors
    assert images >= 1  # best- and worst-predicted subjects
    assert text.count("**Verdict: ") == 4
    assert "not run in this profile" in text and "3 test subject(s)" in text
    assert "baseline-mean-image" in text and "baseline-t1-linear" in text
    assert (root / "runs" / "smoke" / "baselines" / "mean-image" / "test" / "predictions.csv").is_file()
