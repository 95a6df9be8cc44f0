"""How efficient is each module's implementation? Its FLOP rate against a plain GEMM's, in one
process, eager and through ``torch.compile``: a latency ratio between two modules measures the
methods only when both run near the machine's rate.

    python benchmarks/kernel_efficiency.py                                   # paper's shape, 1 thread
    python benchmarks/kernel_efficiency.py --shape 1,64,64,64 --modules ham-nmf ham-cd ham-vq
    python benchmarks/kernel_efficiency.py --no-compile                      # eager only

Prints the GEMM rate (a 2048 x 2048 fp32 matmul), then per module: FLOPs (PyTorch's
FlopCounterMode, plus the FLOPs a module declares for ops no counter sees), eager and compiled
median latency, GFLOP/s and the share of the GEMM rate, and each module's latency as a ratio to
the first module's (``ham-nmf`` by default: CD and VQ against NMF).
"""

from __future__ import annotations

import argparse

import torch

from hambench.profiling import AnalyticFlops, analytic_columns, count_torch_flops, measure_latency
from hambench.registry import build_module
from hambench.shapes import parse_shape, shape_str


def gemm_gflops(n: int = 2048, max_time: float = 3.0) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    median_ms = measure_latency(lambda: a @ b, torch.device("cpu"), max_time=max_time).median_ms
    return 2 * n**3 / (median_ms * 1e-3) / 1e9


def module_row(name: str, shape: tuple[int, ...], compile: bool, max_time: float) -> dict:
    torch.manual_seed(0)
    module = build_module(name, shape[1]).eval()
    x = torch.randn(*shape)
    with torch.no_grad(), AnalyticFlops(module) as analytic:
        flops_torch, _, _ = count_torch_flops(lambda: module(x))
    flops = analytic_columns(flops_torch, analytic.by_op())["flops_total"]

    def timed(fn: torch.nn.Module) -> float:
        with torch.no_grad():
            return measure_latency(lambda: fn(x), torch.device("cpu"), max_time=max_time).median_ms

    row = {"module": name, "flops": flops, "eager_ms": timed(module)}
    if compile:
        compiled = torch.compile(module)
        with torch.no_grad():
            compiled(x)  # the compile itself, outside the timing
        row["compiled_ms"] = timed(compiled)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modules", nargs="+", default=["ham-nmf", "ham-cd", "ham-vq", "nonlocal-sdpa"])
    parser.add_argument("--shape", default="1,512,128,128")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-time", type=float, default=5.0)
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    shape = parse_shape(args.shape)
    gemm = gemm_gflops()
    print(f"{shape_str(shape)}, {args.threads} thread(s), torch {torch.__version__}: GEMM 2048^2 {gemm:.1f} GFLOP/s")
    rows = [module_row(m, shape, not args.no_compile, args.max_time) for m in args.modules]
    first = rows[0]
    print("module | GFLOP | eager ms | GFLOP/s | % GEMM | compiled ms | GFLOP/s | % GEMM | eager / first")
    for r in rows:
        rate = r["flops"] / (r["eager_ms"] * 1e-3) / 1e9
        cells = [r["module"], f"{r['flops'] / 1e9:.2f}", f"{r['eager_ms']:.1f}", f"{rate:.1f}", f"{rate / gemm:.0%}"]
        if "compiled_ms" in r:
            crate = r["flops"] / (r["compiled_ms"] * 1e-3) / 1e9
            cells += [f"{r['compiled_ms']:.1f}", f"{crate:.1f}", f"{crate / gemm:.0%}"]
        else:
            cells += ["-", "-", "-"]
        cells.append(f"{r['eager_ms'] / first['eager_ms']:.2f}")
        print(" | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
