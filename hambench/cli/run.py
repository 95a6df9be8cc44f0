"""``hambench run suite NAME|FILE``: expand a suite and run it on Ray Tune (see hambench.tuning)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    from rich.table import Table


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("run", help="run a suite of trials on Ray Tune")
    rsub = p.add_subparsers(dest="run_command", required=True)

    s = rsub.add_parser(
        "suite", parents=[common], help="run a suite: its profiling and training trials, then the report"
    )
    s.add_argument("suite", help="a shipped suite's name (hambench suites list) or a path to a suite .yaml file")
    s.add_argument(
        "--address", metavar="auto|HOST:PORT", help="join this Ray cluster (default: start Ray on this machine)"
    )
    s.add_argument(
        "--storage", metavar="DIR|s3://...", help="Tune's storage for trial checkpoints (default: the run directory)"
    )
    s.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        metavar="RUN_DIR",
        help="continue a run: RUN_DIR, else --run-id, else this suite's latest in --out (named in the first line)",
    )
    s.add_argument("--run-id", help="name of the run directory (default: a timestamp)")
    s.add_argument("--smoke", action="store_true", help="tiny budgets on generated fixture data: checks the whole path")
    s.add_argument("--max-concurrent", type=int, metavar="N", help="at most N trials at a time (default: the suite's)")
    s.add_argument("--only", nargs="+", metavar="MODULE", help="run only these modules' trials")
    s.add_argument("--data-root", metavar="DIR", help="root of the real data set (ADE20K, VOC, ...)")
    s.add_argument("--out", type=Path, default=Path("runs"), metavar="DIR", help="output root (default: ./runs)")
    s.add_argument("--num-cpus", type=int, metavar="N", help="CPUs of the embedded Ray (default: all)")
    s.add_argument(
        "--tracker",
        choices=["mlflow", "wandb"],
        help="also log every trial to MLflow (MLFLOW_TRACKING_URI, else <run dir>/mlruns) or W&B "
        "(offline without an API key); TensorBoard event files are always written (docs/tracking.md)",
    )
    s.add_argument("--no-report", action="store_true", help="skip report.html")
    s.add_argument(
        "--verbose",
        action="store_true",
        help="also show Ray's set-up notices (else in <run dir>/ray.log) and the libraries' warnings hambench hides",
    )
    s.set_defaults(func=run_suite_cmd)


def run_suite_cmd(args: argparse.Namespace) -> int:
    """Run the suite; a user's mistake (suite, tracker, data root, cluster) ends in one line and
    exit status 2 (``hambench.cli.main``), a failed trial in status 1."""
    from hambench.tuning import RunOptions, run_suite

    if args.verbose:  # the trials' processes read it too (hambench.models.registration)
        os.environ["HAMBENCH_VERBOSE"] = "1"

    opts = RunOptions(
        address=args.address,
        storage=args.storage,
        out=args.out,
        resume=bool(args.resume),
        resume_dir=Path(args.resume) if isinstance(args.resume, str) else None,
        run_id=args.run_id,
        smoke=args.smoke,
        max_concurrent=args.max_concurrent,
        only=args.only,
        data_root=args.data_root,
        plugins=args.plugin,
        num_cpus=args.num_cpus,
        report=not args.no_report,
        tracker=args.tracker,
        verbose=args.verbose,
    )
    run_dir = run_suite(args.suite, opts)
    import pandas as pd

    table = pd.read_parquet(run_dir / "results.parquet")
    failed = table[table["status"] == "failed"]
    stopped = int((table["status"] == "stopped").sum())  # search samples cut early by ASHA: by design
    if (run_dir / "summary.csv").is_file():
        print_summary(pd.read_csv(run_dir / "summary.csv", keep_default_na=True))
    cut = f", {stopped} search samples stopped early" if stopped else ""
    print(f"{len(table)} trials, {len(failed)} failed{cut} -> {run_dir}")
    for _, row in failed.iterrows():
        print(f"  FAILED {row['trial_id']}: {str(row['error']).splitlines()[0] if row['error'] else ''}")
    for name in (
        "results.parquet",
        "summary.csv",
        "pairs.csv",
        "aggregates.csv",
        "history.parquet",
        "profile.parquet",
        "report.html",
    ):
        if (run_dir / name).exists():
            print(f"  {run_dir / name}")
    return 1 if len(failed) else 0


# --- the summary table ---------------------------------------------------------------------------


def print_summary(summary: pd.DataFrame) -> None:
    """One table per task, data set and accuracy metric (headline first; two metrics of one task
    can disagree): mean ± 95 % CI over seeds, the rank with ties and the module's cost, as in
    ``summary.csv``; a cost table for a task with no accuracy metric (a profile-only run)."""
    import pandas as pd

    from hambench.cli import console
    from hambench.stats import ARMS, data_title
    from hambench.tasks import task_metrics

    out = console()
    summary = summary.assign(arm=summary["arm"].astype("string").fillna("") if "arm" in summary else "")
    summary = summary.assign(data=[data_title(d, o) for d, o in zip(summary["data"], summary.get("data_options", ""))])
    for (task, data), by_data in summary.groupby(["task", "data"], sort=False, dropna=False):
        if not task_metrics(str(task)):  # a task with no accuracy metric has costs only
            out.print(_cost_table(by_data[by_data["headline"].astype(bool)] if "headline" in by_data else by_data))
            continue
        for arm in sorted(by_data["arm"].unique(), key=lambda a: ARMS.index(a) if a in ARMS else len(ARMS)):
            grp = by_data[by_data["arm"] == arm]
            unscored = grp["metric"].fillna("") == ""  # a configuration whose every trial failed has no metric
            tables = [t for _, t in grp[~unscored].groupby("metric", sort=False)] or [grp.iloc[:0]]
            tables[0] = pd.concat([tables[0], grp[unscored]])  # its failures shown under the headline metric
            for table in tables:
                out.print(_accuracy_table(str(task), str(data), table, str(arm)))


def _costs(row: pd.Series) -> list[str]:
    from hambench.units import ms, si  # the report's units, so the two read the same

    return [si(row.get("macs")), ms(row.get("latency_ms")), si(row.get("peak_mem_bytes"), "B")]


def _accuracy_table(task: str, data: str, grp: pd.DataFrame, arm: str = "") -> Table:
    from rich.table import Table
    from rich.text import Text

    from hambench.stats import ARM_TITLES, format_mean_ci, format_rank, options_label, tuned_label
    from hambench.units import si

    metric = str(grp["metric"].iloc[0])
    better = "higher" if grp["sense"].iloc[0] == "max" else "lower"  # the summary's column: metric_sense
    several = [c for c in ("backbone", "head") if c in grp and grp[c].nunique() > 1]
    model = "model_macs" in grp and grp["model_macs"].notna().any()
    failed = grp["failed"].fillna(0).astype(int).sum() > 0
    table = Table(
        title=f"{task} on {data}{ARM_TITLES.get(arm, '')}: {metric} ({better} is better), mean ± 95% CI over seeds",
        caption="rank = 1 + the configurations significantly better (Welch t-test, 5%); one seed: no interval, "
        "not ranked. Costs: the module at the profiled shape. Every metric: summary.csv",
    )
    chosen = arm == "tuned"
    columns = [
        "module",
        "options",
        *(["chosen"] if chosen else []),
        *several,
        "n",
        metric,
        "rank",
        *(["failed"] if failed else []),
        "MACs",
        "latency",
        "peak memory",
        *(["model MACs"] if model else []),
    ]
    for col in columns:
        table.add_column(col, justify="right" if col not in ("module", "options", "chosen", *several) else "left")
    for _, r in grp.iterrows():
        n = int(r["n"]) if r["n"] == r["n"] else 0
        cells = [
            str(r["module"]),
            options_label(r["module"], r.get("options")),
            *([tuned_label(r.get("tuned"))] if chosen else []),
            *(str(r[c]) for c in several),
            str(n),
            format_mean_ci(r["mean"], r["ci_half"], n),
            format_rank(r["rank"], bool(r["tied"])),
            *([str(int(r["failed"]))] if failed else []),
            *_costs(r),
            *([si(r.get("model_macs"))] if model else []),
        ]
        table.add_row(*map(Text, cells))  # Text: a "[...]" in a name or an option is not rich markup
    return table


def _cost_table(grp: pd.DataFrame) -> Table:
    from rich.table import Table
    from rich.text import Text

    from hambench.stats import options_label
    from hambench.units import si

    failed = grp["failed"].fillna(0).astype(int).sum() > 0
    table = Table(title="module cost (profile trials), at the profiled shape")
    columns = [
        "module",
        "options",
        "shape",
        "params",
        "MACs",
        "latency",
        "peak memory",
        *(["failed"] if failed else []),
    ]
    for col in columns:
        table.add_column(col, justify="left" if col in ("module", "options", "shape") else "right")
    for _, r in grp.iterrows():
        cells = [
            str(r["module"]),
            options_label(r["module"], r.get("options")),
            str(r.get("profile_shape") or "n/a"),
            si(r.get("params")),
            *_costs(r),
            *([str(int(r["failed"]))] if failed else []),
        ]
        table.add_row(*map(Text, cells))
    return table
