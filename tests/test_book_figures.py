"""Every figure of the book is numbered, captioned and described (alt text), and cross-references resolve.

MyST-NB wraps every rich output of a code cell whose metadata has ``mystnb.figure`` in one figure, so
a figure cell must display nothing but its figure. The rendered book is checked in a browser by
``tausynth.browser`` (captions, alt text); this test catches the same mistakes in the sources, in
milliseconds.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tausynth import book

BOOK = Path(__file__).resolve().parents[1] / "book"
NOTEBOOKS = sorted(p.name for p in BOOK.glob("*.ipynb"))
DRAWS = re.compile(r"plt\.show\(\)|\bshow\(fig\b|(?<!def )\bplot_\w+\(")  # any plot_* call draws
NUMREF = re.compile(r"\{numref\}`([^`<]+?)`")


def _cells(name: str) -> list[dict]:
    return json.loads((BOOK / name).read_text(encoding="utf-8"))["cells"]


def _figure(cell: dict) -> dict:
    return cell.get("metadata", {}).get("mystnb", {})


def _names() -> dict[str, str]:
    """Figure name -> the file that defines it (notebook cells and ``{figure}`` directives of .md files)."""
    names: dict[str, str] = {}
    for nb in NOTEBOOKS:
        for cell in _cells(nb):
            name = _figure(cell).get("figure", {}).get("name")
            if name:
                assert name not in names, f"{name} is defined in {names[name]} and {nb}"
                names[name] = nb
    for md in BOOK.glob("*.md"):
        for name in re.findall(r"^:name: (\S+)", md.read_text(encoding="utf-8"), flags=re.MULTILINE):
            names[name] = md.name
    return names


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_figure_cell_has_a_name_caption_and_alt_text(name: str) -> None:
    for cell in _cells(name):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        meta = _figure(cell)
        if not DRAWS.search(source):
            assert "figure" not in meta, f"{name}: figure metadata on a cell that draws nothing: {source[:60]!r}"
            continue
        figure, alt = meta.get("figure", {}), meta.get("image", {}).get("alt", "")
        assert str(figure.get("name", "")).startswith("fig-"), f"{name}: unnamed figure: {source[:60]!r}"
        assert figure.get("caption", "").endswith("."), f"{name}: {figure.get('name')} has no caption sentence"
        assert len(alt.split()) >= 8 and not alt.endswith((".png", ".svg")), f"{name}: {figure['name']}: alt {alt!r}"
        assert "display(" not in source, f"{name}: {figure['name']}: a figure cell must show its figure alone"


def test_figure_names_are_unique_and_every_numref_resolves() -> None:
    names = _names()
    texts = {nb: "".join("".join(c["source"]) for c in _cells(nb) if c["cell_type"] == "markdown") for nb in NOTEBOOKS}
    texts.update({md.name: md.read_text(encoding="utf-8") for md in BOOK.glob("*.md")})
    for where, text in texts.items():
        for target in NUMREF.findall(text):
            assert target in names, f"{where}: {{numref}}`{target}` names no figure"


def test_run_pages_get_figure_names_of_their_own(tmp_path: Path) -> None:
    # every run page comes from train.ipynb, and Sphinx labels are global
    page = tmp_path / "train.ipynb"
    page.write_text((BOOK / "train.ipynb").read_text(encoding="utf-8"), encoding="utf-8")
    book.render._write_titled(page, tmp_path / "unet-cyclic-standardize-s42.ipynb", "U-Net · cyclic")
    cells = json.loads((tmp_path / "unet-cyclic-standardize-s42.ipynb").read_text(encoding="utf-8"))["cells"]
    names = [_figure(c)["figure"]["name"] for c in cells if _figure(c).get("figure")]
    assert names and all(n.startswith("unet-cyclic-standardize-s42-fig-") for n in names)
    refs = [r for c in cells if c["cell_type"] == "markdown" for r in NUMREF.findall("".join(c["source"]))]
    assert refs and set(refs) <= set(names)
    assert "".join(cells[0]["source"]).startswith("# U-Net · cyclic\n")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_cells_with_download_links_render_myst(name: str) -> None:
    # {download} is a MyST role; MyST-NB renders Markdown outputs as CommonMark unless the cell says otherwise
    for cell in _cells(name):
        if cell["cell_type"] == "code" and "download_link(" in "".join(cell["source"]):
            assert _figure(cell).get("markdown_format") == "myst", f"{name}: {''.join(cell['source'])[:60]!r}"
