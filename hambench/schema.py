"""The results table's columns (``results.parquet``, one row per trial) and which of them may share a
figure: one home for the names. Pure constants: this base module imports nothing of hambench.

The trainable writes the table (``hambench.tuning.tables``); the summary and the report read it
through ``hambench.results`` (which adds the columns of the registered tasks); a suite's
``pareto:`` is validated against the axes named here (``hambench.suite``); docs/suites.md ("What a
run leaves") describes the columns. A row has, in order:

- ``TRIAL_COLUMNS``: what the trial was and how it ended;
- ``COST_COLUMNS``: the context module's cost at the suite's profile shape (its profiling trial's,
  copied onto the training rows of the same module and options);
- the accuracy metrics of the row's task (``hambench.tasks``: each task declares its own and
  which way is better);
- ``MODEL_COST_COLUMNS``: a training trial's whole trained model (``hambench.profiling.model_cost``).

A profiling trial's rows of ``profile.parquet`` also carry the n-sweep's exponent columns
(``hambench.scaling.EXPONENT_COLUMNS``).

Two kinds of cost, never on one axis:

- the **whole trained model** (``model_*``, ``MODEL_COSTS``): the model that produced the accuracy,
  at its training crop (a GAN: its generator at the output size), batch 1, inference. Accuracy
  fronts use these.
- the **context module alone** (``macs``, ``latency_ms``, ..., ``MODULE_COSTS``): at the suite's
  profile shape. It has its own cost-vs-cost view; an accuracy against it would place a trained
  model at the cost of one of its parts.
"""

from __future__ import annotations

__all__ = [
    "COST_COLUMNS",
    "DEFAULT_MODULE_AXES",
    "LATER_COLUMNS",
    "MACS",
    "MODEL_COSTS",
    "MODEL_COST_COLUMNS",
    "MODULE_COSTS",
    "REFERENCE_COLUMNS",
    "REFERENCE_COSTS",
    "TRIAL_COLUMNS",
    "TUNE_RESULT_KEYS",
    "VAL_PREFIX",
]

TRIAL_COLUMNS = [
    "suite",
    "run_id",
    "trial_id",
    "task",
    "module",
    "family",
    "backbone",
    "head",
    "data",
    "data_options",  # JSON: the data set's options (a probe's level; {}: none)
    "seed",
    "options",  # what the module was built with (defaults filled in, widths derived)
    "options_given",  # what the suite gave
    "iters",
    "status",
    "error",
    "node",
    "device",
    "device_name",
    "seconds",
    "started_at",
    "ended_at",  # unix seconds: when the trial's task began and ended on its node
    # The tuning protocol (hambench.tuning.search; a plain grid run: phase "grid", split "standard"):
    "phase",  # grid | search (a sample, scored on val) | retrain (the chosen or the default configuration, on test)
    "split",  # what the metric columns were measured on: standard | val | test
    "sample",  # search: the sample's index (0: the defaults); retrain, tuned arm: the sample chosen
    "arm",  # retrain: tuned | default | both (the defaults were chosen: these runs serve both arms)
    "tuned",  # JSON: the values the search set (lr, weight_decay, a module option, ...)
]
# A search row's accuracy is a validation score that selects a configuration, never a reported
# figure: it is written under these names (val_mIoU, ...) and its task's metric columns stay empty.
VAL_PREFIX = "val_"
COST_COLUMNS = [
    "params",
    "macs_fvcore",
    "macs_torchprofile",
    "flops_torch",
    "flops_analytic",  # FLOPs the module declares for ops no counter sees (0: none declared)
    "flops_total",  # flops_torch + flops_analytic
    "analytic_ops",  # JSON: op -> declared FLOPs ({}: none)
    "latency_ms",
    "latency_iqr_ms",
    "peak_mem_bytes",
    "profile_shape",
]
# The whole trained model: the costs (MODEL_COSTS), fvcore's count beside torchprofile's, the
# latency's IQR, the shape it was measured at, and what measuring took.
MODEL_COST_COLUMNS = [
    "model_params",
    "model_macs",
    "model_macs_fvcore",
    "model_latency_ms",
    "model_latency_iqr_ms",
    "model_peak_mem_bytes",
    "model_shape",
    "model_cost_seconds",
    "model_cost_error",
]
# Written by every run today, absent from older tables; readers do not invent them (an empty
# ``head`` would read as a head named NA).
LATER_COLUMNS = (
    "head",
    "options_given",
    "started_at",
    "ended_at",
    "phase",
    "split",
    "sample",
    "arm",
    "tuned",
)

# The context module's MAC count as the summary and the report read it: torchprofile's (the tool
# the published VAN tables used), else fvcore's (``hambench.results.with_macs`` adds it).
MACS = "macs"

# --- what may go on an axis ---------------------------------------------------------------------

# The whole trained model: column -> axis title.
MODEL_COSTS = {
    "model_macs": "MACs (torchprofile)",
    "model_params": "parameters",
    "model_latency_ms": "latency (ms)",
    "model_peak_mem_bytes": "peak memory (bytes)",
}
# The context module alone at the profile shape: column -> axis title.
MODULE_COSTS = {
    MACS: "MACs (torchprofile)",
    "macs_fvcore": "MACs (fvcore)",
    "macs_torchprofile": "MACs (torchprofile)",
    "flops_torch": "FLOPs (torch)",
    "flops_total": "FLOPs (torch + analytic)",
    "params": "parameters",
    "latency_ms": "latency (ms)",
    "peak_mem_bytes": "peak memory (bytes)",
}
# The module view drawn when a suite names no cost-vs-cost axes: (x, y).
DEFAULT_MODULE_AXES = [(MACS, "latency_ms"), (MACS, "peak_mem_bytes")]

# Published whole-model costs (references.csv): model column -> (reference column, scale to raw units).
# Published points are whole models, so they go on whole-model axes only.
REFERENCE_COSTS = {"model_macs": ("gmacs", 1e9), "model_params": ("params_M", 1e6)}
# Columns a references file must have.
REFERENCE_COLUMNS = [
    "source",
    "url",
    "task",
    "dataset",
    "method",
    "backbone",
    "family",
    "crop",
    "mIoU",
    "fid",
    "params_M",
    "gmacs",
]

# --- never a column of ours ---------------------------------------------------------------------

# The keys Ray Tune adds to every result a trial reports: not the trial's metrics, so neither in its
# history (history.parquet) nor in the done record of a sample the search stopped.
TUNE_RESULT_KEYS = frozenset(
    {
        "trial_id",
        "date",
        "hostname",
        "node_ip",
        "pid",
        "experiment_tag",
        "timestamp",
        "training_iteration",
        "time_this_iter_s",
        "time_since_restore",
        "iterations_since_restore",
        "checkpoint_dir_name",
        "should_checkpoint",
        "time_total_s",
        "done",
        "config",
    }
)
