"""Suite files: a validated schema (``spec``), loading (``load``), the checks of grid values
against what is registered (``checks``) and the expansion of a grid into trials (``expand``).

A suite names a grid (modules x backbones x data x seeds x options), what to measure and with
which budget and resources. ``load_suite`` validates a YAML file (a malformed one fails with the
file, the field and what was expected); ``grid_points`` checks every grid value and lists the grid's
points; ``profile_trials`` and ``grid_trials`` turn them into ``hambench.trial.Trial`` s::

    suite = load_suite("quickstart")          # a shipped suite, or a path to a .yaml file
    points = grid_points(suite)
    trials = [*profile_trials(suite, points), *grid_trials(suite, points)]

Which trials a run starts with (the plain grid, or the tuning protocol's search) is the runner's
choice: ``hambench.tuning.plan.expand``.
"""

from hambench.suite.checks import check_axes, grid_errors
from hambench.suite.expand import (
    SMOKE_BUDGET,
    SMOKE_PROFILE_SHAPE,
    SMOKE_SAMPLES,
    SMOKE_SEEDS,
    SMOKE_SWEEP,
    Point,
    grid_points,
    grid_trials,
    profile_trials,
    smoke,
)
from hambench.suite.load import (
    load_suite,
    parse_suite,
    references_path,
    resolve_suite_path,
    shipped_references,
    shipped_suites,
    suite_to_yaml,
)
from hambench.suite.spec import (
    DEFAULT_TASK,
    DISTRIBUTIONS,
    Grid,
    ModuleEntry,
    ParetoAxes,
    Suite,
    SuiteError,
    TuneSpec,
    seed_list,
)

__all__ = [
    "DEFAULT_TASK",
    "DISTRIBUTIONS",
    "SMOKE_BUDGET",
    "SMOKE_PROFILE_SHAPE",
    "SMOKE_SAMPLES",
    "SMOKE_SEEDS",
    "SMOKE_SWEEP",
    "Grid",
    "ModuleEntry",
    "ParetoAxes",
    "Point",
    "Suite",
    "SuiteError",
    "TuneSpec",
    "check_axes",
    "grid_errors",
    "grid_points",
    "grid_trials",
    "load_suite",
    "parse_suite",
    "profile_trials",
    "references_path",
    "resolve_suite_path",
    "seed_list",
    "shipped_references",
    "shipped_suites",
    "smoke",
    "suite_to_yaml",
]
