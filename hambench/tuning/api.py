"""``hambench.run_suite``: a suite run from Python (a notebook), its tables as DataFrames.

    import hambench

    run = hambench.run_suite("quickstart", smoke=True, out="runs")
    run.summary            # n, mean, 95 % interval and rank per configuration (summary.csv)
    run.results            # one row per trial (results.parquet)
    run.run_dir            # <out>/<suite>/<run-id>/, with report.html

The options are ``RunOptions``' fields, the flags of ``hambench run suite``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from hambench.tuning.driver import run_suite as run_suite_dir
from hambench.tuning.rundir import RunOptions


@dataclass(frozen=True)
class SuiteRun:
    """A finished run directory's tables (``profile`` and ``history``: None when it has none)."""

    run_dir: Path
    results: pd.DataFrame
    summary: pd.DataFrame
    profile: pd.DataFrame | None = None
    history: pd.DataFrame | None = None

    @classmethod
    def load(cls, run_dir: str | Path) -> SuiteRun:
        run_dir = Path(run_dir)
        optional = {
            name: pd.read_parquet(run_dir / f"{name}.parquet") if (run_dir / f"{name}.parquet").is_file() else None
            for name in ("profile", "history")
        }
        return cls(
            run_dir=run_dir,
            results=pd.read_parquet(run_dir / "results.parquet"),
            summary=pd.read_csv(run_dir / "summary.csv"),
            **optional,
        )


def run_suite(name_or_path: str | Path, **options: Any) -> SuiteRun:
    """Run (or, with ``resume=True``, continue) a suite as ``hambench run suite`` does and return
    its tables. ``options``: ``RunOptions``' fields (``smoke``, ``out``, ``only``, ``address``,
    ``tracker``, ...); an unknown one is a TypeError naming the valid ones."""
    valid = [f.name for f in dataclasses.fields(RunOptions)]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise TypeError(f"run_suite() got unknown option(s) {', '.join(unknown)}; valid options: {', '.join(valid)}")
    if "out" in options:
        options["out"] = Path(options["out"])
    return SuiteRun.load(run_suite_dir(name_or_path, RunOptions(**options)))
