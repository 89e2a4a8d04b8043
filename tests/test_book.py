"""End to end: the book runner executes the data chapter (smoke profile) and Jupyter Book renders it."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tausynth import book
from tausynth.cli import main
from tausynth.errors import TausynthError
from tausynth.runlist import load_runs

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def book_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("book")
    shutil.copytree(REPO / "book", root / "book")  # with book/_static/mathjax when installed
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(REPO / name, root / name)
    return root


def _images(notebook: Path) -> int:
    nb = json.loads(notebook.read_text())
    return sum("image/png" in o.get("data", {}) for c in nb["cells"] for o in c.get("outputs", []))


def _kill_book_run_after(root: Path, chapter: str, delay: float = 3.0) -> list[str]:
    """Run ``tausynth book run --profile smoke`` in ``root``; SIGKILL it (and its kernels) mid-book."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tausynth", "book", "run", "--profile", "smoke"], cwd=root,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    seen: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line.rstrip())
            if line.startswith(chapter) and "executed" in line:
                time.sleep(delay)  # into the next chapter
                break
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    return seen


@pytest.mark.slow
def test_killed_run_resumes_then_caches_then_builds(book_root: Path) -> None:
    # a hard kill in the middle of the book (after the loss chapter, inside the first training page)
    before = _kill_book_run_after(book_root, "loss")
    done = [line.split()[0] for line in before if " executed " in line]
    assert done == ["data", "suvr", "loss"], before

    # resumed two chapters at a time (each in its own process): the two training runs side by side,
    # then ROI and results, which read them
    lines: list[str] = []
    results = book.run_book("smoke", root=book_root, log=lines.append, jobs=2)
    status = {r.name: r.status for r in results}
    # the chapters finished before the kill are not executed again; the rest are
    assert [n for n, st in status.items() if st == "cached"] == ["data", "suvr", "loss"]
    assert all(st == "executed" for n, st in status.items() if n not in done)
    finished = [line.split()[0] for line in lines if " executed " in line]
    runs = [spec.page for spec in load_runs("smoke")]
    assert sorted(finished[:2]) == sorted(runs) and sorted(finished[2:]) == ["results", "roi"], lines
    record = book.read_run_log(book_root)
    assert record["jobs"] == 2 and all(record["chapters"][n]["status"] == "executed" for n in finished)
    data_nb = book_root / "_build" / "executed" / "data.ipynb"
    assert _images(data_nb) >= 4  # staging, montage, ROI placement, coupling
    assert any(line.startswith("data") and "executed" in line for line in before)

    again = book.run_book("smoke", root=book_root, log=lines.append)
    assert [r.status for r in again] == ["cached"] * len(again)

    index = book.build_book(book_root)
    assert index.is_file()
    html = (book_root / "_build" / "html" / "book" / "data.html").read_text()
    assert html.count("<img") >= 4
    intro = (book_root / "_build" / "html" / "book" / "intro.html").read_text()
    assert "Cyclic 2.5D Perceptual Loss for Cross-Modal 3D Medical Image" in intro  # the bibliography


@pytest.mark.slow
def test_rendered_book_passes_the_browser_check(book_root: Path) -> None:
    from tausynth.browser import check_book, find_chromium

    if find_chromium() is None:
        pytest.skip("no system Chromium (tools/ensure_chromium.sh installs it)")
    html = book_root / "_build" / "html"
    if not (html / "index.html").is_file():
        book.run_book("smoke", root=book_root, log=lambda s: None)
        book.build_book(book_root)
    reports = check_book(html, book_root / "_build" / "screenshots", min_images={r"book/data\.html": 4})
    pages = {r.page for r in reports}
    assert {"index.html", "book/intro.html", "book/data.html"} <= pages
    assert [p for r in reports for p in r.problems] == []
    assert all(r.screenshot is not None and r.screenshot.stat().st_size > 10_000 for r in reports)
    viewers = {r.page: r.viewers for r in reports}
    # volumes to scroll through, each drawn (the check reads their canvas pixels)
    assert viewers["book/roi.html"] == 3 and viewers["book/results.html"] >= 3


def test_browser_check_reports_broken_images_and_dead_links(tmp_path: Path) -> None:
    from tausynth.browser import check_book, find_chromium

    if find_chromium() is None:
        pytest.skip("no system Chromium (tools/ensure_chromium.sh installs it)")
    (tmp_path / "index.html").write_text(
        "<html><body><img src='missing.png'><a href='nowhere.html'>x</a>"
        "<script>console.error('boom')</script></body></html>"
    )
    (tmp_path / "a.html").write_text(
        "<html><head><meta charset='utf-8'><title>Same</title></head><body><main><p>saved /home/ada/run.pt</p>"
        "<pre>Traceback (most recent call last):</pre><p>UserWarning: slow</p>"
        "<table><tr><td>1</td><td>…</td></tr></table></main></body></html>")
    (tmp_path / "b.html").write_text("<html><head><title>Same</title></head><body>fine</body></html>")
    import base64

    (tmp_path / "dot.png").write_bytes(base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="))
    (tmp_path / "c.html").write_text(
        "<html><head><title>C</title></head><body><main>"
        "<figure><img src='dot.png' alt='dot.png'><figcaption>Fig. 1 A dot.</figcaption></figure>"
        "<img src='dot.png' alt='One black dot'><div class='wide' style='width:900px'>wide</div></main></body></html>")
    report, a, b, c = check_book(tmp_path, tmp_path / "shots")
    text = "\n".join(report.problems)
    assert "image did not load: missing.png" in text
    assert "internal link leads nowhere: nowhere.html" in text
    assert "console error: boom" in text
    assert a.problems == [
        "a.html: a path of the build machine: '/home/ada'",
        "a.html: a traceback: 'Traceback (most recent call last)'",
        "a.html: a library warning: 'UserWarning: '",
        'a.html: a table truncated with "…" (1 cell(s))',
        "a.html: title 'Same' is also the title of b.html",
    ]
    assert b.problems == ["b.html: title 'Same' is also the title of a.html"]
    assert c.problems[:2] == ["c.html: image whose alt text is a file name: 'dot.png'",
                              "c.html: image without a figure caption: 'dot.png'"]
    assert len(c.problems) == 3 and c.problems[2].startswith("c.html: scrolls sideways at 390 px: the page is 9")
    assert c.problems[2].endswith("(div.wide sticks out)")
    assert c.phone_screenshot is not None and c.phone_screenshot.is_file()


def test_cache_key_covers_notebook_parameters_and_dependencies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import papermill

    executed: list[str] = []

    def fake_execute(src: str, out: str, parameters: dict, **kwargs: object) -> None:
        executed.append(Path(out).stem)
        shutil.copy2(src, out)

    monkeypatch.setattr(papermill, "execute_notebook", fake_execute)
    shutil.copytree(REPO / "book", tmp_path / "book", ignore=shutil.ignore_patterns("mathjax"))
    manifest = str(tmp_path / "m.csv")

    def run(**kw: object) -> dict[str, str]:
        executed.clear()
        results = book.run_book("smoke", root=tmp_path, manifest=manifest, log=lambda s: None, **kw)
        return {r.name: r.status for r in results}

    first = run()
    assert set(first.values()) == {"executed"}
    names = list(first)
    assert names[:2] == ["data", "suvr"] and names[-2:] == ["roi", "results"]
    assert set(run().values()) == {"cached"}
    assert set(run(force=True).values()) == {"executed"}

    # editing one chapter's notebook re-executes it alone (nothing depends on the SUVR chapter)
    nb = tmp_path / "book" / "suvr.ipynb"
    nb.write_text(nb.read_text().replace("# SUVR", "# SUVR (edited)", 1))
    assert [n for n, st in run().items() if st == "executed"] == ["suvr"]

    # a user's run list (book run --runs) that changes one run's seed re-executes that run and what
    # depends on it; its notes are not part of any chapter's inputs
    cyclic, none = load_runs("smoke")[:2]
    runs = tmp_path / "my-runs.yaml"
    runs.write_text("runs:\n  - {model: unet, loss: cyclic, seeds: [7]}\n  - {model: unet, loss: none}\n")
    again = run(runs=runs)
    assert [n for n, st in again.items() if st == "executed"] == [
        "train-unet-cyclic-standardize-s7", "roi", "results"]
    assert again[none.page] == "cached"
    assert book.read_run_log(tmp_path)["runs"] == str(runs)
    runs.write_text(runs.read_text().replace("seeds: [7]", "seeds: [7], note: a seed of its own"))
    assert set(run(runs=runs).values()) == {"cached"}
    # back to the profile's list: the run with the profile's seed was executed before, so it is cached
    assert run()[cyclic.page] == "cached"

    # the data chapter is upstream of every run and of the loss chapter (it calibrates on the cohort)
    nb = tmp_path / "book" / "data.ipynb"
    nb.write_text(nb.read_text().replace("# Data:", "# Data (edited):", 1))
    after = run(runs=runs)
    assert {n for n, st in after.items() if st == "cached"} == {"suvr"}


def test_demo_and_study_runs_cover_every_model_and_both_ablations(tmp_path: Path) -> None:
    # the live demo is what fits in the book's time; the study (archived) holds the whole design
    study = load_runs("study")
    assert {r.model for r in study} == {"unet", "unetr", "swinunetr", "pix2pix", "cyclegan"}
    unet = {r.loss for r in study if r.model == "unet" and r.normalization == "standardize"}
    assert unet == {"none", "2d", "2.5d", "3d", "cyclic"}
    assert any(r.normalization == "minmax" for r in study)
    assert len({r.name for r in study}) == len(study)
    runs = load_runs("demo")
    assert {(r.model, r.loss) for r in runs} == {("unet", "none"), ("unet", "cyclic"), ("pix2pix", "cyclic"),
                                                 ("cyclegan", "cyclic")}
    assert {r.name for r in runs} <= {r.name for r in study}  # each live run has an archived twin
    # a run's own settings reach its page as nested overrides, and only that page
    chapters = {c.name: c for c in book.chapters_for("demo", tmp_path)}
    gan = next(r for r in runs if r.model == "pix2pix")
    assert gan.overrides == {"training": {"batches_per_epoch": 40}}
    assert chapters[gan.page].parameters["settings"] == gan.overrides
    assert all("settings" not in chapters[r.page].parameters for r in runs if not r.settings)
    # every demo and study run trains its full schedule: none is time-bounded
    assert all("max_minutes" not in r.overrides.get("training", {}) for r in (*runs, *study))
    swin = next(r for r in study if r.model == "swinunetr")
    assert swin.overrides == {"training": {"init_output_bias": True}}
    # the paper profile trains every run in full: no time bounds, no training settings of its own
    assert all(not any(k.startswith("training.") for k, _ in r.settings) for r in load_runs("paper"))


@pytest.mark.slow
def test_parallel_run_stops_at_a_failed_chapter_and_names_it(tmp_path: Path) -> None:
    shutil.copytree(REPO / "book", tmp_path / "book", ignore=shutil.ignore_patterns("mathjax"))
    missing = str(tmp_path / "missing.csv")  # every chapter that reads data fails at once
    with pytest.raises(TausynthError, match=r"chapter '(data|suvr)' failed: .*missing\.csv") as info:
        book.run_book("smoke", root=tmp_path, manifest=missing, jobs=2, log=lambda s: None)
    assert "\n" not in str(info.value)
    executed = tmp_path / "_build" / "executed"
    assert not list(executed.glob("runs/*.ipynb"))  # nothing that depends on the data chapter started
    assert (tmp_path / "_build" / "logs" / "data.console.log").is_file()


def test_jobs_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(TausynthError, match="jobs: expected a positive integer"):
        book.run_book("smoke", root=tmp_path, jobs=0)


def test_unknown_chapter_is_a_user_error(book_root: Path) -> None:
    with pytest.raises(TausynthError, match="unknown chapter 'nope'"):
        book.run_book("smoke", root=book_root, only="nope", manifest=str(book_root / "none.csv"))


def test_build_before_run_names_the_missing_notebooks(tmp_path: Path) -> None:
    shutil.copytree(REPO / "book", tmp_path / "book", ignore=shutil.ignore_patterns("mathjax"))
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(REPO / name, tmp_path / name)
    with pytest.raises(TausynthError, match=r"not executed yet: .*data\.ipynb"):
        book.build_book(tmp_path)


def test_cli_reports_unknown_profile_without_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["book", "run", "--profile", "huge"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_cli_book_run_checks_a_users_run_list_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    runs = tmp_path / "runs.yaml"
    runs.write_text("runs:\n  - {model: unet, loss: none}\n  - {model: unett, loss: none}\n")
    assert main(["book", "run", "--profile", "smoke", "--runs", str(runs)]) == 2
    err = capsys.readouterr().err
    assert err == f"tausynth book: error: {runs}: runs[1].model: 'unett' is not one of " \
                  "'unet', 'unetr', 'swinunetr', 'pix2pix', 'cyclegan'\n"
    assert not (tmp_path / "data").exists() and not (tmp_path / "_build").exists()


class _FakeChild:
    """Stands in for a ``tausynth book run --only`` process: it finishes after a few polls."""

    log: list[tuple[str, str, int]] = []  # (event, chapter, children running) in order
    instances: list["_FakeChild"] = []
    alive: set[str] = set()
    fail: set[str] = set()

    def __init__(self, cmd: list[str], **kwargs: object) -> None:
        self.name = cmd[cmd.index("--only") + 1]
        self.cmd = cmd
        self.threads = dict(kwargs["env"])["OMP_NUM_THREADS"]  # type: ignore[arg-type]
        self.polls = 2
        self.returncode: int | None = None
        _FakeChild.instances.append(self)
        _FakeChild.alive.add(self.name)
        _FakeChild.log.append(("start", self.name, len(_FakeChild.alive)))

    def poll(self) -> int | None:
        self.polls -= 1
        if self.polls > 0:
            return None
        if self.returncode is None:
            _FakeChild.alive.discard(self.name)
            _FakeChild.log.append(("end", self.name, len(_FakeChild.alive)))
            self.returncode = 1 if self.name in _FakeChild.fail else 0
        return self.returncode


def test_parallel_scheduler_respects_dependencies_jobs_and_exclusive_chapters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(book.executor.subprocess, "Popen", _FakeChild)
    monkeypatch.setattr(book.executor.time, "sleep", lambda s: None)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(book.executor, "threads_per_job", lambda jobs: 4 // jobs)
    chapters = [
        book.Chapter("data", "d.ipynb"), book.Chapter("suvr", "s.ipynb"),
        book.Chapter("loss", "l.ipynb", exclusive=True),
        *(book.Chapter(f"run{i}", "t.ipynb", depends=("data",)) for i in range(3)),
        book.Chapter("results", "r.ipynb", depends=("data", "run0", "run1", "run2")),
    ]
    (tmp_path / "_build" / "logs").mkdir(parents=True)
    _FakeChild.log, _FakeChild.instances, _FakeChild.alive, _FakeChild.fail = [], [], set(), set()
    results: dict[str, book.ChapterResult] = {}
    book.executor._run_parallel(chapters, "smoke", tmp_path, None, False, 2, results, lambda s: None, runs="/x/runs.yaml")
    events = _FakeChild.log
    order = [name for ev, name, _ in events if ev == "start"]
    assert order[0] == "loss"  # the exclusive chapter first, alone
    assert events[1] == ("end", "loss", 0)
    assert max(n for ev, _, n in events if ev == "start") == 2  # never more than two at a time
    at = {(ev, name): i for i, (ev, name, _) in enumerate(events)}
    for i in range(3):  # every run after the data chapter, results after every run
        assert at["end", "data"] < at["start", f"run{i}"] < at["end", f"run{i}"] < at["start", "results"]
    threads = {c.name: c.threads for c in _FakeChild.instances}
    assert threads["loss"] == "4" and {threads[n] for n in threads if n != "loss"} == {"2"}
    assert set(results) == {c.name for c in chapters}
    # every child gets the user's run list, so that its chapters are the same
    assert all(c.cmd[c.cmd.index("--runs") + 1] == "/x/runs.yaml" for c in _FakeChild.instances)

    # a failure: the running chapter finishes, nothing new starts, the error names the chapter
    _FakeChild.log, _FakeChild.alive, _FakeChild.fail = [], set(), {"data"}
    original = _FakeChild.poll

    def poll_and_report(self: _FakeChild) -> int | None:
        code = original(self)
        if code == 1:  # what the child's CLI writes to its console log on failure
            (tmp_path / "_build" / "logs" / "data.console.log").write_text(
                "tausynth book: error: chapter 'data' failed: boom\n")
        return code

    monkeypatch.setattr(_FakeChild, "poll", poll_and_report)
    with pytest.raises(TausynthError, match=r"^chapter 'data' failed: boom$"):
        book.executor._run_parallel([*chapters[:2], book.Chapter("extra", "x.ipynb"), *chapters[3:]], "smoke", tmp_path,
                           None, False, 2, {}, lambda s: None)
    started = [name for ev, name, _ in _FakeChild.log if ev == "start"]
    assert started == ["data", "suvr"]  # "extra" depends on nothing, but a failure stops new starts


def test_scheduler_runs_the_exclusive_chapters_inputs_first_then_the_longest_chapters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(book.executor.subprocess, "Popen", _FakeChild)
    monkeypatch.setattr(book.executor.time, "sleep", lambda s: None)
    chapters = [
        book.Chapter("data", "d.ipynb"), book.Chapter("suvr", "s.ipynb"),
        book.Chapter("loss", "l.ipynb", depends=("data",), exclusive=True),
        *(book.Chapter(f"run{i}", "t.ipynb", depends=("data",), cost=cost) for i, cost in enumerate((1.0, 3.0, 2.0))),
        book.Chapter("results", "r.ipynb", depends=("data", "run0", "run1", "run2")),
    ]
    (tmp_path / "_build" / "logs").mkdir(parents=True)
    _FakeChild.log, _FakeChild.instances, _FakeChild.alive, _FakeChild.fail = [], [], set(), set()
    book.executor._run_parallel(chapters, "smoke", tmp_path, None, False, 2, {}, lambda s: None)
    started = [name for ev, name, _ in _FakeChild.log if ev == "start"]
    # suvr (nothing waits for it) neither delays the exclusive loss chapter nor a training run
    assert started == ["data", "loss", "run1", "run2", "run0", "suvr", "results"]

    # a rebuild orders by the times the run log recorded, when it has one for every chapter to run
    recorded = {"run0": {"seconds": 30.0}, "run1": {"seconds": 10.0}, "run2": {"seconds": 20.0}}
    assert list(book.executor._expected_costs(chapters[3:6], recorded).values()) == [30.0, 10.0, 20.0]
    assert list(book.executor._expected_costs(chapters[3:6], {"run0": {"seconds": 30.0}}).values()) == [1.0, 3.0, 2.0]


def test_training_pages_cost_more_with_a_perceptual_term_and_more_steps() -> None:
    costs = {c.name: c.cost for c in book.chapters_for("demo", Path(".").resolve()) if c.name.startswith("train-")}
    unet_none, unet_cyclic = costs["train-unet-none-standardize-s42"], costs["train-unet-cyclic-standardize-s42"]
    assert unet_cyclic > unet_none > 0
    # the GANs run a quarter of the U-Nets' steps in the demo
    assert costs["train-pix2pix-cyclic-standardize-s42"] < unet_cyclic


def test_fidelity_page_is_in_the_book_and_names_every_option() -> None:
    assert "book/fidelity" in book.toc_files(REPO / "_toc.yml")
    text = (REPO / "book" / "fidelity.md").read_text(encoding="utf-8")
    assert text.startswith("# Where this implementation follows the official code, and where it may differ")
    keys = ("data.augment_padding", "training.val_reduction", "training.amp", "loss.weights", "loss.ssim_range",
            "training.early_stopping")
    for key in keys:
        assert f"`{key}" in text, key


def test_intro_times_and_training_index_come_from_the_build(tmp_path: Path) -> None:
    record = {"chapters": {"data": {"seconds": 30.0}, "train-a": {"seconds": 60.0}, "train-b": {"seconds": 90.0},
                           "roi": {"status": "cached", "seconds": None}}}
    text = "data {{ time:data }}, runs {{ time:training }}, roi {{ time:roi }}, loss {{ time:loss }}"
    assert book.render._chapter_times(text, record) == "data 0.5, runs 2.5, roi —, loss —"

    run_dir = tmp_path / "runs" / "smoke" / "unet-cyclic-standardize-s42"
    run_dir.mkdir(parents=True)
    (run_dir / "provenance.json").write_text(json.dumps(
        {"status": "finished", "epochs_done": 4, "steps_done": 4, "wall_seconds": 90.0, "best_val_since_switch": 0.5}))
    (run_dir / "metrics.csv").write_text("epoch,train_share_perceptual\n0,0.1\n1,0.05\n")
    page = next(c for c in book.chapters_for("smoke", tmp_path) if c.name == "train-unet-cyclic-standardize-s42")
    table = book.training_index_markdown(tmp_path, [page])
    assert "[U-Net · cyclic 2.5D perceptual · standardized · seed 42](runs/train-unet-cyclic-standardize-s42.ipynb)" in table
    assert "| finished | 4 | 4 | 1.5 | 0.500 | 5.0 % |" in table
