"""A task owns its budget: the fields it declares (``Task.budget``, a ``TaskBudget`` subclass) are
what a suite's ``budget:`` may set, checked by the task's own model, carried by every trial through
Ray's JSON, and given their smoke values by the task (``Task.smoke_budget``)."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from pydantic import Field

from hambench.suite import SuiteError, parse_suite, smoke
from hambench.tasks import Metric, Task, build_config, get_task, register_task, scoped_tasks
from hambench.trial import TaskBudget, Trial
from hambench.tuning.plan import expand


class DepthBudget(TaskBudget):
    """A plugin task's budget: the common fields and a field of its own."""

    max_depth: int = Field(8, ge=1)  # how deep the toy scene goes


@dataclass
class DepthConfig:
    context: str = "none"
    iters: int = 1
    max_depth: int = 8


def depth_config(trial: Trial, ctx: Any) -> DepthConfig:
    assert trial.budget is not None
    budget = DepthBudget.model_validate(trial.budget.model_dump())
    return build_config(DepthConfig, dict(context=trial.module, iters=budget.iters, max_depth=budget.max_depth))


DEPTH = Task(
    name="depth",
    order=7,
    metrics=(Metric("abs_rel", "min"),),
    budget=DepthBudget,
    smoke_budget={"max_depth": 2},
    config=DepthConfig,
    config_for=depth_config,
    train=lambda cfg, callback=None: {"abs_rel": 0.0},
    model=lambda cfg, device: (None, None, None, None),
)


@pytest.fixture
def depth_task() -> Iterator[None]:
    """The plugin task above, registered for one test."""
    with scoped_tasks():
        register_task(DEPTH)
        yield


def suite(budget: str) -> Any:
    return parse_suite(
        yaml.safe_load(
            textwrap.dedent(f"""
        name: depth-suite
        task: depth
        grid: {{modules: [none], seeds: [0, 1]}}
        budget: {budget}
    """)
        ),
        "depth.yaml",
    )


def test_a_plugin_tasks_budget_field_reaches_its_config_through_the_trials_json(depth_task: None) -> None:
    trials = expand(suite("{iters: 4, eval_interval: 2, max_depth: 5}"))
    assert [t.trial_id for t in trials] == ["depth-none-none-s0", "depth-none-none-s1"]
    carried = Trial.model_validate_json(trials[0].model_dump_json())  # what a Ray worker receives
    cfg = get_task("depth").config_for(carried, None)  # type: ignore[misc]
    assert (cfg.iters, cfg.max_depth) == (4, 5)
    assert get_task("depth").budget_fields == ("iters", "eval_interval", "batch", "lr", "max_depth")


def test_a_bad_value_of_the_tasks_own_field_names_it(depth_task: None) -> None:
    with pytest.raises(
        SuiteError,
        match=r"depth.yaml: invalid suite: budget: max_depth: Input should be greater than or "
        r"equal to 1",
    ):
        suite("{iters: 4, eval_interval: 2, max_depth: 0}")
    with pytest.raises(
        SuiteError,
        match=r"budget: crop: not used by task depth; its budget fields: iters, "
        r"eval_interval, batch, lr, max_depth",
    ):
        suite("{iters: 4, eval_interval: 2, crop: [8, 8]}")


def test_smoke_takes_the_tasks_own_smoke_values(depth_task: None) -> None:
    small = smoke(suite("{iters: 400, eval_interval: 100, max_depth: 5}"))
    assert small.budget is not None
    assert (small.budget.iters, small.budget.eval_interval, small.budget.model_extra) == (4, 2, {"max_depth": 2})


def test_the_shipped_tasks_declare_their_own_fields() -> None:
    assert get_task("seg").budget_fields[-1:] == ("crop",) and get_task("gan").budget_fields[-1:] == ("res",)
    assert get_task("profile").budget_fields == ()
