"""Suite files: a validated schema and the expansion of its grid into trials.

A suite names a grid (modules x backbones x data x seeds x options), what to measure and with
which budget and resources. ``load_suite`` validates a YAML file (a malformed one fails with the
file, the field and what was expected); ``expand`` turns it into a flat list of ``Trial`` s, one per
grid point, plus one profiling trial per distinct (module, options) when the suite profiles::

    suite = load_suite("quickstart")          # a shipped suite, or a path to a .yaml file
    trials = expand(suite, smoke_run=False)   # [Trial(trial_id="seg-ham-nmf-...", ...), ...]

A suite's ``task`` is a registered task (``hambench.tasks``; ``seg`` when omitted): it says which
section configures its trials (``budget:`` or ``profile:``), which budget fields it applies (a
suite setting another one fails to load, naming the field and the task) and what a suite that
omits them gets: its default budget and the grid's default backbones and data. Only ``name`` and
the grid's ``modules`` are required. ``expand`` checks every grid value (modules, options,
backbones, data sets) against what is registered and reports every bad one at once.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import itertools
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from hambench.axes import REFERENCE_COLUMNS, check_axes
from hambench.registry import RegistryError, get_spec
from hambench.tasks import PROFILE, TaskError, get_task, task_names, tasks


class SuiteError(ValueError):
    """A suite file that cannot be loaded or expanded; the message names the file and the field."""


def _listify_values(options: Any) -> Any:
    """`steps: 6` means `steps: [6]`: a single value is a one-point axis of the grid."""
    if isinstance(options, dict):
        return {k: v if isinstance(v, list) else [v] for k, v in options.items()}
    return options


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Resources(_Strict):
    """What one trial holds while it runs. Fractions share a device (``gpu: 0.5``: two per GPU)."""

    cpu: float = Field(1.0, gt=0)
    gpu: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _whole_above_one(self) -> Resources:
        # Ray schedules fractions of one unit, or whole units: 0.25 and 2 are fine, 1.5 is not.
        for key in ("cpu", "gpu"):
            value = getattr(self, key)
            if value > 1 and value != int(value):
                raise ValueError(f"{key}={value}: above 1 a resource must be a whole number")
        return self


EVAL_FRACTION = 4  # a budget without eval_interval evaluates (and checkpoints) every iters // 4


class Budget(_Strict):
    """Training budget of a training trial. Each task applies the fields it declares
    (``Task.budget_fields``); a field the suite omits is the task's (``Task.default_budget``),
    ``eval_interval`` a quarter of ``iters``; None keeps the task's config default."""

    iters: int = Field(gt=0)
    eval_interval: int = Field(gt=0)
    batch: int = Field(8, gt=0)
    crop: tuple[int, int] | None = None  # seg: training crop (H, W); None: the data set's default
    res: int | None = Field(None, gt=0)  # gan: image resolution; None: the task's default (32)
    lr: float | None = Field(None, gt=0)  # None: the task's default

    @field_validator("crop")
    @classmethod
    def _positive_crop(cls, crop: tuple[int, int] | None) -> tuple[int, int] | None:
        if crop is not None and min(crop) <= 0:
            raise ValueError(f"both sides of the crop (H, W) must be positive, got {list(crop)}")
        return crop


class ProfileSpec(_Strict):
    """Module cost measurement: one row at ``shape`` (B, C, H, W), plus an n-sweep over H = W."""

    shape: tuple[int, int, int, int] = (1, 512, 128, 128)
    sweep: list[int] = Field(default_factory=list)
    device: str = "cpu"
    dtype: Literal["fp32", "fp16", "bf16"] = "fp32"
    mode: Literal["fwd", "fwd+bwd"] = "fwd"
    max_time: float = Field(10.0, gt=0)  # seconds of timed runs per latency measurement, at most
    # Force one scaled_dot_product_attention kernel (hambench.sdpa.BACKENDS); None: PyTorch's choice.
    # Either way each row's `sdpa_backend` column names the kernel that ran.
    sdpa_backend: Literal["math", "flash", "efficient", "cudnn"] | None = None
    resources: Resources = Resources()

    @field_validator("shape")
    @classmethod
    def _positive(cls, shape: tuple[int, ...]) -> tuple[int, ...]:
        if min(shape) <= 0:
            raise ValueError(f"every dimension of (B, C, H, W) must be positive, got {shape}")
        return shape


class ModuleEntry(_Strict):
    """A module of the grid with options of its own: a mapping of value lists (their product is
    taken) or a list of mappings (explicit points, e.g. ``train_steps`` and ``eval_steps`` together)."""

    name: str
    options: dict[str, list[Any]] | list[dict[str, Any]] = Field(default_factory=dict)

    @field_validator("options", mode="before")
    @classmethod
    def _listify(cls, options: Any) -> Any:
        return _listify_values(options)

    def points(self) -> list[dict[str, Any]]:
        return list(self.options) if isinstance(self.options, list) else _option_points(self.options)


class Grid(_Strict):
    """One grid: the product of its axes. A suite may hold several (their union)."""

    modules: list[ModuleEntry] = Field(min_length=1)
    backbones: list[str] = Field(default_factory=lambda: ["none"], min_length=1)
    head: Literal["context", "single", "light"] = "context"  # seg: see hambench.models.segmentor
    data: list[str] = Field(default_factory=lambda: ["none"], min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0])  # `seeds: 5` means [0, 1, 2, 3, 4]
    options: dict[str, list[Any]] = Field(default_factory=dict)  # applied to every module here
    pretrained: str | None = None  # a local checkpoint for the backbone; nothing is downloaded
    task_options: dict[str, Any] = Field(default_factory=dict)  # extra fields of the task's config (SegConfig, ...)

    @field_validator("modules", mode="before")
    @classmethod
    def _names_to_entries(cls, modules: Any) -> Any:
        if isinstance(modules, list):
            return [{"name": m} if isinstance(m, str) else m for m in modules]
        return modules

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


class ParetoAxes(_Strict):
    x: str
    y: str


DISTRIBUTIONS = {  # a search space's value: {NAME: [ARGS]}, drawn with Ray Tune's domain of that name
    "loguniform": "[low, high], 0 < low < high: log-uniform",
    "uniform": "[low, high], low < high: uniform",
    "randint": "[low, high], integers, low < high: an integer in low..high-1",
    "choice": "[a, b, ...]: one of the values",
}
DISTRIBUTIONS_EXPECTED = "a mapping of one distribution to its arguments: " + "; ".join(
    f"{{{k}: {v.split(':')[0]}}}" for k, v in DISTRIBUTIONS.items())


def _check_distribution(value: Any) -> dict[str, list[Any]]:
    """``{loguniform: [0.01, 0.5]}`` and its kin (DISTRIBUTIONS), checked; anything else raises."""
    if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in DISTRIBUTIONS:
        raise ValueError(f"expected {DISTRIBUTIONS_EXPECTED}; got {value!r}")
    (kind, args), = value.items()
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


class TuneSpec(_Strict):
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


def _with_task_defaults(data: dict[str, Any]) -> dict[str, Any]:
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


class Suite(_Strict):
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
        return _with_task_defaults(data) if isinstance(data, dict) else data

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
    def _fields_the_task_uses(cls, budget: Budget | None, info: ValidationInfo) -> Budget | None:
        # A field the task cannot apply fails here rather than being dropped (a GAN has no crop).
        name = info.data.get("task")
        if budget is None or name is None:  # no budget, or the task was invalid: that error is reported
            return budget
        task = get_task(name)
        unused = [f for f in Budget.model_fields if f in budget.model_fields_set and f not in task.budget_fields]
        if unused:
            valid = ", ".join(task.budget_fields) or "none: remove the section"
            raise ValueError(f"{', '.join(unused)}: not used by task {name}; its budget fields: {valid}")
        return budget

    @field_validator("pareto")
    @classmethod
    def _honest_axes(cls, pareto: list[ParetoAxes], info: ValidationInfo) -> list[ParetoAxes]:
        # Like with like: an accuracy against the whole model's cost, a module cost against another
        # (hambench.axes). Checked here so a bad pair fails before Ray starts, not in the report.
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
        raise ValueError(f"tune: task {suite.task} has no validation and test splits to tune on (tasks that have: {able})")
    assert suite.budget is not None
    if not tune.space and not any(tune.modules.values()):
        raise ValueError("tune: nothing to search; give a `space` shared by every module or `modules` spaces of their options")
    config = {f.name for f in dataclasses.fields(task.config)} if task.config is not None else set()
    valid = sorted((set(task.budget_fields) | config) - _STRUCTURAL)
    for key in tune.space:
        if key not in valid:
            raise ValueError(f"tune.space.{key}: not a field the search can set for task {suite.task}; valid: {', '.join(valid)}")
    in_grid = {e.name for g in suite.grid for e in g.modules}
    for module, space in tune.modules.items():
        if module not in in_grid:
            raise ValueError(f"tune.modules.{module}: not a module of the grid ({', '.join(sorted(in_grid))})")
        errors: list[str] = []
        for key in space:
            _append_option_error(errors, f"tune.modules.{module}.{key}", module, key)
        if errors:
            raise ValueError(errors[0])
    if tune.metric is not None and tune.metric not in task.columns:
        raise ValueError(f"tune.metric: {tune.metric!r} is not a metric of task {suite.task}; valid: {', '.join(task.columns)}")
    grace, iters = suite.search_grace(), suite.budget.iters
    if grace >= iters:
        raise ValueError(f"tune.grace: {grace} must be below the budget's iters ({iters})")
    if tune.scheduler == "asha" and grace % suite.budget.eval_interval:
        raise ValueError(f"tune.grace: {grace} must be a multiple of budget.eval_interval ({suite.budget.eval_interval}): "
                         f"ASHA decides at evaluations")
    reported = sorted({s for g in suite.grid for s in g.seeds} & set(tune.seeds()))
    if reported:
        raise ValueError(f"tune.seed: the search's training seeds {tune.seed}..{tune.seed + tune.samples - 1} include the "
                         f"grid's seed(s) {', '.join(map(str, reported))}; a configuration must not be chosen on a seed it is reported on")


# Config fields that say what a trial is, not how it trains: never a search dimension.
_STRUCTURAL = {"context", "context_opts", "backbone", "data", "data_root", "work_dir", "resume", "seed", "device",
               "workers", "plugins", "threads", "eval_split", "log_interval", "pretrained", "head", "iters",
               "eval_interval", "loader_workers", "norm", "amp", "aux_head", "crop", "res"}


class Trial(_Strict):
    """One expanded grid point: everything a trainable needs, and nothing else."""

    trial_id: str
    task: str  # a registered task (hambench.tasks)
    module: str
    family: str
    options: dict[str, Any]
    backbone: str
    head: str
    data: str
    seed: int
    pretrained: str | None = None
    task_options: dict[str, Any] = Field(default_factory=dict)
    budget: Budget | None = None
    profile: ProfileSpec | None = None
    resources: Resources
    # The tuning protocol (a suite's ``tune:`` section, hambench.tuning.search); a plain grid
    # trial keeps the defaults. ``split``: what the trial evaluates on: "standard" (the data set's
    # usual evaluation split, as every untuned suite), or the protocol's "val" (selection) / "test"
    # (the reported figure). ``tuned``: the values the search set (already applied to the budget,
    # the task options and the module options above), recorded to group and show them.
    phase: Literal["grid", "search", "retrain"] = "grid"
    split: Literal["standard", "val", "test"] = "standard"
    sample: int | None = None  # search: the sample's index (0: the defaults); retrain: the one chosen
    # retrain: the chosen configuration, the defaults, or both (the defaults were chosen: one set of runs)
    arm: Literal["tuned", "default", "both"] | None = None
    tuned: dict[str, Any] = Field(default_factory=dict)


# --- loading ----------------------------------------------------------------------------------


def shipped_suites() -> dict[str, Path]:
    """The suites installed with hambench (``hambench.suites/*.yaml``), by name."""
    root = importlib.resources.files("hambench.suites")
    return {Path(p.name).stem: Path(str(p)) for p in root.iterdir() if p.name.endswith(".yaml")}


def resolve_suite_path(name_or_path: str | Path) -> Path:
    """A shipped suite's name, or the path to a suite file."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise SuiteError(f"suite file not found: {path}")
        return path
    shipped = shipped_suites()
    if str(name_or_path) not in shipped:
        raise SuiteError(f"unknown suite {str(name_or_path)!r}; shipped suites: {', '.join(sorted(shipped))} (or give a path to a .yaml file)")
    return shipped[str(name_or_path)]


def _describe(error: dict[str, Any]) -> str:
    # grid[0].seeds, as the grid-value errors name their fields (pydantic's own: grid.0.seeds)
    # A whole-suite check (a model validator) has no location: its message names the field itself.
    field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"]).lstrip(".")
    got = error.get("input")
    msg = error["msg"].removeprefix("Value error, ")  # our own validators' messages say what they got
    got = "" if isinstance(got, (dict, list)) or error["type"] == "value_error" else f" (got {got!r})"
    return f"{field}: {msg}{got}" if field else f"{msg}{got}"


def parse_suite(data: Any, source: str = "<suite>") -> Suite:
    """Validate a suite mapping; errors name ``source``, each bad field and what was expected."""
    if not isinstance(data, dict):
        raise SuiteError(f"{source}: a suite file must be a YAML mapping, got {type(data).__name__}")
    try:
        return Suite.model_validate(data)
    except ValidationError as exc:
        # A bad module or backbone first: it is what the user most likely mistyped.
        raise _suite_error(source, [*_raw_grid_errors(data), *(_describe(e) for e in exc.errors())]) from None


def _suite_error(source: str, errors: list[str]) -> SuiteError:
    errors = list(dict.fromkeys(errors))
    if len(errors) == 1:  # the usual case: one line naming the file, the field and what it takes
        return SuiteError(f"{source}: invalid suite: {errors[0]}")
    lines = "\n  ".join(errors)
    return SuiteError(f"{source}: invalid suite ({len(errors)} errors)\n  {lines}")


def _raw_grid_errors(data: dict[str, Any]) -> list[str]:
    """The grid-value errors of a suite that failed the schema, from the grids that pass it alone."""
    try:
        task = get_task(data.get("task", DEFAULT_TASK))
        grids = _with_task_defaults(data).get("grid")
    except (TaskError, TypeError):
        return []
    grids = [grids] if isinstance(grids, dict) else grids if isinstance(grids, list) else []
    parsed = {}
    for g, raw in enumerate(grids):
        try:
            parsed[g] = Grid.model_validate(raw)
        except ValidationError:
            continue  # its schema errors are reported
    return grid_errors(parsed, task.name)


def _choice_ok(value: str, choices: list[str]) -> bool:
    """``value`` is one of ``choices``, or extends the prefix of a ``PREFIX:<...>`` entry (timm:<model>)."""
    prefixes = [c.split("<", 1)[0] for c in choices if c.endswith(">")]
    return value in choices or any(value.startswith(p) and len(value) > len(p) for p in prefixes)


def grid_errors(grids: dict[int, Grid], task: str) -> list[str]:
    """Every bad value of the grids (index -> grid): unknown modules, options a module does not
    have, backbones and data sets the task does not know. Each names the field and the valid values."""
    declared = get_task(task).grid_choices
    choices = dict(declared()) if declared is not None else {}
    errors = []
    for g, grid in grids.items():
        for m, entry in enumerate(grid.modules):
            where = f"grid[{g}].modules[{m}]"
            try:
                get_spec(entry.name)
            except RegistryError as exc:  # the registry's one wording, with the valid modules
                errors.append(f"{where}: {exc}")
                continue
            for key in sorted({k for p in entry.points() for k in p}):
                _append_option_error(errors, f"{where}.options.{key}", entry.name, key)
            for key in sorted(grid.options):
                _append_option_error(errors, f"grid[{g}].options.{key}", entry.name, key)
        for axis, values in choices.items():
            for i, value in enumerate(getattr(grid, axis)):
                if not _choice_ok(value, list(values)):
                    noun = "backbone" if axis == "backbones" else "data set"
                    errors.append(f"grid[{g}].{axis}[{i}]: unknown {noun} {value!r}; valid: {', '.join(values)}")
    return errors


def _append_option_error(errors: list[str], where: str, module: str, key: str) -> None:
    from hambench.registry import check_options  # the one wording of an unknown option

    try:
        check_options(module, {key: None})
    except RegistryError as exc:
        errors.append(f"{where}: {exc}")


def load_suite(name_or_path: str | Path) -> Suite:
    path = resolve_suite_path(name_or_path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SuiteError(f"{path}: not valid YAML: {exc}") from None
    suite = parse_suite(data, str(path))
    references_path(suite, path)  # a missing or malformed file fails now, before anything runs
    return suite


def _shipped_references_dir() -> Path:
    """hambench.reports' folder, found without importing it (that would load plotly)."""
    import importlib.util

    spec = importlib.util.find_spec("hambench.reports")
    assert spec is not None and spec.submodule_search_locations
    return Path(list(spec.submodule_search_locations)[0])


def shipped_references() -> list[str]:
    """The reference files hambench ships (``references: NAME`` finds them by name)."""
    return sorted(p.name for p in _shipped_references_dir().glob("*.csv"))


def references_path(suite: Suite, suite_file: str | Path | None = None) -> Path | None:
    """The CSV a suite's ``references:`` names: a path relative to the suite file (or absolute),
    else a file shipped with hambench. None when the suite names none (the report then uses the
    shipped references.csv). Raises SuiteError, one line naming the file, the field and what it takes."""
    if suite.references is None:
        return None
    source = str(suite_file or suite.name)
    name = Path(suite.references).expanduser()
    here = (Path(suite_file).parent if suite_file else Path.cwd()) / name
    shipped = _shipped_references_dir() / name.name if len(name.parts) == 1 else None  # a bare name only
    path = here if here.is_file() else shipped if shipped is not None and shipped.is_file() else None
    if path is None:
        raise SuiteError(f"{source}: invalid suite: references: {suite.references!r}: no such file (looked at {here}); "
                         f"valid: a CSV beside the suite or a shipped one ({', '.join(shipped_references())})")
    missing = [c for c in REFERENCE_COLUMNS if c not in _csv_header(path)]
    if missing:
        raise SuiteError(f"{source}: invalid suite: references: {path} lacks the column(s) {', '.join(missing)}; "
                         f"a references file has {', '.join(REFERENCE_COLUMNS)} (see hambench/reports/references.csv)")
    return path


def _csv_header(path: Path) -> list[str]:
    """The first non-comment line of a CSV, split (references files start with '#' notes)."""
    import csv

    with path.open(newline="") as f:
        for row in csv.reader(line for line in f if not line.startswith("#")):
            return [c.strip() for c in row]
    return []


def suite_to_yaml(suite: Suite) -> str:
    return yaml.safe_dump(suite.model_dump(mode="json", exclude_none=True), sort_keys=False)


# --- smoke budgets ----------------------------------------------------------------------------

SMOKE_BUDGET = dict(iters=4, eval_interval=2, batch=2, crop=(64, 64), res=32)
SMOKE_PROFILE_SHAPE = (1, 64, 16, 16)
SMOKE_SWEEP = [8, 16]
SMOKE_SEEDS = 2  # two seeds are enough to exercise the intervals and ranks; more only cost time
SMOKE_SAMPLES = 2  # a tuned suite's search: the defaults and one drawn configuration


def smoke(suite: Suite) -> Suite:
    """The same suite with tiny budgets: every path runs in seconds per trial (CI's ``--smoke``).
    Each grid keeps its first SMOKE_SEEDS seeds (a one-seed grid keeps its one)."""
    grids = [g.model_copy(update={"seeds": g.seeds[:SMOKE_SEEDS]}) for g in suite.grid]
    update: dict[str, Any] = {"resources": Resources(cpu=1.0), "grid": grids}
    if suite.budget is not None:  # the smoke values of the fields the task applies
        fields = get_task(suite.task).budget_fields
        update["budget"] = suite.budget.model_copy(update={k: v for k, v in SMOKE_BUDGET.items() if k in fields})
    if suite.tune is not None:  # two samples (the defaults and one drawn), cut at the first evaluation
        update["tune"] = suite.tune.model_copy(update={"samples": min(suite.tune.samples, SMOKE_SAMPLES),
                                                       "grace": SMOKE_BUDGET["eval_interval"]})
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


def _option_points(options: dict[str, list[Any]]) -> list[dict[str, Any]]:
    keys = list(options)
    return [dict(zip(keys, values)) for values in itertools.product(*(options[k] for k in keys))]


def _check_module(name: str, options: dict[str, Any], where: str) -> str:
    """The module's family; the registry's error for an unknown name or option, with where it is."""
    from hambench.registry import check_options

    try:
        return check_options(name, options).family
    except RegistryError as exc:
        raise SuiteError(f"{where}: {exc}") from None


def _trial_id(task: str, module: str, options: dict[str, Any], *rest: Any) -> str:
    opts = "".join(f"-{_slug(k)}={_slug(v)}" for k, v in sorted(options.items()))
    return "-".join([task, _slug(module) + opts, *(_slug(r) for r in rest)])


class Point(_Strict):
    """A grid point without its seeds: what the tuning protocol tunes (one module, its options,
    backbone, head and data) and what a plain grid trains once per seed."""

    module: str
    family: str
    options: dict[str, Any]
    backbone: str
    head: str
    data: str
    seeds: list[int]
    pretrained: str | None = None
    task_options: dict[str, Any] = Field(default_factory=dict)

    def trial_id(self, task: str, *rest: Any) -> str:
        parts = [p for p in (self.backbone, self.head) if p not in ("none", "context")] + [self.data, *rest]
        return _trial_id(task, self.module, self.options, *parts)

    def trial(self, suite: Suite, seed: int, *rest: Any, **fields: Any) -> Trial:
        """The trial of this point at ``seed``; ``rest`` ends its id (default: ``s<seed>``), ``fields``
        set the Trial's other fields (the tuning protocol's budget, phase, split, ...)."""
        values = dict(
            trial_id=self.trial_id(suite.task, *(rest or (f"s{seed}",))), task=suite.task, module=self.module,
            family=self.family, options=self.options, backbone=self.backbone, head=self.head, data=self.data,
            seed=seed, pretrained=self.pretrained, task_options=self.task_options, budget=suite.budget,
            resources=suite.resources,
        )
        return Trial(**(values | fields))


def grid_points(suite: Suite, *, smoke_run: bool = False, only: list[str] | None = None, source: str | None = None) -> list[Point]:
    """The suite's grid points (module x options x backbone x data; seeds ride along), each once,
    checked: every bad grid value at once, ``only`` naming modules of the suite."""
    where0 = source or suite.name
    errors = grid_errors(dict(enumerate(suite.grid)), suite.task)
    if errors:  # every bad value at once, before anything runs
        raise _suite_error(where0, errors)
    points: dict[tuple[str, ...], Point] = {}
    for g, grid in enumerate(suite.grid):
        for m, entry in enumerate(grid.modules):
            where = f"{where0}: grid[{g}].modules[{m}]"
            for opts in ({**g_opts, **e_opts} for g_opts in _option_points(grid.options) for e_opts in entry.points()):
                family = _check_module(entry.name, opts, where)
                for backbone, data in itertools.product(grid.backbones, grid.data):
                    point = Point(module=entry.name, family=family, options=opts, backbone=backbone, head=grid.head,
                                  data=data, seeds=grid.seeds, pretrained=None if smoke_run else grid.pretrained,
                                  task_options={} if smoke_run else grid.task_options)  # smoke: the task's CPU-sized defaults
                    key = (point.trial_id(suite.task),)
                    if key in points:  # a point named twice (overlapping grids): its seeds once each
                        seeds = list(dict.fromkeys([*points[key].seeds, *grid.seeds]))
                        point = points[key].model_copy(update={"seeds": seeds})
                    points[key] = point
    result = list(points.values())
    if only:
        unknown = sorted(set(only) - {p.module for p in result})
        if unknown:
            raise SuiteError(f"--only {' '.join(unknown)}: not in suite {suite.name!r} (its modules: {', '.join(sorted({p.module for p in result}))})")
        result = [p for p in result if p.module in only]
    return result


def expand(suite: Suite, *, smoke_run: bool = False, only: list[str] | None = None, source: str | None = None) -> list[Trial]:
    """The trials the suite starts with: the profiling trials first (one per distinct module and
    options), then one training trial per grid point and seed; for a suite with ``tune:``, the
    search's samples instead (``hambench.tuning.search``: the retrain trials follow from them)."""
    if smoke_run:
        suite = smoke(suite)
    points = grid_points(suite, smoke_run=smoke_run, only=only, source=source)
    trials: dict[str, Trial] = {}
    if suite.profile is not None:
        for p in points:
            trial = Trial(trial_id=_trial_id(PROFILE, p.module, p.options), task=PROFILE, module=p.module, family=p.family,
                          options=p.options, backbone="none", head="none", data="none", seed=0, profile=suite.profile,
                          resources=suite.profile.resources)
            trials.setdefault(trial.trial_id, trial)
    if get_task(suite.task).section == "budget":  # a training task
        if suite.tune is not None:
            from hambench.tuning.search import search_trials

            training = search_trials(suite, points)
        else:
            training = [p.trial(suite, seed) for p in points for seed in p.seeds]
        trials.update((t.trial_id, t) for t in training)
    return list(trials.values())
