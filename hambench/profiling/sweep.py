"""How a context module's cost grows with n = H*W: profile it at several sizes and fit cost ~ n^k."""

from __future__ import annotations

from typing import Any

from hambench.profiling.measure import PAPER_SHAPE, profile_module
from hambench.scaling import ExponentFit, fit_columns, sweep_fits, sweep_shapes


def profile_sweep(
    name: str, sizes: list[int], *, shape: tuple[int, ...] = PAPER_SHAPE, **kwargs: Any
) -> tuple[list[dict[str, Any]], dict[str, ExponentFit]]:
    """Profile ``name`` at H = W = each of ``sizes`` (batch and channels from ``shape``) and fit
    cost ~ n^k against n = H * W for MACs (torchprofile), latency and peak memory
    (``hambench.scaling.sweep_fits``: latency only above the timing floor). ``kwargs`` go to
    ``profile_module``.

    Returns (rows, {"macs": fit, "latency": fit, "memory": fit}); each row also carries
    ``sweep_size`` and the fits' columns (``exponent_<kind>``, ``_r2``, ``_n_min``, ``_n_max``, ``_points``).
    """
    if len(set(sizes)) < 2:
        raise ValueError(f"a sweep needs at least two different sizes, got {sizes}")
    rows = []
    for size, size_shape in zip(sizes, sweep_shapes(shape, sizes)):
        row = profile_module(name, shape=size_shape, **kwargs)
        row["sweep_size"] = size
        rows.append(row)
    fits = sweep_fits(rows)
    for row in rows:
        row.update(fit_columns(fits))
    return rows, fits
