"""A Ray cluster started the ordinary way (no custom resources): `hambench cluster check` passes
and the quickstart runs there with `--address`, its profiling trials alone on their node.

The cluster is real and on this machine (``ray.cluster_utils.Cluster``): a head with no CPUs and
two workers with two CPUs each (separate raylets, distinct node ids), in a private RAY_TMPDIR; the
fixture ends exactly what it started. Without ``hambench_device`` a profiling trial asks for both
CPUs of a worker, so only an idle worker can host it; the results' ``node``, ``started_at`` and
``ended_at`` show that none overlapped another trial on its node.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from test_cluster_check import hambench, local_cluster, quickstart_smoke

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def vanilla_cluster():
    with local_cluster([2, 2]) as started:  # no resources: what `ray start` gives
        yield started


def test_cluster_check_passes_with_a_note_per_worker(vanilla_cluster) -> None:
    result = hambench("cluster", "check", "--address", vanilla_cluster.address, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] and report["problems"] == []
    assert len(report["nodes"]) == 3
    assert len(report["notes"]) == 3 and all("profiling trials will hold the whole node" in n for n in report["notes"])


def overlaps(a: pd.Series, b: pd.Series) -> bool:
    return a["started_at"] < b["ended_at"] and b["started_at"] < a["ended_at"]


def test_quickstart_smoke_runs_with_profiling_trials_alone_on_their_node(vanilla_cluster, tmp_path: Path) -> None:
    quickstart_smoke(vanilla_cluster.address, tmp_path / "runs", "--run-id", "v")
    run_dir = tmp_path / "runs" / "quickstart" / "v"
    assert json.loads((run_dir / "meta.json").read_text())["placement"] == "whole node (2 CPUs)"
    table = pd.read_parquet(run_dir / "results.parquet")
    assert len(table) == 8 * 3 and (table["status"] == "ok").all(), table[["trial_id", "status", "error"]]
    assert table["started_at"].notna().all() and (table["ended_at"] > table["started_at"]).all()
    workers = {n.node_id[:8] for n in vanilla_cluster.worker_nodes}
    assert {name.rsplit(":", 1)[1] for name in table["node"]} <= workers  # the head has no CPU: no trial
    profiling = table[table["task"] == "profile"]
    assert len(profiling) == 8
    for _, p in profiling.iterrows():
        beside = table[(table["node"] == p["node"]) & (table["trial_id"] != p["trial_id"])]
        clashes = [q["trial_id"] for _, q in beside.iterrows() if overlaps(p, q)]
        assert not clashes, f"{p['trial_id']} measured while {clashes} ran on its node"
