"""``hambench export``'s reading of a run folder: a trial as it ran (the ``Trial`` its Tune trial was
given), or the trial of a module's best configuration, and the task's standalone config of it.

    cfg = exported_config(Path("runs/quickstart/20261205-193101"), module="ham-nmf")
    cfg = exported_config(run_dir, trial_id="seg-ocr-tiny-d8-synthetic-context-s1", overrides={"iters": 160000})
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from hambench.results import by_arm, normalise_results, reported_rows
from hambench.stats import config_keys, summarize
from hambench.tasks import get_task
from hambench.trial import Trial
from hambench.tuning.rundir import SuiteRunError
from hambench.tuning.trainable import local_folder


def exported_config(
    run_dir: Path, *, trial_id: str | None = None, module: str | None = None, overrides: Mapping[str, Any] = {}
) -> tuple[str, dict[str, Any]]:
    """(the trial id, its task's standalone config) of trial ``trial_id``, or of the best
    configuration of ``module`` (its lowest seed), with ``overrides`` of the task config's fields."""
    if (trial_id is None) == (module is None):
        raise SuiteRunError("give a trial id or a module, not both")
    trial_id = trial_id if trial_id is not None else best_trial(run_dir, str(module))
    trial = trial_of(run_dir, trial_id)
    task = get_task(trial.task)
    if task.export is None:
        raise SuiteRunError(f"{trial_id}: task {trial.task!r} has no standalone export (seg trials export to mmseg)")
    return trial_id, task.export(trial, overrides)


def trial_of(run_dir: Path, trial_id: str) -> Trial:
    """The ``Trial`` trial ``trial_id`` of the run was given (its Tune trial's ``params.json``)."""
    experiment = _experiment(run_dir)
    params = experiment / trial_id[:120] / "params.json"  # the driver names trial folders by id
    if not params.is_file():
        known = sorted(p.parent.name for p in experiment.glob("*/params.json"))
        raise SuiteRunError(f"{run_dir}: no trial {trial_id!r}; its trials: {', '.join(known) or 'none'}")
    return Trial.model_validate(json.loads(params.read_text())["trial"])


def best_trial(run_dir: Path, module: str) -> str:
    """The lowest-seed trial of ``module``'s best configuration in the run: the best rank on its
    task's headline metric, then the best mean (over every data set and level the run compared)."""
    results = _results(run_dir)
    summary = summarize(results)
    rows = summary[(summary["module"] == module) & summary["headline"].astype(bool) & (summary["n"] > 0)]
    if rows.empty:
        trained = sorted(summary.loc[summary["n"] > 0, "module"].dropna().unique())
        raise SuiteRunError(f"{run_dir}: no finished trial of {module!r}; modules: {', '.join(trained) or 'none'}")
    order = rows.assign(
        _rank=rows["rank"].astype("Float64").fillna(float("inf")),
        _score=[-m if s == "max" else m for m, s in zip(rows["mean"], rows["sense"])],
    ).sort_values(["_rank", "_score"])
    best = order.iloc[0]
    trials = normalise_results(by_arm(reported_rows(results)))
    trials = trials[trials["status"] == "ok"]
    keys = [k for k in config_keys(trials) if k in summary.columns and k not in ("iters", "profile_shape")]
    text = trials[keys].astype("string").fillna("")
    wanted = pd.Series({k: "" if pd.isna(best[k]) else str(best[k]) for k in keys})
    match = trials[(text == wanted).all(axis=1)]
    return str(match.sort_values("seed")["trial_id"].iloc[0])


def _results(run_dir: Path) -> pd.DataFrame:
    path = run_dir / "results.parquet"
    if not path.is_file():
        raise SuiteRunError(f"{run_dir}: no results.parquet; expected a run folder <out>/<suite>/<run-id>/")
    return pd.read_parquet(path)


def _experiment(run_dir: Path) -> Path:
    """The run's Tune experiment folder (``meta.json``'s ``experiment``; local runs only)."""
    meta_path = run_dir / "meta.json"
    if not meta_path.is_file():
        raise SuiteRunError(f"{run_dir}: no meta.json; expected a run folder <out>/<suite>/<run-id>/")
    experiment = str(json.loads(meta_path.read_text()).get("experiment") or "")
    if not experiment:
        return run_dir
    folder = local_folder(experiment)  # None for remote storage (s3://, gs://)
    if folder is None:
        raise SuiteRunError(f"{run_dir}: its trials are stored at {experiment}; export reads a local run folder")
    return folder
