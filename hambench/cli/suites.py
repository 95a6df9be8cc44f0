"""``hambench suites list|show``: the shipped suites and what a suite expands to."""

from __future__ import annotations

import argparse
import json
import sys

import yaml
from rich.table import Table

from hambench.cli import console

from hambench.suite import SuiteError, expand, load_suite, resolve_suite_path, shipped_suites


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("suites", help="list the shipped suites or show a suite's expanded trials")
    ssub = p.add_subparsers(dest="suites_command", required=True)

    ls = ssub.add_parser("list", parents=[common], help="the suites shipped with hambench")
    ls.set_defaults(func=run_list)

    show = ssub.add_parser("show", parents=[common], help="a suite's expanded trials and their resources")
    show.add_argument("suite", help="a shipped suite's name or a path to a suite .yaml file")
    show.add_argument("--smoke", action="store_true", help="show the --smoke version (tiny budgets)")
    show.add_argument("--only", nargs="+", metavar="MODULE", help="keep only these modules")
    show.add_argument("--json", action="store_true", help="print the trials as a JSON array")
    show.set_defaults(func=run_show)


def run_list(args: argparse.Namespace) -> int:
    table = Table(title="shipped suites (hambench suites show NAME)")
    for col in ("name", "task", "trials", "description"):
        table.add_column(col)
    for name, path in sorted(shipped_suites().items()):
        try:
            suite = load_suite(path)
            table.add_row(name, suite.task, str(len(expand(suite))), suite.description.strip())
        except SuiteError as exc:
            table.add_row(name, "?", "?", f"[red]{exc}[/red]")
    console().print(table)
    return 0


def run_show(args: argparse.Namespace) -> int:
    from hambench.tuning import DEVICE_RESOURCE, trial_resources  # imports ray: only when showing

    try:
        suite = load_suite(args.suite)
        trials = expand(suite, smoke_run=args.smoke, only=args.only, source=str(resolve_suite_path(args.suite)))
    except SuiteError as exc:
        print(f"hambench: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([t.model_dump(mode="json") for t in trials], indent=2))
        return 0
    out = console()
    out.print(f"[bold]{suite.name}[/bold] ({suite.task}{', smoke' if args.smoke else ''}): {suite.description.strip()}")
    table = Table(title=f"{len(trials)} trials")
    for col in ("trial", "module", "options", "backbone", "data", "seed", "budget", "resources"):
        table.add_column(col)
    for t in trials:
        if t.task == "profile":
            budget = f"shape {'x'.join(map(str, t.profile.shape))}" + (f", sweep {t.profile.sweep}" if t.profile.sweep else "")
        else:
            size = f"crop {t.budget.crop[0]}x{t.budget.crop[1]}" if t.task == "seg" else f"{t.budget.res}px"
            budget = f"{t.budget.iters} it, batch {t.budget.batch}, {size}"
        res = f"{t.resources.cpu:g} CPU" + (f", {t.resources.gpu:g} GPU" if t.resources.gpu else "")
        res += ", node alone" if trial_resources({"trial": t.model_dump()})[DEVICE_RESOURCE] == 1 else ""
        table.add_row(t.trial_id, t.module, yaml.safe_dump(t.options, default_flow_style=True).strip() if t.options else "",
                      t.backbone, t.data, str(t.seed), budget, res)
    out.print(table)
    if suite.pareto:
        out.print("pareto axes: " + "; ".join(f"{a.y} vs {a.x}" for a in suite.pareto))
    return 0
