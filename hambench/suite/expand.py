"""From a suite to its trials: smoke budgets, grid points, trial ids, and the plain grid's
trials (profiling trials first, then one training trial per grid point and seed). Every grid
value is checked against what is registered before anything runs, every bad one at once.

Whether a training suite runs its grid or the tuning protocol's search is the runner's choice
(``hambench.tuning.plan``), not the schema's::

    suite = load_suite("quickstart")
    points = grid_points(suite)               # module x options x backbone x data, seeds riding along
    trials = [*profile_trials(suite, points), *grid_trials(suite, points)]
"""

from __future__ import annotations

import itertools
import re
from typing import Any

from pydantic import Field

from hambench.registry import RegistryError, check_options
from hambench.suite.checks import grid_errors
from hambench.suite.load import suite_error
from hambench.suite.spec import Suite, SuiteError, option_points
from hambench.tasks import PROFILE, get_task
from hambench.trial import Resources, Strict, Trial

SMOKE_BUDGET = dict(iters=4, eval_interval=2, batch=2)  # and each task's own fields' values (Task.smoke_budget)
SMOKE_PROFILE_SHAPE = (1, 64, 16, 16)
SMOKE_SWEEP = [8, 16]
SMOKE_SEEDS = 2  # two seeds are enough to exercise the intervals and ranks; more only cost time
SMOKE_SAMPLES = 2  # a tuned suite's search: the defaults and one drawn configuration


def smoke(suite: Suite) -> Suite:
    """The same suite with tiny budgets: every path runs in seconds per trial (CI's ``--smoke``).
    Each grid keeps its first SMOKE_SEEDS seeds (a one-seed grid keeps its one) and drops its
    ``pretrained`` and ``task_options`` (the task's CPU-sized defaults run instead)."""
    grids = [
        g.model_copy(update={"seeds": g.seeds[:SMOKE_SEEDS], "pretrained": None, "task_options": {}})
        for g in suite.grid
    ]
    update: dict[str, Any] = {"resources": Resources(cpu=1.0), "grid": grids}
    if suite.budget is not None:  # the smoke values of the common fields and of the task's own
        task = get_task(suite.task)
        update["budget"] = suite.budget.model_copy(update={**SMOKE_BUDGET, **task.smoke_budget})
    if suite.tune is not None:  # two samples (the defaults and one drawn), cut at the first evaluation
        update["tune"] = suite.tune.model_copy(
            update={"samples": min(suite.tune.samples, SMOKE_SAMPLES), "grace": SMOKE_BUDGET["eval_interval"]}
        )
    if suite.profile is not None:
        channels = min(suite.profile.shape[1], SMOKE_PROFILE_SHAPE[1])
        shape = (1, channels, *SMOKE_PROFILE_SHAPE[2:])
        sweep = SMOKE_SWEEP if suite.profile.sweep else []
        update["profile"] = suite.profile.model_copy(
            update={"shape": shape, "sweep": sweep, "device": "cpu", "max_time": 2.0, "resources": Resources(cpu=1.0)}
        )
    return suite.model_copy(update=update)


# --- expansion --------------------------------------------------------------------------------


def _slug(value: Any) -> str:
    return re.sub(r"[^A-Za-z0-9.=-]+", "-", str(value)).strip("-")


def _check_module(name: str, options: dict[str, Any], where: str) -> str:
    """The module's family; the registry's error for an unknown name or option, with where it is."""
    try:
        return check_options(name, options).family
    except RegistryError as exc:
        raise SuiteError(f"{where}: {exc}") from None


def _trial_id(task: str, module: str, options: dict[str, Any], *rest: Any) -> str:
    opts = "".join(f"-{_slug(k)}={_slug(v)}" for k, v in sorted(options.items()))
    return "-".join([task, _slug(module) + opts, *(_slug(r) for r in rest)])


class Point(Strict):
    """A grid point without its seeds: what the tuning protocol tunes (one module, its options,
    backbone, head and data) and what a plain grid trains once per seed."""

    module: str
    family: str
    options: dict[str, Any]
    backbone: str
    head: str
    data: str
    seeds: list[int]
    data_options: dict[str, Any] = Field(default_factory=dict)
    pretrained: str | None = None
    task_options: dict[str, Any] = Field(default_factory=dict)

    def trial_id(self, task: str, *rest: Any) -> str:
        data = [self.data, *(f"{k}={v}" for k, v in sorted(self.data_options.items()))]
        parts = [p for p in (self.backbone, self.head) if p not in ("none", "context")] + [*data, *rest]
        return _trial_id(task, self.module, self.options, *parts)

    def trial(self, suite: Suite, seed: int, *rest: Any, **fields: Any) -> Trial:
        """The trial of this point at ``seed``; ``rest`` ends its id (default: ``s<seed>``), ``fields``
        set the Trial's other fields (the tuning protocol's budget, phase, split, ...)."""
        values = self.model_dump(exclude={"seeds"}) | dict(  # the point's fields are its trials'
            trial_id=self.trial_id(suite.task, *(rest or (f"s{seed}",))),
            task=suite.task,
            seed=seed,
            budget=suite.budget,
            resources=suite.resources,
        )
        return Trial(**(values | fields))


def grid_points(suite: Suite, *, only: list[str] | None = None, source: str | None = None) -> list[Point]:
    """The suite's grid points (module x options x backbone x data and its options; seeds ride along), each once,
    checked: every bad grid value at once, ``only`` naming modules of the suite."""
    where0 = source or suite.name
    errors = grid_errors(dict(enumerate(suite.grid)), suite.task)
    if errors:  # every bad value at once, before anything runs
        raise suite_error(where0, errors)
    points: dict[tuple[str, ...], Point] = {}
    for g, grid in enumerate(suite.grid):
        for m, entry in enumerate(grid.modules):
            where = f"{where0}: grid[{g}].modules[{m}]"
            for opts in ({**g_opts, **e_opts} for g_opts in option_points(grid.options) for e_opts in entry.points()):
                family = _check_module(entry.name, opts, where)
                data_points = [(d.name, o) for d in grid.data for o in d.points()]
                for backbone, (data, data_options) in itertools.product(grid.backbones, data_points):
                    point = Point(
                        module=entry.name,
                        family=family,
                        options=opts,
                        backbone=backbone,
                        head=grid.head,
                        data=data,
                        data_options=data_options,
                        seeds=grid.seeds,
                        pretrained=grid.pretrained,
                        task_options=grid.task_options,
                    )
                    key = (point.trial_id(suite.task),)
                    if key in points:  # a point named twice (overlapping grids): its seeds once each
                        seeds = list(dict.fromkeys([*points[key].seeds, *grid.seeds]))
                        point = points[key].model_copy(update={"seeds": seeds})
                    points[key] = point
    result = list(points.values())
    if only:
        unknown = sorted(set(only) - {p.module for p in result})
        if unknown:
            modules = ", ".join(sorted({p.module for p in result}))
            raise SuiteError(f"--only {' '.join(unknown)}: not in suite {suite.name!r} (its modules: {modules})")
        result = [p for p in result if p.module in only]
    return result


def profile_trials(suite: Suite, points: list[Point]) -> list[Trial]:
    """One profiling trial per distinct module and options of ``points`` (none when the suite
    has no ``profile:`` section): the module's cost, measured alone at the profile shape."""
    if suite.profile is None:
        return []
    trials: dict[str, Trial] = {}
    for p in points:
        trial = Trial(
            trial_id=_trial_id(PROFILE, p.module, p.options),
            task=PROFILE,
            module=p.module,
            family=p.family,
            options=p.options,
            backbone="none",
            head="none",
            data="none",
            seed=0,
            profile=suite.profile,
            resources=suite.profile.resources,
        )
        trials.setdefault(trial.trial_id, trial)
    return list(trials.values())


def grid_trials(suite: Suite, points: list[Point]) -> list[Trial]:
    """One training trial per grid point and seed (none for a task that does not train)."""
    if get_task(suite.task).section != "budget":
        return []
    return [p.trial(suite, seed) for p in points for seed in p.seeds]
