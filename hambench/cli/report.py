"""``hambench report RUN_DIR [RUN_DIR ...] [--out FILE] [--open]``: one self-contained HTML report."""

from __future__ import annotations

import argparse
import sys
import webbrowser
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "report", parents=[common],
        help="render an HTML report (Pareto fronts, scaling, costs) from run directories",
        description="Render one self-contained HTML file (Plotly inlined, opens offline) from one or more "
                    "run directories; several runs are merged (equal configurations pool their seeds).",
    )
    p.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR",
                   help="a run directory <out>/<suite>/<run-id>/ holding results.parquet")
    p.add_argument("--out", type=Path, default=None, metavar="FILE",
                   help="where to write the report (default: RUN_DIR/report.html for one run, "
                        "the runs' common parent folder for several)")
    p.add_argument("--open", action="store_true", help="open the report in the default browser")
    p.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    from hambench.reports import render_report  # imports plotly and pandas: only when reporting
    from hambench.reports.runs import RunDirError

    try:
        path = render_report(args.run_dirs, args.out)
    except RunDirError as exc:
        print(f"hambench report: error: {exc}", file=sys.stderr)
        return 2
    print(f"report: {path} ({path.stat().st_size / 1e6:.1f} MB)")
    if args.open:
        webbrowser.open(path.resolve().as_uri())
    return 0
