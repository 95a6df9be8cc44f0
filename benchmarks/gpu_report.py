"""The CUDA tables in one go, ready for a machine with a GPU: every registered module at the
paper's shape under each SDPA backend, in fp32 and bf16 (CUDA-event latency, peak memory from
``max_memory_allocated``); a 200-iteration seg run with AMP; a one-GPU Ray Train run over NCCL.
It writes the tables (markdown) that docs/results.md quotes, with the device and versions.

    python benchmarks/gpu_report.py                           # on a CUDA machine: gpu_report.md
    python benchmarks/gpu_report.py --modules ham-nmf nonlocal-sdpa --out /tmp/gpu.md
    python benchmarks/gpu_report.py --device cpu --quick      # the same path on a CPU at toy sizes (CI)

Without CUDA (and without ``--device cpu``) it says so in one line and exits 2. ``--quick``
shrinks every size (1x32x16x16, 4 iterations, a fraction of a second of timing) so the whole
path runs in CI; its figures measure nothing. A row that cannot run (a backend that does not
support the shape or dtype, an op without a bf16 kernel) is kept with its reason.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from hambench.profiling import PAPER_SHAPE, profile_module
from hambench.registry import module_names
from hambench.sdpa import BACKENDS
from hambench.shapes import shape_str
from hambench.units import ms, si

QUICK_SHAPE = (1, 32, 16, 16)
NO_CUDA = "gpu_report: no CUDA device here (torch.cuda.is_available() is False); --device cpu --quick checks the path"
DTYPES = ("fp32", "bf16")


def zoo_rows(modules: list[str], device: str, shape: tuple[int, ...], max_time: float) -> list[dict[str, Any]]:
    """One row per module, dtype and SDPA backend: PyTorch's choice for every module, then each
    forced backend for the modules that call scaled_dot_product_attention."""
    rows = []
    for name in modules:
        for dtype in DTYPES:
            row = _profile(name, device, dtype, shape, max_time, None)
            rows.append(row)
            if row.get("sdpa_backend"):  # it calls SDPA: every kernel, each forced in turn
                rows.extend(_profile(name, device, dtype, shape, max_time, backend) for backend in BACKENDS)
    return rows


def _profile(
    name: str, device: str, dtype: str, shape: tuple[int, ...], max_time: float, backend: str | None
) -> dict[str, Any]:
    what = {"module": name, "dtype": dtype, "forced": backend or "-"}
    try:
        row = profile_module(name, shape=shape, device=device, dtype=dtype, max_time=max_time, sdpa_backend=backend)
    except Exception as exc:  # a kernel or dtype this module cannot run: recorded, not fatal
        return what | {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"}
    return (
        what
        | {k: row.get(k) for k in ("sdpa_backend", "latency_ms", "latency_iqr_ms", "peak_mem_bytes")}
        | {"macs": row.get("macs_torchprofile") or row.get("macs_fvcore")}
    )


def seg_run(device: str, quick: bool, workers: int) -> dict[str, Any]:
    """A seg training run (``workers`` > 0: through Ray Train, NCCL on CUDA, gloo on CPU)."""
    from hambench.tasks.seg import SegConfig, train_seg
    from hambench.tasks.seg.ddp import train_seg_ddp

    iters = 4 if quick else 200
    cuda = device == "cuda"
    with tempfile.TemporaryDirectory(prefix="hb-gpu-report-") as tmp:
        cfg = SegConfig(
            context="ham-nmf",
            iters=iters,
            eval_interval=iters,
            batch=2 if quick else 8,
            device=device,
            amp=cuda,
            work_dir=str(Path(tmp) / "seg"),
            log_interval=10**9,
        )
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        final = train_seg_ddp(cfg) if workers else train_seg(cfg)
        seconds = time.perf_counter() - start
    return {
        "run": f"Ray Train, {workers} worker ({'NCCL' if cuda else 'gloo'})" if workers else "one process",
        "amp": cuda,
        "iters": iters,
        "mIoU": final.get("mIoU"),
        "images_per_s": final.get("images_per_s"),
        "seconds": round(seconds, 1),
        "peak_mem_bytes": torch.cuda.max_memory_allocated() if cuda and not workers else None,
    }


def markdown(rows: list[dict[str, Any]], columns: list[str], formats: dict[str, Any]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [formats.get(c, str)(row.get(c)) if row.get(c) is not None else "" for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--quick", action="store_true", help="toy sizes: the whole path in seconds (CI)")
    parser.add_argument("--modules", nargs="+", default=None, help="default: every registered module")
    parser.add_argument("--max-time", type=float, default=None, help="seconds of timing per row at most")
    parser.add_argument("--no-train", action="store_true", help="the module table only")
    parser.add_argument("--out", default="gpu_report.md")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print(
            "gpu_report: no CUDA device here (torch.cuda.is_available() is False); --device cpu --quick checks the path"
        )
        return 2
    shape = QUICK_SHAPE if args.quick else PAPER_SHAPE
    max_time = args.max_time if args.max_time is not None else (0.05 if args.quick else 5.0)
    modules = args.modules or module_names()
    name = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    head = f"device {name}, torch {torch.__version__}, CUDA {torch.version.cuda}, shape {shape_str(shape)}"
    zoo = zoo_rows(modules, args.device, shape, max_time)
    out = [f"# hambench GPU report\n\n{head}{' (quick: sizes that measure nothing)' if args.quick else ''}\n"]
    timer = "CUDA events, max_memory_allocated" if args.device == "cuda" else "torch.utils.benchmark, live tensors"
    out.append(f"## Modules: latency and peak memory ({timer})\n")
    formats = {"latency_ms": ms, "latency_iqr_ms": ms, "peak_mem_bytes": lambda v: si(v, "B"), "macs": si}
    columns = ["module", "dtype", "forced", "sdpa_backend", "latency_ms", "latency_iqr_ms", "peak_mem_bytes", "macs"]
    out.append(markdown(zoo, [*columns, "error"], formats))
    if not args.no_train:
        runs = [seg_run(args.device, args.quick, workers) for workers in (0, 1)]
        out.append("\n## Seg training: tiny-d8 with ham-nmf, AMP on CUDA\n")
        run_columns = ["run", "amp", "iters", "mIoU", "images_per_s", "seconds", "peak_mem_bytes"]
        out.append(markdown(runs, run_columns, {"peak_mem_bytes": lambda v: si(v, "B")}))
    text = "\n".join(out) + "\n"
    Path(args.out).write_text(text)
    print(text)
    failed = [r for r in zoo if "error" in r]
    print(f"{len(zoo)} module rows ({len(failed)} could not run, reasons in the table) -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
