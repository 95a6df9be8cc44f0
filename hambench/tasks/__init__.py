"""Tasks: what a suite's trials do. One file per task, one small registry (this module).

A task file ends with ``register_task(Task(...))``, declaring everything the framework needs:
its name and place in tables, the accuracy metrics it writes to ``results.parquet`` (headline
first) with which way is better, the suite section it reads (``budget:`` or ``profile:``) and
the budget fields it applies, and its code: the config dataclass, ``config_for`` (a trial and its
budget -> that config), ``train`` (the function ``hambench train`` calls too), ``model`` (the
trained architecture, rebuilt for the whole-model cost), ``prepare_data``; or, for a task that is
no training loop (``profile``), ``run``: the whole trial. The suite schema, the trainable, the
results tables, the progress line, the summary and the report read these declarations; none of
them names a task.

The built-in tasks are the modules of this package that register one (``profile``, ``seg``,
``gan``); they are imported the first time the registry is read, not when ``hambench.suite`` is.
A task outside hambench registers from a ``--plugin`` file the same way. Tests register into
``scoped_tasks()``, which removes what they added.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from hambench.trial import Budget, TaskBudget, Trial, data_label

Sense = Literal["max", "min"]
PROFILE = "profile"  # the task of a suite's profiling trials (one per module and options, any suite)


class TaskError(ValueError):
    """An unknown task, or a declaration that cannot be registered."""


@dataclass(frozen=True)
class Metric:
    """An accuracy metric a task reports. ``column``: written to ``results.parquet`` (False: in
    the history only, e.g. seg's mAcc; its direction still holds wherever it is read). ``front``:
    the report draws it against each whole-model cost when a suite names no ``pareto:`` axes.
    ``area_of``: this metric is the learning speed of another, the normalised area under that
    metric's learning curve (``hambench.stats.curve_area``), computed by the runner from the trial's
    evaluations rather than reported by the task."""

    name: str
    sense: Sense  # "max": higher is better; "min": lower is better
    column: bool = True
    front: bool = False
    area_of: str | None = None


# What a training task calls after every evaluation: its metrics, the checkpoint file saved with them
# (None: none on disk) and files to keep with that checkpoint (e.g. a GAN's sample grid; () for none).
Callback = Callable[[dict[str, Any], "str | None", Sequence[str]], None]


class TrialContext(Protocol):
    """The task's port to the runtime: what a trial's task gets besides its ``Trial``. Tasks own
    this contract; the runner (``hambench.tuning.trainable``) implements it over Ray Tune, so a
    task never imports Tune."""

    plugins: list[str]  # the driver's --plugin files, absolute
    data_roots: dict[str, str]  # data set and options (trial.data_label) -> the root the driver made ready
    where: dict[str, str]  # node, device, device_name of this trial
    threads: int  # torch threads: the trial's CPUs

    @property
    def device(self) -> str: ...

    def work_dir(self) -> Path:
        """The trial's own folder for its task's files, local to the node running it."""
        ...

    def report(self, metrics: dict[str, Any], state: dict[str, Any]) -> None:
        """Report one step's metrics with a checkpoint holding ``state`` (and the files it names)."""
        ...

    def restore(self, into: Path | None = None) -> dict[str, Any] | None:
        """The state saved with the trial's last checkpoint (files copied ``into``), or None."""
        ...

    def callback(self) -> Callback:
        """A training task's callback: ``callback(metrics, checkpoint_path, artifacts)``."""
        ...


@dataclass(frozen=True)
class DataRequest:
    """What a task's ``prepare_data`` gets, on the driver, once per data set of the suite."""

    smoke: bool  # a smoke run: generate a tiny fixture in the data set's layout instead
    data_root: str | None  # the user's root of the real data set, if given
    fixture_dir: Path  # where a smoke fixture goes (inside the run directory)
    options: dict[str, Any] = field(default_factory=dict)  # the data set's options (hambench.data.DATA_OPTIONS)


@dataclass(frozen=True)
class TrainCommand:
    """How ``hambench train <task>`` offers a training task: one flag per field of its config
    (``hambench.cli.config_args``); this says what only the task knows."""

    help: str  # its line in `hambench train --help`
    required: tuple[str, ...] = ()  # config fields the command line must give
    aliases: Mapping[str, tuple[str, ...]] = field(
        default_factory=dict
    )  # more flags of a field (earlier releases' names)
    # Called when the command is used, not when the task registers (they may import its models and data sets):
    choices: Callable[[], Mapping[str, Sequence[Any]]] | None = None  # the valid values of some fields
    help_of: Callable[[], Mapping[str, str]] | None = None  # the help of fields the task explains its own way
    run_name: Callable[[Any], str] | None = (
        None  # config -> its folder in work_dirs/<task>/ when no --work-dir is given
    )
    summary: Callable[[dict[str, Any]], str] | None = (
        None  # final metrics -> the line printed after "done: " (None: the JSON)
    )


@dataclass(frozen=True)
class Artifact:
    """An image a trial of the task writes into its work folder (and carries in its checkpoints),
    which the report shows once per configuration, beside its scores."""

    file: str  # its name in the trial's work folder, a PNG: "samples.png"
    title: str  # the heading of its report section: "Samples"
    description: str  # what it shows, the line under the heading


@dataclass(frozen=True)
class Task:
    """A task's declaration. A training task gives ``config``, ``config_for``, ``train`` and
    ``model``; any other task gives ``run`` (it then reports through the context itself)."""

    name: str
    order: int  # its place in tables and in the results (profiling trials first)
    metrics: tuple[Metric, ...] = ()  # headline first
    section: Literal["budget", "profile"] = "budget"  # the suite section its trials are configured by
    # The model of its suite's `budget:` section: hambench.trial.TaskBudget, plus the task's own
    # fields (seg's crop); a suite setting a field it lacks fails to load, naming the field.
    budget: type[Budget] = TaskBudget
    smoke_budget: Mapping[str, Any] = field(default_factory=dict)  # its own fields' values in a --smoke run
    # Fields of its config that say what a trial is, not how it trains: never a search dimension.
    fixed_fields: frozenset[str] = frozenset()
    alone_on_device: bool = False  # holds its node's device alone (latency is measured)
    # Has the tuning protocol's splits: its config_for reads ``trial.split`` ("val": select on the
    # validation split; "test": the reported figure; "standard": the data set's usual evaluation split).
    tunable: bool = False
    # What a suite that omits them gets: its `budget:` fields (eval_interval, when not given, is a
    # quarter of iters: hambench.suite) and each grid's `backbones:` / `data:` axes.
    default_budget: Mapping[str, Any] = field(default_factory=dict)
    grid_defaults: Mapping[str, list[str]] = field(default_factory=dict)
    # The valid values of the grid's axes this task reads ({"backbones": [...], "data": [...]}),
    # checked before anything runs; an entry "PREFIX:<...>" admits any value starting with PREFIX:.
    grid_choices: Callable[[], Mapping[str, list[str]]] | None = None
    # What is wrong with a data set's options (data set, options) -> messages; None: its data sets take none.
    data_option_errors: Callable[[str, Mapping[str, Any]], list[str]] | None = None
    # The images its trials write, each shown by the report per configuration (hambench.reports).
    artifacts: tuple[Artifact, ...] = ()
    # A training task:
    config: type | None = None  # the config dataclass; task_options are its fields
    config_for: Callable[[Trial, TrialContext], Any] | None = None  # the trial's config (its budget mapped)
    train: Callable[..., dict[str, Any]] | None = None  # train(cfg, callback) -> final metrics
    model: Callable[[Any, Any], tuple[Any, Any, int | None, str | None]] | None = (
        None  # (cfg, device) -> model, x, params, shape
    )
    command: TrainCommand | None = None  # its `hambench train <name>` sub-command (None: not offered there)
    # `hambench export`: (trial, overrides of its config's fields) -> a standalone config of the
    # task's framework (seg: an mmseg config dict); None: the task's trials do not export.
    export: Callable[[Trial, Mapping[str, Any]], dict[str, Any]] | None = None
    # A task that is not a training loop:
    run: Callable[[Trial, TrialContext], dict[str, Any]] | None = None
    # Both:
    prepare_data: Callable[[str, DataRequest], Path | None] | None = None  # a ready root (None: none needed)
    module_width: Callable[[Trial], int | None] | None = None  # the context module's width (None: not one number)

    def __post_init__(self) -> None:
        training = (self.config, self.config_for, self.train, self.model)
        if self.run is None and not all(f is not None for f in training):
            raise TaskError(f"task {self.name!r}: give `run`, or all of config, config_for, train and model")
        if self.run is not None and any(f is not None for f in training):
            raise TaskError(
                f"task {self.name!r}: `run` replaces config, config_for, train and model; give one or the other"
            )

    @property
    def budget_fields(self) -> tuple[str, ...]:
        """The budget fields its trials apply (``budget``'s fields; none for a task configured by
        ``profile:``)."""
        return tuple(self.budget.model_fields) if self.section == "budget" else ()

    @property
    def trains(self) -> bool:
        """A training task: its rows carry the trained model's own cost (``model_*``)."""
        return self.run is None

    @property
    def columns(self) -> list[str]:
        """The accuracy columns its rows of ``results.parquet`` have, headline first."""
        return [m.name for m in self.metrics if m.column]


# The config fields every built-in training task has for what a trial is and where its process runs
# (its module, data and seed; device, folders, threads, plugins, logging): never a search dimension.
# A task's ``fixed_fields`` are these and its own (seg's backbone, gan's res).
RUN_FIELDS = frozenset(
    {
        "context",
        "options",
        "data",
        "data_options",
        "data_root",
        "work_dir",
        "resume",
        "seed",
        "device",
        "plugins",
        "threads",
        "log_interval",
        "loader_workers",
    }
)


def trial_values(trial: Trial, ctx: TrialContext, work_dir: Path, *, resume: bool) -> dict[str, Any]:
    """The config values a training task takes from its trial and the runtime, under the names the
    built-in tasks' configs give them: the module (``context``) and its ``options``, the data set
    and the root the driver made ready, the seed, the device, the trial's work folder (``work_dir``,
    local to its node) and whether it ``resume``s from a checkpoint. A trial with data-set options
    adds them as ``data_options`` (a task whose config lacks that field refuses them by name)."""
    values = dict(
        context=trial.module,
        options=dict(trial.options),
        data=trial.data,
        data_root=ctx.data_roots.get(data_label(trial.data, trial.data_options)),
        work_dir=str(work_dir),
        resume=resume,
        seed=trial.seed,
        device=ctx.device,
    )
    return values | (dict(data_options=dict(trial.data_options)) if trial.data_options else {})


def build_config(cls: type, values: dict[str, Any]) -> Any:
    """A task's config dataclass from a trial's values; a value of None keeps the config's
    default (a budget's unset lr: the task's own)."""
    return cls(**{k: v for k, v in values.items() if v is not None})


_TASKS: dict[str, Task] = {}
_builtins_loaded = False


def register_task(task: Task) -> Task:
    """Add a task (its file calls this when imported). A name another file took fails; the
    same file registering again (a plugin loaded twice) replaces its own declaration."""
    old = _TASKS.get(task.name)
    if old is not None and _origin(old) != _origin(task):
        raise TaskError(f"task {task.name!r} is already registered (by {_origin(old)})")
    _TASKS[task.name] = task
    return task


def _origin(task: Task) -> str:
    """The module whose code the task runs."""
    return getattr(task.run or task.train, "__module__", "?")


def _load_builtins() -> None:
    """Import this package's modules once: each task file registers its task."""
    global _builtins_loaded
    if _builtins_loaded:
        return
    _builtins_loaded = True  # first: a task module reading the registry while it loads must not recurse
    try:
        for info in pkgutil.iter_modules(__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{__name__}.{info.name}")
    except BaseException:
        _builtins_loaded = False  # the next read tries again and raises the same error
        raise


def tasks() -> list[Task]:
    """Every registered task, in table order."""
    _load_builtins()
    return sorted(_TASKS.values(), key=lambda t: (t.order, t.name))


def task_names() -> list[str]:
    return [t.name for t in tasks()]


def get_task(name: str) -> Task:
    _load_builtins()
    try:
        return _TASKS[name]
    except KeyError:
        raise TaskError(f"unknown task {name!r}; valid tasks: {', '.join(task_names())}") from None


def task_order(name: str) -> int:
    """A task's place in tables; an unknown one (a table from elsewhere) goes last."""
    _load_builtins()
    task = _TASKS.get(name)
    return task.order if task is not None else len(_TASKS) + 1_000


def task_metrics(name: str) -> list[str]:
    """The accuracy columns of ``name`` (none for an unknown task)."""
    _load_builtins()
    task = _TASKS.get(name)
    return task.columns if task is not None else []


def accuracy_columns() -> list[str]:
    """Every task's accuracy columns, in table order, each once."""
    return list(dict.fromkeys(c for t in tasks() for c in t.columns))


def default_fronts() -> list[str]:
    """The metrics the report draws when a suite names no ``pareto:`` axes (``Metric.front``)."""
    return list(dict.fromkeys(m.name for t in tasks() for m in t.metrics if m.front))


def metric_sense(metric: str) -> Sense:
    """``"max"`` when a higher ``metric`` is better (as a task declares it), else ``"min"``: every
    cost (latency, MACs, params, memory) and every metric no task declares is better lower."""
    for task in tasks():
        for m in task.metrics:
            if m.name == metric:
                return m.sense
    return "min"


def module_width(trial: Trial) -> int | None:
    """The width (channels) the trial builds its context module at, as its task declares it: the
    profile shape's C, the seg backbone's head width. None for a GAN, which builds it twice (in G
    and in D, two widths)."""
    width = get_task(trial.task).module_width
    return width(trial) if width is not None else None


def resolved_options(trial: Trial) -> dict[str, Any]:
    """The options the module is really built with (defaults filled in, widths derived from the
    module's width), as ``hambench.registry.resolve_options`` computes them; the given options
    where the width is not one number (gan)."""
    from hambench.registry import resolve_options

    width = module_width(trial)
    return dict(trial.options) if width is None else resolve_options(trial.module, width, **trial.options)


@contextmanager
def scoped_tasks() -> Iterator[None]:
    """Registrations made inside the block are removed when it ends (tests' toy tasks)."""
    _load_builtins()
    saved = dict(_TASKS)
    try:
        yield
    finally:
        _TASKS.clear()
        _TASKS.update(saved)
