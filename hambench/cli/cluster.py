"""``hambench cluster check``: is the Ray cluster at ADDRESS ready for a suite?"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from rich.table import Table

from hambench.cli import console

if TYPE_CHECKING:
    from hambench.cluster import ClusterReport, NodeReport  # imports ray: for the checker only


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("cluster", help="check a Ray cluster before running a suite on it")
    csub = p.add_subparsers(dest="cluster_command", required=True)

    ck = csub.add_parser(
        "check",
        parents=[common],
        help="per node: address, CPUs, GPUs, versions, data root and storage access",
        description="Connect to a Ray cluster and run a small task pinned to each node. Exits 1 "
        "when a node lacks a GPU it advertises, its hambench/torch/Ray/Python versions differ "
        "from the driver's, it cannot read the data root, or the storage is not shared; exits 2 "
        "when it cannot connect. A node without the hambench_device resource passes (INFO: "
        "profiling trials hold the whole node there).",
    )
    ck.add_argument(
        "--address",
        default="auto",
        help="Ray cluster address: auto (the cluster this machine belongs to), HOST:PORT, "
        "or ray://HOST:10001 (default: auto)",
    )
    ck.add_argument(
        "--storage",
        metavar="PATH",
        help="results storage to test for read-write access from every node: an absolute "
        "path every node mounts, or s3://bucket/prefix, gs://bucket/prefix",
    )
    ck.add_argument("--data-root", metavar="PATH", help="data root every node must be able to read (an absolute path)")
    ck.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        metavar="S",
        help="seconds to wait for the per-node tasks (default: 300)",
    )
    ck.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    ck.set_defaults(func=run_check)


def run_check(args: argparse.Namespace) -> int:
    """Exit status 0 when the cluster is ready, 1 when a node has a problem; a check that cannot
    run (a ClusterCheckError: no cluster, a relative path) is main's one-line user error."""
    from hambench.cluster import check_cluster  # imports ray: only when checking

    report = check_cluster(args.address, storage=args.storage, data_root=args.data_root, timeout_s=args.timeout)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        _print_report(report)
    return 0 if report.ok else 1


def _print_report(report: ClusterReport) -> None:
    out = console()
    versions = report.driver["versions"]
    out.print(
        f"Ray cluster at {report.address}: {len(report.nodes)} node(s); driver on {report.driver['hostname']} "
        f"(hambench {versions['hambench']}, torch {versions['torch']}, ray {versions['ray']}, "
        f"python {versions['python']})"
    )
    table = Table()
    for col in (
        "node",
        "address (host)",
        "CPUs",
        "GPUs",
        "resources",
        "hambench / torch / ray",
        "data root",
        "storage",
        "status",
    ):
        table.add_column(col)
    for n in report.nodes:
        table.add_row(
            n.node_id[:8] + (" head" if n.is_head else ""),
            f"{n.address} ({n.hostname})",
            f"{n.cpus:g}",
            _gpus(n),
            " ".join(f"{k}={v:g}" for k, v in sorted(n.custom_resources.items())),
            " / ".join(n.versions.get(pkg, "?") for pkg in ("hambench", "torch", "ray")),
            n.data_root,
            n.storage,
            "[green]ok[/green]" if not n.problems else f"[red]{len(n.problems)} problem(s)[/red]",
        )
    out.print(table)
    for note in report.notes:
        out.print(f"[cyan]INFO[/cyan] {note}", highlight=False, soft_wrap=True)
    for problem in report.problems:
        out.print(f"[red]FAIL[/red] {problem}", highlight=False, soft_wrap=True)
    if report.ok:
        out.print(f"[green]cluster ready[/green]: {len(report.nodes)} node(s) passed every check")
    else:
        out.print(f"[red]cluster not ready[/red]: {len(report.problems)} problem(s)")


def _gpus(node: NodeReport) -> str:
    seen = len(node.gpu_names)
    names = f" ({', '.join(sorted(set(node.gpu_names)))})" if node.gpu_names else ""
    if seen == node.gpus:
        return f"{node.gpus:g}{names}"
    return f"{node.gpus:g} advertised, {seen} seen{names}"
