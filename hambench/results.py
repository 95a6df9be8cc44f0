"""The results table as its readers see it: every column of the registered tasks, the options in one
spelling, the MAC count the summary and the report use, and the rows each reader keeps.

The column names are ``hambench.schema``'s; this module adds what needs the task registry (each
task's accuracy columns) and pandas. The summary (``hambench.stats``), the runner's tables
(``hambench.tuning``) and the report (``hambench.reports``) read a table through here, so all of
them see the same schema::

    table = normalise_results(pd.read_parquet(run_dir / "results.parquet"))
    rows = by_arm(reported_rows(table))  # the reported figures, a tuned suite's arms apart
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from hambench.schema import COST_COLUMNS, LATER_COLUMNS, MACS, MODEL_COST_COLUMNS, TRIAL_COLUMNS
from hambench.tasks import accuracy_columns
from hambench.trial import options_json

__all__ = [
    "REQUIRED_COLUMNS",
    "ResultsError",
    "by_arm",
    "canonical_options",
    "json_object",
    "normalise_results",
    "read_columns",
    "reported_rows",
    "result_columns",
    "search_rows",
    "with_macs",
]

# A table without these is no results table (the rest a reader adds, empty).
REQUIRED_COLUMNS = ["trial_id", "task", "module", "status"]


class ResultsError(ValueError):
    """A table that is not a results table (it lacks a required column)."""


# --- columns ------------------------------------------------------------------------------------


def result_columns() -> list[str]:
    """Every column a results table can have, in order (every registered task's metrics)."""
    return [*TRIAL_COLUMNS, *COST_COLUMNS, *accuracy_columns(), *MODEL_COST_COLUMNS]


def read_columns() -> list[str]:
    """The columns a reader can count on: those missing from a table are added, empty."""
    return [c for c in result_columns() if c not in LATER_COLUMNS]


# --- values -------------------------------------------------------------------------------------


def json_object(value: Any) -> dict[str, Any] | None:
    """A JSON-object column's value (``options``, ``tuned``) as a dict: a dict as it is, a JSON
    object's text parsed; None for anything else (empty, missing, not JSON, not an object)."""
    if isinstance(value, dict):
        return value
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None


def canonical_options(value: Any) -> str:
    """The trial's module options in the one spelling of ``hambench.trial.options_json`` (sorted
    keys), so equal options group together; ``{}`` when missing; text that is not JSON as written
    (it is escaped when shown)."""
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)) or value == "":
        return "{}"
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return value
    return options_json(value)


# --- tables -------------------------------------------------------------------------------------


def normalise_results(df: pd.DataFrame) -> pd.DataFrame:
    """Add the optional columns a task does not write (another task's metrics) as missing values
    and canonicalise the options, so every reader sees the full schema. ResultsError when a
    required column is missing."""
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ResultsError(f"the results table lacks the column(s) {missing}")
    df = df.copy()
    for col in read_columns():
        if col not in df.columns:
            df[col] = pd.NA
    # Options in one spelling; a table from before data-set options had none: "{}", so it pools with a new one.
    df["options"] = df["options"].map(canonical_options)
    df["data_options"] = df["data_options"].map(canonical_options)
    return df


def with_macs(df: pd.DataFrame) -> pd.DataFrame:
    """Add ``macs`` (``hambench.schema.MACS``): torchprofile's count (the tool the published VAN
    tables used), else fvcore's."""
    df = df.copy()
    nan = pd.Series(np.nan, index=df.index)
    tp = pd.to_numeric(df.get("macs_torchprofile", nan), errors="coerce")
    fv = pd.to_numeric(df.get("macs_fvcore", nan), errors="coerce")
    df[MACS] = tp.fillna(fv)
    return df


def search_rows(results: pd.DataFrame) -> pd.DataFrame:
    """The tuning search's rows (none in a table without the ``phase`` column)."""
    if "phase" not in results.columns:
        return results.iloc[:0]
    return results[results["phase"].astype("string").fillna("grid") == "search"]


def reported_rows(results: pd.DataFrame) -> pd.DataFrame:
    """The rows whose accuracy is a reported figure: every row but the tuning search's."""
    if "phase" not in results.columns:
        return results
    return results[results["phase"].astype("string").fillna("grid") != "search"]


def by_arm(results: pd.DataFrame) -> pd.DataFrame:
    """The rows with each retrain row of arm ``both`` (the search chose the defaults, so one set of
    runs is both the tuned and the default arm) given once per arm, for tables compared by arm."""
    if "arm" not in results.columns:
        return results
    both = results["arm"].astype("string").fillna("") == "both"
    if not both.any():
        return results
    copies = [results[both].assign(arm=arm) for arm in ("tuned", "default")]
    return pd.concat([results[~both], *copies], ignore_index=True)
