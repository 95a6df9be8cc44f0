"""``hambench modules list|show|check``: the registry from the command line."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.table import Table

from hambench.cli import console
from hambench.cli.config_args import parse_key_value
from hambench.registry import DefaultRule, get_spec, list_modules, load_plugin, module_names, resolve_options


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("modules", help="list registered context modules, show their options, check their contract")
    msub = p.add_subparsers(dest="modules_command", required=True)

    ls = msub.add_parser("list", parents=[common], help="a table of the registered modules")
    ls.add_argument("--json", action="store_true", help="print a JSON array instead of a table")
    ls.set_defaults(func=run_list)

    sh = msub.add_parser("show", parents=[common], help="the options a module is built with at a width")
    sh.add_argument("name", help="a registered module name (`hambench modules list`)")
    sh.add_argument("--channels", type=_positive_int, required=True, metavar="C", help="the input width C")
    sh.add_argument(
        "--option",
        action="append",
        default=[],
        type=parse_key_value,
        metavar="KEY=VALUE",
        help="an option of the module (value read as a YAML scalar), repeatable",
    )
    sh.add_argument("--json", action="store_true", help="print {name, channels, options} as JSON")
    sh.set_defaults(func=run_show)

    ck = msub.add_parser("check", parents=[common], help="check the module contract")
    ck.add_argument("target", help="a module name, `all`, or a plugin file path.py (checks what it registers)")
    ck.set_defaults(func=run_check)


def run_list(args: argparse.Namespace) -> int:
    specs = list_modules()
    if args.json:
        print(json.dumps([s.as_dict() for s in specs], indent=2))
        return 0
    table = Table(title=f"{len(specs)} context modules")
    for col in ("name", "family", "complexity", "paper", "source"):
        table.add_column(col)
    for s in specs:
        table.add_row(s.name, s.family, s.complexity, s.paper, s.source)
    console().print(table)
    return 0


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expects a positive integer, got {text!r}")
    return int(text)


def run_show(args: argparse.Namespace) -> int:
    """Print the resolved options of one module at ``--channels``; unknown names and options raise
    RegistryError, which main reports in one line with exit status 2."""
    given = dict(args.option)
    options = resolve_options(args.name, args.channels, **given)
    if args.json:
        print(json.dumps({"name": args.name, "channels": args.channels, "options": options}, indent=2, default=repr))
        return 0
    spec = get_spec(args.name)
    table = Table(title=f"{args.name} at {args.channels} channels")
    for col in ("option", "value", "from"):
        table.add_column(col)
    for key, value in options.items():
        default = spec.defaults[key]
        origin = (
            "given"
            if key in given
            else f"rule: {default.description}"
            if isinstance(default, DefaultRule)
            else "default"
        )
        table.add_row(key, repr(value), origin)
    for key, value in spec.fixed.items():
        table.add_row(key, repr(value), "fixed by the variant")
    console().print(table)
    return 0


def run_check(args: argparse.Namespace) -> int:
    from hambench.check import check_module  # imports torch: only when checking

    if args.target == "all":
        names = module_names()
    elif args.target.endswith(".py") or Path(args.target).is_file():
        names = load_plugin(args.target)
        if not names:
            print(f"hambench: {args.target} registered no module (use @hambench.register_module)")
            return 1
    else:
        names = [args.target]
    failed = 0
    for name in names:
        for r in check_module(name):
            mark = "PASS" if r.ok else "FAIL"
            print(f"{mark}  {name:<20} {r.check}" + ("" if r.ok else f": {r.reason}"), flush=True)
            failed += not r.ok
    print(f"{len(names)} module(s) checked, {failed} failure(s)")
    return 1 if failed else 0
