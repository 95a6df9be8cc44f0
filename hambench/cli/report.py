"""``hambench report RUN_DIR [RUN_DIR ...] [--out FILE] [--open] [--figures svg|pdf|png]``: one
self-contained HTML report, and optionally every figure as a file beside it."""

from __future__ import annotations

import argparse
import webbrowser
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "report",
        parents=[common],
        help="render an HTML report (Pareto fronts, scaling, costs) from run directories",
        description="Render one self-contained HTML file (Plotly inlined, opens offline) from one or more "
        "run directories; several runs are merged (equal configurations pool their seeds).",
    )
    p.add_argument(
        "run_dirs",
        nargs="+",
        type=Path,
        metavar="RUN_DIR",
        help="a run directory <out>/<suite>/<run-id>/ holding results.parquet",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="FILE",
        help="where to write the report (default: RUN_DIR/report.html for one run, "
        "the runs' common parent folder for several)",
    )
    p.add_argument("--open", action="store_true", help="open the report in the default browser")
    p.add_argument(
        "--figures",
        choices=["svg", "pdf", "png"],
        default=None,
        metavar="FORMAT",
        help="also write each figure as FORMAT (svg, pdf or png) into <report>-figures/ beside the "
        "HTML; needs kaleido (pip install 'hambench[figures]') and Chrome/Chromium (Debian's "
        "chromium, or BROWSER_PATH); nothing is downloaded",
    )
    p.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    """Render the report; a run directory that cannot be read, or figures that cannot be exported
    here, end in one line and exit status 2 (``hambench.cli.main`` prints the UserError)."""
    from hambench.cli import UserError
    from hambench.reports import render_report  # imports plotly and pandas: only when reporting
    from hambench.reports.export import FigureExportError, figures_dir
    from hambench.reports.runs import RunDirError

    for run_dir in args.run_dirs:
        _repair_tables(run_dir)
    try:
        path = render_report(args.run_dirs, args.out, figures_format=args.figures)
    except (RunDirError, FigureExportError) as exc:
        raise UserError(str(exc)) from exc
    print_report_summary(args.run_dirs)
    print(f"report: {path} ({path.stat().st_size / 1e6:.1f} MB)")
    if args.figures:
        folder = figures_dir(path)
        print(f"figures: {folder} ({len(list(folder.glob('*.' + args.figures)))} {args.figures} files)")
    if args.open:
        webbrowser.open(path.resolve().as_uri())
    return 0


def _repair_tables(run_dir: Path) -> None:
    """A finished run whose derived tables are missing or damaged gets them rebuilt from its Tune
    experiment and done records, in one line; a folder that is no run is left to the report's check."""
    from hambench.cli import UserError
    from hambench.tuning.rebuild import damaged_tables, rebuild_tables
    from hambench.tuning.rundir import SuiteRunError

    if not (run_dir / "meta.json").is_file():
        return
    bad = damaged_tables(run_dir)
    if not bad:
        return
    try:
        rebuilt = rebuild_tables(run_dir)
    except SuiteRunError as exc:
        raise UserError(f"{run_dir / bad[0]} is missing or damaged and {exc}") from None
    print(f"{', '.join(bad)} missing or damaged in {run_dir}: rebuilt {', '.join(rebuilt)} from the Tune experiment")


def print_report_summary(run_dirs: list[Path]) -> None:
    """The summary table of ``hambench run suite`` (hambench.stats.summarize), for the runs merged."""
    from hambench.cli.run import print_summary
    from hambench.reports.runs import load_runs
    from hambench.stats import summarize

    print_summary(summarize(load_runs([Path(d) for d in run_dirs]).results))
