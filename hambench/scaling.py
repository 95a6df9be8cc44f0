"""How cost grows with n = H*W: the one fit of cost ~ n^k behind every exponent hambench shows.

``hambench profile --sweep``, a suite's profiling trials and the report's scaling plot all call
``fit_sweep`` (and through it ``fit_exponent``), so an exponent means the same wherever it is read;
the profiler's rows (``sweep_size`` = H = W) go through ``sweep_fits`` / ``sweep_columns``, and a
sweep's input shapes come from ``sweep_shapes``.
No torch here: the report imports this without loading it.

What makes a fit mean something:

- **Latency only above the timing floor.** A call under ``LATENCY_FLOOR_MS`` is dominated by
  dispatch and timer overheads, and one whose spread (IQR / median) is ``MAX_SPREAD`` or more was
  disturbed while it ran; both are dropped before fitting. (Over 16x16..64x64 on a CPU most of
  self-attention's timings are sub-millisecond, and a fit through them read n^3.40.)
- **Enough points.** A latency fit needs three usable sizes, so that its R^2 says something; MACs
  and peak memory are exact counts, for which two sizes give the exact secant exponent. With fewer
  usable sizes there is no exponent (``k`` None, ``reason`` says why) rather than a wrong one.
- **Range and R^2 travel with k.** The fit is the least-squares slope of log(cost) on log(n) over
  *all* usable sizes; a module whose cost is a sum of terms (self-attention: its 1x1 convolutions
  grow as n, its n x n map as n^2) reads in between over a range where both weigh, so the range
  ``n_min..n_max`` is part of the answer and R^2 shows how straight the log-log line is.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

LATENCY_FLOOR_MS = 1.0  # timings below this are overhead-dominated (dispatch, timers)
MAX_SPREAD = 0.10  # IQR / median at or above this: a disturbed measurement
MIN_POINTS = {"macs": 2, "memory": 2, "latency": 3}  # usable sizes a fit needs, per kind

# kind -> the row column fitted (the report's ``macs`` is torchprofile's count, as here)
COLUMNS = {"macs": "macs_torchprofile", "latency": "latency_ms", "memory": "peak_mem_bytes"}
# A fit's columns in a sweep's rows (profile.parquet, ``--json``): ``exponent_<kind>`` plus these.
FIT_SUFFIXES = ("", "_r2", "_n_min", "_n_max", "_points")
EXPONENT_COLUMNS = [f"exponent_{kind}{suffix}" for kind in COLUMNS for suffix in FIT_SUFFIXES]


@dataclass(frozen=True)
class ExponentFit:
    """One fitted exponent of cost ~ n^k, or the reason there is none."""

    k: float | None  # None: no exponent (see ``reason``)
    r2: float | None  # None below three points: a line through two points fits them exactly
    n_min: float | None  # the range of n = H*W the fit covers
    n_max: float | None
    points: int  # sizes fitted
    total: int  # sizes measured
    reason: str = ""  # why there is no exponent, or which sizes were dropped
    used: tuple[float, ...] = ()  # the n of the points fitted (a plot marks the others)

    def label(self) -> str:
        """``"n^2.00 over 64²..128², R² 1.00"`` (side of the square when n is one), or ``"no fit: ..."``."""
        if self.k is None:
            return f"no fit: {self.reason}"
        r2 = "" if self.r2 is None else f", R² {self.r2:.2f}"
        return f"n^{round(self.k, 2) + 0.0:.2f} over {_n(self.n_min)}..{_n(self.n_max)}{r2}"

    def columns(self, kind: str) -> dict[str, Any]:
        """The fit as row columns: ``exponent_<kind>`` and its ``_r2``, ``_n_min``, ``_n_max``, ``_points``."""
        values = (self.k, self.r2, self.n_min, self.n_max, self.points)
        return {f"exponent_{kind}{suffix}": v for suffix, v in zip(FIT_SUFFIXES, values)}


def _n(n: float | None) -> str:
    side = math.isqrt(int(n)) if n is not None else 0
    return f"{side}²" if side * side == n else f"{n:g}"


def fit_exponent(
    ns: Iterable[float],
    values: Iterable[float | None],
    *,
    spreads: Iterable[float | None] | None = None,
    floor: float = 0.0,
    max_spread: float = math.inf,
    min_points: int = 2,
    unit: str = "",
) -> ExponentFit:
    """Least-squares slope k of log(value) on log(n) over the usable points.

    A point is usable when its value is a positive number at or above ``floor`` and, when
    ``spreads`` (IQR per point, same unit as the value) are given, its IQR / value is below
    ``max_spread``. With fewer than ``min_points`` distinct usable sizes the fit has ``k`` None.
    """
    ns, values = list(ns), list(values)
    spreads = [None] * len(ns) if spreads is None else list(spreads)
    if not len(ns) == len(values) == len(spreads):
        raise ValueError(f"got {len(ns)} sizes, {len(values)} values and {len(spreads)} spreads")
    if len(set(ns)) < 2:
        raise ValueError("a sweep needs at least two different sizes")
    below = noisy = 0
    pairs = []
    for n, v, s in zip(ns, values, spreads):
        if v is None or not math.isfinite(v) or v <= 0:
            continue
        if v < floor:
            below += 1
        elif s is not None and math.isfinite(max_spread) and not (s / v < max_spread):
            noisy += 1
        else:
            pairs.append((n, v))
    # Counted in points (a merged report may hold two measurements of one size), usable in sizes.
    dropped = ", ".join(
        p
        for p in (
            f"{below} point(s) under the {floor:g}{' ' + unit if unit else ''} floor" if below else "",
            f"{noisy} point(s) with IQR/median >= {max_spread:.0%}" if noisy else "",
        )
        if p
    )
    sizes = {n for n, _ in pairs}
    if len(sizes) < min_points:
        why = f"{len(sizes)} of {len(set(ns))} sizes usable ({min_points} needed)" + (f"; {dropped}" if dropped else "")
        return ExponentFit(None, None, None, None, len(sizes), len(set(ns)), why, tuple(sorted(sizes)))
    k, r2 = _least_squares([(math.log(n), math.log(v)) for n, v in pairs])
    return ExponentFit(
        k,
        r2 if len(sizes) >= 3 else None,
        float(min(sizes)),
        float(max(sizes)),
        len(sizes),
        len(set(ns)),
        f"dropped {dropped}" if dropped else "",
        tuple(sorted(sizes)),
    )


def _least_squares(pairs: list[tuple[float, float]]) -> tuple[float, float]:
    """Slope and R^2 of y on x."""
    mx = sum(x for x, _ in pairs) / len(pairs)
    my = sum(y for _, y in pairs) / len(pairs)
    sxx = sum((x - mx) ** 2 for x, _ in pairs)
    sxy = sum((x - mx) * (y - my) for x, y in pairs)
    syy = sum((y - my) ** 2 for _, y in pairs)
    k = sxy / sxx
    r2 = 1.0 if syy == 0 else (sxy * sxy) / (sxx * syy)
    return k, r2


def fit_sweep(rows: Iterable[Mapping[str, Any]], n_key: str = "n") -> dict[str, ExponentFit]:
    """The three fits of an n-sweep's rows: ``{"macs", "latency", "memory"}`` -> ExponentFit.

    Each row needs ``n_key`` (n = H*W) and the cost columns (``COLUMNS``); latency rows also
    ``latency_iqr_ms`` (without it no latency point passes the spread test). Latency is fitted only
    above the timing floor; MACs and memory over every positive value.
    """
    rows = list(rows)
    ns = [float(r[n_key]) for r in rows]

    def col(name: str) -> list[float | None]:
        return [_number(r.get(name)) for r in rows]

    latency_spread = [s if s is not None else math.inf for s in col("latency_iqr_ms")]
    return {
        "macs": fit_exponent(ns, col(COLUMNS["macs"]), min_points=MIN_POINTS["macs"]),
        "memory": fit_exponent(ns, col(COLUMNS["memory"]), min_points=MIN_POINTS["memory"]),
        "latency": fit_exponent(
            ns,
            col(COLUMNS["latency"]),
            spreads=latency_spread,
            floor=LATENCY_FLOOR_MS,
            max_spread=MAX_SPREAD,
            min_points=MIN_POINTS["latency"],
            unit="ms",
        ),
    }


def sweep_shapes(shape: Sequence[int], sizes: Iterable[int]) -> list[tuple[int, int, int, int]]:
    """The input shapes of an n-sweep: (B, C, s, s) for each size s, batch and channels from the
    (B, C, H, W) ``shape``. The one place a sweep is built: ``hambench profile --sweep`` and a
    suite's profiling trials both measure these."""
    return [(shape[0], shape[1], size, size) for size in sizes]


def sweep_fits(rows: Iterable[Mapping[str, Any]]) -> dict[str, ExponentFit]:
    """``fit_sweep`` of profiler rows that carry ``sweep_size`` (H = W): n = sweep_size²."""
    return fit_sweep({**r, "n": r["sweep_size"] ** 2} for r in rows)


def sweep_columns(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The exponent columns every row of a sweep carries (``fit_columns`` of ``sweep_fits``)."""
    return fit_columns(sweep_fits(rows))


def fit_columns(fits: Mapping[str, ExponentFit]) -> dict[str, Any]:
    """Every fit's columns, for the rows of the sweep (profile.parquet, ``--json``)."""
    out: dict[str, Any] = {}
    for kind, fit in fits.items():
        out.update(fit.columns(kind))
    return out


def _number(value: Any) -> float | None:
    """A float, or None for a missing value (None, NaN, pandas' NA)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v
