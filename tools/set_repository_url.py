"""Set the repository URL of the book in its one place, ``_config.yml``, and copy it where it is repeated.

Usage: ``python tools/set_repository_url.py https://github.com/ORG/REPO``

The launch buttons (Binder, Colab) and the repository button read ``repository.url`` in ``_config.yml``.
Two copies cannot read it: ``CITATION.cff`` (a standard file GitHub reads) and the Colab install cell
of each notebook (Colab opens a notebook alone, without the repository). This script rewrites all
three; ``tests/test_repository_url.py`` fails, naming the file, when a copy differs from ``_config.yml``.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
#: The Colab install cell's marker line (the cell is found by it) and its template.
MARKER = "# Colab: install tausynth first"
INSTALL_CELL = (MARKER + " (a checkout already has it; elsewhere this does nothing)\n"
                "import sys\n\n"
                "if \"google.colab\" in sys.modules:\n"
                "    %pip install --quiet \"tausynth[book] @ git+{url}\"")


def configured_url(root: Path = ROOT) -> str:
    """``repository.url`` of ``_config.yml``."""
    return str(yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))["repository"]["url"]).rstrip("/")


def install_cell_source(url: str) -> str:
    """The Colab install cell for ``url``."""
    return INSTALL_CELL.format(url=url)


def _set_notebook(path: Path, url: str) -> None:
    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if "".join(cell["source"]).startswith(MARKER):
            cell["source"] = install_cell_source(url).splitlines(keepends=True)
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def set_url(url: str, root: Path = ROOT) -> None:
    """Write ``url`` into ``_config.yml``, ``CITATION.cff`` and every notebook's install cell."""
    url = url.rstrip("/")
    if not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url):
        raise SystemExit(f"not a GitHub repository URL (Colab and Binder need one): {url}")
    config = root / "_config.yml"
    config.write_text(re.sub(r"(?m)^(  url: ).*$", rf"\g<1>{url}", config.read_text(encoding="utf-8"), count=1),
                      encoding="utf-8")
    citation = root / "CITATION.cff"
    citation.write_text(re.sub(r'(?m)^repository-code: .*$', f'repository-code: "{url}"',
                               citation.read_text(encoding="utf-8")), encoding="utf-8")
    for path in sorted((root / "book").glob("*.ipynb")):
        _set_notebook(path, url)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__.strip().splitlines()[2])
    set_url(sys.argv[1])
