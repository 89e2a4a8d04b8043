"""Run the chapters with papermill: cache keys, parallel children, the longest first.

``tausynth book run`` executes each chapter notebook of ``book/`` into ``_build/executed/``,
skipping chapters whose inputs (notebook, parameters, package source, data, upstream chapters) are
unchanged since their last success, and running independent chapters side by side.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tausynth.book.chapters import BUILD, Chapter, ChapterResult, chapters_for
from tausynth.book.runlog import read_run_log, record_chapter, run_log_lock, write_run_log
from tausynth.config import load_profile
from tausynth.data.cohort import cohort_dir, ensure_cohort
from tausynth.digest import combine, source_digest
from tausynth.errors import TausynthError
from tausynth.io import atomic_write_text, file_sha256, usable_cores

"""The committed study archive the results chapter reads (:mod:`tausynth.study`)."""


def _inputs_digest(root: Path, inputs: tuple[str, ...]) -> str:
    """Content hash of a chapter's input files and folders (absent ones count as absent)."""
    files: list[tuple[str, str]] = []
    for item in inputs:
        path = root / item
        found = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path] if path.is_file() else []
        files += [(p.relative_to(root).as_posix(), file_sha256(p)) for p in found] or [(item, "absent")]
    return combine(files)


def _manifest_digest(root: Path, manifest: str | None, profile: str) -> str:
    path = Path(manifest) if manifest else cohort_dir(root, profile) / "manifest.csv"
    return file_sha256(path) if path.is_file() else "absent"


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
    base = combine(source_digest(), _manifest_digest(root, manifest, profile), profile)
    keys: dict[str, str] = {}
    todo: list[Chapter] = []
    results: dict[str, ChapterResult] = {}
    for chapter in chapters:
        source = root / chapter.notebook
        out = executed / chapter.output_path
        out.parent.mkdir(parents=True, exist_ok=True)
        keys[chapter.name] = combine(base, file_sha256(source), chapter.parameters, [keys[d] for d in chapter.depends],
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
        with run_log_lock(root):  # how many chapters ran at a time, for the timings' reader
            record = read_run_log(root)
            record["jobs"] = jobs
            write_run_log(root, record)
    if jobs > 1 and len(todo) > 1:
        _run_parallel(todo, profile, root, manifest, force, jobs, results, log, runs)
    else:
        for chapter in todo:
            results[chapter.name] = _execute(papermill, chapter, keys[chapter.name], root, log)
            record_chapter(root, profile, manifest, runs, chapter, "executed", results[chapter.name].seconds)
    for result in results.values():
        if result.status == "cached":
            record_chapter(root, profile, manifest, runs, next(c for c in chapters if c.name == result.name),
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


def threads_per_job(jobs: int) -> int:
    return max(1, usable_cores() // jobs)


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
        env.setdefault("OMP_NUM_THREADS", str(threads_per_job(1 if chapter.exclusive else jobs)))
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
