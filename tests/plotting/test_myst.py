"""MyST snippets the chapters display: download links, admonitions, listings."""

from __future__ import annotations

import pytest

from tausynth.plotting.myst import admonition, download_link, listing


def _twice(x: int) -> int:
    """Twice x.

    More words.
    """
    return 2 * x  # the body


def test_listing_is_the_source_without_its_docstring() -> None:
    assert listing(_twice) == "```python\ndef _twice(x: int) -> int:\n    return 2 * x  # the body\n```"
    assert '"""Twice x.' in listing(_twice, docstring=True)


def test_bad_names_and_kinds_are_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="plain names"):
        download_link(tmp_path / "x", "../escape.csv", "x", root=tmp_path)
    with pytest.raises(ValueError, match="kind must be one of"):
        admonition("text", "title", kind="danger")
