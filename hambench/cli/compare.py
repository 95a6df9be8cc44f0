"""``hambench compare RUN_A RUN_B [--alpha 0.05] [--all] [--out FILE.csv] [--html FILE.html]``: which configurations
changed beyond their seeds' spread between a reference run A and a new run B (a module's new
version, another hambench, another machine); exit status 1 when a headline metric got
significantly worse, so the command can gate a CI job."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from hambench.cli import UserError

if TYPE_CHECKING:
    import pandas as pd

REGRESSION_STATUS = 1


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "compare",
        parents=[common],
        help="what changed between two runs of the same configurations; exit 1 on a regression",
        description="Compare run B with run A configuration by configuration: each metric's mean and 95%% "
        "interval in both, the change, Welch's p and P(B better than A) over the seeds. A headline metric "
        "significantly worse in B (Welch, --alpha) is a regression: exit status 1.",
    )
    p.add_argument("run_a", type=Path, metavar="RUN_A", help="the reference run directory")
    p.add_argument("run_b", type=Path, metavar="RUN_B", help="the run compared with it")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level of the Welch test (default 0.05)")
    p.add_argument("--all", action="store_true", help="list every configuration and metric, not only the changes")
    p.add_argument("--out", type=Path, default=None, metavar="FILE.csv", help="also write the whole comparison as CSV")
    p.add_argument(
        "--html", type=Path, default=None, metavar="FILE.html", help="also write it as a self-contained report page"
    )
    p.set_defaults(func=run_compare)


def run_compare(args: argparse.Namespace) -> int:
    import pandas as pd

    from hambench.io import atomic_write
    from hambench.stats import compare_runs

    if not 0 < args.alpha < 1:
        raise UserError(f"--alpha must be between 0 and 1, got {args.alpha}")
    tables = []
    for run in (args.run_a, args.run_b):
        path = run / "results.parquet"
        if not path.is_file():
            raise UserError(f"{run}: no results.parquet; expected a run folder <out>/<suite>/<run-id>/")
        tables.append(pd.read_parquet(path))
    table = compare_runs(tables[0], tables[1], alpha=args.alpha)
    if table.empty:
        raise UserError(f"{args.run_a} and {args.run_b}: no trained configuration to compare")
    if args.out is not None:
        atomic_write(args.out, lambda tmp: table.to_csv(tmp, index=False))
    if args.html is not None:
        from hambench.reports.compare import write_compare_page

        write_compare_page(args.html, table, str(args.run_a), str(args.run_b), args.alpha)
    _print(table, args)
    worse = table[table["headline"].astype(bool) & (table["verdict"] == "worse")]
    return REGRESSION_STATUS if len(worse) else 0


def _print(table: pd.DataFrame, args: argparse.Namespace) -> None:
    from rich.table import Table

    from hambench.cli import console
    from hambench.stats import data_title, format_mean_ci, options_label

    shown = table if args.all else table[~table["verdict"].isin(["same"])]
    out = console()
    view = Table(
        title=f"{args.run_b} against {args.run_a}: mean ± 95% CI over seeds",
        caption=f"verdict: Welch's two-sided t-test at {args.alpha:g} in the metric's direction; "
        "P(B better): share of seed pairs in which B's seed beats A's, with its 95% bootstrap interval",
    )
    for column in ("data", "module", "options", "metric", "A", "B", "change", "p", "P(B better)", "verdict"):
        view.add_column(column, justify="right" if column in ("A", "B", "change", "p") else "left")
    for _, r in shown.iterrows():
        interval = (
            f"{r['p_b_better']:.2f} [{r['p_b_better_low']:.2f}, {r['p_b_better_high']:.2f}]"
            if r["p_b_better"] == r["p_b_better"]
            else "-"
        )
        view.add_row(
            data_title(r["data"], r.get("data_options")),
            str(r["module"]),
            options_label(str(r["module"]), r.get("options")),
            str(r["metric"]) + (" *" if r["headline"] else ""),
            format_mean_ci(r["mean_a"], r["ci_half_a"], int(r["n_a"])),
            format_mean_ci(r["mean_b"], r["ci_half_b"], int(r["n_b"])),
            "-" if r["change"] != r["change"] else f"{r['change']:+.3g}",
            "-" if r["p_value"] != r["p_value"] else f"{r['p_value']:.3g}",
            interval,
            str(r["verdict"]),
        )
    if len(shown):
        out.print(view)
    counts = table[table["headline"].astype(bool)]["verdict"].value_counts()
    parts = ", ".join(f"{n} {v}" for v, n in counts.items())
    worse = int(counts.get("worse", 0))
    out.print(
        f"{int(table['headline'].astype(bool).sum())} configurations on their headline metric (*): {parts}"
        + (f"; {worse} regression(s): exit status {REGRESSION_STATUS}" if worse else "; no regression")
    )
