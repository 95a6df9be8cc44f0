"""Fault tolerance on a real multi-node Ray cluster on this machine (``ray.cluster_utils.Cluster``:
a head with no CPUs and worker nodes with their own raylets):

- trials spread over both worker nodes;
- a worker node dies mid-trial: the trial is retried on the other node from its last checkpoint
  and every trial appears exactly once;
- the driver is killed: ``--resume`` continues without re-running finished trials and gives the
  same results table as an uninterrupted run;

All slow (each starts Ray); the trials are profiling trials of a plugin module that sleeps in
``forward``, so they last seconds and count their executions in a marker file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from hambench.tuning import DEVICE_RESOURCE, RunOptions, run_suite
from test_run_suite import profile_suite, write_plugin

pytestmark = pytest.mark.slow

DETERMINISTIC = ["trial_id", "task", "module", "options", "status", "params", "macs_fvcore", "profile_shape"]


@pytest.fixture
def cluster():
    """A head (0 CPUs) and two worker nodes (1 CPU and one device unit each); ends what it started."""
    from ray.cluster_utils import Cluster

    temp_dir = tempfile.mkdtemp(prefix="hbft-")  # short: Ray's socket paths must stay < 108 chars
    node = dict(object_store_memory=80 * 1024**2, temp_dir=temp_dir)
    c = Cluster(initialize_head=True, head_node_args=dict(num_cpus=0, **node))
    workers = [c.add_node(num_cpus=1, resources={DEVICE_RESOURCE: 1}, **node) for _ in range(2)]
    c.wait_for_nodes()
    try:
        yield c, workers
    finally:
        c.shutdown()


def probe_modules(marker_dir: Path, names: list[str], delay: float) -> str:
    rows = [f'{{name: test-probe, options: {{marker: ["{marker_dir / n}"], delay: [{delay}]}}}}' for n in names]
    return "[" + ", ".join(rows) + "]"


def processes(marker: Path) -> int:
    """Distinct processes that built the trial's module."""
    return len(set(marker.read_text().split())) if marker.exists() else 0


def builds(marker: Path) -> int:
    """Times the trial's module was built: once per profiled shape of each execution."""
    return len(marker.read_text().split()) if marker.exists() else 0


def node_label(node) -> str:  # noqa: ANN001
    return node.node_id[:8]


def test_trials_run_on_both_worker_nodes(tmp_path: Path, cluster) -> None:  # noqa: ANN001
    c, workers = cluster
    plugin = write_plugin(tmp_path)
    suite = profile_suite(tmp_path, probe_modules(tmp_path, ["a", "b", "c", "d"], delay=0.02), name="spread")
    run_dir = run_suite(
        suite, RunOptions(address=c.address, out=tmp_path / "runs", plugins=[str(plugin)], progress=False, report=False)
    )
    results = pd.read_parquet(run_dir / "results.parquet")
    assert results["status"].eq("ok").all() and len(results) == 4
    ran_on = {n.split(":")[1] for n in results["node"]}
    assert ran_on == {node_label(w) for w in workers}


def _running_trial_with_checkpoint(experiment: Path) -> tuple[str, str] | None:
    """(trial dir name, node label) of a trial that has saved a checkpoint and is not done."""
    done = {p.stem for p in (experiment / "done").glob("*.json")}
    for trial_dir in experiment.glob("profile-*"):
        if trial_dir.name in done or not list(trial_dir.glob("checkpoint_*")):
            continue
        lines = (trial_dir / "result.json").read_text().splitlines() if (trial_dir / "result.json").exists() else []
        if lines:
            return trial_dir.name, json.loads(lines[-1])["node"].split(":")[1]
    return None


def test_node_death_retries_the_trial_elsewhere_from_its_checkpoint(tmp_path: Path, cluster) -> None:  # noqa: ANN001
    c, workers = cluster
    plugin = write_plugin(tmp_path)
    # Six steps per trial (the main shape and five sweep sizes), a checkpoint after each.
    suite = profile_suite(
        tmp_path, probe_modules(tmp_path, ["a", "b"], delay=0.05), name="node-death", sweep="[4, 5, 6, 7, 8]"
    )
    out = tmp_path / "runs"
    killed: dict[str, str] = {}

    def kill_a_node_mid_trial() -> None:
        deadline = time.time() + 240
        while time.time() < deadline and not killed:
            experiments = list(out.glob("node-death/*/tune-*"))
            found = _running_trial_with_checkpoint(experiments[0]) if experiments else None
            if found:
                trial, label = found
                node = next(w for w in workers if node_label(w) == label)
                c.remove_node(node, allow_graceful=False)
                killed.update(trial=trial, node=label)
            time.sleep(0.2)

    chaos = threading.Thread(target=kill_a_node_mid_trial, daemon=True)
    chaos.start()
    run_dir = run_suite(
        suite, RunOptions(address=c.address, out=out, plugins=[str(plugin)], progress=False, report=False, run_id="r")
    )
    chaos.join(timeout=5)
    assert killed, "no trial was caught mid-run with a checkpoint"

    results = pd.read_parquet(run_dir / "results.parquet")
    assert sorted(results["trial_id"]) == sorted(results["trial_id"].unique()) and len(results) == 2
    assert results["status"].eq("ok").all(), results[["trial_id", "error"]].to_string()
    victim = results[results["trial_id"] == killed["trial"]].iloc[0]
    assert victim["node"].split(":")[1] != killed["node"]  # finished on the surviving node
    marker = tmp_path / json.loads(victim["options"])["marker"].rsplit("/", 1)[1]
    assert processes(marker) == 2  # the first execution died with its node; one retry elsewhere

    # The retry resumed from the checkpoint: step 1 (the main shape) was reported only once.
    experiment = next(out.glob("node-death/r/tune-*"))
    reports = [json.loads(line) for line in (experiment / killed["trial"] / "result.json").read_text().splitlines()]
    steps = [r["iter"] for r in reports if r.get("status") == "running"]
    assert steps.count(1) == 1 and max(steps) == 6
    history = pd.read_parquet(run_dir / "history.parquet")
    assert sorted(history[history["trial_id"] == killed["trial"]]["iter"]) == [1, 2, 3, 4, 5, 6]


def _hambench(*args: str, **kw) -> subprocess.Popen:  # noqa: ANN003
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "hambench", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kw,
    )


@pytest.mark.parametrize("sig", [signal.SIGKILL])
def test_resume_after_the_driver_is_killed(tmp_path: Path, sig: signal.Signals) -> None:
    plugin = write_plugin(tmp_path)
    names = ["a", "b", "c", "d", "e"]
    # One profiled shape per trial: the probe's module is built once per execution.
    suite = profile_suite(tmp_path, probe_modules(tmp_path / "m", names, delay=0.02), name="resume")
    (tmp_path / "m").mkdir()
    common = ["--plugin", str(plugin), "--out", str(tmp_path / "runs"), "--num-cpus", "1", "--no-report"]

    driver = _hambench("run", "suite", str(suite), "--run-id", "r", *common, start_new_session=True)
    deadline = time.time() + 300
    done_dir = None
    while time.time() < deadline:
        done_dir = next(iter((tmp_path / "runs" / "resume" / "r").glob("tune-*/done")), None)
        if done_dir is not None and len(list(done_dir.glob("*.json"))) >= 2:
            break
        assert driver.poll() is None, driver.stdout.read()
        time.sleep(0.2)
    os.killpg(driver.pid, sig)  # the driver and the Ray it started
    driver.wait(timeout=60)
    finished_before = {p.stem for p in done_dir.glob("*.json")}
    assert 2 <= len(finished_before) < len(names)

    resumed = _hambench("run", "suite", str(suite), "--resume", *common)
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out
    results = pd.read_parquet(tmp_path / "runs" / "resume" / "r" / "results.parquet")
    assert len(results) == len(names) and results["trial_id"].is_unique and results["status"].eq("ok").all()
    for _, row in results.iterrows():
        runs = builds(Path(json.loads(row["options"])["marker"]))
        if row["trial_id"] in finished_before:
            assert runs == 1, f"{row['trial_id']} finished before the kill but ran {runs} times"
        else:
            assert runs in (1, 2)  # running at the kill (then once more) or still pending

    # The same table as an uninterrupted run (the columns a rerun must reproduce).
    for p in (tmp_path / "m").iterdir():
        p.unlink()
    straight = _hambench("run", "suite", str(suite), "--run-id", "straight", *common)
    out, _ = straight.communicate(timeout=300)
    assert straight.returncode == 0, out
    again = pd.read_parquet(tmp_path / "runs" / "resume" / "straight" / "results.parquet")
    pd.testing.assert_frame_equal(
        results[DETERMINISTIC].reset_index(drop=True), again[DETERMINISTIC].reset_index(drop=True)
    )
