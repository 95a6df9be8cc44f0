"""Loading suites: shipped names or paths, YAML, the schema's errors worded as one line per
bad field (the file, the field and what it takes), and the published points a suite names."""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from hambench.schema import REFERENCE_COLUMNS
from hambench.suite.checks import grid_errors
from hambench.suite.spec import DEFAULT_TASK, Grid, Suite, SuiteError, with_task_defaults
from hambench.tasks import TaskError, get_task


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
        names = ", ".join(sorted(shipped))
        raise SuiteError(
            f"unknown suite {str(name_or_path)!r}; shipped suites: {names} (or give a path to a .yaml file)"
        )
    return shipped[str(name_or_path)]


def _describe(error: ErrorDetails) -> str:
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
        raise suite_error(source, [*_raw_grid_errors(data), *(_describe(e) for e in exc.errors())]) from None


def suite_error(source: str, errors: list[str]) -> SuiteError:
    errors = list(dict.fromkeys(errors))
    if len(errors) == 1:  # the usual case: one line naming the file, the field and what it takes
        return SuiteError(f"{source}: invalid suite: {errors[0]}")
    lines = "\n  ".join(errors)
    return SuiteError(f"{source}: invalid suite ({len(errors)} errors)\n  {lines}")


def _raw_grid_errors(data: dict[str, Any]) -> list[str]:
    """The grid-value errors of a suite that failed the schema, from the grids that pass it alone."""
    try:
        task = get_task(data.get("task", DEFAULT_TASK))
        grids = with_task_defaults(data).get("grid")
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
        raise SuiteError(
            f"{source}: invalid suite: references: {suite.references!r}: no such file (looked at {here}); "
            f"valid: a CSV beside the suite or a shipped one ({', '.join(shipped_references())})"
        )
    missing = [c for c in REFERENCE_COLUMNS if c not in _csv_header(path)]
    if missing:
        raise SuiteError(
            f"{source}: invalid suite: references: {path} lacks the column(s) {', '.join(missing)}; "
            f"a references file has {', '.join(REFERENCE_COLUMNS)} (see hambench/reports/references.csv)"
        )
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
