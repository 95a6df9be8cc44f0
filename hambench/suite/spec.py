"""The suite file's schema: what a suite may say, validated with pydantic.

A suite names a grid (modules x backbones x data x seeds x options), what to measure and with
which budget and resources. A suite's ``task`` is a registered task (``hambench.tasks``; ``seg``
when omitted): it says which section configures its trials (``budget:`` or ``profile:``), which
budget fields it applies (a suite setting another one fails to load, naming the field and the
task) and what a suite that omits them gets: its default budget and the grid's default backbones
and data. Only ``name`` and the grid's ``modules`` are required.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationError, ValidationInfo, field_validator, model_validator

from hambench.suite.checks import append_option_error, check_axes
from hambench.tasks import TaskError, get_task, task_names, tasks
from hambench.trial import EVAL_FRACTION, Budget, ProfileSpec, Resources, Strict


class SuiteError(ValueError):
    """A suite file that cannot be loaded or expanded; the message names the file and the field."""


def _listify_values(options: Any) -> Any:
    """`steps: 6` means `steps: [6]`: a single value is a one-point axis of the grid."""
    if isinstance(options, dict):
        return {k: v if isinstance(v, list) else [v] for k, v in options.items()}
    return options


def option_points(options: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """The product of an options mapping's value lists: every point of that grid axis."""
    keys = list(options)
    return [dict(zip(keys, values)) for values in itertools.product(*(options[k] for k in keys))]


class Entry(Strict):
    """A named grid value with options of its own: a mapping of value lists (their product is
    taken) or a list of mappings (explicit points)."""

    name: str
    options: dict[str, list[Any]] | list[dict[str, Any]] = Field(default_factory=dict)

    @field_validator("options", mode="before")
    @classmethod
    def _listify(cls, options: Any) -> Any:
        return _listify_values(options)

    def points(self) -> list[dict[str, Any]]:
        return list(self.options) if isinstance(self.options, list) else option_points(self.options)


class ModuleEntry(Entry):
    """A module of the grid and its options (explicit points: e.g. ``train_steps`` and
    ``eval_steps`` together)."""


class DataEntry(Entry):
    """A data set of the grid and its options (hambench.data.DATA_OPTIONS): ``{keys: [1, 2, 3]}``
    is three levels, each a comparison of its own."""


class Grid(Strict):
    """One grid: the product of its axes. A suite may hold several (their union)."""

    modules: list[ModuleEntry] = Field(min_length=1)
    backbones: list[str] = Field(default_factory=lambda: ["none"], min_length=1)
    head: str = (
        "context"  # the task's head variant, checked against its grid_choices (seg: hambench.models.segmentor.HEADS)
    )
    data: list[DataEntry] = Field(default_factory=lambda: [DataEntry(name="none")], min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0])  # `seeds: 5` means [0, 1, 2, 3, 4]
    options: dict[str, list[Any]] = Field(default_factory=dict)  # applied to every module here
    pretrained: str | None = None  # a local checkpoint for the backbone; nothing is downloaded
    task_options: dict[str, Any] = Field(default_factory=dict)  # extra fields of the task's config (SegConfig, ...)

    @field_validator("modules", "data", mode="before")
    @classmethod
    def _names_to_entries(cls, entries: Any) -> Any:
        if isinstance(entries, list):
            return [{"name": m} if isinstance(m, str) else m for m in entries]
        return entries

    @field_validator("options", mode="before")
    @classmethod
    def _listify(cls, options: Any) -> Any:
        return _listify_values(options)

    @field_validator("seeds", mode="before")
    @classmethod
    def _seed_list(cls, seeds: Any) -> list[int]:
        return seed_list(seeds)


SEEDS_EXPECTED = "a count (`seeds: 5` runs seeds 0..4) or a list of distinct non-negative integers (`seeds: [0, 3]`)"


def seed_list(seeds: Any) -> list[int]:
    """The seeds a grid names: a count n >= 1 means 0..n-1; a list is taken as written. Anything
    else (0, a negative, a duplicate, 1.5, "3", true) raises naming what is expected."""

    def integer(value: Any) -> bool:  # YAML's `true` is a Python int, and 2.0 is not a seed
        return isinstance(value, int) and not isinstance(value, bool)

    if integer(seeds):
        if seeds < 1:
            raise ValueError(f"seeds must be {SEEDS_EXPECTED}; got {seeds!r}")
        return list(range(seeds))
    if not isinstance(seeds, list) or not seeds:
        raise ValueError(f"seeds must be {SEEDS_EXPECTED}; got {seeds!r}")
    bad = [s for s in seeds if not integer(s) or s < 0]
    if bad:
        raise ValueError(f"seeds must be {SEEDS_EXPECTED}; got {seeds!r} ({', '.join(map(repr, bad))} not allowed)")
    twice = sorted({s for s in seeds if seeds.count(s) > 1})
    if twice:
        raise ValueError(f"seeds must be {SEEDS_EXPECTED}; got {seeds!r} ({', '.join(map(str, twice))} twice)")
    return list(seeds)


class ParetoAxes(Strict):
    x: str
    y: str


DISTRIBUTIONS = {  # a search space's value: {NAME: [ARGS]}, drawn with Ray Tune's domain of that name
    "loguniform": "[low, high], 0 < low < high: log-uniform",
    "uniform": "[low, high], low < high: uniform",
    "randint": "[low, high], integers, low < high: an integer in low..high-1",
    "choice": "[a, b, ...]: one of the values",
}
DISTRIBUTIONS_EXPECTED = "a mapping of one distribution to its arguments: " + "; ".join(
    f"{{{k}: {v.split(':')[0]}}}" for k, v in DISTRIBUTIONS.items()
)


def _check_distribution(value: Any) -> dict[str, list[Any]]:
    """``{loguniform: [0.01, 0.5]}`` and its kin (DISTRIBUTIONS), checked; anything else raises."""
    if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in DISTRIBUTIONS:
        raise ValueError(f"expected {DISTRIBUTIONS_EXPECTED}; got {value!r}")
    ((kind, args),) = value.items()
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
    if kind == "choice":
        if not isinstance(args, list) or not args:
            raise ValueError(f"choice takes a non-empty list of values; got {args!r}")
        return {kind: args}
    if not (isinstance(args, list) and len(args) == 2 and all(map(number, args)) and args[0] < args[1]):
        raise ValueError(f"{kind} takes {DISTRIBUTIONS[kind].split(':')[0]}; got {args!r}")
    if kind == "loguniform" and args[0] <= 0:
        raise ValueError(f"loguniform takes 0 < low < high; got {args!r}")
    if kind == "randint" and not all(isinstance(a, int) for a in args):
        raise ValueError(f"randint takes two integers; got {args!r}")
    return {kind: list(args)}


Distribution = Annotated[dict[str, list[Any]], BeforeValidator(_check_distribution)]


class TuneSpec(Strict):
    """The tuning protocol (``tune:``): every grid point (module and options, backbone, data) gets
    ``samples`` configurations drawn from one space, trained on the train split and scored on
    validation, ASHA stopping the weak ones early among that point's own samples; the best on
    validation is retrained with the grid's seeds and scored on test, beside the defaults
    retrained alike. ``hambench.tuning.search`` runs it; docs/suites.md explains it."""

    # Shared by every module: budget fields the task applies (lr, batch) or fields of its config (weight_decay).
    space: dict[str, Distribution] = Field(default_factory=dict)
    # Per module: spaces over its own options ({ham-nmf: {train_steps: {randint: [4, 9]}}}).
    modules: dict[str, dict[str, Distribution]] = Field(default_factory=dict)
    samples: int = Field(8, ge=1)  # configurations per grid point, the same for every module
    defaults_first: bool = True  # sample 0 is the defaults (the search can keep them)
    scheduler: Literal["asha", "fifo"] = "asha"  # fifo: every sample runs the whole budget
    grace: int | None = Field(None, gt=0)  # iterations before ASHA's first cut; default: a quarter of the budget
    reduction: float = Field(3.0, gt=1)  # ASHA keeps the best 1/reduction at each rung
    metric: str | None = None  # selects on val: the task's headline metric by default
    seed: int = Field(1000, ge=0)  # draws the samples; sample i trains with seed + i (never a reported seed)
    compare_defaults: bool = True  # also retrain the defaults with the grid's seeds (default vs tuned)

    def seeds(self) -> list[int]:
        """The search samples' own training seeds."""
        return [self.seed + i for i in range(self.samples)]


DEFAULT_TASK = "seg"


def with_task_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """The suite mapping with what its task supplies where the file is silent: the budget's
    fields (``Task.default_budget``; ``eval_interval`` from ``iters``) and each grid's axes
    (``Task.grid_defaults``). Malformed parts are left as they are, for the schema to report."""
    try:
        task = get_task(data.get("task", DEFAULT_TASK))
    except (TaskError, TypeError):  # reported by the `task` field's own check
        return data
    data = dict(data)
    if task.section == "budget" and task.default_budget and isinstance(data.get("budget", {}), (dict, type(None))):
        budget = {**task.default_budget, **(data.get("budget") or {})}
        if "eval_interval" not in budget and isinstance(budget.get("iters"), int) and budget["iters"] > 0:
            budget["eval_interval"] = max(1, budget["iters"] // EVAL_FRACTION)
        data["budget"] = budget
    grids = data.get("grid")
    if task.grid_defaults and isinstance(grids, (dict, list)):
        fill = lambda g: {**task.grid_defaults, **g} if isinstance(g, dict) else g  # noqa: E731
        data["grid"] = fill(grids) if isinstance(grids, dict) else [fill(g) for g in grids]
    return data


class Suite(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    task: str = DEFAULT_TASK  # a registered task (hambench.tasks)
    grid: list[Grid] = Field(min_length=1)
    resources: Resources = Resources()
    budget: Budget | None = None
    profile: ProfileSpec | None = None
    metrics: list[str] = Field(default_factory=list)
    pareto: list[ParetoAxes] = Field(default_factory=list)
    references: str | None = None  # a CSV of published points: beside the suite, or shipped (references.csv)
    max_concurrent: int | None = Field(None, gt=0)
    max_failures: int = Field(2, ge=0)  # retries after a node or worker dies (not after a raise)
    tune: TuneSpec | None = None  # the tuning protocol; None: every grid point trains once per seed

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        return with_task_defaults(data) if isinstance(data, dict) else data

    @field_validator("task")
    @classmethod
    def _registered(cls, task: str) -> str:
        try:
            get_task(task)
        except TaskError:
            names = [repr(n) for n in task_names()]
            choices = " or ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
            raise ValueError(f"Input should be {choices} (got {task!r})") from None
        return task

    @field_validator("grid", mode="before")
    @classmethod
    def _one_or_many(cls, grid: Any) -> Any:
        return [grid] if isinstance(grid, dict) else grid

    @field_validator("budget")
    @classmethod
    def _the_tasks_budget(cls, budget: Budget | None, info: ValidationInfo) -> Budget | None:
        # The task's own model checks the section (``Task.budget``): a field the task cannot apply
        # fails here rather than being dropped (a GAN has no crop), and so does a bad value of one.
        name = info.data.get("task")
        if budget is None or name is None:  # no budget, or the task was invalid: that error is reported
            return budget
        task = get_task(name)
        given = budget.model_dump(exclude_unset=True)
        unused = [f for f in given if f not in task.budget_fields]
        if unused:
            valid = ", ".join(task.budget_fields) or "none: remove the section"
            raise ValueError(f"{', '.join(unused)}: not used by task {name}; its budget fields: {valid}")
        try:
            checked = task.budget.model_validate(given)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ValueError(f"{where}: {first['msg'].removeprefix('Value error, ')}") from None
        return Budget.model_validate(checked.model_dump())  # every field of the task, as its trials carry them

    @field_validator("pareto")
    @classmethod
    def _honest_axes(cls, pareto: list[ParetoAxes], info: ValidationInfo) -> list[ParetoAxes]:
        # Like with like: an accuracy against the whole model's cost, a module cost against another
        # (hambench.schema). Checked here so a bad pair fails before Ray starts, not in the report.
        task = info.data.get("task")
        if task is None:  # the task itself was invalid: that error is reported instead
            return pareto
        for i, axes in enumerate(pareto):
            why = check_axes(axes.x, axes.y, task, profiled=info.data.get("profile") is not None)
            if why:
                raise ValueError(f"entry {i} {{x: {axes.x}, y: {axes.y}}}: {why}")
        return pareto

    @model_validator(mode="after")
    def _task_needs(self) -> Suite:
        section = get_task(self.task).section
        if section == "profile" and self.profile is None:
            raise ValueError(f"task `{self.task}` needs a `profile:` section (shape, sweep)")
        if section == "budget" and self.budget is None:  # a task declaring no default budget
            raise ValueError(f"task `{self.task}` needs a `budget:` section (iters, eval_interval)")
        if self.tune is not None:
            _check_tune(self)
        return self

    def search_grace(self) -> int:
        """Iterations before ASHA's first cut (``tune.grace``; default: a quarter of the budget)."""
        assert self.tune is not None and self.budget is not None
        return self.tune.grace or max(1, self.budget.iters // EVAL_FRACTION)


def _check_tune(suite: Suite) -> None:
    """The ``tune:`` section against its task, budget and grid; raises naming the field."""
    tune, task = suite.tune, get_task(suite.task)
    assert tune is not None
    if not task.tunable:
        able = ", ".join(t.name for t in tasks() if t.tunable) or "none"
        raise ValueError(
            f"tune: task {suite.task} has no validation and test splits to tune on (tasks that have: {able})"
        )
    assert suite.budget is not None
    if not tune.space and not any(tune.modules.values()):
        raise ValueError(
            "tune: nothing to search; give a `space` shared by every module or `modules` spaces of their options"
        )
    config = {f.name for f in dataclasses.fields(task.config)} if task.config is not None else set()
    valid = sorted((set(task.budget_fields) | config) - task.fixed_fields - _THE_BUDGETS_LENGTH)
    for key in tune.space:
        if key not in valid:
            raise ValueError(
                f"tune.space.{key}: not a field the search can set for task {suite.task}; valid: {', '.join(valid)}"
            )
    in_grid = {e.name for g in suite.grid for e in g.modules}
    for module, space in tune.modules.items():
        if module not in in_grid:
            raise ValueError(f"tune.modules.{module}: not a module of the grid ({', '.join(sorted(in_grid))})")
        errors: list[str] = []
        for key in space:
            append_option_error(errors, f"tune.modules.{module}.{key}", module, key)
        if errors:
            raise ValueError(errors[0])
    if tune.metric is not None and tune.metric not in task.columns:
        raise ValueError(
            f"tune.metric: {tune.metric!r} is not a metric of task {suite.task}; valid: {', '.join(task.columns)}"
        )
    grace, iters = suite.search_grace(), suite.budget.iters
    if grace >= iters:
        raise ValueError(f"tune.grace: {grace} must be below the budget's iters ({iters})")
    if tune.scheduler == "asha" and grace % suite.budget.eval_interval:
        raise ValueError(
            f"tune.grace: {grace} must be a multiple of budget.eval_interval ({suite.budget.eval_interval}): "
            f"ASHA decides at evaluations"
        )
    reported = sorted({s for g in suite.grid for s in g.seeds} & set(tune.seeds()))
    if reported:
        raise ValueError(
            f"tune.seed: the search's training seeds {tune.seed}..{tune.seed + tune.samples - 1} include the "
            f"grid's seed(s) {', '.join(map(str, reported))}; a configuration must not be chosen on a seed it is "
            f"reported on"
        )


# A search compares its samples at the same iterations: the budget's length is never searched.
_THE_BUDGETS_LENGTH = frozenset({"iters", "eval_interval"})
