"""``hambench run suite NAME|FILE``: expand a suite and run it on Ray Tune (see hambench.tuning)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("run", help="run a suite of trials on Ray Tune")
    rsub = p.add_subparsers(dest="run_command", required=True)

    s = rsub.add_parser("suite", parents=[common], help="run a suite: its profiling and training trials, then the report")
    s.add_argument("suite", help="a shipped suite's name (hambench suites list) or a path to a suite .yaml file")
    s.add_argument("--address", metavar="auto|HOST:PORT", help="join this Ray cluster (default: start Ray on this machine)")
    s.add_argument("--storage", metavar="DIR|s3://...", help="Tune's storage for trial checkpoints (default: the run directory)")
    s.add_argument("--resume", action="store_true", help="continue the newest (or --run-id) run of this suite")
    s.add_argument("--run-id", help="name of the run directory (default: a timestamp)")
    s.add_argument("--smoke", action="store_true", help="tiny budgets on generated fixture data: checks the whole path")
    s.add_argument("--max-concurrent", type=int, metavar="N", help="at most N trials at a time (default: the suite's)")
    s.add_argument("--only", nargs="+", metavar="MODULE", help="run only these modules' trials")
    s.add_argument("--data-root", metavar="DIR", help="root of the real data set (ADE20K, VOC, ...)")
    s.add_argument("--out", type=Path, default=Path("runs"), metavar="DIR", help="output root (default: ./runs)")
    s.add_argument("--num-cpus", type=int, metavar="N", help="CPUs of the embedded Ray (default: all)")
    s.add_argument("--no-report", action="store_true", help="skip report.html")
    s.set_defaults(func=run_suite_cmd)


def run_suite_cmd(args: argparse.Namespace) -> int:
    from hambench.suite import SuiteError
    from hambench.tuning import RunOptions, SuiteRunError, run_suite

    opts = RunOptions(
        address=args.address, storage=args.storage, out=args.out, resume=args.resume, run_id=args.run_id,
        smoke=args.smoke, max_concurrent=args.max_concurrent, only=args.only, data_root=args.data_root,
        plugins=args.plugin, num_cpus=args.num_cpus, report=not args.no_report,
    )
    try:
        run_dir = run_suite(args.suite, opts)
    except (SuiteError, SuiteRunError) as exc:
        print(f"hambench: error: {exc}")
        return 2
    import pandas as pd

    table = pd.read_parquet(run_dir / "results.parquet")
    failed = table[table["status"] != "ok"]
    print(f"{len(table)} trials, {len(failed)} failed -> {run_dir}")
    for _, row in failed.iterrows():
        print(f"  FAILED {row['trial_id']}: {str(row['error']).splitlines()[0] if row['error'] else ''}")
    for name in ("results.parquet", "history.parquet", "profile.parquet", "report.html"):
        if (run_dir / name).exists():
            print(f"  {run_dir / name}")
    return 1 if len(failed) else 0
