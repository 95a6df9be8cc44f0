"""``hambench modules list|check``: the registry from the command line."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.table import Table

from hambench.cli import console

from hambench.registry import list_modules, load_plugin, module_names


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("modules", help="list registered context modules or check their contract")
    msub = p.add_subparsers(dest="modules_command", required=True)

    ls = msub.add_parser("list", parents=[common], help="a table of the registered modules")
    ls.add_argument("--json", action="store_true", help="print a JSON array instead of a table")
    ls.set_defaults(func=run_list)

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
