"""Suite scaling: the same suite of short CPU trials on one worker node and on two.

A local Ray cluster (``ray.cluster_utils.Cluster``: a head with no CPUs plus N worker nodes of one
CPU each) runs a profiling suite of ``--trials`` trials; each trial profiles a plugin module that
sleeps ``--delay`` seconds per forward, so a trial's length is set by the clock rather than by the
CPU (two 1-CPU nodes on a 2-core machine would otherwise compete with Ray's own processes).

Prints the wall time on 1 and 2 nodes, the speed-up (target >= 1.7x), and hambench's scheduling
overhead per trial: (wall time x nodes - sum of trial times) / trials, i.e. the node time a trial
costs beyond its own run (Ray actor start, the trial's imports and plugin loading, Tune
bookkeeping, result collection).

    OMP_NUM_THREADS=1 python benchmarks/suite_scaling.py --trials 16 --delay 0.05
"""

from __future__ import annotations

import argparse
import tempfile
import textwrap
import time
from pathlib import Path

import pandas as pd

from hambench.tuning import DEVICE_RESOURCE, RunOptions, run_suite

PLUGIN = '''
import time
from torch import nn
from hambench.registry import register_module


@register_module("sleepy", family="other", complexity="O(1)")
class Sleepy(nn.Module):
    """Identity plus a 1x1 conv that sleeps `delay` seconds per forward: a fixed-length trial."""

    def __init__(self, channels, delay: float = 0.05, tag: int = 0):
        super().__init__()
        self.delay = delay
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        time.sleep(self.delay)
        return x + self.proj(x)
'''


def write_suite(root: Path, trials: int, delay: float) -> Path:
    modules = ", ".join(f"{{name: sleepy, options: {{delay: [{delay}], tag: [{i}]}}}}" for i in range(trials))
    path = root / "scaling.yaml"
    path.write_text(
        textwrap.dedent(f"""
        name: scaling
        description: short CPU trials for the scaling benchmark
        task: profile
        grid:
          modules: [{modules}]
        profile: {{shape: [1, 8, 8, 8], sweep: [4, 8]}}
        metrics: [latency_ms]
    """)
    )
    return path


def run_on(nodes: int, suite: Path, plugin: Path, out: Path) -> tuple[float, pd.DataFrame]:
    from ray.cluster_utils import Cluster

    temp_dir = tempfile.mkdtemp(prefix="hbsc-")
    node = dict(object_store_memory=80 * 1024**2, temp_dir=temp_dir)
    cluster = Cluster(initialize_head=True, head_node_args=dict(num_cpus=0, **node))
    try:
        for _ in range(nodes):
            cluster.add_node(num_cpus=1, resources={DEVICE_RESOURCE: 1}, **node)
        cluster.wait_for_nodes()
        start = time.perf_counter()
        run_dir = run_suite(
            suite,
            RunOptions(
                address=cluster.address,
                out=out,
                run_id=f"nodes{nodes}",
                plugins=[str(plugin)],
                progress=False,
                report=False,
            ),
        )
        wall = time.perf_counter() - start
    finally:
        cluster.shutdown()
    return wall, pd.read_parquet(run_dir / "results.parquet")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--delay", type=float, default=0.05, help="seconds per forward of the profiled module")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="hb-scaling-"))
    plugin = root / "sleepy.py"
    plugin.write_text(PLUGIN)
    suite = write_suite(root, args.trials, args.delay)
    walls = {}
    for nodes in (1, 2):
        wall, results = run_on(nodes, suite, plugin, root / "runs")
        if not results["status"].eq("ok").all():
            raise SystemExit(f"failed trials on {nodes} node(s):\n{results[['trial_id', 'error']]}")
        trial_s = results["seconds"].sum()
        overhead = (wall * nodes - trial_s) / len(results)
        walls[nodes] = wall
        print(
            f"{nodes} node(s): {len(results)} trials in {wall:.1f} s wall; trials ran {trial_s:.1f} s "
            f"(mean {results['seconds'].mean():.2f} s); overhead {overhead:.2f} s per trial; "
            f"nodes used: {results['node'].nunique()}"
        )
    print(f"speed-up on 2 nodes: {walls[1] / walls[2]:.2f}x (target >= 1.7x)")


if __name__ == "__main__":
    main()
