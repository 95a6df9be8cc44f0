"""The results table's columns (``results.parquet``, one row per trial): one home for the names.

The trainable writes them (``hambench.tuning.tables``), the report and the summary read them
(``hambench.reports.runs``, ``hambench.stats``); docs/suites.md ("What a run leaves") describes them. A row has, in order:

- ``TRIAL_COLUMNS``: what the trial was and how it ended;
- ``COST_COLUMNS``: the context module's cost at the suite's profile shape (its profiling trial's,
  copied onto the training rows of the same module and options);
- the accuracy metrics of the row's task (``hambench.tasks``: each task declares its own and
  which way is better);
- ``MODEL_COST_COLUMNS``: a training trial's whole trained model (``hambench.profiling.model_cost``).

A profiling trial's rows of ``profile.parquet`` also carry the n-sweep's exponent columns
(``EXPONENT_COLUMNS``, from ``hambench.scaling``). No heavy import here: the suite and the
report read this module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hambench.scaling import EXPONENT_COLUMNS

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["COST_COLUMNS", "EXPONENT_COLUMNS", "LATER_COLUMNS", "MODEL_COST_COLUMNS", "TRIAL_COLUMNS",
           "VAL_PREFIX", "by_arm", "read_columns", "reported_rows", "result_columns", "search_rows"]

TRIAL_COLUMNS = [
    "suite", "run_id", "trial_id", "task", "module", "family", "backbone", "head", "data", "seed",
    "options",  # what the module was built with (defaults filled in, widths derived)
    "options_given",  # what the suite gave
    "iters", "status", "error", "node", "device", "device_name", "seconds",
    "started_at", "ended_at",  # unix seconds: when the trial's task began and ended on its node
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
    "params", "macs_fvcore", "macs_torchprofile", "flops_torch", "latency_ms", "latency_iqr_ms",
    "peak_mem_bytes", "profile_shape",
]
# The whole trained model: the costs (hambench.axes.MODEL_COSTS), fvcore's count beside
# torchprofile's, the latency's IQR, the shape it was measured at, and what measuring took.
MODEL_COST_COLUMNS = [
    "model_params", "model_macs", "model_macs_fvcore", "model_latency_ms", "model_latency_iqr_ms",
    "model_peak_mem_bytes", "model_shape", "model_cost_seconds", "model_cost_error",
]
# Written by every run today, absent from older tables; readers do not invent them (an empty
# ``head`` would read as a head named NA).
LATER_COLUMNS = ("head", "options_given", "started_at", "ended_at", "phase", "split", "sample", "arm", "tuned")


def result_columns() -> list[str]:
    """Every column a results table can have, in order (every registered task's metrics)."""
    from hambench.tasks import accuracy_columns

    return [*TRIAL_COLUMNS, *COST_COLUMNS, *accuracy_columns(), *MODEL_COST_COLUMNS]


def read_columns() -> list[str]:
    """The columns a reader can count on: those missing from a table are added, empty."""
    return [c for c in result_columns() if c not in LATER_COLUMNS]


def search_rows(results: "pd.DataFrame") -> "pd.DataFrame":
    """The tuning search's rows (none in a table without the ``phase`` column)."""
    if "phase" not in results.columns:
        return results.iloc[:0]
    return results[results["phase"].astype("string").fillna("grid") == "search"]


def reported_rows(results: "pd.DataFrame") -> "pd.DataFrame":
    """The rows whose accuracy is a reported figure: every row but the tuning search's."""
    if "phase" not in results.columns:
        return results
    return results[results["phase"].astype("string").fillna("grid") != "search"]


def by_arm(results: "pd.DataFrame") -> "pd.DataFrame":
    """The rows with each retrain row of arm ``both`` (the search chose the defaults, so one set of
    runs is both the tuned and the default arm) given once per arm, for tables compared by arm."""
    if "arm" not in results.columns:
        return results
    both = results["arm"].astype("string").fillna("") == "both"
    if not both.any():
        return results
    import pandas as pd

    copies = [results[both].assign(arm=arm) for arm in ("tuned", "default")]
    return pd.concat([results[~both], *copies], ignore_index=True)
