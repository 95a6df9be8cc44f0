"""A run folder's derived tables (``results.parquet``, ``history.parquet``, ``profile.parquet``,
``summary.csv`` and its companions), checked and rebuilt from what the run keeps besides: its Tune
experiment state (read offline, no Ray) and its trials' done records. ``hambench report`` calls it
on a run whose tables are missing or damaged."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pandas as pd
from ray.tune import ExperimentAnalysis, ResultGrid

from hambench.suite import load_suite
from hambench.tuning.rundir import SuiteRunError
from hambench.tuning.tables import collect_tables, write_parquet, write_summary
from hambench.tuning.trainable import done_ids, read_done

DERIVED_TABLES = ("results.parquet", "history.parquet", "profile.parquet", "summary.csv")


def damaged_tables(run_dir: Path) -> list[str]:
    """The derived tables of a run that cannot be read: ``results.parquet`` missing or unreadable,
    or another of them present and unreadable (``history``, ``profile`` and ``summary`` are
    optional to a reader: the report computes the summary itself, a run that profiled nothing has no
    profile table, a hand-made run folder may have no history)."""
    bad = []
    for name in DERIVED_TABLES:
        path = run_dir / name
        if not path.is_file():
            if name == "results.parquet":
                bad.append(name)
            continue
        try:
            pd.read_parquet(path) if name.endswith(".parquet") else pd.read_csv(path)
        except Exception:  # noqa: BLE001  (any reader's error: truncated, garbled, empty)
            bad.append(name)
    return bad


def rebuild_tables(run_dir: Path) -> list[str]:
    """Write the run's derived tables again, as the driver does at the end of a run: from its Tune
    experiment state (read offline, no Ray) and its trials' done records, with the suite the run
    kept (``suite.yaml``). Returns the files written. A run folder without those sources raises
    ``SuiteRunError`` naming what is missing."""
    meta_path = run_dir / "meta.json"
    try:
        meta = json.loads(meta_path.read_text())
        suite = load_suite(run_dir / "suite.yaml")
    except (OSError, ValueError) as exc:
        raise SuiteRunError(f"cannot be rebuilt: {str(exc).splitlines()[0]}") from None
    experiment = str(meta.get("experiment") or "")
    parts = [p for p in (experiment, f"{experiment}-search", f"{experiment}-retrain") if p and Path(p).is_dir()]
    if not parts:
        raise SuiteRunError(f"cannot be rebuilt: the run's Tune experiment {experiment or '(none recorded)'} is gone")
    grids: list[ResultGrid] = []
    records: dict[str, dict[str, Any]] = {}
    for part in parts:
        grids.append(ResultGrid(ExperimentAnalysis(part)))
        done = f"{part}/done"
        records |= {t: r for t in done_ids(done) if (r := read_done(done, t)) is not None}
    table, prof, hist = collect_tables(suite, run_dir.name, itertools.chain(*grids), records)
    write_parquet(run_dir / "results.parquet", table)
    written = ["results.parquet", "history.parquet"]
    if not prof.empty:
        write_parquet(run_dir / "profile.parquet", prof)
        written.append("profile.parquet")
    write_parquet(run_dir / "history.parquet", hist)
    write_summary(run_dir, table)
    return [*written, "summary.csv"]
