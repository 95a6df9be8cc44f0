"""The tuning protocol: the same search for every module, selection on validation, figures on test.

A suite with a ``tune:`` section (``hambench.suite.TuneSpec``) runs in two phases:

1. **Search** (``search_trials``). Every grid point (a module with its options, a backbone, a data
   set) gets ``samples`` configurations. Sample i takes the shared space's i-th draw, the same
   values for every module (common random numbers: no module is luckier in what it is offered),
   and a draw from its module's own space; sample 0 is the defaults when ``defaults_first``. Each
   sample trains on the train split with its own seed (``tune.seed + i``, never a reported seed)
   and is scored on the validation split. ``PointScheduler`` gives every grid point its own
   ASHA (Ray Tune's ``AsyncHyperBandScheduler``): a sample is only ever compared with samples of
   its own module, at the same rungs (``grace``, ``grace·reduction``, ...), so every module gets
   the same samples, the same schedule and the same cap; ASHA's cuts depend on the scores, so the
   iterations a module spends can differ (``scheduler: fifo`` runs every sample to the end).
2. **Retrain** (``choose``, ``retrain_trials``). Per grid point, the sample with the best final
   validation score among those that ran the whole budget (ties: the lower index) is retrained
   with the grid's seeds and scored on the test split (the *tuned* arm), beside the defaults
   retrained alike (the *default* arm). When the defaults were chosen, one set of runs is both
   arms (``arm: both``; ``hambench.results.by_arm`` gives it once per arm).
"""

from __future__ import annotations

import dataclasses
import json
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from ray import tune
from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, TrialScheduler

from hambench.schema import TUNE_RESULT_KEYS
from hambench.suite import Point, Suite
from hambench.tasks import get_task, metric_sense, resolved_options
from hambench.trial import Trial
from hambench.tuning.trainable import write_done

SEARCH, RETRAIN = "search", "retrain"
TIME_ATTR = "iter"  # what ASHA counts: the training iteration of each evaluation's report


def search_metric(suite: Suite) -> str:
    """The metric the search selects on: ``tune.metric``, else the task's headline."""
    assert suite.tune is not None
    return suite.tune.metric or get_task(suite.task).columns[0]


# --- drawing the samples -----------------------------------------------------------------------


def _domain(spec: dict[str, list[Any]]) -> Any:
    ((kind, args),) = spec.items()
    return tune.choice(args) if kind == "choice" else getattr(tune, kind)(*args)


def _draw(space: dict[str, dict[str, list[Any]]], n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """``n`` draws of ``space`` (key order as written), as plain Python values."""
    plain = lambda v: v.item() if isinstance(v, np.generic) else v  # noqa: E731  (JSON and YAML read them)
    return [{k: plain(_domain(spec).sample(random_state=rng)) for k, spec in space.items()} for _ in range(n)]


def draw_samples(suite: Suite, module: str) -> list[dict[str, Any] | None]:
    """The ``samples`` configurations of a grid point of ``module``: None for the defaults
    (sample 0 when ``defaults_first``), else the values the search sets (shared, then the
    module's own). The shared draws depend on ``tune.seed`` only: equal for every module."""
    spec = suite.tune
    assert spec is not None
    start = 1 if spec.defaults_first else 0
    drawn = spec.samples - start
    shared = _draw(spec.space, drawn, np.random.default_rng(spec.seed))
    own_space = spec.modules.get(module, {})
    own = _draw(own_space, drawn, np.random.default_rng([spec.seed, zlib.crc32(module.encode())]))
    return [None] * start + [{**s, **o} for s, o in zip(shared, own)]


def _applied(suite: Suite, point: Point, values: dict[str, Any]) -> dict[str, Any]:
    """The Trial fields of ``point`` with ``values`` set: budget fields in its budget, the module's
    options in its options, the rest in its task options (the task config's fields)."""
    assert suite.budget is not None and suite.tune is not None
    module_keys = set(suite.tune.modules.get(point.module, {}))
    budget_keys = set(get_task(suite.task).budget_fields)
    return dict(
        budget=suite.budget.model_copy(
            update={k: v for k, v in values.items() if k in budget_keys and k not in module_keys}
        ),
        options={**point.options, **{k: v for k, v in values.items() if k in module_keys}},
        task_options={**point.task_options, **{k: v for k, v in values.items() if k not in budget_keys | module_keys}},
    )


def default_values(suite: Suite, point: Point) -> dict[str, Any]:
    """What the defaults are for the keys the search sets: the budget's value, else the task
    config's default, and the module's options as built (None: the task decides at run time, e.g.
    seg's learning rate per data set)."""
    assert suite.tune is not None and suite.budget is not None
    task = get_task(suite.task)
    config = (
        {f.name: f.default for f in dataclasses.fields(task.config) if f.default is not dataclasses.MISSING}
        if task.config
        else {}
    )
    values: dict[str, Any] = {}
    for key in suite.tune.space:
        value = getattr(suite.budget, key, None) if key in task.budget_fields else None
        values[key] = value if value is not None else point.task_options.get(key, config.get(key))
    own = suite.tune.modules.get(point.module, {})
    if own:
        built = resolved_options(point.trial(suite, 0))
        values.update({k: point.options.get(k, built.get(k)) for k in own})
    return values


def search_trials(suite: Suite, points: list[Point]) -> list[Trial]:
    """The search's trials, sample-major (sample 0 of every point, then sample 1, ...), so that
    ASHA sees every module's samples in the same order."""
    assert suite.tune is not None
    per_point = {p.trial_id(suite.task): draw_samples(suite, p.module) for p in points}
    trials = []
    for i, seed in enumerate(suite.tune.seeds()):
        for p in points:
            values = per_point[p.trial_id(suite.task)][i]
            tuned = default_values(suite, p) if values is None else values
            trials.append(
                p.trial(
                    suite,
                    seed,
                    f"search{i}",
                    phase=SEARCH,
                    split="val",
                    sample=i,
                    tuned=tuned,
                    **_applied(suite, p, values or {}),
                )
            )
    return trials


# --- one ASHA per grid point -------------------------------------------------------------------


def point_key(trial: dict[str, Any]) -> str:
    """The grid point of a search trial (its config's ``trial``): the module and its grid options
    (without the ones the search sets), backbone, head and data."""
    options = {k: v for k, v in trial["options"].items() if k not in trial.get("tuned", {})}
    return json.dumps(
        [trial["module"], options, trial["backbone"], trial["head"], trial["data"], trial.get("data_options", {})],
        sort_keys=True,
        default=str,
    )


class PointScheduler(FIFOScheduler):
    """A scheduler per grid point (``make()``, e.g. an ASHA), so a sample competes with its own
    module's samples only. A sample it stops gets a done record (``status: stopped``, its last
    validation score, the iteration reached): the run's tables read it, and a resumed run knows
    the sample ended."""

    def __init__(self, make: Callable[[], TrialScheduler]) -> None:
        super().__init__()
        self._make = make
        self._per_point: dict[str, TrialScheduler] = {}

    def _of(self, trial: Any) -> TrialScheduler:
        key = point_key(trial.config["trial"])
        if key not in self._per_point:
            self._per_point[key] = self._make()
        return self._per_point[key]

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        self._of(trial).on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        if result.get("done") is True or result.get("status") in ("ok", "failed", "stopped"):  # a trial's final report
            return TrialScheduler.CONTINUE
        action = self._of(trial).on_trial_result(tune_controller, trial, result)
        if action == TrialScheduler.STOP:
            record = {
                k: v
                for k, v in result.items()
                if k not in TUNE_RESULT_KEYS
                and not k.startswith("config/")
                and isinstance(v, (int, float, str, bool, type(None)))
            }
            record.update(
                status="stopped",
                error="",
                done=True,
                iters=result.get(TIME_ATTR),
                seconds=result.get("time_total_s"),
                ended_at=time.time(),
            )
            write_done(trial.config["done_uri"], trial.config["trial"]["trial_id"], record)
        return action

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> None:
        try:
            self._of(trial).on_trial_complete(tune_controller, trial, result)
        except KeyError:  # a trial its scheduler already let go (stopped, then completed)
            pass

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        try:
            self._of(trial).on_trial_remove(tune_controller, trial)
        except KeyError:
            pass

    def debug_string(self) -> str:
        return f"One scheduler per grid point ({len(self._per_point)} points)"


def search_scheduler(suite: Suite) -> TrialScheduler | None:
    """The search's scheduler: one ASHA per grid point (None for ``scheduler: fifo``)."""
    spec, budget = suite.tune, suite.budget
    assert spec is not None and budget is not None
    if spec.scheduler == "fifo":
        return None
    metric = search_metric(suite)
    grace = suite.search_grace()
    return PointScheduler(
        lambda: AsyncHyperBandScheduler(
            time_attr=TIME_ATTR,
            metric=metric,
            mode=metric_sense(metric),
            max_t=budget.iters,
            grace_period=grace,
            reduction_factor=spec.reduction,
            brackets=1,
            stop_last_trials=False,  # a sample that reaches the budget ends by itself (and writes its full record)
        )
    )


# --- choosing, and the retrain -------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    """A grid point's chosen sample (None: no sample ran the whole budget) and why."""

    point: Point
    sample: int | None
    tuned: dict[str, Any]
    score: float | None  # its validation score
    completed: int  # samples that ran the whole budget


def choose(suite: Suite, points: list[Point], trials: list[Trial], records: dict[str, dict[str, Any]]) -> list[Choice]:
    """Per grid point, the sample with the best final validation score among those that ran the
    whole budget (``status: ok``; ties: the lower index). ``records``: trial id -> done record."""
    metric = search_metric(suite)
    better = max if metric_sense(metric) == "max" else min
    choices = []
    for p in points:
        mine = [t for t in trials if t.phase == SEARCH and t.trial_id == p.trial_id(suite.task, f"search{t.sample}")]
        scored = [
            (t, records[t.trial_id][metric])
            for t in mine
            if records.get(t.trial_id, {}).get("status") == "ok"
            and isinstance(records[t.trial_id].get(metric), (int, float))
        ]
        if not scored:
            choices.append(Choice(p, None, {}, None, 0))
            continue
        best = better(v for _, v in scored)
        trial = min((t for t, v in scored if v == best), key=lambda t: t.sample or 0)
        choices.append(Choice(p, trial.sample, dict(trial.tuned), float(best), len(scored)))
    return choices


def retrain_trials(suite: Suite, choices: list[Choice]) -> list[Trial]:
    """Per grid point and seed of the grid: the chosen sample (tuned arm) and, with
    ``compare_defaults``, the defaults (default arm), trained anew and scored on the test split."""
    assert suite.tune is not None
    trials = []
    for c in choices:
        p = c.point
        defaults = default_values(suite, p)
        drawn = draw_samples(suite, p.module)[c.sample] if c.sample is not None else None
        chose_defaults = c.sample is not None and drawn is None  # the same configuration: run it once
        for seed in p.seeds:
            if c.sample is not None:
                arm = "both" if chose_defaults and suite.tune.compare_defaults else "tuned"
                trials.append(
                    p.trial(
                        suite,
                        seed,
                        "tuned",
                        f"s{seed}",
                        phase=RETRAIN,
                        split="test",
                        arm=arm,
                        sample=c.sample,
                        tuned=c.tuned,
                        **_applied(suite, p, drawn or {}),
                    )
                )
            if suite.tune.compare_defaults and not chose_defaults:
                trials.append(
                    p.trial(
                        suite, seed, "default", f"s{seed}", phase=RETRAIN, split="test", arm="default", tuned=defaults
                    )
                )
    return trials
