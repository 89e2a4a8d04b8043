"""Every docstring example of the package runs, and gives what it shows."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import tausynth

MODULES = sorted(
    info.name for info in pkgutil.walk_packages(tausynth.__path__, prefix="tausynth.")
    if info.name != "tausynth.__main__"  # running it is the CLI
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) of {name} failed (run it with -s to see)"
