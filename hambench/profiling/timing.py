"""Latency of a call: median and inter-quartile range over enough timed runs to be stable, and the
90th and 99th percentiles (the tail timm's benchmark reports: a median hides stalls)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple

import torch

MIN_REPS = 5  # timed runs at least, however slow the call


class Latency(NamedTuple):
    """A call's latency in ms over ``reps`` timed runs. With few runs the tail percentiles are
    interpolated between the slowest ones (p99 of 5 runs is nearly the slowest)."""

    median_ms: float
    iqr_ms: float
    reps: int
    p90_ms: float
    p99_ms: float


def measure_latency(
    fn: Callable[[], Any], device: torch.device, *, min_time: float = 1.0, max_time: float = 10.0
) -> Latency:
    """Median, inter-quartile range, 90th and 99th percentile of ``fn()`` in ms, and the number of timed runs.

    One warm-up call (lazy init, compilation, allocator growth; three more on CUDA for cuDNN
    autotuning), then timed runs until the IQR is within 5 % of the median after ``min_time``
    seconds, or ``max_time`` seconds have passed; never fewer than ``MIN_REPS`` runs.
    CPU: torch.utils.benchmark's Timer (it pins the thread count). CUDA: CUDA events around each
    call, synchronised.
    """
    fn()
    if device.type == "cuda":
        for _ in range(3):
            fn()
        time_once = lambda: _cuda_time_ms(fn, device)  # noqa: E731
    else:
        from torch.utils.benchmark import Timer

        timer = Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
        time_once = lambda: timer.timeit(number=1).median * 1e3  # noqa: E731
    times: list[float] = []
    start = time.perf_counter()  # wall clock: a near-free call must not loop until its own sum adds up
    while True:
        times.append(time_once())
        spent = time.perf_counter() - start
        if len(times) >= MIN_REPS and (spent > max_time or (spent > min_time and _iqr(times) < 0.05 * _median(times))):
            break
    p90, p99 = _percentiles(times, (0.90, 0.99))
    return Latency(_median(times), _iqr(times), len(times), p90, p99)


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
