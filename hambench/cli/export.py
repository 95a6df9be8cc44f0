"""``hambench export RUN_DIR (--trial ID | --module NAME) [--out FILE.py] [--set KEY=VALUE ...]``:
a trial of a run as a standalone config file of its task's framework (seg: an mmseg config that
``Runner.from_cfg(Config.fromfile(FILE))`` or mmseg's ``tools/train.py`` trains)."""

from __future__ import annotations

import argparse
from pathlib import Path

from hambench.cli.config_args import parse_key_value


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "export",
        parents=[common],
        help="write a trial of a run as a standalone mmseg config (train it with mmseg's own tools)",
        description="Write a trial of a run as a standalone config: the model with its context module "
        "and resolved options, the data set and its pipeline, the schedule and the seed, with hambench's "
        "heads imported through mmengine's custom_imports. --set changes any field of the task's config "
        "(another data root, a longer schedule) before it is written.",
    )
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run directory <out>/<suite>/<run-id>/")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--trial", metavar="ID", help="a trial id of the run (results.parquet's trial_id)")
    which.add_argument(
        "--module",
        metavar="NAME",
        help="the module's best configuration in the run (best rank, then mean, on the headline metric; "
        "its lowest seed)",
    )
    p.add_argument(
        "--out", type=Path, default=None, metavar="FILE.py", help="where to write (default: ./<trial id>.py)"
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        type=parse_key_value,
        metavar="KEY=VALUE",
        help="a field of the task's config (`hambench train seg --help` lists them), e.g. data_root=/data/ADE "
        "or iters=160000; repeatable",
    )
    p.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    from mmengine.config import Config

    from hambench.io import atomic_write_text
    from hambench.tuning.export import exported_config

    trial_id, cfg = exported_config(
        args.run_dir, trial_id=args.trial, module=args.module, overrides=dict(args.overrides)
    )
    out = args.out or Path(f"{trial_id}.py")
    atomic_write_text(out, Config(cfg).pretty_text)
    print(f"{trial_id} -> {out}")
    print(
        f'train it: python -c "from mmengine.config import Config; from mmengine.runner import Runner; '
        f"Runner.from_cfg(Config.fromfile('{out}')).train()\""
    )
    return 0
