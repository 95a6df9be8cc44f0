"""The ``hambench`` command. Each sub-command lives in its own file under ``hambench/cli/`` and
exposes ``add_parser(subparsers, common)``; ``common`` carries the options every command takes
(``--plugin``). A sub-command raises a user's mistake (``USER_ERRORS``); ``main`` alone prints it."""

from __future__ import annotations

import argparse
import importlib
import sys

from hambench.io import fault_line
from hambench.registry import load_plugins

# Sub-command modules, in the order `hambench --help` lists them.
COMMANDS = ["modules", "profile", "cluster", "suites", "run", "train", "report", "export", "compare"]


def _common_parser() -> argparse.ArgumentParser:
    """The options every command takes (``--plugin``)."""
    common = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    common.add_argument(
        # SUPPRESS: a sub-command's parser must not reset what was given before the sub-command.
        "--plugin",
        action="append",
        default=argparse.SUPPRESS,
        metavar="FILE.py",
        help="a Python file that registers extra context modules or tasks (repeatable)",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common_parser()
    parser = argparse.ArgumentParser(
        prog="hambench", description="Benchmark global-context modules on accuracy and cost.", parents=[common]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"hambench.cli.{name}").add_parser(sub, common)
    return parser


# Every error class that is the user's to fix, by (module, class name): a plugin that fails to
# import, an unknown module, a suite file, a task, a tracker, a data root, a run or cluster that
# cannot go on, and what a sub-command finds itself (UserError). Each says what is wrong in its
# message, printed alone on one line. Named, not imported: a class whose module was never imported
# cannot have been raised, and the error path must not import Ray or torch to find out.
USER_ERRORS = (
    ("hambench.cli", "UserError"),
    ("hambench.registry", "RegistryError"),
    ("hambench.data.datasets", "DataRootError"),
    ("hambench.suite", "SuiteError"),
    ("hambench.tasks", "TaskError"),
    ("hambench.tracking", "TrackerError"),
    ("hambench.tuning.rundir", "SuiteRunError"),
    ("hambench.cluster", "ClusterCheckError"),
)
USER_ERROR_STATUS = 2  # a bug keeps Python's traceback and status 1; a failed check returns 1 itself


def user_errors() -> tuple[type[Exception], ...]:
    """The classes of :data:`USER_ERRORS` whose modules this process imported."""
    return tuple(getattr(sys.modules[module], name) for module, name in USER_ERRORS if module in sys.modules)


def main(argv: list[str] | None = None) -> int:
    """Run one ``hambench`` command; the only place that prints a user's error (one
    ``hambench: error: ...`` line on stderr, exit status 2). A write that failed on a full,
    over-quota or read-only disk is said the same way: it is the disk's fault, not a bug."""
    try:
        # The plugins first: a task a plugin registers is then a `hambench train` sub-command too.
        plugins = getattr(_common_parser().parse_known_args(argv)[0], "plugin", [])
        load_plugins(plugins)  # a plugin that fails to import is a RegistryError
        args = build_parser().parse_args(argv)
        args.plugin = plugins  # commands pass the plugin files on to Ray trials
        return int(args.func(args) or 0)
    except Exception as exc:
        disk = None if isinstance(exc, user_errors()) else fault_line(exc)  # a full or read-only disk
        if disk is None and not isinstance(exc, user_errors()):
            raise  # a bug: its traceback is what a report needs
        print(f"hambench: error: {disk or exc}", file=sys.stderr)
        return USER_ERROR_STATUS


if __name__ == "__main__":
    sys.exit(main())
