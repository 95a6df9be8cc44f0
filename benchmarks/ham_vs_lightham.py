"""hambench's Hamburger vs mmseg's Light-Ham Hamburger (``mmseg.models.decode_heads.ham_head``),
forward + backward side by side in one run, on the same input.

    OMP_NUM_THREADS=2 python benchmarks/ham_vs_lightham.py                      # 1x512x128x128, 2 threads
    python benchmarks/ham_vs_lightham.py --size 64 --threads 1 --rounds 3  # a quick look

Rows (all NMF, D = --channels, R = --rank, K = --steps training iterations, training mode):
    mmseg Hamburger         Light-Ham's block: 1x1 conv, ReLU, NMF2D (BPTT: its NMF has no no_grad), 1x1 conv + GN
    ham-nmf-v1 bptt gn      ours, configured as exactly that block (same outputs and gradients)
    ham-nmf-v1 one-step gn  the same block with the paper's one-step gradient
    ham-nmf                 our registered default: Hamburger V2 (adds the cheese conv-BN-ReLU), one-step
    mmseg NMF2D / ours ham  the decomposition alone

Times are torch.utils.benchmark medians and interquartile ranges of one forward + backward (the
gradient of a fixed random projection of the output, w.r.t. the input and the weights), measured in
round-robin over the rows so that load from other processes is shared alike. "saved MiB"
counts the tensors autograd keeps for the backward pass (torch.autograd.graph.saved_tensors_hooks).
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
from hambench.profiling import count_params
from hambench.shapes import shape_str


def mmseg_rows(channels: int, rank: int, steps: int) -> dict[str, nn.Module]:
    from mmseg.models.decode_heads.ham_head import NMF2D, Hamburger

    ham_kwargs = dict(MD_R=rank, train_steps=steps, eval_steps=steps)
    gn = dict(type="GN", num_groups=32, requires_grad=True)  # Light-Ham's configs
    return {
        "mmseg Hamburger (bptt, gn)": Hamburger(channels, ham_kwargs, norm_cfg=gn),
        "mmseg NMF2D (bptt)": NMF2D(ham_kwargs),
    }


def our_rows(channels: int, rank: int, steps: int) -> dict[str, nn.Module]:
    from hambench.modules.ham import MatrixDecomposition2d
    from hambench.registry import build_module

    md = dict(rank=rank, train_steps=steps, eval_steps=steps)
    return {
        "ham-nmf-v1 (bptt, gn)": build_module("ham-nmf-v1", channels, norm="gn", grad="bptt", **md),
        "ham-nmf-v1 (one-step, gn)": build_module("ham-nmf-v1", channels, norm="gn", **md),
        "ham-nmf (V2, one-step, bn)": build_module("ham-nmf", channels, **md),
        "ours ham (bptt)": MatrixDecomposition2d(channels, "nmf", grad="bptt", **md),
        "ours ham (one-step)": MatrixDecomposition2d(channels, "nmf", **md),
    }


def forward_backward(module: nn.Module, x: torch.Tensor, projection: torch.Tensor) -> None:
    x = x.detach().requires_grad_(True)  # the Hamburger's input is a trained feature map
    module.zero_grad(set_to_none=True)
    (module(x) * projection).sum().backward()


def saved_bytes(module: nn.Module, x: torch.Tensor) -> int:
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        module(x.detach().requires_grad_(True))
    return total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--channels", type=int, default=512, help="D, the Hamburger width")
    p.add_argument("--size", type=int, default=128, help="H = W of the feature map")
    p.add_argument("--rank", type=int, default=64)
    p.add_argument("--steps", type=int, default=6, help="NMF iterations (training mode)")
    p.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", 2)))
    p.add_argument("--rounds", type=int, default=5, help="round-robin passes over the rows")
    p.add_argument("--min-run-time", type=float, default=0.0, help="seconds per row and round (blocked_autorange)")
    p.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    shape = (1, args.channels, args.size, args.size)
    x = torch.relu(torch.randn(shape))  # post-ReLU features, as a backbone gives
    projection = torch.randn(shape)
    rows = {**mmseg_rows(args.channels, args.rank, args.steps), **our_rows(args.channels, args.rank, args.steps)}
    order = [
        "mmseg Hamburger (bptt, gn)",
        "ham-nmf-v1 (bptt, gn)",
        "ham-nmf-v1 (one-step, gn)",
        "ham-nmf (V2, one-step, bn)",
        "mmseg NMF2D (bptt)",
        "ours ham (bptt)",
        "ours ham (one-step)",
    ]

    cpu = platform.processor() or platform.machine()
    print(
        f"torch {torch.__version__}, {cpu}, threads={torch.get_num_threads()}, "
        f"input {shape_str(shape)}, R={args.rank}, K={args.steps}, forward+backward, training mode, "
        f"{args.rounds} interleaved rounds"
    )
    print(
        "load average (1, 5, 15 min) at the start: {:.1f} {:.1f} {:.1f} (other processes share these cores)".format(
            *os.getloadavg()
        )
    )
    timers = {}
    for name in order:
        module = rows[name].train()
        timers[name] = benchmark.Timer(
            stmt="forward_backward(module, x, projection)",
            globals=dict(forward_backward=forward_backward, module=module, x=x, projection=projection),
            num_threads=args.threads,
            label="ham vs Light-Ham",
            sub_label=name,
        )
    # Round-robin over the rows, so that load from other processes falls on all of them alike.
    # Each blocked_autorange call warms up once, then times at least one run.
    measured: dict[str, list[benchmark.Measurement]] = {name: [] for name in order}
    for round_ in range(args.rounds):
        for name in order:
            measured[name].append(timers[name].blocked_autorange(min_run_time=args.min_run_time))
        print(
            f"round {round_ + 1}/{args.rounds}: "
            + ", ".join(f"{measured[n][-1].median * 1e3:.0f}" for n in order)
            + " ms",
            flush=True,
        )

    print(f"{'row':<28} {'params':>9} {'median ms':>10} {'IQR ms':>8} {'runs':>5} {'saved MiB':>10}")
    results = []
    for name in order:
        m = benchmark.Measurement.merge(measured[name])[0]
        module = rows[name]
        row = dict(
            row=name,
            params=count_params(module),
            median_ms=m.median * 1e3,
            iqr_ms=m.iqr * 1e3,
            runs=len(m.times),
            saved_mib=saved_bytes(module, x) / 2**20,
            threads=args.threads,
            shape=shape_str(shape),
            rank=args.rank,
            steps=args.steps,
            torch=torch.__version__,
        )
        results.append(row)
        print(
            f"{name:<28} {row['params']:>9,} {row['median_ms']:>10.1f} {row['iqr_ms']:>8.1f} {row['runs']:>5} "
            f"{row['saved_mib']:>10.1f}"
        )

    by_name = {r["row"]: r["median_ms"] for r in results}
    for ours, theirs in [
        ("ham-nmf-v1 (bptt, gn)", "mmseg Hamburger (bptt, gn)"),
        ("ham-nmf-v1 (one-step, gn)", "mmseg Hamburger (bptt, gn)"),
        ("ham-nmf (V2, one-step, bn)", "mmseg Hamburger (bptt, gn)"),
        ("ours ham (bptt)", "mmseg NMF2D (bptt)"),
        ("ours ham (one-step)", "mmseg NMF2D (bptt)"),
    ]:
        print(f"{ours:<28} / {theirs:<28} {by_name[ours] / by_name[theirs]:.2f}x time")
    print("load average (1, 5, 15 min) at the end: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))

    if args.json:
        atomic_write_json(args.json, results)


if __name__ == "__main__":
    main()
