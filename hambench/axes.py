"""What a report may put on an axis, and which pairs compare like with like.

One home for the names: a suite's ``pareto:`` is validated against them (``hambench.suite``),
trials write the whole-model columns (``hambench.schema``) and the report draws them
(``hambench.reports``). The metrics themselves, and which way is better, are the tasks'
declarations (``hambench.tasks``).

Two kinds of cost, never on one axis:

- the **whole trained model** (``model_*``): the model that produced the accuracy, at its training
  crop (a GAN: its generator at the output size), batch 1, inference. Accuracy fronts use these.
- the **context module alone** (``macs``, ``latency_ms``, ...): at the suite's profile shape. It has
  its own cost-vs-cost view; an accuracy against it would place a trained model at the cost of one
  of its parts.
"""

from __future__ import annotations

from hambench import schema as _schema

# The whole trained model: column -> axis title.
MODEL_COSTS = {
    "model_macs": "MACs (torchprofile)",
    "model_params": "parameters",
    "model_latency_ms": "latency (ms)",
    "model_peak_mem_bytes": "peak memory (bytes)",
}
MODEL_COST_COLUMNS = _schema.MODEL_COST_COLUMNS  # every whole-model column a trial writes (their home: hambench.schema)

# The context module alone at the profile shape: column -> axis title. ``macs`` is torchprofile's
# count, fvcore's where torchprofile has none (the report's convention).
MODULE_COSTS = {
    "macs": "MACs (torchprofile)",
    "macs_fvcore": "MACs (fvcore)",
    "macs_torchprofile": "MACs (torchprofile)",
    "flops_torch": "FLOPs (torch)",
    "params": "parameters",
    "latency_ms": "latency (ms)",
    "peak_mem_bytes": "peak memory (bytes)",
}
# The module view drawn when a suite names no cost-vs-cost axes: (x, y).
DEFAULT_MODULE_AXES = [("macs", "latency_ms"), ("macs", "peak_mem_bytes")]

# Published whole-model costs (references.csv): model column -> (reference column, scale to raw units).
# Published points are whole models, so they go on whole-model axes only.
REFERENCE_COSTS = {"model_macs": ("gmacs", 1e9), "model_params": ("params_M", 1e6)}
# Columns a references file must have.
REFERENCE_COLUMNS = ["source", "url", "task", "dataset", "method", "backbone", "family", "crop", "mIoU", "fid",
                     "params_M", "gmacs"]


def check_axes(x: str, y: str, task: str, profiled: bool = True) -> str | None:
    """Why (x, y) cannot be a front of a ``task`` suite (one line), or None when it can.

    ``profiled``: the suite has a ``profile:`` section (the module view needs one).
    """
    from hambench.tasks import accuracy_columns, task_metrics

    metrics = task_metrics(task)
    if y in accuracy_columns():
        if y not in metrics:
            valid = ", ".join(metrics) or "none (a profile suite measures cost only)"
            return f"y: {y!r} is not a metric of a {task} suite; valid: {valid}, or a module cost ({', '.join(MODULE_COSTS)})"
        if x not in MODEL_COSTS:
            why = " is the context module's cost, not the trained model's;" if x in MODULE_COSTS else ":"
            return f"x: {x!r}{why} an accuracy front needs a whole-model cost: one of {', '.join(MODEL_COSTS)}"
        return None
    if y in MODULE_COSTS:
        if not profiled:
            return f"y: {y!r} is a module cost, but the suite has no `profile:` section to measure it"
        if x not in MODULE_COSTS or x == y:
            return f"x: {x!r}: a module-cost view needs another module cost: one of {', '.join(c for c in MODULE_COSTS if c != y)}"
        return None
    valid = ", ".join(list(metrics) + list(MODULE_COSTS))
    return f"y: {y!r} is neither a metric nor a cost; valid: {valid}"
