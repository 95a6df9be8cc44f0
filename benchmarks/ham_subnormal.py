"""ham-cd and ham-vq against ham-nmf on the CPU: forward latency ratios, and the subnormal floats
each module's forward produces. Subnormals (0 < |v| < 2^-126 in fp32) take a slow microcode path
on x86 CPUs; the soft assignments of VQ and CD used to be full of them (see modules/ham.py).

    python benchmarks/ham_subnormal.py                                   # 1 thread, both shapes
    python benchmarks/ham_subnormal.py --threads 2 --shapes 1x64x64x64 --rounds 5

Each module is the registered default at the shape's width (rank r = d / 8: 8 at 64 channels, 64
at 512), in eval mode, timed forward under no_grad with torch.utils.benchmark, in round-robin over
the modules so that load from other processes falls on all alike. Every module is timed twice:
as it is, and with the CPU's flush-to-zero mode on (torch.set_flush_denormal(True)), which
removes any subnormal cost; equal times mean there is none left. Target: ham-cd / ham-nmf and
ham-vq / ham-nmf <= 1.2.
"""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path

import torch
import torch.utils.benchmark as benchmark
from torch import nn

from hambench.io import atomic_write_json
from hambench.modules.ham import SubnormalCounter
from hambench.registry import build_module
from hambench.shapes import parse_shape, shape_str

MODULES = ("ham-nmf", "ham-cd", "ham-vq")
MODES = ("as is", "flush-to-zero")


def input_shape(text: str) -> tuple[int, int, int, int]:
    """``--shapes`` items: BxCxHxW (hambench's parse_shape, four dimensions)."""
    try:
        shape = parse_shape(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if len(shape) != 4:
        raise argparse.ArgumentTypeError(f"--shapes takes BxCxHxW, e.g. 1x64x64x64; got {text!r}")
    return shape  # type: ignore[return-value]


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def forward(module: nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        module(x)


def subnormals_in_forward(module: nn.Module, x: torch.Tensor) -> int:
    """Subnormal values in the outputs of every op of one forward."""
    torch.manual_seed(0)
    with torch.no_grad(), SubnormalCounter() as counter:
        module(x)
    return counter.total


def time_shape(shape: tuple[int, int, int, int], threads: int, rounds: int, min_run_time: float) -> list[dict]:
    torch.manual_seed(0)
    x = torch.randn(shape)
    modules = {name: build_module(name, shape[1]).eval() for name in MODULES}
    timers = {
        name: benchmark.Timer(
            stmt="forward(module, x)",
            globals=dict(forward=forward, module=m, x=x),
            num_threads=threads,
            label="ham subnormal",
            sub_label=name,
        )
        for name, m in modules.items()
    }
    measured: dict[tuple[str, str], list[benchmark.Measurement]] = {(n, m): [] for n in MODULES for m in MODES}
    for round_ in range(rounds):
        for mode in MODES:
            torch.set_flush_denormal(mode == "flush-to-zero")
            try:
                for name in MODULES:
                    measured[name, mode].append(timers[name].blocked_autorange(min_run_time=min_run_time))
            finally:
                torch.set_flush_denormal(False)
        print(
            f"  round {round_ + 1}/{rounds}: "
            + ", ".join(
                f"{n} {measured[n, m][-1].median * 1e3:.1f}" + ("" if m == "as is" else " (ftz)")
                for m in MODES
                for n in MODULES
            )
            + " ms",
            flush=True,
        )
    rows = []
    for name in MODULES:
        row = dict(
            module=name,
            shape=shape_str(shape),
            threads=threads,
            rank=modules[name].ham.rank,
            subnormals=subnormals_in_forward(modules[name], x),
            torch=torch.__version__,
            cpu=cpu_name(),
        )
        plain, ftz = (benchmark.Measurement.merge(measured[name, mode])[0] for mode in MODES)
        row.update(
            median_ms=plain.median * 1e3,
            iqr_ms=plain.iqr * 1e3,
            runs=len(plain.times),
            median_ftz_ms=ftz.median * 1e3,
            iqr_ftz_ms=ftz.iqr * 1e3,
            runs_ftz=len(ftz.times),
        )
        rows.append(row)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument(
        "--shapes",
        type=input_shape,
        nargs="+",
        default=[(1, 64, 64, 64), (1, 512, 128, 128)],
        metavar="BxCxHxW",
        help="input shapes (default: 1x64x64x64 1x512x128x128)",
    )
    p.add_argument("--rounds", type=int, default=3, help="round-robin passes over the modules")
    p.add_argument("--min-run-time", type=float, default=0.0, help="seconds per module and round (blocked_autorange)")
    p.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    ftz_supported = torch.set_flush_denormal(True)  # False: this CPU has no flush-to-zero mode
    torch.set_flush_denormal(False)
    print(
        f"torch {torch.__version__}, {cpu_name()}, threads={args.threads}, eval-mode forward, "
        f"{args.rounds} interleaved rounds; load average at the start {os.getloadavg()[0]:.1f} "
        "(other processes share these cores)"
    )
    if not ftz_supported:
        print("this CPU has no flush-to-zero mode: the ftz columns time the same computation")
    rows = []
    for shape in args.shapes:
        print(f"{shape_str(shape)}:", flush=True)
        rows += time_shape(shape, args.threads, args.rounds, args.min_run_time)

    print(
        f"{'shape':<14} {'module':<8} {'R':>3} {'median ms':>10} {'IQR':>6} {'ftz ms':>8} {'/ nmf':>6} "
        f"{'ftz / nmf':>9} {'subnormals':>10}"
    )
    for row in rows:
        nmf = next(r for r in rows if r["shape"] == row["shape"] and r["module"] == "ham-nmf")
        row["ratio_to_nmf"] = row["median_ms"] / nmf["median_ms"]
        row["ftz_ratio_to_nmf"] = row["median_ftz_ms"] / nmf["median_ftz_ms"]
        print(
            f"{row['shape']:<14} {row['module']:<8} {row['rank']:>3} {row['median_ms']:>10.1f} {row['iqr_ms']:>6.1f} "
            f"{row['median_ftz_ms']:>8.1f} {row['ratio_to_nmf']:>6.2f} {row['ftz_ratio_to_nmf']:>9.2f} "
            f"{row['subnormals']:>10}"
        )
    worst = max(r["ratio_to_nmf"] for r in rows if r["module"] != "ham-nmf")
    print(f"worst ratio to ham-nmf: {worst:.2f} (target <= 1.2)")
    if args.json:
        atomic_write_json(args.json, rows)


if __name__ == "__main__":
    main()
