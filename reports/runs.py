"""Read run directories (``<out>/<suite>/<run-id>/``) and the shipped reference table.

A run directory holds ``results.parquet`` (one row per trial) and, when the suite profiled modules,
``profile.parquet``; ``meta.json`` and ``suite.yaml`` describe the run. Several runs are merged by
stacking their tables: a configuration measured in two runs simply has more seeds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from hambench.results import ResultsError, normalise_results, read_columns
from hambench.schema import DEFAULT_MODULE_AXES, MODEL_COSTS
from hambench.suite import check_axes
from hambench.tasks import PROFILE, default_fronts


class RunDirError(ValueError):
    """A path that is not a readable run directory."""


@dataclass
class Runs:
    """The tables of one or more run directories, stacked."""

    results: pd.DataFrame
    profile: pd.DataFrame | None
    meta: list[dict[str, Any]] = field(default_factory=list)  # one per run, with "run_dir" added
    suite_yaml: dict[str, str] = field(default_factory=dict)  # run dir -> suite.yaml text


def _read_results(run_dir: Path) -> pd.DataFrame:
    path = run_dir / "results.parquet"
    if not path.is_file():
        raise RunDirError(f"{run_dir} is not a run directory: it has no results.parquet")
    try:
        df = normalise_results(pd.read_parquet(path))
    except ResultsError as exc:
        raise RunDirError(f"{path}: {exc}") from None
    df["run_dir"] = str(run_dir)
    if df["run_id"].isna().all():
        df["run_id"] = run_dir.name
    if df["suite"].isna().all():
        df["suite"] = run_dir.parent.name
    return df


def _read_meta(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "meta.json"
    meta: dict[str, Any] = {}
    if path.is_file():
        try:
            meta = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise RunDirError(f"{path} is not valid JSON: {exc}") from exc
        if not isinstance(meta, dict):
            raise RunDirError(f"{path} must hold a JSON object, got {type(meta).__name__}")
    meta.setdefault("suite", run_dir.parent.name)
    meta.setdefault("run_id", run_dir.name)
    meta["run_dir"] = str(run_dir)
    return meta


def load_runs(run_dirs: list[Path]) -> Runs:
    """Read and stack the run directories; raises RunDirError naming the first bad one."""
    if not run_dirs:
        raise RunDirError("no run directory given")
    results, profiles, metas, suites = [], [], [], {}
    for run_dir in map(Path, run_dirs):
        if not run_dir.is_dir():
            raise RunDirError(f"run directory {run_dir} does not exist")
        results.append(_read_results(run_dir))
        if (run_dir / "profile.parquet").is_file():
            prof = pd.read_parquet(run_dir / "profile.parquet")
            prof["run_dir"] = str(run_dir)
            profiles.append(prof)
        metas.append(_read_meta(run_dir))
        if (run_dir / "suite.yaml").is_file():
            suites[str(run_dir)] = (run_dir / "suite.yaml").read_text()
    # Concatenate column-wise unions; all-NA columns of one run must not decide the merged dtype.
    merged = pd.concat([r.dropna(axis=1, how="all") for r in results], ignore_index=True)
    merged = merged.reindex(columns=list(dict.fromkeys(read_columns() + list(merged.columns))))
    profile = pd.concat(profiles, ignore_index=True) if profiles else None
    return Runs(merged, profile, metas, suites)


SHIPPED_REFERENCES = "references.csv"


def load_references(path: str | Path | None = None) -> pd.DataFrame:
    """A table of published reference points: ``path``, else the shipped ``references.csv``
    (units in its header)."""
    if path is not None:
        return pd.read_csv(path, comment="#")
    with resources.files("hambench.reports").joinpath(SHIPPED_REFERENCES).open() as f:
        return pd.read_csv(f, comment="#")


def _suite_doc(runs: Runs, run_dir: str) -> dict[str, Any]:
    """The run's suite.yaml as a mapping ({} when absent or not a mapping: hand-made run directories)."""
    text = runs.suite_yaml.get(run_dir)
    try:
        doc = yaml.safe_load(text) if text else {}
    except yaml.YAMLError as exc:
        raise RunDirError(f"{run_dir}/suite.yaml is not valid YAML: {exc}") from None
    return doc if isinstance(doc, dict) else {}


def run_references(runs: Runs) -> tuple[pd.DataFrame, list[str]]:
    """The published points the runs' suites chose (``references:``; a run copies the file into its
    directory; the shipped references.csv when a suite names none), stacked, and the file names."""
    tables, names = [], []
    for meta in runs.meta:
        run_dir = str(meta["run_dir"])
        name = _suite_doc(runs, run_dir).get("references")
        if name is None:
            path = None
        else:
            here, shipped = Path(run_dir) / Path(str(name)).name, resources.files("hambench.reports") / str(name)
            if here.is_file():
                path = here
            elif shipped.is_file():
                path = Path(str(shipped))
            else:
                raise RunDirError(
                    f"{run_dir}/suite.yaml: references: {name!r} is neither in the run directory "
                    f"nor shipped with hambench ({SHIPPED_REFERENCES})"
                )
        label = SHIPPED_REFERENCES if path is None else Path(path).name
        if label not in names:
            names.append(label)
            tables.append(load_references(path))
    refs = pd.concat(tables, ignore_index=True).drop_duplicates() if tables else load_references()
    return refs, names or [SHIPPED_REFERENCES]


def default_axes() -> list[tuple[str, str]]:
    """The (x, y) pairs a report draws when a suite names none: every front metric a task declares
    (``hambench.tasks.Metric.front``) against every whole-model cost, and the module's own view."""
    return [(x, m) for m in default_fronts() for x in MODEL_COSTS] + list(DEFAULT_MODULE_AXES)


def run_axes(runs: Runs) -> tuple[list[tuple[str, str]] | None, list[str]]:
    """The (x, y) pairs the runs' suites name in ``pareto:`` (in order, each once), and one note
    per pair that cannot be drawn honestly (e.g. an older suite's accuracy against the module's
    cost). None when no suite names a drawable pair: the report's defaults."""
    pairs: list[tuple[str, str]] = []
    notes: list[str] = []
    defaults = False
    for meta in runs.meta:
        run_dir = str(meta["run_dir"])
        doc = _suite_doc(runs, run_dir)
        named = doc.get("pareto") or []
        if not named:
            defaults = True  # this run's suite leaves the axes to the report
            continue
        tasks = runs.results.loc[runs.results["run_dir"] == run_dir, "task"] if "run_dir" in runs.results else []
        task = doc.get("task") or next((t for t in tasks if t != PROFILE), PROFILE)
        for axes in named:
            x, y = (str(axes.get("x")), str(axes.get("y"))) if isinstance(axes, dict) else (str(axes), "")
            why = check_axes(x, y, task, profiled=bool(doc.get("profile", True)))
            if why:
                notes.append(f"{meta.get('suite')}/{meta.get('run_id')}: pareto {{x: {x}, y: {y}}} not drawn: {why}")
            elif (x, y) not in pairs:
                pairs.append((x, y))
    if not pairs:
        return None, notes
    if defaults:
        pairs += [p for p in default_axes() if p not in pairs]
    return pairs, notes
