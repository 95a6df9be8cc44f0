"""The quickstart against its floor: the same work with no framework, then the suite itself, in
one session on this machine.

    python benchmarks/quickstart_floor.py              # the floor, then the suite (~11 min on 2 cores)
    python benchmarks/quickstart_floor.py --no-suite   # the floor alone

The floor is the suite's work and nothing else:
- every training trial as ``trial_overhead.py``'s plain PyTorch loop (the same model, images in
  memory, steps and evaluations, one thread), run as the suite runs them: ``max_concurrent`` at a
  time, in the suite's order, each process warmed up before the clock starts (no imports counted);
- every profiling trial's measurements (``hambench.profiling.profile_module`` at the suite's shape
  and each sweep size, as the profile task calls it), one at a time on one thread, as the suite
  holds the node for them.

The suite is then run as a user runs it (a fresh process: Python and Ray starting, the report
drawn) and its wall time divided by the floor. Prints both phases of the floor, their sum, the
suite's time and the ratio. Only a suite whose trainings are the plain loop's (seg, ``tiny-d8`` on
``synthetic-context`` at its generated 96x96, module defaults) has a floor here.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import subprocess
import sys
import tempfile
import time
from typing import Any

import torch
from trial_overhead import plain_loop

from hambench.data import prepare_data
from hambench.profiling import profile_module
from hambench.suite import load_suite
from hambench.tasks.profile import measure_at, profile_shapes
from hambench.trial import Trial
from hambench.tuning.plan import expand

PLAIN: dict[str, Any] = dict(task="seg", backbone="tiny-d8", data="synthetic-context", crop=(96, 96))


def check_plain(trial: Trial) -> None:
    """Refuse a training trial the plain loop does not reproduce, naming what differs."""
    budget = trial.budget.model_dump() if trial.budget is not None else {}
    crop = tuple(budget.get("crop") or ())
    have: dict[str, Any] = dict(task=trial.task, backbone=trial.backbone, data=trial.data, crop=crop)
    differ = {k: v for k, v in have.items() if v != PLAIN[k]}
    if trial.budget is None or trial.budget.lr is None:
        differ["lr"] = "the task's default"
    extra = dict(options=trial.options, data_options=trial.data_options, task_options=trial.task_options)
    if differ or any(extra.values()):
        raise SystemExit(
            f"quickstart_floor: {trial.trial_id}: the plain loop trains {PLAIN} with module defaults, "
            f"not {differ or extra}"
        )


_BARRIER: Any = None  # a worker's handle on the warm-up barrier (set by _init_worker)


def _init_worker(barrier: Any) -> None:
    torch.set_num_threads(1)
    global _BARRIER
    _BARRIER = barrier


def _warm_up(_: int) -> None:
    """A tiny plain run (the worker's imports and first calls). The barrier holds each worker to
    one warm-up: none goes on until every worker has taken one."""
    _BARRIER.wait()
    plain_loop("none", prepare_data("synthetic-context", None, seed=0), 2, 4, 0.1, 1, True)


def _train(spec: tuple[str, int, int, float, int]) -> float:
    """One training trial's plain loop (module, iters, batch, lr, evaluations): its seconds."""
    module, iters, batch, lr, evals = spec
    root = prepare_data("synthetic-context", None, seed=0)
    return plain_loop(module, root, iters, batch, lr, evals, True)["total"]


def training_floor(trials: list[Trial], slots: int) -> tuple[float, list[float]]:
    """Wall seconds of the trainings' plain loops, ``slots`` at a time, and each one's seconds."""
    specs: list[tuple[str, int, int, float, int]] = []
    for t in trials:
        b = t.budget
        assert b is not None and b.lr is not None  # check_plain
        specs.append((t.module, b.iters, b.batch, b.lr, b.iters // b.eval_interval))
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(slots)
    with ctx.Pool(slots, initializer=_init_worker, initargs=(barrier,)) as pool:
        pool.map(_warm_up, range(slots), chunksize=1)
        start = time.perf_counter()
        each = list(pool.imap(_train, specs, chunksize=1))  # in order, the next to the first free worker
        return time.perf_counter() - start, each


def profiling_floor(trials: list[Trial]) -> tuple[float, list[float]]:
    """Seconds of the profiling trials' measurements, one at a time on one thread."""
    torch.set_num_threads(1)
    profile_module("none", shape=(1, 8, 8, 8), max_time=0.01)  # imports and first calls, untimed
    each = []
    for t in trials:
        start = time.perf_counter()
        for shape in dict.fromkeys(profile_shapes(t)):  # the suite's shape once, as the task measures it
            measure_at(t, shape)
        each.append(time.perf_counter() - start)
    return sum(each), each


def suite_seconds(suite: str) -> float:
    """Wall seconds of ``hambench run suite`` in a fresh process, as a user runs it."""
    with tempfile.TemporaryDirectory(prefix="hb-floor-") as out:
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "hambench", "run", "suite", suite, "--out", out],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="quickstart")
    parser.add_argument("--no-suite", action="store_true", help="measure the floor only")
    args = parser.parse_args()
    suite = load_suite(args.suite)
    if suite.tune is not None:
        raise SystemExit(f"quickstart_floor: {args.suite} searches first (tune:); its trials are not known ahead")
    trials = expand(suite)
    trainings = [t for t in trials if t.budget is not None]
    profiles = [t for t in trials if t.profile is not None]
    for t in trainings:
        check_plain(t)
    slots = suite.max_concurrent or 1
    print(f"{args.suite}: {len(trainings)} trainings ({slots} at a time), {len(profiles)} profiling trials", flush=True)

    train_wall, each = training_floor(trainings, slots)
    print(f"trainings, plain loops: {train_wall:.1f} s ({min(each):.1f}-{max(each):.1f} s each)", flush=True)
    profile_wall, each = profiling_floor(profiles)
    print(f"profiling, measurements alone: {profile_wall:.1f} s ({min(each):.1f}-{max(each):.1f} s each)", flush=True)
    floor = train_wall + profile_wall
    print(f"floor: {floor:.1f} s", flush=True)
    if args.no_suite:
        return
    wall = suite_seconds(args.suite)
    print(f"hambench run suite {args.suite}: {wall:.1f} s = {wall / floor:.2f}x the floor")


if __name__ == "__main__":
    main()
