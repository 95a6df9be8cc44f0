"""The ``hambench`` command. Each sub-command lives in its own file under ``hambench/cli/`` and
exposes ``add_parser(subparsers, common)``; ``common`` carries the options every command takes
(``--plugin``)."""

from __future__ import annotations

import argparse
import importlib
import sys

from hambench.registry import RegistryError, load_plugin

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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.plugin = getattr(args, "plugin", [])  # commands pass the plugin files on to Ray trials
    try:
        for path in args.plugin:
            load_plugin(path)
        return int(args.func(args) or 0)
    except RegistryError as exc:
        print(f"hambench: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
