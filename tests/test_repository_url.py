"""The repository URL is set in one place, ``_config.yml``; its copies match (``tools/set_repository_url.py``)."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("set_repository_url", ROOT / "tools" / "set_repository_url.py")
tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tool)  # type: ignore[union-attr]
NOTEBOOKS = sorted(p.name for p in (ROOT / "book").glob("*.ipynb"))


def _install_cell(path: Path) -> dict:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    found = [c for c in cells if "".join(c["source"]).startswith(tool.MARKER)]
    assert len(found) == 1, f"{path.name}: expected one Colab install cell, found {len(found)}"
    return found[0]


def test_citation_names_the_configured_repository() -> None:
    url = tool.configured_url()
    assert re.search(rf'^repository-code: "{re.escape(url)}"$', (ROOT / "CITATION.cff").read_text(), re.M), (
        "CITATION.cff: repository-code differs from _config.yml (run tools/set_repository_url.py)")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_notebook_installs_from_the_configured_repository_on_colab(name: str) -> None:
    cell = _install_cell(ROOT / "book" / name)
    assert "".join(cell["source"]) == tool.install_cell_source(tool.configured_url()), (
        f"{name}: the Colab install cell differs from _config.yml (run tools/set_repository_url.py)")
    assert cell["metadata"].get("tags") == ["remove-cell"]  # for Colab, not for the rendered page
    cells = json.loads((ROOT / "book" / name).read_text(encoding="utf-8"))["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert "parameters" in code[0]["metadata"].get("tags", []) and code[1] == cell  # papermill's cell stays first


def test_the_tool_rewrites_every_copy(tmp_path: Path) -> None:
    for name in ("_config.yml", "CITATION.cff"):
        shutil.copy2(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "book", tmp_path / "book", ignore=shutil.ignore_patterns("_static", "_ext"))
    tool.set_url("https://github.com/someone/fork/", tmp_path)
    assert tool.configured_url(tmp_path) == "https://github.com/someone/fork"
    assert 'repository-code: "https://github.com/someone/fork"' in (tmp_path / "CITATION.cff").read_text()
    for name in NOTEBOOKS:
        assert "git+https://github.com/someone/fork\"" in "".join(_install_cell(tmp_path / "book" / name)["source"])
    with pytest.raises(SystemExit, match="not a GitHub repository URL"):
        tool.set_url("ftp://example.org/x", tmp_path)
