"""The suite's checks of grid values against what is registered: modules and their options
(``hambench.registry``), backbones and data sets (each task's ``grid_choices``), and which pairs
of columns may share a front (``check_axes``). Each error names the field and the valid values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hambench.registry import RegistryError, check_options, get_spec
from hambench.schema import MODEL_COSTS, MODULE_COSTS
from hambench.tasks import accuracy_columns, get_task, task_metrics


def _choice_ok(value: str, choices: list[str]) -> bool:
    """``value`` is one of ``choices``, or extends the prefix of a ``PREFIX:<...>`` entry (timm:<model>)."""
    prefixes = [c.split("<", 1)[0] for c in choices if c.endswith(">")]
    return value in choices or any(value.startswith(p) and len(value) > len(p) for p in prefixes)


_NOUNS = {"backbones": "backbone", "data": "data set"}  # an axis's values, in an error message


def grid_errors(grids: Mapping[int, Any], task: str) -> list[str]:
    """Every bad value of the grids (index -> grid): unknown modules, options a module does not
    have, backbones and data sets the task does not know. Each names the field and the valid values.
    ``grids``: index -> a parsed ``hambench.suite.Grid``."""
    declared = get_task(task).grid_choices
    choices = dict(declared()) if declared is not None else {}
    option_errors = get_task(task).data_option_errors
    errors = []
    for g, grid in grids.items():
        for m, entry in enumerate(grid.modules):
            where = f"grid[{g}].modules[{m}]"
            try:
                get_spec(entry.name)
            except RegistryError as exc:  # the registry's one wording, with the valid modules
                errors.append(f"{where}: {exc}")
                continue
            for key in sorted({k for p in entry.points() for k in p}):
                append_option_error(errors, f"{where}.options.{key}", entry.name, key)
            for key in sorted(grid.options):
                append_option_error(errors, f"grid[{g}].options.{key}", entry.name, key)
        for axis, values in choices.items():
            given = getattr(grid, axis)
            named = enumerate(given) if isinstance(given, list) else [(None, given)]  # a list axis, or one value (head)
            for i, value in named:
                value = getattr(value, "name", value)  # a data entry: its name; its options below
                if not _choice_ok(value, list(values)):
                    where = f"grid[{g}].{axis}" + (f"[{i}]" if i is not None else "")
                    errors.append(f"{where}: unknown {_NOUNS.get(axis, axis)} {value!r}; valid: {', '.join(values)}")
        for d, entry in enumerate(grid.data):
            points = [p for p in entry.points() if p]
            if not points or ("data" in choices and not _choice_ok(entry.name, list(choices["data"]))):
                continue  # no options, or an unknown data set (reported above)
            if option_errors is None:
                errors.append(f"grid[{g}].data[{d}].options: task {task}'s data sets take no options")
                continue
            found = dict.fromkeys(e for p in points for e in option_errors(entry.name, p))
            errors.extend(f"grid[{g}].data[{d}].options: {e}" for e in found)
    return errors


def append_option_error(errors: list[str], where: str, module: str, key: str) -> None:
    try:
        check_options(module, {key: None})
    except RegistryError as exc:
        errors.append(f"{where}: {exc}")


def check_axes(x: str, y: str, task: str, profiled: bool = True) -> str | None:
    """Why (x, y) cannot be a front of a ``task`` suite (one line), or None when it can.

    ``profiled``: the suite has a ``profile:`` section (the module view needs one).
    """
    metrics = task_metrics(task)
    if y in accuracy_columns():
        if y not in metrics:
            valid = ", ".join(metrics) or "none (a profile suite measures cost only)"
            costs = ", ".join(MODULE_COSTS)
            return f"y: {y!r} is not a metric of a {task} suite; valid: {valid}, or a module cost ({costs})"
        if x not in MODEL_COSTS:
            why = " is the context module's cost, not the trained model's;" if x in MODULE_COSTS else ":"
            return f"x: {x!r}{why} an accuracy front needs a whole-model cost: one of {', '.join(MODEL_COSTS)}"
        return None
    if y in MODULE_COSTS:
        if not profiled:
            return f"y: {y!r} is a module cost, but the suite has no `profile:` section to measure it"
        if x not in MODULE_COSTS or x == y:
            others = ", ".join(c for c in MODULE_COSTS if c != y)
            return f"x: {x!r}: a module-cost view needs another module cost: one of {others}"
        return None
    valid = ", ".join(list(metrics) + list(MODULE_COSTS))
    return f"y: {y!r} is neither a metric nor a cost; valid: {valid}"
