"""The ``profile`` task: a context module's cost at the suite's shape, then its n-sweep.

One step per size (the suite's ``profile.shape``, then H = W = each ``profile.sweep`` size; a
sweep size equal to the shape's takes the shape's measurement rather than timing it twice), a
checkpoint after each, so a trial retried after a node died skips the sizes it has measured; the
sweep's exponents are fitted as ``hambench profile --sweep`` fits them (``hambench.scaling``).
Every suite that has a ``profile:`` section gets one such trial per distinct module and options.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from hambench.schema import COST_COLUMNS
from hambench.tasks import PROFILE, Task, register_task

if TYPE_CHECKING:
    from hambench.tasks import TrialContext
    from hambench.trial import Trial


def cost_columns(row: dict[str, Any]) -> dict[str, Any]:
    """A profiler row's module-cost columns of ``results.parquet`` (its ``shape`` is ``profile_shape``)."""
    out = {k: row.get(k) for k in COST_COLUMNS if k != "profile_shape"}
    out["profile_shape"] = row.get("shape")
    return out


def run_profile(trial: Trial, ctx: TrialContext) -> dict[str, Any]:
    """Profile the trial's module at every size, reporting (and checkpointing) each."""
    from hambench.scaling import sweep_columns

    spec = trial.profile
    assert spec is not None
    shapes = profile_shapes(trial)
    state = ctx.restore() or {"rows": []}
    rows: list[dict[str, Any]] = state["rows"]
    for step in range(len(rows), len(shapes)):
        if step > 0 and shapes[step] == shapes[0]:  # the suite's shape again: its measurement, not a second
            row = dict(rows[0])
        else:
            row = measure_at(trial, shapes[step])
        row["sweep_size"] = None if step == 0 else spec.sweep[step - 1]
        rows.append(row)
        ctx.report({"iter": step + 1, **cost_columns(row)}, {"rows": rows})
    sweep = rows[1:]
    if len({r["sweep_size"] for r in sweep}) >= 2:
        exponents = sweep_columns(sweep)
        for r in sweep:
            r.update(exponents)
    main = rows[0]
    return {
        "iter": len(rows),
        **cost_columns(main),
        "device": main["device"],
        "device_name": main["device_name"],
        "profile_rows": json.dumps(rows, default=str),
    }


def profile_shapes(trial: Trial) -> list[tuple[int, int, int, int]]:
    """The input shapes a profiling trial measures: the suite's shape, then each sweep size."""
    from hambench.scaling import sweep_shapes

    assert trial.profile is not None
    shape = trial.profile.shape
    return [shape, *sweep_shapes(shape, trial.profile.sweep)]


def measure_at(trial: Trial, shape: tuple[int, ...]) -> dict[str, Any]:
    """The profiler's row of the trial's module at ``shape``, measured as its suite says."""
    from hambench.profiling import profile_module

    spec = trial.profile
    assert spec is not None
    return profile_module(
        trial.module,
        shape=shape,
        device=spec.device,
        dtype=spec.dtype,
        mode=spec.mode,
        options=dict(trial.options),
        max_time=spec.max_time,
        sdpa_backend=spec.sdpa_backend,
    )


def module_width(trial: Trial) -> int:
    """The profile shape's channels."""
    assert trial.profile is not None
    return trial.profile.shape[1]


register_task(
    Task(
        name=PROFILE,
        order=0,
        section="profile",
        alone_on_device=True,
        run=run_profile,
        module_width=module_width,
    )
)
