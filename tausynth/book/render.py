"""Stage the executed chapters as a Jupyter Book source tree and render it (``tausynth book build``).

Staging fills what only the build knows: a page per training run with its own title and figure
labels, the training index, the reading guide's chapter times, the intro's key figure, the
downloads and the provenance appendix.
"""

from __future__ import annotations

import base64
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from tausynth.book.chapters import BUILD, Chapter, chapters_for
from tausynth.book.runlog import md_table, provenance_markdown, read_run_log
from tausynth.errors import TausynthError
from tausynth.evaluation.discovery import perceptual_shares, run_provenance


def _last_share(run_dir: Path) -> str:
    """The perceptual term's share of the training loss in the run's last epoch, as a percentage."""
    share = perceptual_shares(run_dir)["perceptual_share_last"]
    return "—" if math.isnan(share) else f"{100 * share:.1f} %"


def training_index_markdown(root: Path, runs: list[Chapter]) -> str:
    """A table of the book's training runs, one row each, linking to its page (for the training index)."""
    rows = []
    for chapter in runs:
        run_dir = root / chapter.parameters["run_dir"]
        prov = run_provenance(run_dir)
        best = prov.get("best_val_since_switch")
        rows.append([
            f"[{chapter.title}]({chapter.output_path})", prov.get("status", "—"), prov.get("epochs_done", "—"),
            prov.get("steps_done", "—"), f"{float(prov.get('wall_seconds', 0)) / 60:.1f}" if prov else "—",
            f"{best:.3f}" if isinstance(best, (int, float)) else "—",
            _last_share(run_dir) if chapter.parameters.get("loss") != "none" else "—",
        ])
    if not rows:
        return ""
    return ("\n## The runs of this build\n\n" + md_table(
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
