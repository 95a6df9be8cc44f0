"""`hambench cluster check`, and `hambench run suite --address` on a real multi-node Ray cluster.

The fast tests check the per-node logic as plain functions. The slow ones start a real cluster on
this machine: a head and two worker nodes (separate raylet processes, distinct node ids) on
127.0.0.1, in a private RAY_TMPDIR so that no other Ray on this machine sees it (nor `auto` finds
it); the fixture ends exactly what it started (``Cluster.shutdown`` kills its nodes' processes
by id), whatever happens.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from hambench.cli.main import main
from hambench.cluster import (
    NodeReport,
    check_data_root,
    local_versions,
    node_notes,
    node_problems,
    read_probes,
    remove_probe,
    write_probe,
)
from hambench.tuning import DEVICE_RESOURCE

# --- the per-node logic, without a cluster -----------------------------------------------------


def node(**overrides) -> NodeReport:
    fields = dict(
        node_id="a" * 56,
        address="10.0.0.11",
        is_head=False,
        gpus=0.0,
        versions=local_versions(),
        custom_resources={DEVICE_RESOURCE: 1.0},
    )
    return NodeReport(**{**fields, **overrides})


def test_a_ready_node_has_no_problem() -> None:
    assert node_problems(node(gpus=1.0, gpu_names=["NVIDIA L40S"]), local_versions()) == []


def test_a_gpu_advertised_but_not_seen_by_torch_is_a_problem() -> None:
    (problem,) = node_problems(node(gpus=2.0, gpu_names=["NVIDIA L40S"]), local_versions())
    assert "advertises 2 GPU(s) to Ray but torch sees 1" in problem


def test_versions_must_match_the_drivers_but_torch_build_tags_may_differ() -> None:
    driver = {"hambench": "0.1.0", "torch": "2.15.0+cpu", "ray": "2.60.0", "python": "3.11.7"}
    assert node_problems(node(versions={**driver, "torch": "2.15.0+cu132"}), driver) == []
    problems = node_problems(node(versions={**driver, "hambench": "0.0.9", "ray": "2.59.0"}), driver)
    assert problems == ["hambench 0.0.9 differs from the driver's 0.1.0", "ray 2.59.0 differs from the driver's 2.60.0"]
    assert node_problems(node(versions={**driver, "torch": "2.14.0+cpu"}), driver) == [
        "torch 2.14.0+cpu differs from the driver's 2.15.0+cpu"
    ]


def test_a_node_without_the_device_resource_is_ready_with_a_note() -> None:
    # A cluster started the ordinary way (no custom resources) is fine: profiling trials then hold
    # the whole node. Said once, as information, with the resource that narrows it to the device.
    plain = node(custom_resources={})
    assert node_problems(plain, local_versions()) == []
    (note,) = node_notes(plain)
    assert DEVICE_RESOURCE in note and "hold the whole node" in note and "--resources=" in note
    assert node_notes(node()) == []  # a node with the unit: nothing to say


def test_data_root_must_be_a_listable_non_empty_directory(tmp_path: Path) -> None:
    assert check_data_root(str(tmp_path / "missing")) == (False, f"data root {tmp_path / 'missing'} does not exist")
    (tmp_path / "file").write_text("x")
    assert check_data_root(str(tmp_path / "file"))[1].endswith("is not a directory")
    (tmp_path / "empty").mkdir()
    assert check_data_root(str(tmp_path / "empty"))[1].endswith("is empty")
    assert check_data_root(str(tmp_path)) == (True, "ok (2 entries)")


def test_probe_files_are_written_read_back_and_removed(tmp_path: Path) -> None:
    path, error = write_probe(str(tmp_path), "node1", "check1")
    assert error is None and Path(path).read_text() == "node1"
    assert read_probes(str(tmp_path), {"node1": path}) == {}
    assert "cannot read" in read_probes(str(tmp_path), {"node2": path.replace("node1", "node2")})["node2"]
    Path(path).write_text("node3")  # another node's content under this name: not this node's probe
    assert "another node's probe" in read_probes(str(tmp_path), {"node1": path})["node1"]
    remove_probe(str(tmp_path), path)
    assert not (tmp_path / ".hambench-cluster-check").joinpath("check1").exists()


def test_unwritable_storage_names_the_reason(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")  # a file where the storage directory should be
    path, error = write_probe(str(tmp_path / "file"), "node1", "check1")
    assert path is None and error.startswith(f"cannot read-write storage {tmp_path / 'file'}")


def test_storage_that_others_cannot_see_is_not_shared() -> None:
    # Each opening of pyarrow's mock:// is a fresh in-memory file system: what one opening (a
    # node) writes, another (any other node) cannot read, like a directory only one machine has.
    path, error = write_probe("mock:///results", "node1", "check1")
    assert error is None  # the writer reads its own probe back
    assert "cannot read" in read_probes("mock:///results", {"node1": path})["node1"]


@pytest.mark.parametrize("flag", ["--storage", "--data-root"])
def test_relative_paths_are_refused_before_connecting(flag: str, capsys) -> None:
    assert main(["cluster", "check", "--address", "127.0.0.1:1", flag, "results"]) == 2
    err = capsys.readouterr().err
    assert f"{flag} must be an absolute path" in err and "'results'" in err


def test_no_cluster_at_the_address_is_a_clear_error(capsys) -> None:
    # Port 9 (discard) has no listener: the check says so at once instead of Ray's minutes of retries.
    assert main(["cluster", "check", "--address", "127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert "cannot connect to a Ray cluster at '127.0.0.1:9': nothing answers at" in err


# --- a real cluster: a head and two workers on 127.0.0.1 -----------------------------------------

NODE = {"node_ip_address": "127.0.0.1", "object_store_memory": 100 * 1024**2}


@contextlib.contextmanager
def local_cluster(worker_cpus: list[int], resources: dict[str, float] | None = None):
    """A real Ray cluster on this machine: a head that takes no trial and one raylet per entry of
    ``worker_cpus``, each node with ``resources``, in a private RAY_TMPDIR; ends exactly what it started."""
    from ray.cluster_utils import Cluster

    Path("/tmp/ray").mkdir(exist_ok=True)  # Ray's cluster utilities expect it
    env = {
        # Short (Ray's socket paths must stay < 108 characters) and private to this test: `auto`
        # elsewhere on this machine never finds this cluster.
        "RAY_TMPDIR": tempfile.mkdtemp(prefix="hb-cl-", dir="/tmp"),
        # Ray's loopback-only switch (named for the OSes where it is the default): drivers started
        # by the tests resolve this machine to 127.0.0.1, where the nodes below listen, and nothing
        # listens on a network interface.
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    started = Cluster(shutdown_at_exit=True)
    node = {**NODE, **({"resources": resources} if resources else {})}  # every node alike, the head too
    try:
        started.add_node(**node, num_cpus=0, include_dashboard=False)  # the head takes no trial
        for cpus in worker_cpus:
            started.add_node(**node, num_cpus=cpus)
        started.wait_for_nodes()
        yield started
    finally:
        started.shutdown()  # ends exactly the processes these nodes started, by their ids
        shutil.rmtree(env["RAY_TMPDIR"], ignore_errors=True)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def cluster():
    with local_cluster([1, 1], resources={DEVICE_RESOURCE: 1}) as started:
        yield started


def hambench(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """The real CLI in its own process (a driver that connects to the cluster, like a user's)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "hambench", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def check_json(cluster, *args: str) -> tuple[int, dict]:
    result = hambench("cluster", "check", "--address", cluster.address, "--json", *args)
    assert result.returncode in (0, 1), result.stdout + result.stderr
    return result.returncode, json.loads(result.stdout)


@pytest.mark.slow
def test_check_sees_three_nodes_that_share_storage(cluster, tmp_path: Path) -> None:
    (tmp_path / "data" / "ADEChallengeData2016").mkdir(parents=True)
    rc, report = check_json(cluster, "--storage", str(tmp_path / "runs"), "--data-root", str(tmp_path / "data"))
    assert rc == 0 and report["ok"], report["problems"]
    nodes = report["nodes"]
    assert len({n["node_id"] for n in nodes}) == 3
    assert sorted(n["is_head"] for n in nodes) == [False, False, True]
    assert sorted(n["cpus"] for n in nodes) == [0, 1, 1]
    assert {n["address"] for n in nodes} == {"127.0.0.1"}
    assert all(n["storage"] == "shared" and n["data_root"] == "ok (1 entry)" for n in nodes)
    assert all(n["versions"] == report["driver"]["versions"] for n in nodes)
    assert report["notes"] == []  # every node has the device unit
    # The probes are cleaned up: nothing but the empty probe root is left in the storage.
    assert [p.name for p in (tmp_path / "runs" / ".hambench-cluster-check").iterdir()] == []


@pytest.mark.slow
def test_a_node_started_without_custom_resources_passes_with_a_note(cluster) -> None:
    plain = cluster.add_node(node_ip_address="127.0.0.1", num_cpus=0, object_store_memory=100 * 1024**2)
    try:
        cluster.wait_for_nodes()
        result = hambench("cluster", "check", "--address", cluster.address)
    finally:
        cluster.remove_node(plain)
    assert result.returncode == 0, result.stdout + result.stderr
    infos = [line for line in result.stdout.splitlines() if line.startswith("INFO node ")]
    assert len(infos) == 1 and infos[0].startswith(f"INFO node {plain.node_id[:8]} (127.0.0.1, worker)"), infos
    assert "profiling trials will hold the whole node instead" in infos[0]
    assert "FAIL" not in result.stdout and "cluster ready: 4 node(s)" in result.stdout


@pytest.mark.slow
def test_check_fails_naming_each_node_and_reason(cluster) -> None:
    fake_gpu = cluster.add_node(
        **NODE, num_cpus=1, num_gpus=1, resources={DEVICE_RESOURCE: 1}
    )  # advertises a GPU this machine lacks
    try:
        cluster.wait_for_nodes()
        result = hambench(
            "cluster",
            "check",
            "--address",
            cluster.address,
            "--storage",
            "mock:///results",
            "--data-root",
            "/nonexistent/ade",
        )
    finally:
        cluster.remove_node(fake_gpu)
    assert result.returncode == 1, result.stdout + result.stderr
    fails = [line for line in result.stdout.splitlines() if line.startswith("FAIL node ")]
    ids = [fake_gpu.node_id, cluster.head_node.node_id, *(n.node_id for n in cluster.worker_nodes)]
    assert len(set(ids)) == 4
    for node_id in ids:
        mine = [line for line in fails if line.startswith(f"FAIL node {node_id[:8]} (127.0.0.1, ")]
        assert any(line.endswith("data root /nonexistent/ade does not exist") for line in mine), mine
        assert any(
            "storage mock:///results is not shared" in line and "cannot be read from" in line for line in mine
        ), mine
        gpu = [line for line in mine if "advertises 1 GPU(s) to Ray but torch sees 0" in line]
        assert len(gpu) == (node_id == fake_gpu.node_id), mine
    assert len(fails) == 4 * 2 + 1
    assert "cluster not ready: 9 problem(s)" in result.stdout


def quickstart_smoke(address: str, out: Path, *flags: str) -> None:
    """``hambench run suite quickstart --smoke`` on the cluster at ``address``, into ``out``, with no
    report and ``flags``; it must succeed (the test fails showing the end of its output)."""
    result = hambench(
        "run", "suite", "quickstart", "--smoke", *flags, "--address", address, "--out", str(out), "--no-report"
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.mark.slow
def test_run_suite_places_trials_on_both_workers(cluster, tmp_path: Path) -> None:
    import pandas as pd

    # Two of quickstart's modules: six trials (a profile and two smoke seeds each), two at a time.
    # Each worker has one CPU and the head none, so the two running trials sit on different workers.
    quickstart_smoke(cluster.address, tmp_path / "runs", "--only", "ham-nmf", "nonlocal")
    (results,) = (tmp_path / "runs" / "quickstart").glob("*/results.parquet")
    table = pd.read_parquet(results)
    assert len(table) == 6 and (table["status"] == "ok").all(), table[["trial_id", "status", "error"]]
    worker_ids = {n.node_id[:8] for n in cluster.worker_nodes}
    used = {name.rsplit(":", 1)[1] for name in table["node"]}  # "hostname:node-id[:8]"
    assert used == worker_ids, f"trials ran on {used}, the workers are {worker_ids}"
