"""Latency of a call: the median over enough timed runs to know it to ±1 %, its inter-quartile
range, and the 90th and 99th percentiles (the tail timm's benchmark reports: a median hides stalls)."""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import torch

MIN_REPS = 5  # timed runs at least, however slow the call
MIN_TIME = 0.2  # seconds of timed runs at least (torch.utils.benchmark's blocked_autorange uses the same)
PRECISION = 0.01  # stop once the median's 95 % interval lies within ±1 % of it
Z95 = 1.96


class Latency(NamedTuple):
    """A call's latency in ms over ``reps`` timed runs. With few runs the tail percentiles are
    interpolated between the slowest ones (p99 of 5 runs is nearly the slowest)."""

    median_ms: float
    iqr_ms: float
    reps: int
    p90_ms: float
    p99_ms: float


def measure_latency(
    fn: Callable[[], Any],
    device: torch.device,
    *,
    min_time: float = MIN_TIME,
    max_time: float = 10.0,
    precision: float = PRECISION,
) -> Latency:
    """Median, inter-quartile range, 90th and 99th percentile of ``fn()`` in ms, and the number of timed runs.

    One warm-up call (lazy init, compilation, allocator growth; three more on CUDA for cuDNN
    autotuning), then timed runs, one call each, until, after ``min_time`` seconds, the median's
    distribution-free 95 % interval (``median_interval``) lies within ``precision`` of the median,
    or ``max_time`` seconds have passed; never fewer than ``MIN_REPS`` runs. The rule asks how well
    the median is known, not how spread the runs are: a call whose runs' inter-quartile range is 10 %
    of their median is known to ±1 % after about 300 of them, where a rule on the spread itself
    would time it until ``max_time``. CPU: ``time.perf_counter`` around each call at the current
    thread count, the garbage collector off while timing (as ``timeit``). CUDA: CUDA events around
    each call, synchronised.
    """
    fn()
    if device.type == "cuda":
        for _ in range(3):
            fn()
        time_once = lambda: _cuda_time_ms(fn, device)  # noqa: E731
    else:
        time_once = lambda: _cpu_time_ms(fn)  # noqa: E731
    times: list[float] = []
    check_at = MIN_REPS  # the interval is checked at geometrically spaced counts: sorting every run would cost O(n²)
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()  # wall clock: a near-free call must not loop until its own sum adds up
        while True:
            times.append(time_once())
            spent = time.perf_counter() - start
            if len(times) < MIN_REPS:
                continue
            if spent > max_time:
                break
            if spent > min_time and len(times) >= check_at:
                if _median_known(times, precision):
                    break
                check_at = math.ceil(len(times) * 1.1)
    finally:
        if gc_was_on:
            gc.enable()
    p90, p99 = _percentiles(times, (0.90, 0.99))
    return Latency(_median(times), _iqr(times), len(times), p90, p99)


def median_interval(times: list[float], z: float = Z95) -> tuple[float, float]:
    """The distribution-free ~95 % confidence interval of the median of ``times``: the order
    statistics at ranks n/2 ∓ z·√n/2 (the normal approximation of the binomial, 1-based, clipped
    to the sample), so it holds whatever the shape of the runs' distribution (a tail of stalls
    included)."""
    return _interval_of_sorted(sorted(times), z)


def _median_known(times: list[float], precision: float) -> bool:
    """Whether the median's 95 % interval lies within ``precision`` of the median (one sort)."""
    ordered = sorted(times)
    n = len(ordered)
    middle = (ordered[(n - 1) // 2] + ordered[n // 2]) / 2  # the median, as torch.quantile(0.5) gives it
    low, high = _interval_of_sorted(ordered, Z95)
    return high - middle <= precision * middle and middle - low <= precision * middle


def _interval_of_sorted(ordered: list[float], z: float) -> tuple[float, float]:
    n = len(ordered)
    half_width = z * math.sqrt(n) / 2
    low = max(1, math.floor(n / 2 - half_width))
    high = min(n, math.ceil(n / 2 + 1 + half_width))
    return ordered[low - 1], ordered[high - 1]


def _cpu_time_ms(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def _cuda_time_ms(fn: Callable[[], Any], device: torch.device) -> float:
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize(device)
    start.record()
    fn()
    end.record()
    torch.cuda.synchronize(device)
    return start.elapsed_time(end)


def _percentiles(times: list[float], q: tuple[float, ...]) -> list[float]:
    return torch.tensor(times, dtype=torch.float64).quantile(torch.tensor(q, dtype=torch.float64)).tolist()


def _quantiles(times: list[float]) -> list[float]:
    return _percentiles(times, (0.25, 0.5, 0.75))


def _median(times: list[float]) -> float:
    return _quantiles(times)[1]


def _iqr(times: list[float]) -> float:
    q = _quantiles(times)
    return q[2] - q[0]
