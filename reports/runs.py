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

RESULT_COLUMNS = [
    "suite", "run_id", "trial_id", "task", "module", "family", "backbone", "data", "seed", "options",
    "iters", "status", "error", "node", "device", "device_name", "seconds",
    "params", "macs_fvcore", "macs_torchprofile", "flops_torch", "latency_ms", "latency_iqr_ms",
    "peak_mem_bytes", "profile_shape", "mIoU", "aAcc", "fid", "fid_surrogate", "symmetry_error",
]
REQUIRED_RESULT_COLUMNS = ["trial_id", "task", "module", "status"]


class RunDirError(ValueError):
    """A path that is not a readable run directory."""


@dataclass
class Runs:
    """The tables of one or more run directories, stacked."""

    results: pd.DataFrame
    profile: pd.DataFrame | None
    meta: list[dict[str, Any]] = field(default_factory=list)  # one per run, with "run_dir" added
    suite_yaml: dict[str, str] = field(default_factory=dict)  # run dir -> suite.yaml text


def canonical_options(value: Any) -> str:
    """The trial's module options as compact JSON with sorted keys, so equal options group together."""
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)) or value == "":
        return "{}"
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return value  # not JSON: keep the text as written (it is escaped when shown)
    return json.dumps(value, sort_keys=True, separators=(", ", ": "), default=str)


def normalise_results(df: pd.DataFrame) -> pd.DataFrame:
    """Add the optional columns a task does not write (fid for seg, mIoU for gan) as missing values
    and canonicalise the options, so every reader sees the full schema."""
    missing = [c for c in REQUIRED_RESULT_COLUMNS if c not in df.columns]
    if missing:
        raise RunDirError(f"the results table lacks the column(s) {missing}")
    df = df.copy()
    for col in RESULT_COLUMNS:
        if col not in df.columns:
            df[col] = pd.NA
    df["options"] = df["options"].map(canonical_options)
    return df


def _read_results(run_dir: Path) -> pd.DataFrame:
    path = run_dir / "results.parquet"
    if not path.is_file():
        raise RunDirError(f"{run_dir} is not a run directory: it has no results.parquet")
    try:
        df = normalise_results(pd.read_parquet(path))
    except RunDirError as exc:
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
    merged = merged.reindex(columns=list(dict.fromkeys(RESULT_COLUMNS + list(merged.columns))))
    profile = pd.concat(profiles, ignore_index=True) if profiles else None
    return Runs(merged, profile, metas, suites)


def load_references() -> pd.DataFrame:
    """The published reference points shipped as ``references.csv`` (units in its header)."""
    with resources.files("hambench.reports").joinpath("references.csv").open() as f:
        return pd.read_csv(f, comment="#")
