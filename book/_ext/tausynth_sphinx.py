"""Small Sphinx fixes for the rendered book.

Run pages (``book/runs/*.ipynb``) are executed copies of one template, ``book/train.ipynb``, and exist
only in the build: their launch links (Binder, Colab) would name files that are not in the
repository. They are pointed at the template, which is what a reader runs with other parameters.

sphinx-thebe (loaded by Jupyter Book 1) registers its inline configuration script once per read
phase, so pages can carry it twice and the browser reports "Identifier 'THEBE_JS_URL' has already
been declared". Dropping exact duplicates of script entries per page removes that console error.
"""

from __future__ import annotations

import re
from typing import Any

#: A run page's notebook in a launch URL, and the template it was executed from.
RUN_PAGE = re.compile(r"book/runs/[^/?#&]+\.ipynb")
TEMPLATE = "book/train.ipynb"


def _external(url: object) -> bool:
    """A launch or repository link (the download button's own ``_sources`` copy is left alone)."""
    return isinstance(url, str) and url.startswith(("http://", "https://"))


def _to_template(node: Any) -> Any:
    """Every external ``url`` in the header buttons with a run page's notebook replaced by the template."""
    if isinstance(node, dict):
        return {k: (RUN_PAGE.sub(TEMPLATE, v) if k == "url" and _external(v) else _to_template(v))
                for k, v in node.items()}
    if isinstance(node, list):
        return [_to_template(v) for v in node]
    return node


def _launch_run_pages_from_template(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    if pagename.startswith("book/runs/") and "header_buttons" in context:
        context["header_buttons"] = _to_template(context["header_buttons"])


def _dedupe_scripts(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen: set[tuple[str, str]] = set()
    unique = []
    for js in scripts:
        # The same inline script is registered once with filename None and once with "".
        key = (str(getattr(js, "filename", js) or ""), str(sorted(getattr(js, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(js)
    context["script_files"] = unique


def setup(app: Any) -> dict[str, Any]:
    app.connect("html-page-context", _dedupe_scripts)
    # after sphinx-book-theme has built the buttons (priority 501)
    app.connect("html-page-context", _launch_run_pages_from_template, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
