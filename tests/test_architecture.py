"""The package's structure: dependencies run one way, functions fit on a screen, references resolve.

The core (data, prepare, SUVR, losses, models, training, evaluation) never imports the book's orchestration,
the command line or the figures; figures never import the book or the command line; the SUVR core
does not know the synthetic phantom. A reader can follow every reference: none names the working
notes the repository does not hold.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "tausynth"
TOP = ("plotting", "book", "cli", "browser", "study", "__main__")
CORE = ("io", "errors", "digest", "vocabulary", "config", "runlist", "data", "prepare", "suvr", "harmonization", "losses",
        "models", "training", "evaluation")
#: Module (first part under tausynth) -> what it may not import.
FORBIDDEN = {**{core: TOP for core in CORE}, "plotting": ("book", "cli", "browser", "study")}
MAX_LINES = 100


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _part(path: Path) -> str:
    return path.relative_to(PACKAGE).with_suffix("").parts[0]


def _imports(tree: ast.AST) -> set[str]:
    """Every ``tausynth.X...`` a module imports (module level or inside functions)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tausynth"):
            names = [node.module] if node.module != "tausynth" else [f"tausynth.{a.name}" for a in node.names]
            found.update(names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("tausynth"))
    return found


@pytest.mark.parametrize("path", _modules(), ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_dependencies_run_one_way(path: Path) -> None:
    part = _part(path)
    banned = FORBIDDEN.get(part, ())
    for name in _imports(ast.parse(path.read_text(encoding="utf-8"))):
        target = name.split(".")[1] if name.count(".") else ""
        assert target not in banned, f"{path.relative_to(ROOT)} imports {name}: {part} may not depend on {target}"
    if path == PACKAGE / "suvr.py":
        assert not any("synthetic" in n for n in _imports(ast.parse(path.read_text()))), "the SUVR core imports the phantom"


def test_every_function_fits_on_a_screen() -> None:
    long = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                first = node.body[0]
                if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                    lines -= first.end_lineno - first.lineno + 1  # type: ignore[operator]
                if lines > MAX_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert long == [], "functions longer than a screen (docstrings not counted): " + "; ".join(long)


def test_no_reference_to_notes_the_repository_does_not_hold() -> None:
    hits = []
    for folder in ("tausynth", "tests", "book", "benchmarks", "tools"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in {".py", ".ipynb", ".md", ".yaml", ".yml"} and "_static" not in path.parts:
                text = path.read_text(encoding="utf-8", errors="replace")
                for needle in ("paper-spec", "phantom.md", "DESIGN.md"):
                    if needle in text and path != Path(__file__):
                        hits.append(f"{path.relative_to(ROOT)}: {needle}")
    assert hits == []


def test_no_module_imports_another_modules_private_names() -> None:
    # a leading underscore says "only this module uses it"; a second user means it wants a public name
    hits = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tausynth"):
                hits += [f"{path.relative_to(ROOT)}: {a.name} from {node.module}" for a in node.names
                         if a.name.startswith("_") and not a.name.startswith("__")]
    assert hits == [], "private names used outside their module: " + "; ".join(hits)
