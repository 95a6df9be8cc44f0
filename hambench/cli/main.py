"""The ``hambench`` command. Each sub-command lives in its own file under ``hambench/cli/`` and
exposes ``add_parser(subparsers, common)``; ``common`` carries the options every command takes
(``--plugin``)."""

from __future__ import annotations

import argparse
import importlib
import sys

from hambench.registry import RegistryError, load_plugins

# Sub-command modules, in the order `hambench --help` lists them.
COMMANDS = ["modules", "profile", "cluster", "suites", "run", "train", "report"]


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        # SUPPRESS: a sub-command's parser must not reset what was given before the sub-command.
        "--plugin", action="append", default=argparse.SUPPRESS, metavar="FILE.py",
        help="a Python file that registers extra context modules (repeatable)",
    )
    parser = argparse.ArgumentParser(prog="hambench", description="Benchmark global-context modules on accuracy and cost.", parents=[common])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"hambench.cli.{name}").add_parser(sub, common)
    return parser


def user_errors() -> tuple[type[Exception], ...]:
    """The errors that are a user's to fix (a plugin that fails to import, an unknown module, a
    suite file, a tracker, a data root, a cluster or run that cannot go on): each says what is
    wrong in its message, printed alone, exit status 2. Imported only once one was raised."""
    from hambench.data.datasets import DataRootError
    from hambench.suite import SuiteError
    from hambench.tasks import TaskError
    from hambench.tracking import TrackerError

    errors: list[type[Exception]] = [RegistryError, DataRootError, SuiteError, TaskError, TrackerError]
    if "hambench.tuning" in sys.modules:  # raised only once the driver was imported (it imports Ray)
        from hambench.tuning import SuiteRunError

        errors.append(SuiteRunError)
    return tuple(errors)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.plugin = getattr(args, "plugin", [])  # commands pass the plugin files on to Ray trials
    try:
        load_plugins(args.plugin)  # a plugin that fails to import: one line, exit status 2
        return int(args.func(args) or 0)
    except Exception as exc:
        if not isinstance(exc, user_errors()):
            raise  # a bug: its traceback is what a report needs
        print(f"hambench: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
