"""The record of the last ``book run`` (``_build/executed/book-run.json``) and the provenance appendix."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from pathlib import Path
from typing import Any

from tausynth.book.chapters import BUILD, Chapter
from tausynth.data.cohort import cohort_dir
from tausynth.io import atomic_write_text, file_lock, usable_cores

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


def run_log_lock(root: Path) -> contextlib.AbstractContextManager[None]:
    """Serialise read-modify-write of the run log between the processes of a parallel ``book run``."""
    return file_lock(root / BUILD / "executed" / f".{RUN_LOG}.lock")


def record_chapter(
    root: Path, profile: str, manifest: str | None, runs: str | None, chapter: Chapter, status: str,
    seconds: float | None,
) -> None:
    with run_log_lock(root):
        record = read_run_log(root)
        record.update(profile=profile, manifest=manifest, runs=runs, data=manifest or f"synthetic cohort ({cohort_dir(root, profile).relative_to(root)})")
        previous = record["chapters"].get(chapter.name, {})
        entry = {"notebook": chapter.notebook, "parameters": chapter.parameters, "status": status}
        if seconds is None:  # cached: keep the timing of the execution that produced the output
            entry.update(seconds=previous.get("seconds"), executed_at=previous.get("executed_at"))
        else:
            entry.update(seconds=round(seconds, 1), executed_at=time.strftime("%Y-%m-%d %H:%M:%S %Z"))
        record["chapters"][chapter.name] = entry
        write_run_log(root, record)


def write_run_log(root: Path, record: dict[str, Any]) -> None:
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
           "CPU cores": str(usable_cores())}
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


def md_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def provenance_markdown(root: str | Path = ".") -> str:
    """Markdown tables for the book's provenance appendix, from the last ``book run`` and its runs."""
    root = Path(root).resolve()
    record = read_run_log(root)
    profile = record.get("profile", "?")
    out = ["\n## This build\n", md_table(["", ""], [
        ["profile", f"`{profile}`"],
        ["data", record.get("data", "?")],
        ["training runs", f"listed in `{record['runs']}`" if record.get("runs") else f"the `{profile}` profile's"],
        ["commit", _git_commit(root)],
        ["built", time.strftime("%Y-%m-%d %H:%M %Z")],
        ["chapters executed at a time", str(record.get("jobs", 1))],
    ])]
    out += ["\n## Environment\n", md_table(["component", "version"], [[k, v] for k, v in _environment().items()])]
    chapters = record.get("chapters", {})
    out += ["\n## Chapters\n", "Seconds are wall time of the execution that produced each page (with "
            "several chapters at a time, they shared the CPU); `cached` means its inputs were unchanged, "
            "so the earlier output was reused.\n\n",
            md_table(["chapter", "status", "seconds", "executed at"],
                      [[n, c.get("status"), c.get("seconds"), c.get("executed_at")] for n, c in chapters.items()])]
    runs = _training_runs(root, profile) if profile != "?" else []
    if runs:
        out += ["\n## Training runs\n", "The perceptual-loss weights each run actually used "
                "(`random` means ImageNet weights were not available offline and a seeded random VGG16 "
                "stood in — see the loss chapter).\n\n",
                md_table(["run", "perceptual weights", "device", "epochs", "stopped because"],
                          [[r["run"], r["weights"], r["device"], r["epochs"], r["stop"]] for r in runs])]
    return "".join(out)
