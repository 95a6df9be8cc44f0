"""Which software and which machines ran something: one function each, for a run's ``meta.json``
(``hambench.tuning``) and the cluster check (``hambench.cluster``)."""

from __future__ import annotations

import importlib.metadata
import platform
from typing import Any


def local_versions() -> dict[str, str]:
    """hambench, torch, Ray and Python as this process sees them. torch's version keeps its build
    tag (``+cpu``, ``+cu132``): the build that ran is part of what a run records."""
    import torch

    versions = {pkg: importlib.metadata.version(pkg) for pkg in ("hambench", "ray")}
    versions["torch"] = torch.__version__
    versions["python"] = platform.python_version()
    return {pkg: versions[pkg] for pkg in ("hambench", "torch", "ray", "python")}


def node_label(hostname: str, node_id: str) -> str:
    """``hostname:abcd1234``: the host and Ray's node id, so nodes of one machine stay distinct."""
    return f"{hostname}:{node_id[:8]}"


def alive_nodes() -> list[dict[str, Any]]:
    """The connected Ray cluster's alive nodes: label, hostname, CPUs and GPUs each."""
    import ray

    return [
        {
            "node": node_label(n["NodeManagerHostname"], n["NodeID"]),
            "hostname": n["NodeManagerHostname"],
            "cpus": n["Resources"].get("CPU", 0),
            "gpus": n["Resources"].get("GPU", 0),
        }
        for n in ray.nodes()
        if n.get("Alive")
    ]
