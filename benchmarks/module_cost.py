"""The module cost table at the paper's setting (1x512x128x128) on this machine, and the
whole-model presets beside their published Params/FLOPs.

    python benchmarks/module_cost.py                       # every registered module, CPU
    python benchmarks/module_cost.py --modules nonlocal ham-nmf --device cuda
    python benchmarks/module_cost.py --models --out cost.csv

Prints tables; performance figures live here, not in the tests.
"""

from __future__ import annotations

import argparse

import pandas as pd
import torch

from hambench.models.cost import profile_model
from hambench.models.presets import PRESETS
from hambench.profiling import PAPER_SHAPE, profile_module, to_frame, write_table
from hambench.registry import module_names
from hambench.shapes import shape_str

MODULE_COLUMNS = [
    "module",
    "params",
    "macs_fvcore",
    "macs_torchprofile",
    "flops_torch",
    "latency_ms",
    "latency_iqr_ms",
    "peak_mem_bytes",
]


def module_table(names: list[str], device: str, max_time: float) -> pd.DataFrame:
    rows = []
    for name in names:
        rows.append(profile_module(name, shape=PAPER_SHAPE, device=device, max_time=max_time))
        print(f"  {name}: done", flush=True)
    return to_frame(rows)


def model_table(names: list[str]) -> pd.DataFrame:
    """Params at build time and MACs at each preset's published input size and convention."""
    rows = []
    for name in names:
        published = PRESETS[name].published
        row = profile_model(name, size=published.flops_size, latency=False, memory=False)
        rows.append(
            {
                "preset": name,
                "params_M": row["params"] / 1e6,
                "published_params_M": published.params_m,
                "params_diff_%": 100 * (row["params"] / 1e6 - published.params_m) / published.params_m,
                "GMACs": row["macs_published_convention"] / 1e9,
                "published_G": published.flops_g,
                "macs_diff_%": 100 * (row["macs_published_convention"] / 1e9 - published.flops_g) / published.flops_g,
                "convention": f"{published.flops_convention} @ {shape_str(published.flops_size)}",
                "torchprofile_G": row["macs_torchprofile"] / 1e9,
                "fvcore_G": row["macs_fvcore"] / 1e9,
                "fvcore_nobmm_G": row["macs_fvcore_nobmm"] / 1e9,
                "fvcore_nomm_G": row["macs_fvcore_nomm"] / 1e9,
                "mmcv_G": row["macs_mmcv"] / 1e9,
            }
        )
        print(f"  {name}: done", flush=True)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modules", nargs="*", help="module names (default: all registered)")
    parser.add_argument("--models", action="store_true", help="also profile the whole-model presets")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--max-time", type=float, default=5.0, help="seconds of timed runs per module at most")
    parser.add_argument("--out", help="write the module table to .csv or .parquet")
    args = parser.parse_args()

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    modules = module_table(args.modules or module_names(), args.device, args.max_time)
    shown = modules[MODULE_COLUMNS].copy()
    shown["params"] = shown["params"] / 1e6
    for col in ("macs_fvcore", "macs_torchprofile", "flops_torch"):
        shown[col] = shown[col] / 1e9
    shown["peak_mem_bytes"] = shown["peak_mem_bytes"] / 2**20
    shown = shown.rename(
        columns={
            "params": "params_M",
            "macs_fvcore": "GMACs_fvcore",
            "macs_torchprofile": "GMACs_torchprofile",
            "flops_torch": "GFLOPs_torch",
            "peak_mem_bytes": "peak_MiB",
        }
    )
    print(f"\nmodule cost at {shape_str(PAPER_SHAPE)} (forward, eval, fp32)")
    print(shown.to_string(index=False, float_format=lambda v: f"{v:,.3f}"))
    if args.out:
        write_table(modules, args.out)
    if args.models:
        print("\nwhole models vs published")
        print(model_table(list(PRESETS)).to_string(index=False, float_format=lambda v: f"{v:,.2f}"))


if __name__ == "__main__":
    main()
