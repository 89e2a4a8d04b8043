"""Book orchestration: run every chapter with papermill, then render with Jupyter Book 1.

``tausynth book run --profile demo`` prepares the synthetic cohort, executes each chapter notebook
of ``book/`` with papermill into ``_build/executed/`` (skipping chapters whose inputs are unchanged
since their last success), and ``tausynth book build`` renders the executed notebooks to
``_build/html``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tausynth import __version__
from tausynth.config import load_profile
from tausynth.errors import TausynthError
from tausynth.io import atomic_write_text, file_lock
from tausynth.runlist import RunSpec as RunSpec  # re-exported: its home was this module
from tausynth.runlist import load_runs

BUILD = "_build"


@dataclass(frozen=True)
class Chapter:
    """One executable chapter: a notebook, the papermill parameters it gets, what it depends on.

    ``output`` is the executed notebook's path relative to ``_build/executed`` (and, for the
    rendered book, to ``book/``); ``depends`` names the chapters whose results it reads, so a change
    upstream re-executes it and nothing else does.
    """

    name: str
    notebook: str
    parameters: dict[str, Any] = field(default_factory=dict)
    depends: tuple[str, ...] = ()
    output: str = ""
    title: str = ""
    #: runs alone with every core when chapters run side by side (its timings are part of its content)
    exclusive: bool = False
    #: files or folders (relative to the root) it reads besides its dependencies: their content is in its key
    inputs: tuple[str, ...] = ()
    #: expected work, relative to the other chapters; it only orders the chapters that start first
    cost: float = 0.0

    @property
    def output_path(self) -> str:
        """Executed notebook, relative to ``_build/executed``."""
        return self.output or Path(self.notebook).name


@dataclass(frozen=True)
class ChapterResult:
    """What happened to one chapter during ``book run``."""

    name: str
    status: str  # "executed", "cached" or "failed"
    seconds: float
    output: Path


def cohort_dir(root: Path, profile: str) -> Path:
    """Folder of the synthetic cohort used by ``profile``."""
    return root / "data" / profile / "cohort"


def chapters_for(
    profile: str, root: Path, manifest: str | None = None, runs: str | Path | None = None,
) -> list[Chapter]:
    """The chapters of the book, in dependency order, with their parameters for ``profile``.

    One training page per run of the profile's run list (:func:`tausynth.runlist.load_runs`), or of
    the YAML file ``runs`` when given.
    """
    # Relative to the root (the chapters run there), so rendered pages show no machine-specific paths.
    data = str(Path(manifest).resolve()) if manifest else str(cohort_dir(root, profile).relative_to(root) / "manifest.csv")
    common = {"profile": profile, "manifest": data}
    # Chapters that use the generator's ground truth get a manifest only for real data.
    real = {"manifest": data} if manifest else {}
    chapters = [
        Chapter("data", "book/data.ipynb", dict(common)),
        Chapter("suvr", "book/suvr.ipynb", {"profile": profile, **real}),
    ]
    if (root / "book" / "loss.ipynb").is_file():
        # the loss chapter calibrates and pretrains feature networks on the cohort's training split
        chapters.append(Chapter("loss", "book/loss.ipynb", dict(common), depends=("data",), exclusive=True))
    specs = load_runs(profile, runs)
    run_dirs = []
    for spec in specs:
        run_dir = (Path("runs") / profile / spec.name).as_posix()
        run_dirs.append(run_dir)
        chapters.append(Chapter(
            spec.page, "book/train.ipynb",
            {"profile": profile, "model": spec.model, "loss": spec.loss, "normalisation": spec.normalisation,
             "seed": spec.seed, "run_dir": run_dir, "restart_if_changed": True, **real,
             **({"settings": spec.overrides} if spec.settings else {})},
            depends=("data",), output=f"runs/{spec.page}.ipynb", title=spec.title, cost=_training_cost(profile, spec),
        ))
    run_pages = tuple(spec.page for spec in specs)
    for name in ("roi", "results"):
        if (root / "book" / f"{name}.ipynb").is_file():
            # the results chapter shows the archived study beside the live runs
            inputs = (STUDY_ARCHIVE,) if name == "results" else ()
            chapters.append(Chapter(name, f"book/{name}.ipynb", {"profile": profile, "runs": run_dirs, **real},
                                    depends=("data", *run_pages), inputs=inputs))
    return chapters


#: Cost of one optimizer step relative to a U-Net step without a perceptual term, measured on the
#: demo's runs (2-core CPU). It orders a first build's training pages, longest first; a rebuild uses
#: the times recorded in the run log instead.
_STEP_COST = {"pix2pix": 1.7, "cyclegan": 2.9}
_PERCEPTUAL_STEP_COST = 1.85


def _training_cost(profile: str, spec: RunSpec) -> float:
    """Expected work of a training page: optimizer steps times the cost of one step."""
    training = load_profile(profile, spec.overrides).training
    steps = training.max_epochs * (training.batches_per_epoch or 1)
    return steps * _STEP_COST.get(spec.model, 1.0) * (_PERCEPTUAL_STEP_COST if spec.loss != "none" else 1.0)


STUDY_ARCHIVE = "archive/study"
"""The committed study archive the results chapter reads (:mod:`tausynth.study`)."""


def _inputs_digest(root: Path, inputs: tuple[str, ...]) -> str:
    """Content hash of a chapter's input files and folders (absent ones count as absent)."""
    files: list[tuple[str, str]] = []
    for item in inputs:
        path = root / item
        found = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path] if path.is_file() else []
        files += [(p.relative_to(root).as_posix(), _file_digest(p)) for p in found] or [(item, "absent")]
    return _digest(files)


def _digest(*parts: Any) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(json.dumps(part, sort_keys=True, default=str).encode())
        h.update(b"\0")
    return h.hexdigest()


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def package_digest() -> str:
    """Version plus a hash of the package's source files (an editable install changes without a new version)."""
    pkg = Path(__file__).resolve().parent
    files = sorted(p for p in pkg.rglob("*") if p.suffix in {".py", ".yaml"} and "__pycache__" not in p.parts)
    return _digest(__version__, [(p.relative_to(pkg).as_posix(), _file_digest(p)) for p in files])


def _manifest_digest(root: Path, manifest: str | None, profile: str) -> str:
    path = Path(manifest) if manifest else cohort_dir(root, profile) / "manifest.csv"
    return _file_digest(path) if path.is_file() else "absent"


def ensure_cohort(root: Path, profile: str, log: Callable[[str], None] = print) -> Path:
    """Generate the profile's synthetic cohort unless an identical one is already on disk."""
    from tausynth.data.synthetic import write_cohort

    cfg = load_profile(profile).data
    out = cohort_dir(root, profile)
    pkg = Path(__file__).resolve().parent
    generator = [_file_digest(pkg / f) for f in ("data/synthetic.py", "data/atlas.py", "io.py")]
    key = _digest("cohort", __version__, generator, cfg.n_subjects, cfg.seed, cfg.resolution, cfg.confound)
    stamp = out / ".tausynth-cohort-key"
    # one writer at a time: chapters started side by side would otherwise each regenerate it
    with file_lock(out.parent / ".cohort.lock"):
        if stamp.is_file() and stamp.read_text().strip() == key and (out / "manifest.csv").is_file():
            log(f"cohort   cached    {out}")
            return out / "manifest.csv"
        start = time.perf_counter()
        write_cohort(out, n=cfg.n_subjects, seed=cfg.seed, resolution=cfg.resolution, workers=_threads_per_job(1),
                     confound=cfg.confound, progress=False)
        atomic_write_text(stamp, key + "\n")
    log(f"cohort   generated {time.perf_counter() - start:7.1f} s  {cfg.n_subjects} subjects -> {out}")
    return out / "manifest.csv"


def _print_now(line: str) -> None:
    print(line, flush=True)


def run_book(
    profile: str,
    *,
    root: str | Path = ".",
    only: str | None = None,
    force: bool = False,
    manifest: str | None = None,
    log: Callable[[str], None] | None = None,
    jobs: int = 1,
    runs: str | Path | None = None,
) -> list[ChapterResult]:
    """Execute the book's chapters with papermill.

    Parameters
    ----------
    profile : {"smoke", "demo", "study", "paper"}
        Profile passed to every chapter.
    root : path, default="."
        Repository root (holds ``book/`` and ``_config.yml``).
    only : str, optional
        Execute only this chapter (its upstream chapters must have run before).
    force : bool, default=False
        Re-execute chapters even if their inputs are unchanged.
    manifest : str, optional
        A data manifest to use instead of the synthetic cohort.
    log : callable, optional
        Receives one line per chapter (default: printed and flushed at once, so a redirected log
        shows progress).
    jobs : int, default=1
        Chapters executed at the same time, each in its own ``tausynth book run --only`` process,
        as soon as the chapters it depends on are done; the CPU cores are shared out between them
        (``OMP_NUM_THREADS``, unless already set). Small 3D networks use two cores poorly, so two
        runs side by side finish sooner than one after the other.
    runs : path, optional
        A YAML file whose ``runs`` list replaces the profile's (see :mod:`tausynth.runlist`): one
        training page per run. Its runs are part of the chapters' parameters, hence of their cache keys.

    Raises
    ------
    TausynthError
        When a chapter fails; the message names it and the partial notebook is kept. With
        ``jobs > 1`` the chapters already running finish first and nothing new starts.
    """
    import papermill

    if log is None:
        log = _print_now
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise TausynthError(f"jobs: expected a positive integer, got {jobs!r}")
    root = Path(root).resolve()
    load_profile(profile)  # validates the name
    runs = str(Path(runs).resolve()) if runs is not None else None
    chapters = chapters_for(profile, root, manifest, runs)  # checks the run list before any work
    if not (root / "book").is_dir():
        raise TausynthError(f"{root}: not the tausynth repository root (no book/ folder of chapters); run `book run` there")
    executed = root / BUILD / "executed"
    logs = root / BUILD / "logs"
    executed.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    if manifest is None:
        ensure_cohort(root, profile, log)
    names = [c.name for c in chapters]
    if only is not None and only not in names:
        raise TausynthError(f"unknown chapter {only!r} (chapters: {', '.join(names)})")
    base = _digest(package_digest(), _manifest_digest(root, manifest, profile), profile)
    keys: dict[str, str] = {}
    todo: list[Chapter] = []
    results: dict[str, ChapterResult] = {}
    for chapter in chapters:
        source = root / chapter.notebook
        out = executed / chapter.output_path
        out.parent.mkdir(parents=True, exist_ok=True)
        keys[chapter.name] = _digest(base, _file_digest(source), chapter.parameters, [keys[d] for d in chapter.depends],
                                     *([_inputs_digest(root, chapter.inputs)] if chapter.inputs else []))
        if only is not None and chapter.name != only:
            continue
        stamp = executed / f".{chapter.name}.key"
        if not force and stamp.is_file() and stamp.read_text().strip() == keys[chapter.name] and out.is_file():
            log(f"{chapter.name:36s} cached")
            results[chapter.name] = ChapterResult(chapter.name, "cached", 0.0, out)
            continue
        todo.append(chapter)
    if todo and only is None:
        with _run_log_lock(root):  # how many chapters ran at a time, for the timings' reader
            record = read_run_log(root)
            record["jobs"] = jobs
            _write_run_log(root, record)
    if jobs > 1 and len(todo) > 1:
        _run_parallel(todo, profile, root, manifest, force, jobs, results, log, runs)
    else:
        for chapter in todo:
            results[chapter.name] = _execute(papermill, chapter, keys[chapter.name], root, log)
            _record_chapter(root, profile, manifest, runs, chapter, "executed", results[chapter.name].seconds)
    for result in results.values():
        if result.status == "cached":
            _record_chapter(root, profile, manifest, runs, next(c for c in chapters if c.name == result.name),
                            "cached", None)
    return [results[n] for n in names if n in results]


def _execute(papermill: Any, chapter: Chapter, key: str, root: Path, log: Callable[[str], None]) -> ChapterResult:
    """Execute one chapter in this process; stamp its cache key on success."""
    executed = root / BUILD / "executed"
    out = executed / chapter.output_path
    stamp = executed / f".{chapter.name}.key"
    stamp.unlink(missing_ok=True)
    start = time.perf_counter()
    log_path = root / BUILD / "logs" / f"{chapter.name}.log"
    handler = logging.FileHandler(log_path, mode="w")
    pm_logger = logging.getLogger("papermill")
    pm_logger.addHandler(handler)
    pm_logger.setLevel(logging.INFO)
    try:
        papermill.execute_notebook(
            str(root / chapter.notebook), str(out), parameters=chapter.parameters, cwd=str(root),
            log_output=True, progress_bar=False, kernel_name="python3",
        )
    except Exception as exc:
        elapsed = time.perf_counter() - start
        log(f"{chapter.name:36s} FAILED   {elapsed:7.1f} s  (partial notebook: {out}; log: {log_path})")
        first = str(exc).strip().splitlines()
        reason = first[-1] if first else type(exc).__name__
        raise TausynthError(f"chapter '{chapter.name}' failed: {reason} (see {out})") from None
    finally:
        pm_logger.removeHandler(handler)
        handler.close()
    elapsed = time.perf_counter() - start
    atomic_write_text(stamp, key + "\n")
    log(f"{chapter.name:36s} executed {elapsed:7.1f} s")
    return ChapterResult(chapter.name, "executed", elapsed, out)


def _threads_per_job(jobs: int) -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores // jobs)


def _expected_costs(todo: list[Chapter], recorded: dict[str, Any]) -> dict[str, float]:
    """Each chapter's expected work: its last recorded time when every chapter to run has one, else its cost."""
    seconds = {c.name: (recorded.get(c.name) or {}).get("seconds") for c in todo}
    if all(isinstance(s, (int, float)) for s in seconds.values()):
        return {name: float(s) for name, s in seconds.items()}
    return {c.name: c.cost for c in todo}


def _start_order(ready: list[Chapter], pending: list[Chapter], costs: dict[str, float]) -> list[Chapter]:
    """The ready chapters in the order to start them (a list scheduler's priorities).

    While an exclusive chapter waits, only the chapters it needs may start, so it is not kept waiting
    behind one that nothing needs yet. Chapters that others wait for go before those that nothing
    waits for, and among them the longest first, so that no core idles near the end.

    Examples
    --------
    >>> data, suvr = Chapter("data", "d.ipynb"), Chapter("suvr", "s.ipynb")
    >>> loss = Chapter("loss", "l.ipynb", depends=("data",), exclusive=True)
    >>> a = Chapter("a", "t.ipynb", depends=("data",), cost=1.0)
    >>> b = Chapter("b", "t.ipynb", depends=("data",), cost=3.0)
    >>> results = Chapter("results", "r.ipynb", depends=("a", "b"))
    >>> [c.name for c in _start_order([data, suvr], [data, suvr, loss, a, b, results], {})]
    ['data']
    >>> [c.name for c in _start_order([suvr, a, b], [suvr, a, b, results], {"a": 1.0, "b": 3.0})]
    ['b', 'a', 'suvr']
    """
    by_name = {c.name: c for c in pending}
    needed: set[str] = set()
    stack = [d for c in pending if c.exclusive for d in c.depends]
    while stack:
        name = stack.pop()
        if name in by_name and name not in needed:
            needed.add(name)
            stack.extend(by_name[name].depends)
    waits_exclusive = any(c.exclusive for c in pending)
    awaited = {d for c in pending for d in c.depends}
    order = [c for c in ready if c.exclusive or not waits_exclusive or c.name in needed]
    return sorted(order, key=lambda c: (c.name not in awaited, -costs.get(c.name, 0.0)))


def _run_parallel(
    todo: list[Chapter], profile: str, root: Path, manifest: str | None, force: bool, jobs: int,
    results: dict[str, ChapterResult], log: Callable[[str], None], runs: str | None = None,
) -> None:
    """Execute ``todo`` with up to ``jobs`` child processes, each chapter after its dependencies.

    An exclusive chapter runs alone, with every core, before any other chapter that is ready; the
    others start in :func:`_start_order`.
    """

    def start(chapter: Chapter) -> None:
        env = dict(os.environ)
        env.setdefault("OMP_NUM_THREADS", str(_threads_per_job(1 if chapter.exclusive else jobs)))
        console = root / BUILD / "logs" / f"{chapter.name}.console.log"
        cmd = [sys.executable, "-m", "tausynth", "book", "run", "--profile", profile, "--only", chapter.name]
        cmd += ["--manifest", manifest] if manifest else []
        cmd += ["--runs", runs] if runs else []
        cmd += ["--force"] if force else []
        with console.open("wb") as fh:
            proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=fh, stderr=subprocess.STDOUT)
        pending.remove(chapter)
        running[chapter.name] = (proc, time.perf_counter(), console)

    pending = list(todo)
    waiting_for = {c.name for c in todo}
    running: dict[str, tuple[subprocess.Popen[bytes], float, Path]] = {}
    exclusive = {c.name for c in todo if c.exclusive}
    costs = _expected_costs(todo, read_run_log(root)["chapters"])
    failures: list[str] = []
    try:
        while pending or running:
            ready = _start_order([c for c in pending if not any(d in waiting_for for d in c.depends)], pending, costs)
            alone = [c for c in ready if c.exclusive]
            if failures or exclusive & running.keys():
                pass  # nothing new after a failure, nor beside an exclusive chapter
            elif alone:  # it goes first, once the running chapters are done
                if not running:
                    start(alone[0])
            else:
                for chapter in ready[: max(0, jobs - len(running))]:
                    start(chapter)
            if failures and not running:
                break
            time.sleep(0.2)
            for name, (proc, began, console) in list(running.items()):
                if proc.poll() is None:
                    continue
                del running[name]
                waiting_for.discard(name)
                elapsed = time.perf_counter() - began
                out = root / BUILD / "executed" / next(c for c in todo if c.name == name).output_path
                if proc.returncode == 0:
                    log(f"{name:36s} executed {elapsed:7.1f} s")
                    results[name] = ChapterResult(name, "executed", elapsed, out)
                else:
                    lines = [ln for ln in console.read_text(errors="replace").splitlines() if ln.strip()]
                    log(f"{name:36s} FAILED   {elapsed:7.1f} s  (partial notebook: {out}; console: {console})")
                    last = lines[-1] if lines else f"chapter '{name}' failed with exit status {proc.returncode}"
                    failures.append(last.split(": error: ", 1)[-1])  # the child's one-line CLI error
    finally:
        for proc, _, _ in running.values():  # interrupted: stop the children too
            proc.terminate()
        for proc, _, _ in running.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    if failures:
        raise TausynthError(failures[0] if len(failures) == 1 else "; ".join(failures))


RUN_LOG = "book-run.json"


def read_run_log(root: str | Path = ".") -> dict[str, Any]:
    """The record of the last ``book run``: profile, data source and each chapter's last execution."""
    path = Path(root) / BUILD / "executed" / RUN_LOG
    if not path.is_file():
        return {"chapters": {}}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return {"chapters": {}}


def _run_log_lock(root: Path) -> contextlib.AbstractContextManager[None]:
    """Serialise read-modify-write of the run log between the processes of a parallel ``book run``."""
    return file_lock(root / BUILD / "executed" / f".{RUN_LOG}.lock")


def _record_chapter(
    root: Path, profile: str, manifest: str | None, runs: str | None, chapter: Chapter, status: str,
    seconds: float | None,
) -> None:
    with _run_log_lock(root):
        record = read_run_log(root)
        record.update(profile=profile, manifest=manifest, runs=runs, data=manifest or f"synthetic cohort ({cohort_dir(root, profile).relative_to(root)})")
        previous = record["chapters"].get(chapter.name, {})
        entry = {"notebook": chapter.notebook, "parameters": chapter.parameters, "status": status}
        if seconds is None:  # cached: keep the timing of the execution that produced the output
            entry.update(seconds=previous.get("seconds"), executed_at=previous.get("executed_at"))
        else:
            entry.update(seconds=round(seconds, 1), executed_at=time.strftime("%Y-%m-%d %H:%M:%S %Z"))
        record["chapters"][chapter.name] = entry
        _write_run_log(root, record)


def _write_run_log(root: Path, record: dict[str, Any]) -> None:
    atomic_write_text(root / BUILD / "executed" / RUN_LOG, json.dumps(record, indent=2, default=str))


def _git_commit(root: Path) -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                              text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown (git not available)"
    if head.returncode != 0:
        return "unknown (not a git checkout)"
    return head.stdout.strip() + (" with uncommitted changes" if dirty.stdout.strip() else "")


def _environment() -> dict[str, str]:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    env = {"Python": platform.python_version(), "platform": platform.platform(),
           "CPU cores": str(os_cpu_count())}
    for dist in ("tausynth", "torch", "torchvision", "monai", "numpy", "nibabel", "nilearn", "papermill",
                 "jupyter-book"):
        try:
            env[dist] = version(dist)
        except PackageNotFoundError:
            env[dist] = "not installed"
    try:
        import torch

        env["accelerator"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none (CPU)"
    except Exception:  # pragma: no cover - torch always importable here
        env["accelerator"] = "unknown"
    return env


def os_cpu_count() -> int:
    """Usable CPU cores of this process."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _training_runs(root: Path, profile: str) -> list[dict[str, Any]]:
    rows = []
    for prov in sorted((root / "runs" / profile).glob("*/provenance.json")):
        try:
            data = json.loads(prov.read_text())
        except json.JSONDecodeError:
            continue
        rows.append({"run": prov.parent.name, "weights": data.get("perceptual_weights"),
                     "device": (data.get("environment") or {}).get("device"),
                     "epochs": data.get("epochs_done", data.get("epochs")), "stop": data.get("stop_reason")})
    return rows


def _last_share(run_dir: Path) -> str:
    """The perceptual term's share of the training loss in the run's last epoch, as a percentage."""
    import pandas as pd

    try:
        metrics = pd.read_csv(run_dir / "metrics.csv")
    except (OSError, ValueError):
        return "—"
    if "train_share_perceptual" not in metrics or metrics.empty:
        return "—"
    return f"{100 * float(metrics['train_share_perceptual'].iloc[-1]):.1f} %"


def training_index_markdown(root: Path, runs: list[Chapter]) -> str:
    """A table of the book's training runs, one row each, linking to its page (for the training index)."""
    rows = []
    for chapter in runs:
        run_dir = root / chapter.parameters["run_dir"]
        try:
            prov = json.loads((run_dir / "provenance.json").read_text())
        except (OSError, ValueError):
            prov = {}
        best = prov.get("best_val_since_switch")
        rows.append([
            f"[{chapter.title}]({chapter.output_path})", prov.get("status", "—"), prov.get("epochs_done", "—"),
            prov.get("steps_done", "—"), f"{float(prov.get('wall_seconds', 0)) / 60:.1f}" if prov else "—",
            f"{best:.3f}" if isinstance(best, (int, float)) else "—",
            _last_share(run_dir) if chapter.parameters.get("loss") != "none" else "—",
        ])
    if not rows:
        return ""
    return ("\n## The runs of this build\n\n" + _md_table(
        ["run", "status", "epochs", "optimizer steps", "minutes", "best validation loss", "perceptual share, last epoch"],
        rows))


def _chapter_times(text: str, record: dict[str, Any]) -> str:
    """Fill ``{{ time:NAME }}`` with the minutes chapter NAME took in the last execution (``training``: every run page)."""
    import re

    chapters = record.get("chapters", {})

    def minutes(match: re.Match[str]) -> str:
        name = match.group(1)
        names = [n for n in chapters if n.startswith("train-")] if name == "training" else [name]
        seconds = [chapters[n].get("seconds") for n in names if n in chapters]
        if not seconds or any(not isinstance(v, (int, float)) for v in seconds):
            return "—"
        return f"{sum(seconds) / 60:.1f}"

    return re.sub(r"\{\{ time:([\w-]+) \}\}", minutes, text)


def _md_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def provenance_markdown(root: str | Path = ".") -> str:
    """Markdown tables for the book's provenance appendix, from the last ``book run`` and its runs."""
    root = Path(root).resolve()
    record = read_run_log(root)
    profile = record.get("profile", "?")
    out = ["\n## This build\n", _md_table(["", ""], [
        ["profile", f"`{profile}`"],
        ["data", record.get("data", "?")],
        ["training runs", f"listed in `{record['runs']}`" if record.get("runs") else f"the `{profile}` profile's"],
        ["commit", _git_commit(root)],
        ["built", time.strftime("%Y-%m-%d %H:%M %Z")],
        ["chapters executed at a time", str(record.get("jobs", 1))],
    ])]
    out += ["\n## Environment\n", _md_table(["component", "version"], [[k, v] for k, v in _environment().items()])]
    chapters = record.get("chapters", {})
    out += ["\n## Chapters\n", "Seconds are wall time of the execution that produced each page (with "
            "several chapters at a time, they shared the CPU); `cached` means its inputs were unchanged, "
            "so the earlier output was reused.\n\n",
            _md_table(["chapter", "status", "seconds", "executed at"],
                      [[n, c.get("status"), c.get("seconds"), c.get("executed_at")] for n, c in chapters.items()])]
    runs = _training_runs(root, profile) if profile != "?" else []
    if runs:
        out += ["\n## Training runs\n", "The perceptual-loss weights each run actually used "
                "(`random` means ImageNet weights were not available offline and a seeded random VGG16 "
                "stood in — see the loss chapter).\n\n",
                _md_table(["run", "perceptual weights", "device", "epochs", "stopped because"],
                          [[r["run"], r["weights"], r["device"], r["epochs"], r["stop"]] for r in runs])]
    return "".join(out)


def toc_files(toc: Path) -> list[str]:
    """Every ``file:`` entry of a Jupyter Book ``_toc.yml`` (root first), without suffix."""
    import yaml

    data = yaml.safe_load(toc.read_text(encoding="utf-8"))
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key in ("root", "file"):
                if isinstance(node.get(key), str):
                    found.append(str(Path(node[key]).with_suffix("")))
            for value in node.values():
                if isinstance(value, list | dict):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(data)
    return found


def _write_toc(template: Path, dest: Path, runs: list[Chapter]) -> None:
    """Copy ``_toc.yml``, listing one page per training run under ``book/training``."""
    import yaml

    toc = yaml.safe_load(template.read_text(encoding="utf-8"))
    sections = [{"file": f"book/{Path(c.output_path).with_suffix('').as_posix()}", "title": c.title} for c in runs]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("file") == "book/training":
                node["sections"] = sections
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    if sections:
        walk(toc)
    dest.write_text(yaml.safe_dump(toc, sort_keys=False), encoding="utf-8")


def _write_titled(notebook: Path, dest: Path, title: str) -> None:
    """Copy an executed run page with its run's title as the page title (the template's is generic).

    Figure labels are global in Sphinx, and every run page comes from the same template: each page's
    figure names (and the ``{numref}`` references to them) get the page's name as a prefix.
    """
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    first = next((c for c in nb["cells"] if c["cell_type"] == "markdown"), None)
    if first is not None:
        lines = "".join(first["source"]).splitlines(keepends=True)
        if lines and lines[0].startswith("# "):
            lines[0] = f"# {title}\n"
            first["source"] = lines
    renamed = {}
    for cell in nb["cells"]:
        figure = cell.get("metadata", {}).get("mystnb", {}).get("figure", {})
        if figure.get("name"):
            renamed[figure["name"]] = figure["name"] = f"{dest.stem}-{figure['name']}"
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            text = "".join(cell["source"])
            for old, new in renamed.items():
                text = text.replace(f"{{numref}}`{old}`", f"{{numref}}`{new}`")
            cell["source"] = text.splitlines(keepends=True)
    dest.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def glued_png(notebook: Path, name: str) -> bytes | None:
    """The PNG of the figure an executed notebook glued (MyST-NB ``glue``) under ``name``, or None."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            glued = (output.get("metadata") or {}).get("scrapbook") or {}
            png = (output.get("data") or {}).get("image/png")
            if glued.get("name") == name and png:
                return base64.b64decode("".join(png) if isinstance(png, list) else png)
    return None


def stage_sources(root: str | Path = ".") -> Path:
    """Assemble ``_build/src``: the book's sources with executed notebooks in place of the blank ones."""
    root = Path(root).resolve()
    src = root / BUILD / "src"
    if src.exists():
        shutil.rmtree(src)
    shutil.copytree(root / "book", src / "book", ignore=shutil.ignore_patterns("*.ipynb_checkpoints"))
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(root / name, src / name)
    executed = root / BUILD / "executed"
    record = read_run_log(root)
    profile = record.get("profile")
    runs = [c for c in chapters_for(profile, root, record.get("manifest"), record.get("runs"))
            if c.output.startswith("runs/")] \
        if profile else []
    missing = []
    for rel in toc_files(root / "_toc.yml"):
        nb = root / f"{rel}.ipynb"
        if not nb.is_file():
            continue
        done = executed / nb.name
        if done.is_file():
            shutil.copy2(done, src / nb.relative_to(root))
        else:
            missing.append(nb.name)
    for chapter in runs:
        done = executed / chapter.output_path
        if done.is_file():
            (src / "book" / "runs").mkdir(parents=True, exist_ok=True)
            _write_titled(done, src / "book" / chapter.output_path, chapter.title)
        else:
            missing.append(chapter.output_path)
    if missing:
        raise TausynthError(
            f"not executed yet: {', '.join(missing)} — run 'tausynth book run' first"
        )
    _write_toc(root / "_toc.yml", src / "_toc.yml", runs)
    downloads = root / BUILD / "downloads"
    if downloads.is_dir():  # the chapters' {download} links name /downloads/... from the source root
        shutil.copytree(downloads, src / "downloads")
    intro = src / "book" / "intro.md"
    results = src / "book" / "results.ipynb"
    figure = glued_png(results, "tracking_figure") if results.is_file() else None
    if figure is not None:  # the intro shows the results chapter's key figure as a numbered figure
        (src / "book" / "_generated").mkdir(exist_ok=True)
        (src / "book" / "_generated" / "tracking_figure.png").write_bytes(figure)
    if intro.is_file():
        intro.write_text(_chapter_times(intro.read_text(encoding="utf-8"), record), encoding="utf-8")
    index = src / "book" / "training.md"
    if index.is_file():
        with index.open("a", encoding="utf-8") as fh:
            fh.write(training_index_markdown(root, runs))
    provenance = src / "book" / "provenance.md"
    if provenance.is_file():
        with provenance.open("a", encoding="utf-8") as fh:
            fh.write(provenance_markdown(root))
    return src


def build_book(root: str | Path = ".", warningiserror: bool = True) -> Path:
    """Render the executed book with Jupyter Book 1; return the path of ``index.html``."""
    root = Path(root).resolve()
    src = stage_sources(root)
    jb = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", str(src), "--path-output", str(root), "--all"]
    if warningiserror:
        cmd += ["--warningiserror", "--keep-going"]
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    log_path = root / BUILD / "logs" / "jupyter-book.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        tail = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "WARNING" in ln or "ERROR" in ln]
        detail = tail[0] if tail else f"exit status {proc.returncode}"
        raise TausynthError(f"jupyter-book build failed: {detail} (full log: {log_path})")
    html = root / BUILD / "html"
    favicon = html / "_static" / "favicon.png"
    if favicon.is_file():  # browsers ask for /favicon.ico on the redirecting index page
        shutil.copy2(favicon, html / "favicon.ico")
    return html / "index.html"
