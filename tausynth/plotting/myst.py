"""MyST markdown that chapters display: download links, admonitions and code listings.

MyST-NB renders a cell's Markdown outputs as CommonMark unless the cell's metadata says
``mystnb.markdown_format: myst``; cells that display these snippets say so.

**Downloads.** Full tables as CSV, and volumes as NIfTI. A chapter shows a summary of a long table and links to the whole of it. The file is written under
``_build/downloads/`` (relative to the folder the chapter runs in, the repository root for the book);
``tausynth book build`` copies that folder into the staged sources, and the link is MyST's
``{download}`` role with a path from the source root, so it resolves from any page, run pages
included.

**Listings.** The key algorithms are shown as the package runs them: a listing is the function's
own source, so it cannot drift from the code.

**Admonitions.** What a reader must know about how a result was made (pretrained weights that were
not available offline, for example) is a note in plain words on the page, never a library warning.
"""

from __future__ import annotations

import ast
import inspect
import re
import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from tausynth.io import atomic_path, atomic_write_text

__all__ = ["ADMONITIONS", "DOWNLOADS", "admonition", "download_link", "listing"]

#: Where the files go, relative to the folder the chapter runs in.
DOWNLOADS = Path("_build") / "downloads"
#: The admonition kinds a chapter uses (Sphinx's names).
ADMONITIONS = ("note", "important", "warning")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*")


def download_link(source: pd.DataFrame | str | Path, name: str, text: str, root: str | Path = ".") -> str:
    """Write ``source`` to ``_build/downloads/name`` and return a MyST link to it.

    Parameters
    ----------
    source : pandas.DataFrame or path
        A table (written as CSV, without its index unless the index is named) or a file (copied).
    name : str
        Path under ``_build/downloads``, such as ``"results/agreement.csv"``: letters, digits,
        ``.``, ``_`` and ``-``, in folders separated by ``/``.
    text : str
        The link's text.
    root : path, default "."
        The folder the chapter runs in.

    Returns
    -------
    str
        ``{download}`text </downloads/name>``` (MyST markdown).

    Examples
    --------
    >>> import tempfile
    >>> table = pd.DataFrame({"run": ["a", "b"], "ssim": [0.8, 0.7]})
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     link = download_link(table, "results/ssim.csv", "the table (CSV)", root=tmp)
    ...     written = (Path(tmp) / "_build/downloads/results/ssim.csv").read_text()
    >>> link
    '{download}`the table (CSV) </downloads/results/ssim.csv>`'
    >>> written.splitlines()
    ['run,ssim', 'a,0.8', 'b,0.7']
    """
    if not _NAME.fullmatch(name) or ".." in name.split("/"):
        raise ValueError(f"download name must be a relative path of plain names, got {name!r}")
    target = Path(root) / DOWNLOADS / name
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(source, pd.DataFrame):
        named_index = any(n is not None for n in source.index.names)
        atomic_write_text(target, source.to_csv(index=named_index))
    else:
        with atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)
    return f"{{download}}`{text} </downloads/{name}>`"


def admonition(text: str, title: str, kind: str = "note") -> str:
    """A MyST admonition box (``kind``: one of :data:`ADMONITIONS`) with a title.

    Examples
    --------
    >>> print(admonition("Random weights stood in.", "Perceptual network", kind="important"))
    :::{admonition} Perceptual network
    :class: important
    Random weights stood in.
    :::
    """
    if kind not in ADMONITIONS:
        raise ValueError(f"kind must be one of {', '.join(ADMONITIONS)}, got {kind!r}")
    return f":::{{admonition}} {title}\n:class: {kind}\n{text}\n:::"


def listing(function: Callable[..., Any], docstring: bool = False) -> str:
    """A fenced Python code block with the source of ``function`` (its docstring left out unless asked)."""
    source = textwrap.dedent(inspect.getsource(function))
    if not docstring:
        body = ast.parse(source).body[0]
        first = body.body[0] if isinstance(body, ast.FunctionDef | ast.AsyncFunctionDef) else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
            lines = source.splitlines(keepends=True)
            source = "".join(lines[: first.lineno - 1] + lines[first.end_lineno:])
    return f"```python\n{source.rstrip()}\n```"
