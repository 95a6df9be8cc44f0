"""Pareto fronts over mixed minimise / maximise objectives.

A point *dominates* another when it is at least as good on every objective and strictly better on
one. The front is the set of points no other point dominates. Points with a missing (NaN) value in
any objective are never on the front and never dominate anything: an unknown cost is not a cheap
one. Equal points do not dominate each other, so ties are all on the front.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SENSES = ("min", "max")


def pareto_mask(values: np.ndarray | Sequence[Sequence[float]], senses: Sequence[str]) -> np.ndarray:
    """Boolean mask of the non-dominated rows of ``values`` (n points, k objectives).

    ``senses[j]`` is ``"min"`` or ``"max"`` for objective ``j``. O(n^2 k), fine for the hundreds of
    trials a report holds.
    """
    points = np.asarray(values, dtype=float)
    if points.ndim == 1:  # a single objective, one value per point
        points = points[:, None]
    if points.ndim != 2:
        raise ValueError(f"values must be a 2-D array (points x objectives), got shape {points.shape}")
    if len(senses) != points.shape[1]:
        raise ValueError(f"got {len(senses)} senses for {points.shape[1]} objectives")
    bad = [s for s in senses if s not in SENSES]
    if bad:
        raise ValueError(f"each sense must be one of {SENSES}, got {bad}")

    # Turn every objective into one to minimise.
    signs = np.array([1.0 if s == "min" else -1.0 for s in senses])
    costs = points * signs  # (n, k)
    valid = ~np.isnan(costs).any(axis=1)  # (n,)
    front = valid.copy()
    for i in np.flatnonzero(valid):
        others = costs[valid]
        no_worse = (others <= costs[i]).all(axis=1)
        better = (others < costs[i]).any(axis=1)
        front[i] = not (no_worse & better).any()
    return front


def front_order(x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Indices of the front points sorted by cost ``x`` (then by ``y``): the order of the step line."""
    idx = np.flatnonzero(mask)
    return idx[np.lexsort((np.asarray(y)[idx], np.asarray(x)[idx]))]
