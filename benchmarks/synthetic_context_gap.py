"""Does ``synthetic-context`` rank modules rather than seeds? Train each module for each seed at the
quickstart budget (1200 iterations, batch 4, one CPU thread per run, ``--jobs`` runs at a time),
print module, seed, mIoU, seconds and the per-group IoU, then per module n, mean ± std (the
seed-to-seed spread: the task's bar is std <= 2.0), the 95% interval and the gap over ``none``.

    python benchmarks/synthetic_context_gap.py                      # the quickstart's eight, seeds 0-4
    python benchmarks/synthetic_context_gap.py --modules ham-nmf none --seeds 0 1 2
    python benchmarks/synthetic_context_gap.py --modules ham-nmf:rank=4 none --iters 1000 --lr 0.1
    python benchmarks/synthetic_context_gap.py --modules ham-nmf danet --seeds 105 106 --split val   # design runs

Figures are scored on the test split (``--split standard``); a design experiment (a change to the
task or the schedule, judged on design seeds, never 0-4) is scored on validation (``--split val``).

A module given as ``name:key=value,...`` runs with those module options (``--context-opt``).

Each run is ``hambench train seg ... --json`` in its own process, exactly as a user runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hambench.data import prepare_data
from hambench.data.synthetic_context import CLASSES

QUICKSTART = ["ham-nmf", "ham-cd", "ham-vq", "nonlocal", "danet", "ocr", "dnl", "none"]


def run_one(module: str, seed: int, args: argparse.Namespace) -> dict:
    """One run; ``module`` is a name, or ``name:key=value,...`` with module options (``ham-nmf:rank=4``)."""
    name, _, opts = module.partition(":")
    work_dir = Path(args.work_dir) / f"{module.replace(':', '_').replace(',', '_')}_s{seed}"
    opt_args = sum((["--context-opt", opt] for opt in opts.split(",") if opt), [])
    lr_args = ["--lr", str(args.lr)] if args.lr is not None else []
    plugin_args = sum((["--plugin", p] for p in args.plugin), [])
    cmd = [
        sys.executable,
        "-m",
        "hambench",
        "train",
        "seg",
        "--context",
        name,
        *opt_args,
        "--backbone",
        args.backbone,
        "--data",
        "synthetic-context",
        "--iters",
        str(args.iters),
        "--batch",
        str(args.batch),
        *lr_args,
        "--eval-interval",
        str(args.iters),
        "--seed",
        str(seed),
        "--work-dir",
        str(work_dir),
        "--threads",
        "1",
        "--eval-split",
        args.split,
        "--json",
        *plugin_args,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        return dict(
            module=module,
            seed=seed,
            mIoU=float("nan"),
            seconds=float("nan"),
            cpu_seconds=float("nan"),
            group_iou=[float("nan")] * (len(CLASSES) - 1),
            error=proc.stderr[-2000:],
        )
    metrics = json.loads(proc.stdout.strip().splitlines()[-1])
    group_iou = [metrics[f"IoU.{c}"] for c in CLASSES[1:]]  # per-group IoU: high once the key rule is learned
    return dict(
        module=module,
        seed=seed,
        mIoU=metrics["mIoU"],
        seconds=metrics["seconds"],
        cpu_seconds=metrics["cpu_seconds"],
        images_per_s=metrics["images_per_s"],
        group_iou=group_iou,
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--modules", nargs="+", default=QUICKSTART)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--iters", type=int, default=1200)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--lr", type=float, default=None, help="default: the data set's (hambench.tasks.seg.DEFAULT_LR)")
    p.add_argument("--backbone", default="tiny-d8")
    p.add_argument("--jobs", type=int, default=2, help="runs at a time (one CPU thread each)")
    p.add_argument("--work-dir", default="work_dirs/synthetic_context_gap")
    p.add_argument("--plugin", action="append", default=[])
    p.add_argument(
        "--split",
        default="standard",
        choices=["standard", "val", "test"],
        help="what each run is scored on: standard (the test split, where figures are reported) or val "
        "(the validation split, for design experiments on design seeds)",
    )
    args = p.parse_args()

    for seed in args.seeds:  # generate each seed's data once, before the runs race for it
        prepare_data("synthetic-context", None, seed)
    jobs = [(m, s) for m in args.modules for s in args.seeds]
    # seconds: wall clock (includes waiting for a busy machine); cpu_s: CPU time of the run, which
    # is its wall clock on an idle core since every run uses one thread
    print(
        f"{'module':<18} {'seed':>4} {'mIoU':>7} {'seconds':>8} {'cpu_s':>7}  IoU of {', '.join(CLASSES[1:])}",
        flush=True,
    )
    rows = []
    with ThreadPoolExecutor(args.jobs) as pool:
        for row in pool.map(lambda job: run_one(*job, args), jobs):
            rows.append(row)
            print(
                f"{row['module']:<18} {row['seed']:>4} {row['mIoU']:>7.2f} {row['seconds']:>8.1f} "
                f"{row['cpu_seconds']:>7.1f}  {' '.join(f'{v:6.2f}' for v in row['group_iou'])}",
                flush=True,
            )
            if "error" in row:
                print(row["error"], file=sys.stderr)

    from hambench.stats import interval

    stats = {m: interval([r["mIoU"] for r in rows if r["module"] == m]) for m in args.modules}
    base = stats["none"].mean if "none" in stats else None
    print(f"\n{'module':<18} {'n':>2} {'mean mIoU':>9} {'std':>5} {'95% interval':>15} {'gap vs none':>11}")
    for m, iv in sorted(stats.items(), key=lambda kv: -kv[1].mean):
        gap = f"{iv.mean - base:+.2f}" if base is not None else "-"
        print(f"{m:<18} {iv.n:>2} {iv.mean:>9.2f} {iv.std:>5.2f} {f'[{iv.low:.2f}, {iv.high:.2f}]':>15} {gap:>11}")


if __name__ == "__main__":
    main()
