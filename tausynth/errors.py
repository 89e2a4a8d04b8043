"""User-facing error type.

Errors caused by user input (bad files, bad manifests, bad config keys) are raised as
:class:`TausynthError`; the CLI prints their message on one line and exits non-zero, without a
traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class TausynthError(Exception):
    """An error caused by user input, reported as one line without a traceback."""


class ValidationErrors(TausynthError):
    """Several independent problems found at once (e.g. in a manifest).

    Parameters
    ----------
    problems : list of str
        One self-contained line per problem, each naming the row, column and file involved.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


def subject_prefix(subject: object | None) -> str:
    """``"subject X: "`` to begin an error message about subject ``X``, or ``""`` when there is none.

    Examples
    --------
    >>> subject_prefix("sub-07") + "no brain voxel"
    'subject sub-07: no brain voxel'
    >>> subject_prefix(None)
    ''
    """
    return "" if subject is None else f"subject {subject}: "
