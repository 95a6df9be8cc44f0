"""When to stop timing: hambench's rule (the median known to ±1 % after 0.2 s) against the rule it
replaced (torch.utils.benchmark's Timer, one timed call per ``timeit(1)``, until the runs'
inter-quartile range is under 5 % of their median after 1 s), side by side in one process.

    python benchmarks/latency_rule.py                                   # the quickstart's profile trials
    python benchmarks/latency_rule.py --modules ham-nmf nonlocal --sizes 64 128 --max-time 10

For each module and size (an eval-mode forward of 1 x C x size x size, one thread) both rules time
the same call, twice each in the order replaced, hambench, hambench, replaced, so that a drift of
the machine falls on both alike. Prints per rule the median latency (the mean of its two runs), the
timed runs and the seconds the measurement took, and the ratio of the medians; the last line sums
the seconds. The replaced rule's Timer ran two more untimed calls before each timed one, so its
seconds include them.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import torch

from hambench.profiling import MIN_REPS, measure_latency
from hambench.registry import build_module

QUICKSTART = ["ham-nmf", "ham-cd", "ham-vq", "nonlocal", "danet", "ocr", "dnl", "none"]


def replaced_rule(fn: Callable[[], Any], max_time: float, min_time: float = 1.0) -> tuple[float, int]:
    """The median ms and timed runs of the rule hambench used before: a spread rule on Timer's runs."""
    from torch.utils.benchmark import Timer

    fn()
    timer = Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    times: list[float] = []
    start = time.perf_counter()
    while True:
        times.append(timer.timeit(number=1).median * 1e3)
        spent = time.perf_counter() - start
        if len(times) >= MIN_REPS and (spent > max_time or (spent > min_time and _spread(times) < 0.05)):
            return _quartiles(times)[1], len(times)


def _quartiles(times: list[float]) -> list[float]:
    return (
        torch.tensor(times, dtype=torch.float64).quantile(torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64)).tolist()
    )


def _spread(times: list[float]) -> float:
    """The inter-quartile range over the median."""
    q1, median, q3 = _quartiles(times)
    return (q3 - q1) / median


def hambench_rule(fn: Callable[[], Any], max_time: float) -> tuple[float, int]:
    lat = measure_latency(fn, torch.device("cpu"), max_time=max_time)
    return lat.median_ms, lat.reps


def timed(rule: Callable[..., tuple[float, int]], fn: Callable[[], Any], max_time: float) -> tuple[float, int, float]:
    start = time.perf_counter()
    median, reps = rule(fn, max_time)
    return median, reps, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modules", nargs="+", default=QUICKSTART)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--sizes", nargs="+", type=int, default=[64, 16, 32, 48], help="H = W of each input")
    parser.add_argument("--max-time", type=float, default=2.0, help="seconds of timed runs at most (the quickstart's)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"eval forward, 1 x {args.channels} x size x size, 1 thread, max_time {args.max_time} s")
    print("module | size | replaced ms | hambench ms | ratio | replaced runs | hambench runs | replaced s | hambench s")
    total = {"replaced": 0.0, "hambench": 0.0}
    for name in args.modules:
        torch.manual_seed(0)
        module = build_module(name, args.channels).eval()
        for size in args.sizes:
            x = torch.randn(1, args.channels, size, size)

            def call(module: torch.nn.Module = module, x: torch.Tensor = x) -> Any:
                with torch.no_grad():
                    return module(x)

            runs: dict[str, list[tuple[float, int, float]]] = {"replaced": [], "hambench": []}
            for which in ("replaced", "hambench", "hambench", "replaced"):
                runs[which].append(timed(replaced_rule if which == "replaced" else hambench_rule, call, args.max_time))
            old, new = ([sum(r[i] for r in runs[w]) / 2 for i in range(3)] for w in ("replaced", "hambench"))
            total["replaced"] += old[2]
            total["hambench"] += new[2]
            print(
                f"{name} | {size} | {old[0]:.4g} | {new[0]:.4g} | {new[0] / old[0]:.2f} | {old[1]:.0f} | {new[1]:.0f} "
                f"| {old[2]:.2f} | {new[2]:.2f}",
                flush=True,
            )
    print(
        f"seconds in all: replaced {total['replaced']:.1f}, hambench {total['hambench']:.1f} "
        f"({total['replaced'] / total['hambench']:.2f}x)"
    )


if __name__ == "__main__":
    main()
