"""The ``hambench`` command line (``hambench/cli/main.py``), one file per sub-command.

A sub-command that finds a mistake of the user's raises (:class:`UserError`, or one of the
library's own error classes listed in ``hambench.cli.main.USER_ERRORS``); only ``main`` prints it,
as one ``hambench: error: ...`` line, and picks the exit status."""

from rich.console import Console


class UserError(Exception):
    """A mistake the user fixes (a bad argument, a file in the way) found by a sub-command itself;
    its message, alone on one line, says what is wrong. Raise it ``from`` the library's error when
    turning one into a user error (``raise UserError(str(exc)) from exc``)."""


def console() -> Console:
    """The console every command prints tables to. Piped output (CI logs, tee) gets a wide one
    rather than rich's default 80 columns, which would squeeze the tables' cells to ellipses."""
    out = Console()
    return out if out.is_terminal else Console(width=220)
