"""The run's tables from Tune's results: ``results.parquet`` (one row per trial, the columns of
``hambench.schema``), ``profile.parquet``, ``history.parquet``, ``summary.csv`` and ``pairs.csv``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from hambench.io import atomic_write
from hambench.schema import COST_COLUMNS, MODEL_COST_COLUMNS, TUNE_RESULT_KEYS, VAL_PREFIX
from hambench.stats import aggregates, curve_area, improvements, summarize
from hambench.suite import Suite
from hambench.tasks import PROFILE, get_task, task_order
from hambench.trial import Trial, options_json


def write_parquet(path: Path, df: pd.DataFrame) -> None:
    atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))


def write_summary(run_dir: Path, results: pd.DataFrame) -> Path:
    """``summary.csv``: ``hambench.stats.summarize`` of the results table (n, mean, 95 % interval,
    rank with ties, costs per configuration), and its companions: ``pairs.csv``, the probability of
    improvement of every pair of configurations compared (``hambench.stats.improvements``), and,
    for a run of two or more comparisons, ``aggregates.csv`` (``hambench.stats.aggregates``); each
    written atomically; the report computes the same."""
    summary, pairs, aggregate = summarize(results), improvements(results), aggregates(results)
    atomic_write(run_dir / "pairs.csv", lambda tmp: pairs.to_csv(tmp, index=False))
    if not aggregate.empty:  # two or more comparisons
        atomic_write(run_dir / "aggregates.csv", lambda tmp: aggregate.to_csv(tmp, index=False))
    return atomic_write(run_dir / "summary.csv", lambda tmp: summary.to_csv(tmp, index=False))


def _trial_row(suite: Suite, run_id: str, trial: Trial, metrics: dict[str, Any], error: Any) -> dict[str, Any]:
    status = metrics.get("status")
    if error is not None or status not in ("ok", "stopped"):  # stopped: cut by the search's scheduler
        status = "failed"
    err = metrics.get("error") or ""
    if error is not None:  # Tune-level failure: the trial's process or node died beyond its retries
        err = f"{type(error).__name__}: {error}"
    given = options_json(trial.options)
    row = {
        "suite": suite.name,
        "run_id": run_id,
        "trial_id": trial.trial_id,
        "task": trial.task,
        "module": trial.module,
        "family": trial.family,
        "backbone": trial.backbone,
        "head": trial.head,
        "data": trial.data,
        "data_options": options_json(trial.data_options),
        "seed": trial.seed,
        # What the module was built with (a done record from before resolved options: as given).
        "options": metrics.get("resolved_options") or given,
        "options_given": given,
        "iters": metrics.get("iters", metrics.get("iter")),
        "status": status,
        "error": err,
        "node": metrics.get("node"),
        "device": metrics.get("device"),
        "device_name": metrics.get("device_name"),
        "seconds": metrics.get("seconds"),
        "started_at": metrics.get("started_at"),
        "ended_at": metrics.get("ended_at"),
        "phase": trial.phase,
        "split": trial.split,
        "sample": trial.sample,
        "arm": trial.arm,
        "tuned": options_json(trial.tuned) if trial.tuned else "",
    }
    task = get_task(trial.task)
    for col in COST_COLUMNS:
        row[col] = metrics.get(col)
    for col in task.columns:  # a search sample's score selects, it is not a figure: val_<metric>
        row[VAL_PREFIX + col if trial.phase == "search" else col] = metrics.get(col)
    if task.trains:  # the trained model's own cost, measured in the trial
        for col in MODEL_COST_COLUMNS:
            row[col] = metrics.get(col)
    return row


def _profile_rows(trial: Trial, metrics: dict[str, Any]) -> list[dict[str, Any]]:
    rows = json.loads(metrics.get("profile_rows") or "[]")
    given = options_json(trial.options)
    for r in rows:
        r.update(
            trial_id=trial.trial_id,
            node=metrics.get("node"),
            options=metrics.get("resolved_options") or given,
            options_given=given,
        )
        r["uncounted_ops"] = json.dumps(r.get("uncounted_ops") or [])
    return rows


def _history_rows(trial: Trial, df: pd.DataFrame | None) -> pd.DataFrame:
    if df is None or df.empty or "iter" not in df.columns:
        return pd.DataFrame()
    keep = [
        c for c in df.columns if c == "iter" or (pd.api.types.is_numeric_dtype(df[c]) and c not in TUNE_RESULT_KEYS)
    ]
    out = df[keep].dropna(subset=["iter"]).copy()
    out.insert(0, "trial_id", trial.trial_id)
    # After a retry from a checkpoint the steps since that checkpoint are reported again: keep the last.
    return out.drop_duplicates(subset=["trial_id", "iter"], keep="last")


def collect_tables(
    suite: Suite,
    run_id: str,
    results: Any,
    records: dict[str, dict[str, Any]] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """results, profile and history tables from Tune results (one ``ResultGrid`` or several
    chained); each trial appears once. ``records``: done records by trial id, read instead of a
    trial's last Tune result (for a search sample its scheduler stopped, that is a mere step)."""
    rows, profile, history = {}, [], []
    for result in results:
        trial = Trial.model_validate(result.config["trial"])
        metrics = result.metrics or {}
        if trial.trial_id in (records or {}):  # its own final record: Tune's last result of a stopped trial is a step
            metrics = records[trial.trial_id]  # type: ignore[index]
        rows[trial.trial_id] = _trial_row(suite, run_id, trial, metrics, result.error)
        profile.extend(_profile_rows(trial, metrics))  # a profiling trial's rows; none for the others
        history.append(_history_rows(trial, result.metrics_dataframe))
    table = pd.DataFrame(list(rows.values()))
    prof = pd.DataFrame(profile)
    # Training rows carry their module's cost, measured by the profiling trial of the same options
    # as the suite gave them: the resolved ones differ (a seg head is wider than the profile shape).
    if not table.empty and (table["task"] == PROFILE).any():
        cost = table[table["task"] == PROFILE].set_index(["module", "options_given"])[COST_COLUMNS]
        train = table["task"] != PROFILE
        for i in table.index[train]:
            key = (table.at[i, "module"], table.at[i, "options_given"])
            if key in cost.index:
                for col in COST_COLUMNS:
                    table.at[i, col] = cost.at[key, col]
    if "sample" in table:  # a sample index, empty outside the search (not a float)
        table["sample"] = pd.array(table["sample"], dtype="Int64")
    table = table.sort_values(["task", "trial_id"], key=lambda s: s.map(task_order) if s.name == "task" else s)
    hist = (
        pd.concat([h for h in history if not h.empty], ignore_index=True)
        if any(not h.empty for h in history)
        else pd.DataFrame(columns=["trial_id", "iter"])
    )
    return with_curve_areas(table, hist).reset_index(drop=True), prof, hist


def with_curve_areas(table: pd.DataFrame, hist: pd.DataFrame) -> pd.DataFrame:
    """Each training row's learning-speed metrics (a task metric with ``area_of``: the normalised
    area under the curve of another, ``hambench.stats.curve_area``), from the trial's evaluations
    in the history: Tune keeps them across restores, so a resumed trial's curve is whole. A search
    sample's goes under ``val_``, as its other scores."""
    if table.empty or hist.empty:
        return table
    table = table.copy()
    curves = {tid: grp for tid, grp in hist.groupby("trial_id", sort=False)}
    for i in table.index:
        task, trial_id = table.at[i, "task"], table.at[i, "trial_id"]
        grp = curves.get(trial_id)
        if task == PROFILE or grp is None:
            continue
        prefix = VAL_PREFIX if table.at[i, "phase"] == "search" else ""
        for m in get_task(task).metrics:
            if m.area_of is not None and m.area_of in grp:
                table.loc[i, prefix + m.name] = curve_area(grp["iter"], grp[m.area_of])
    return table
