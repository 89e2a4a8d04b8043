"""How the chapters show tables: no meaningless index column, nothing cut short.

:func:`book_tables` registers an HTML formatter with IPython: a table whose index is the default
0, 1, 2… is shown without it (a reader cannot use those numbers), every row is shown (a long table
is summarised by the chapter, never truncated with "…"), and a named index is kept.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

__all__ = ["book_tables", "html_table"]


def html_table(frame: pd.DataFrame) -> str:
    """A table as the book shows it: without a default integer index, every row and column.

    Examples
    --------
    >>> "<th>0</th>" in html_table(pd.DataFrame({"run": ["a", "b"]}))
    False
    >>> "<th>a</th>" in html_table(pd.DataFrame({"ssim": [0.8]}, index=pd.Index(["a"], name="run")))
    True
    """
    default_index = isinstance(frame.index, pd.RangeIndex) and frame.index.name is None
    return frame.to_html(index=not default_index, max_rows=None, max_cols=None, border=0, classes="dataframe",
                         notebook=True)


def book_tables(shell: Any | None = None) -> None:
    """Show every pandas table of this kernel with :func:`html_table` (does nothing outside IPython)."""
    if shell is None:
        from IPython import get_ipython

        shell = get_ipython()
    if shell is not None:
        shell.display_formatter.formatters["text/html"].for_type(pd.DataFrame, html_table)
