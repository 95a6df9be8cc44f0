"""Has the GAN task been learnt at a schedule? Train each module for each seed on ``synthetic-shapes``
(one CPU thread per run, ``--jobs`` runs at a time), evaluating every ``--eval-interval`` iterations,
and print each run's learning curve (iteration, fid_surrogate, symmetry_error), its seconds per
training iteration, then per module the curve averaged over the seeds and a *settled* verdict.

    python benchmarks/gan_budget.py                                   # none, seeds 100-101, gan-synthetic's budget
    python benchmarks/gan_budget.py --iters 800 --eval-interval 50 --ch 8 --lr-g 2e-4 --lr-d 4e-4
    python benchmarks/gan_budget.py --modules ham-nmf nonlocal none --seeds 100 101 102 --set ema=true
    python benchmarks/gan_budget.py --iters 3000 --eval-interval 150 --cuts 1500 2100   # where would it settle?
    python benchmarks/gan_budget.py --references        # the metrics' scale: real, blurred, unpaired, noise

``--set KEY=VALUE`` sets any other GanConfig field (a value is read as the hambench command line reads
one: ``true``, ``0.95``, ``1e-4``).

**Settled** (per metric, on the seed-averaged curve): fit a least-squares line to the evaluations
of the last quarter of the iterations (at least three points); the curve has settled when the
change that line predicts across the quarter is smaller than ``--tolerance`` (default 10 %) of the
curve's whole range (max - min over every evaluation). A curve still falling (or rising) steadily
at the end fails; one that only wobbles around a level passes. The fit's p-value (slope = 0) is
printed beside it for reference, not used: a handful of points gives the test little power.

Design with seeds other than the ones a suite reports (the default 100, 101), so the choice of
budget is not fitted to the reported seeds.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, fields
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy import stats as sps

METRICS = ("fid_surrogate", "symmetry_error")


def run_one(config: dict) -> dict:
    """One training run in a fresh process with one thread; its history and timing."""
    os.environ["OMP_NUM_THREADS"] = "1"
    from hambench.tasks.gan import GanConfig, train_gan

    cfg = GanConfig(**config)
    start = time.perf_counter()
    final = train_gan(cfg)
    wall = time.perf_counter() - start
    history = json.loads((Path(cfg.work_dir) / "history.json").read_text())
    return dict(
        module=cfg.context,
        seed=cfg.seed,
        history=history,
        wall_s=wall,
        s_per_iter=final["seconds"] / final["iters"],
        params_g=final["params_g"],
    )


def last_quarter_fit(iters: list[int], values: list[float]) -> tuple[float, float, float]:
    """(change the fitted line predicts over the last quarter, that change / the curve's range,
    p-value of slope = 0) on the evaluations in the last quarter of the iterations."""
    it, v = np.asarray(iters, float), np.asarray(values, float)
    quarter = it >= it[-1] - (it[-1] - it[0]) / 4 if len(it) > 1 else np.ones(1, bool)
    if quarter.sum() < 3:  # too few points in the quarter: take the last three
        quarter = np.arange(len(it)) >= len(it) - 3
    if quarter.sum() < 3:
        return math.nan, math.nan, math.nan
    fit = sps.linregress(it[quarter], v[quarter])
    change = fit.slope * (it[quarter][-1] - it[quarter][0])
    spread = float(v.max() - v.min())
    return float(change), (abs(change) / spread if spread > 0 else 0.0), float(fit.pvalue)


def reference_points(res: int, n: int) -> list[tuple[str, float, float]]:
    """(name, fid_surrogate, symmetry_error) of image sets whose quality is known, scored as a
    generator's samples are (the Evaluator's real statistics): the scale to read a curve against."""
    import torch
    import torch.nn.functional as F

    from hambench.data.synthetic_shapes import SyntheticShapes, symmetry_error
    from hambench.tasks.gan import GanConfig
    from hambench.tasks.gan.evaluate import Evaluator

    cfg = GanConfig(res=res, eval_samples=n, device="cpu")
    evaluator = Evaluator(SyntheticShapes(res=res), cfg, len(SyntheticShapes.classes))
    other = torch.stack([SyntheticShapes(n, res, seed=1)[i][0] for i in range(n)])  # disjoint real images
    blurred = F.avg_pool2d(other.float(), 3, stride=1, padding=1, count_include_pad=False).round().to(torch.uint8)
    unpaired = other.clone()  # each left half beside another image's right half: twins that disagree
    unpaired[..., res // 2 :] = other.roll(1, dims=0)[..., res // 2 :]
    noise = torch.randint(0, 256, other.shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    out = []
    for name, images in [
        ("real (other images)", other),
        ("real, blurred 3x3", blurred),
        ("real halves, unpaired", unpaired),
        ("uniform noise", noise),
    ]:
        evaluator.fid.reset()
        evaluator.fid.update(images, real=False)
        out.append((name, evaluator.fid.compute().item(), symmetry_error(images)))
    return out


def parse_set(items: list[str], parser: argparse.ArgumentParser) -> dict[str, Any]:
    """``--set KEY=VALUE`` pairs as GanConfig fields, each value read as every hambench command line
    reads one (hambench.cli.config_args.parse_key_value: ``1e-4`` is a float, ``true`` a bool)."""
    from hambench.cli.config_args import parse_key_value
    from hambench.tasks.gan import GanConfig

    known = {f.name for f in fields(GanConfig)}
    out = {}
    for item in items:
        try:
            key, value = parse_key_value(item)
        except argparse.ArgumentTypeError:
            key, value = "", None
        if key not in known:
            parser.error(f"--set {item}: expected KEY=VALUE with KEY a GanConfig field ({', '.join(sorted(known))})")
        out[key] = value
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--modules", nargs="+", default=["none"])
    p.add_argument("--seeds", nargs="+", type=int, default=[100, 101])
    p.add_argument("--suite", default="gan-synthetic", help="start from this suite's budget and task_options")
    p.add_argument("--iters", type=int)
    p.add_argument("--eval-interval", type=int)
    p.add_argument("--batch", type=int)
    p.add_argument("--res", type=int)
    p.add_argument("--ch", type=int)
    p.add_argument("--lr-g", type=float)
    p.add_argument("--lr-d", type=float)
    p.add_argument("--eval-samples", type=int)
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="any other GanConfig field")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--tolerance", type=float, default=0.10)
    p.add_argument(
        "--cuts",
        nargs="*",
        type=int,
        default=[],
        help="also judge the curves cut at these iterations (as if the schedule ended there)",
    )
    p.add_argument("--work-dir", default="work_dirs/gan_budget")
    p.add_argument("--json", dest="json_out", help="also write every run's curve to this file")
    p.add_argument(
        "--references",
        action="store_true",
        help="only print the metrics of known image sets (real, blurred, unpaired halves, noise)",
    )
    args = p.parse_args()
    if args.references:
        n = args.eval_samples or 500
        res = args.res or 32
        print(f"{'images':<24} {'fid_surrogate':>14} {'symmetry_error':>15}   ({n} images, {res}x{res})")
        for name, fid, sym in reference_points(res, n):
            print(f"{name:<24} {fid:>14.3f} {sym:>15.4f}")
        return

    from hambench.suite import resolve_suite_path

    suite = yaml.safe_load(resolve_suite_path(args.suite).read_text())  # its budget and first grid's task_options
    budget = {k: v for k, v in suite["budget"].items() if k in ("iters", "eval_interval", "batch", "res")}
    grid = suite["grid"][0] if isinstance(suite["grid"], list) else suite["grid"]
    base = budget | grid.get("task_options", {})
    flags = ("iters", "eval_interval", "batch", "res", "ch", "lr_g", "lr_d", "eval_samples")  # GanConfig's names
    given = {k: getattr(args, k) for k in flags}
    schedule = base | {k: v for k, v in given.items() if v is not None} | parse_set(args.set, p)
    schedule |= dict(threads=1, device="cpu", log_interval=0)
    from hambench.tasks.gan import GanConfig

    shown = {
        k: v
        for k, v in asdict(GanConfig(**schedule)).items()
        if k in ("iters", "eval_interval", "batch", "res", "ch", "lr_g", "lr_d", "eval_samples", "ema", "ema_decay")
    }
    print("schedule:", " ".join(f"{k}={v}" for k, v in shown.items()), flush=True)

    configs = [
        schedule | dict(context=m, seed=s, work_dir=str(Path(args.work_dir) / f"{m}_s{s}"))
        for m in args.modules
        for s in args.seeds
    ]
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=get_context("spawn")) as pool:
        runs = list(pool.map(run_one, configs))
    print(f"\n{len(runs)} runs in {time.perf_counter() - start:.0f} s wall ({args.jobs} at a time)")

    for r in runs:
        print(
            f"\n{r['module']} seed {r['seed']}: {r['s_per_iter']:.3f} s per training iteration, "
            f"{r['wall_s']:.0f} s with evaluations"
        )
        print(f"{'iter':>6} {'fid_surrogate':>14} {'symmetry_error':>15}")
        for h in r["history"]:
            print(f"{h['iter']:>6} {h['fid_surrogate']:>14.3f} {h['symmetry_error']:>15.4f}")

    for module in args.modules:
        mine = [r for r in runs if r["module"] == module]
        iters = [h["iter"] for h in mine[0]["history"]]
        print(f"\n{module}: mean over seeds {', '.join(str(r['seed']) for r in mine)}")
        print(f"{'iter':>6} " + " ".join(f"{m:>15}" for m in METRICS))
        means = {m: [float(np.mean([r["history"][i][m] for r in mine])) for i in range(len(iters))] for m in METRICS}
        for i, it in enumerate(iters):
            print(f"{it:>6} " + " ".join(f"{means[m][i]:>15.4f}" for m in METRICS))
        for cut in sorted(set(args.cuts) | {iters[-1]}):
            keep = [i for i, it in enumerate(iters) if it <= cut]
            print(f"  cut at {cut}:")
            for m in METRICS:
                change, rel, pvalue = last_quarter_fit([iters[i] for i in keep], [means[m][i] for i in keep])
                verdict = "settled" if rel < args.tolerance else "NOT settled"
                print(
                    f"    {m}: change over the last quarter {change:+.4f} = {rel:.0%} of its range "
                    f"(slope p = {pvalue:.2f}): {verdict}"
                )
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"schedule": shown, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
