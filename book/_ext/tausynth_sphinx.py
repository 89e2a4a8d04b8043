"""Small Sphinx fixes for the rendered book.

sphinx-thebe (loaded by Jupyter Book 1) registers its inline configuration script once per read
phase, so pages can carry it twice and the browser reports "Identifier 'THEBE_JS_URL' has already
been declared". Dropping exact duplicates of script entries per page removes that console error.
"""

from __future__ import annotations

from typing import Any


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
    return {"parallel_read_safe": True, "parallel_write_safe": True}
