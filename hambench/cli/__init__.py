"""The ``hambench`` command line (``hambench/cli/main.py``), one file per sub-command."""

from rich.console import Console


def console() -> Console:
    """The console every command prints tables to. Piped output (CI logs, tee) gets a wide one
    rather than rich's default 80 columns, which would squeeze the tables' cells to ellipses."""
    out = Console()
    return out if out.is_terminal else Console(width=220)
