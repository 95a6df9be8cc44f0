"""Is this Ray cluster ready for a suite? The logic behind ``hambench cluster check``.

For every alive node, small tasks pinned to that node (``NodeAffinitySchedulingStrategy``,
``soft=False``) run in three rounds:

1. probe: the node reports its host, the GPUs torch sees, its hambench / torch / Ray / Python
   versions, whether it can list the data root, and it writes then reads back a probe file under
   the storage path;
2. read: every node (and the driver) reads every other node's probe file: storage is shared only
   when each probe is visible everywhere;
3. clean: each node removes its own probe file.

A node is not ready when it advertises a GPU that torch does not see there, its versions differ
from the driver's (``node_problems``), it cannot list the data root, or it cannot read-write the
storage or others cannot read what it wrote there. A node without the ``hambench_device``
resource (a cluster started the ordinary way) is ready: that is information (``node_notes``),
since profiling trials then hold the whole node instead of its device unit.
The tasks ask for no CPU and no GPU, so they run on a head started with ``--num-cpus=0`` and on
workers busy with other work.

Storage is a local path every node mounts (NFS, EFS, a PVC) or a URI that ``pyarrow.fs`` opens
(``s3://bucket/prefix``, ``gs://bucket/prefix``): the same storage Ray Tune writes trials to.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from typing import Any

import ray
from pyarrow import fs as pafs
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from hambench.nodes import local_versions  # the versions a node reports (also a run's meta.json)
from hambench.tuning import DEVICE_RESOURCE

# The packages whose versions must match the driver's on every node.
VERSIONED = ("hambench", "torch", "ray", "python")
PROBE_DIR = ".hambench-cluster-check"


class ClusterCheckError(RuntimeError):
    """The check could not run at all (bad arguments, no cluster at the address)."""


@dataclass
class NodeReport:
    node_id: str
    address: str
    is_head: bool
    hostname: str = ""
    cpus: float = 0.0
    gpus: float = 0.0  # what the node advertises to Ray
    gpu_names: list[str] = field(default_factory=list)  # what torch sees on the node
    custom_resources: dict[str, float] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    data_root: str = "-"  # "ok (N entries)" or "unreadable" (the reason is a problem); "-": not asked
    storage: str = "-"  # "shared", "not shared" or "cannot read-write"; "-" when not asked
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # worth knowing, not a reason to refuse the node

    @property
    def label(self) -> str:
        return f"{self.node_id[:8]} ({self.address}, {'head' if self.is_head else 'worker'})"


@dataclass
class ClusterReport:
    address: str
    driver: dict[str, Any]  # hostname and versions of the process that ran the check
    data_root: str | None
    storage: str | None
    nodes: list[NodeReport]

    @property
    def problems(self) -> list[str]:
        found = [f"node {n.label}: {p}" for n in self.nodes for p in n.problems]
        if not self.nodes:
            found.append("the cluster has no alive node")
        return found

    @property
    def notes(self) -> list[str]:
        return [f"node {n.label}: {note}" for n in self.nodes for note in n.notes]

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok, "problems": self.problems, "notes": self.notes}


# ---------------------------------------------------------------------------------------------
# What runs on each node. Plain functions (ray.remote wraps them at call time) so they can be
# tested, and read, without a cluster.


def open_storage(storage: str) -> tuple[pafs.FileSystem, str]:
    """``pyarrow.fs`` file system and path for a local absolute path or a URI (s3://, gs://)."""
    try:
        return pafs.FileSystem.from_uri(storage)
    except Exception as exc:  # pyarrow raises ArrowInvalid, ValueError, OSError by scheme
        raise ClusterCheckError(f"cannot open storage {storage!r}: {exc}") from exc


def check_data_root(root: str) -> tuple[bool, str]:
    """(readable, what was found): the data root must be a non-empty directory this node can list."""
    if not os.path.exists(root):
        return False, f"data root {root} does not exist"
    if not os.path.isdir(root):
        return False, f"data root {root} is not a directory"
    try:
        entries = os.listdir(root)
    except OSError as exc:
        return False, f"data root {root} cannot be listed: {exc.strerror or exc}"
    if not entries:
        return False, f"data root {root} is empty"
    return True, f"ok ({len(entries)} {'entry' if len(entries) == 1 else 'entries'})"


def probe_node(node_id: str, data_root: str | None, storage: str | None, check_id: str) -> dict[str, Any]:
    """Round 1, on the node: host, GPUs, versions, data root, and a probe file written and read back."""
    import torch  # on the node: its own torch and CUDA driver

    gpu_names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    probe: dict[str, Any] = {
        "hostname": socket.gethostname(),
        "gpu_names": gpu_names,
        "versions": local_versions(),
        "data_root_ok": None,
        "data_root": "-",
        "storage_error": None,
        "probe_path": None,
    }
    if data_root is not None:
        probe["data_root_ok"], probe["data_root"] = check_data_root(data_root)
    if storage is not None:
        probe["probe_path"], probe["storage_error"] = write_probe(storage, node_id, check_id)
    return probe


def write_probe(storage: str, node_id: str, check_id: str) -> tuple[str | None, str | None]:
    """(path, None) when this node wrote the probe and read it back, else (None, the reason)."""
    try:
        filesystem, base = open_storage(storage)
        directory = f"{base.rstrip('/')}/{PROBE_DIR}/{check_id}"
        path = f"{directory}/{node_id}"
        filesystem.create_dir(directory, recursive=True)
        with filesystem.open_output_stream(path) as out:
            out.write(node_id.encode())
        with filesystem.open_input_stream(path) as inp:
            if inp.read().decode() != node_id:
                return None, f"the probe read back from {path} differs from what was written"
    except Exception as exc:
        return None, f"cannot read-write storage {storage}: {exc}"
    return path, None


def read_probes(storage: str, expected: dict[str, str]) -> dict[str, str]:
    """Round 2: read each node's probe file ``{node_id: path}``; returns ``{node_id: reason}`` for
    the probes this process cannot read back (an empty dict: it sees them all)."""
    failures: dict[str, str] = {}
    try:
        filesystem, _ = open_storage(storage)
    except ClusterCheckError as exc:
        return {node_id: str(exc) for node_id in expected}
    for node_id, path in expected.items():
        try:
            with filesystem.open_input_stream(path) as inp:
                if inp.read().decode() != node_id:
                    failures[node_id] = f"{path} holds another node's probe"
        except Exception as exc:
            failures[node_id] = f"cannot read {path}: {type(exc).__name__}"
    return failures


def remove_probe(storage: str, path: str) -> None:
    """Round 3: remove this node's probe file, and the check's directory once it is empty."""
    with suppress(Exception):
        filesystem, _ = open_storage(storage)
        filesystem.delete_file(path)
        directory = path.rsplit("/", 1)[0]
        if not filesystem.get_file_info(pafs.FileSelector(directory)):
            filesystem.delete_dir(directory)


def node_notes(report: NodeReport) -> list[str]:
    """What is worth knowing about a node that is not a problem: without a ``hambench_device``
    unit a profiling trial still measures alone there, by holding the whole node."""
    if report.custom_resources.get(DEVICE_RESOURCE, 0) < 1:
        return [
            f"no {DEVICE_RESOURCE!r} resource: profiling trials will hold the whole node instead (all the"
            f" CPUs of the cluster's largest node, so they run on nodes of that size only, once one is idle);"
            f" with --resources='{{\"{DEVICE_RESOURCE}\": 1}}' on every node they hold only its device"
        ]
    return []


def node_problems(report: NodeReport, driver_versions: dict[str, str]) -> list[str]:
    """Why a node is not ready: a GPU it advertises that torch does not see, or versions that
    differ from the driver's. Data root and storage reasons are added where they are found."""
    problems = []
    if len(report.gpu_names) < report.gpus:
        problems.append(
            f"advertises {report.gpus:g} GPU(s) to Ray but torch sees {len(report.gpu_names)}"
            " (no CUDA driver, a CPU-only torch build, or a wrong --num-gpus)"
        )
    for pkg in VERSIONED:
        mine, theirs = _comparable(pkg, report.versions.get(pkg)), _comparable(pkg, driver_versions.get(pkg))
        if mine != theirs:
            problems.append(f"{pkg} {report.versions.get(pkg)} differs from the driver's {driver_versions.get(pkg)}")
    return problems


def _comparable(pkg: str, version: str | None) -> str | None:
    # torch's local tag names the build (+cpu, +cu132): a CPU head and GPU workers legitimately
    # differ there, while the release must agree.
    if pkg == "torch" and version is not None:
        return version.split("+")[0]
    return version


# ---------------------------------------------------------------------------------------------
# The driver side: connect, fan the rounds out, gather one report.


def check_cluster(
    address: str | None = "auto",
    *,
    storage: str | None = None,
    data_root: str | None = None,
    timeout_s: float = 300.0,
) -> ClusterReport:
    """Check every alive node of the Ray cluster at ``address`` (connecting unless this process
    already is). ``storage`` and ``data_root`` are checked only when given."""
    storage = _absolute("--storage", storage, uri_ok=True)
    data_root = _absolute("--data-root", data_root, uri_ok=False)
    if not ray.is_initialized():
        _connect(address)

    nodes = [_node_report(n) for n in ray.nodes() if n["Alive"]]
    driver_versions = local_versions()
    report = ClusterReport(
        address=ray.get_runtime_context().gcs_address,
        driver={"hostname": socket.gethostname(), "versions": driver_versions},
        data_root=data_root,
        storage=storage,
        nodes=nodes,
    )
    check_id = uuid.uuid4().hex[:12]
    deadline = time.monotonic() + timeout_s

    # Round 1: probe each node.
    probes = _run_on_nodes(nodes, probe_node, lambda n: (n.node_id, data_root, storage, check_id), deadline)
    written: dict[str, str] = {}  # node_id -> probe path, for the nodes that wrote one
    for node in nodes:
        probe = probes[node.node_id]  # every node has its result or the reason it has none
        if isinstance(probe, str):  # the task failed or timed out: probe is the reason
            node.problems.append(probe)
            continue
        node.hostname, node.gpu_names, node.versions = probe["hostname"], probe["gpu_names"], probe["versions"]
        node.problems += node_problems(node, driver_versions)
        node.notes += node_notes(node)
        node.data_root = probe["data_root"] if probe["data_root_ok"] is not False else "unreadable"
        if probe["data_root_ok"] is False:
            node.problems.append(probe["data_root"])
        if probe["storage_error"]:
            node.storage = "cannot read-write"
            node.problems.append(probe["storage_error"])
        elif probe["probe_path"]:
            written[node.node_id] = probe["probe_path"]

    if storage is not None and written:
        _check_storage_shared(report, storage, written, deadline)
    return report


def _check_storage_shared(report: ClusterReport, storage: str, written: dict[str, str], deadline: float) -> None:
    """Rounds 2 and 3: every node and the driver read every probe; then each node removes its own."""
    readers = [n for n in report.nodes if n.node_id in written]
    # Each node already read its own probe back in round 1; here it reads the others'.
    seen = _run_on_nodes(
        readers, read_probes, lambda n: (storage, {k: v for k, v in written.items() if k != n.node_id}), deadline
    )
    unreadable_from: dict[str, list[str]] = {node_id: [] for node_id in written}  # writer -> readers
    for reader in readers:
        failures = seen[reader.node_id]
        if isinstance(failures, str):
            reader.problems.append(f"could not read the other nodes' probes: {failures}")
            continue
        for writer_id in failures:
            unreadable_from[writer_id].append(f"node {reader.label}")
    for writer_id in read_probes(storage, written):
        unreadable_from[writer_id].append("the driver")
    for node in readers:
        if unreadable_from[node.node_id]:
            node.storage = "not shared"
            node.problems.append(
                f"storage {report.storage} is not shared: the probe this node wrote"
                f" ({written[node.node_id]}) cannot be read from {', '.join(unreadable_from[node.node_id])}"
            )
        else:
            node.storage = "shared"
    _run_on_nodes(readers, remove_probe, lambda n: (report.storage, written[n.node_id]), deadline)


def _connect(address: str | None) -> None:
    """``ray.init(address)``, after making sure something answers there: for an address where
    nothing listens, Ray retries for about ten minutes before it gives up."""
    if address is None or not address.startswith("ray://"):
        from ray._private.services import canonicalize_bootstrap_address  # what ray.init resolves

        try:
            bootstrap = canonicalize_bootstrap_address(address)
        except (ConnectionError, ValueError) as exc:
            raise ClusterCheckError(f"no Ray cluster at {address!r}: {exc}") from exc
        if bootstrap is None:
            raise ClusterCheckError(
                f"no Ray cluster at {address!r}: start one (ray up, ray start --head) or pass HOST:PORT"
            )
        host, port = bootstrap.rsplit(":", 1)
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
        except OSError as exc:
            raise ClusterCheckError(
                f"cannot connect to a Ray cluster at {address!r}: nothing answers at {bootstrap} ({exc})"
            ) from exc
    try:
        ray.init(address=address, log_to_driver=False, logging_level="WARNING")
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ClusterCheckError(f"cannot connect to a Ray cluster at {address!r}: {exc}") from exc


def _run_on_nodes(
    nodes: list[NodeReport], fn: Callable[..., Any], args_for: Callable[[NodeReport], tuple], deadline: float
) -> dict[str, Any]:
    """Run ``fn(*args_for(node))`` on each node (hard affinity, no CPU or GPU asked); returns
    ``{node_id: result}``, with the reason as a string where the task failed or timed out."""
    task = ray.remote(num_cpus=0, num_gpus=0, max_retries=0)(fn)
    refs = {
        n.node_id: task.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=n.node_id, soft=False)
        ).remote(*args_for(n))
        for n in nodes
    }
    ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=max(deadline - time.monotonic(), 1.0))
    ready = set(ready)
    results: dict[str, Any] = {}
    for node_id, ref in refs.items():
        if ref not in ready:
            with suppress(Exception):  # it may finish or fail while being cancelled
                ray.cancel(ref, force=True)
            results[node_id] = f"{fn.__name__} did not finish before the timeout (node busy or unreachable)"
            continue
        try:
            results[node_id] = ray.get(ref)
        except Exception as exc:
            results[node_id] = f"{fn.__name__} failed on the node: {type(exc).__name__}: {exc}".splitlines()[0]
    return results


def _node_report(node: dict[str, Any]) -> NodeReport:
    resources = node.get("Resources", {})
    # Ray's own bookkeeping resources are not interesting to a user reading the table.
    custom = {
        k: v
        for k, v in resources.items()
        if k not in ("CPU", "GPU", "memory", "object_store_memory") and not k.startswith(("node:", "accelerator_type:"))
    }
    return NodeReport(
        node_id=node["NodeID"],
        address=node["NodeManagerAddress"],
        is_head="node:__internal_head__" in resources,
        cpus=resources.get("CPU", 0.0),
        gpus=resources.get("GPU", 0.0),
        custom_resources=custom,
    )


def _absolute(flag: str, path: str | None, *, uri_ok: bool) -> str | None:
    """The path with ``~`` expanded; it must be absolute (a relative path means a different
    directory on every node) or, where allowed, a URI."""
    if path is None:
        return None
    if uri_ok and "://" in path:
        return path
    path = os.path.expanduser(path)
    if not os.path.isabs(path):
        kinds = "an absolute path or a URI such as s3://bucket/prefix" if uri_ok else "an absolute path"
        raise ClusterCheckError(f"{flag} must be {kinds} (every node resolves it), got {path!r}")
    return path
