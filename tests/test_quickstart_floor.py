"""``benchmarks/quickstart_floor.py``: the quickstart stays a suite whose floor it can measure, it
refuses the suites it cannot reproduce in one line, and its plain loops run side by side."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest

from hambench.suite import load_suite
from hambench.tuning.plan import expand

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def floor(monkeypatch) -> Any:
    # on sys.path, not loaded from its file: the pool's spawned workers import it by name
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return importlib.import_module("quickstart_floor")


def test_every_quickstart_training_is_a_plain_loop(floor):
    trials = expand(load_suite("quickstart"))
    trainings = [t for t in trials if t.budget is not None]
    assert len(trainings) == 24 and len(trials) == 32
    for t in trainings:
        floor.check_plain(t)


def test_a_training_it_cannot_reproduce_is_refused_naming_it(floor):
    gan = next(t for t in expand(load_suite("gan-synthetic")) if t.budget is not None)
    with pytest.raises(SystemExit, match=f"{gan.trial_id}: the plain loop trains .*'task': 'gan'"):
        floor.check_plain(gan)
    seg = next(t for t in expand(load_suite("quickstart")) if t.budget is not None)
    with pytest.raises(SystemExit, match="task_options"):
        floor.check_plain(seg.model_copy(update={"task_options": {"weight_decay": 0.01}}))


def test_plain_loops_run_two_at_a_time(floor):
    trials = [t for t in expand(load_suite("quickstart"), only=["none"]) if t.budget is not None][:3]
    short = {"iters": 4, "eval_interval": 2}
    trials = [t.model_copy(update={"budget": t.budget.model_copy(update=short)}) for t in trials]
    wall, each = floor.training_floor(trials, slots=2)
    assert len(each) == 3 and all(s > 0 for s in each)
    assert wall > max(each)
