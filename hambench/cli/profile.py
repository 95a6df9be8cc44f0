"""``hambench profile``: params, MACs (fvcore, torchprofile, FlopCounterMode) and the analytic FLOPs
of what they miss, latency and peak memory of context modules, n-sweeps with fitted exponents, and
whole-model presets."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from hambench.cli import UserError, console
from hambench.cli.config_args import parse_key_value

if TYPE_CHECKING:
    from hambench.profiling import ProfileSettings


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "profile",
        parents=[common],
        help="cost of context modules or whole models: params, MACs, latency, memory",
        description="Profile registered context modules (default shape: the paper's 1x512x128x128) or, with "
        "--model, a whole segmentation model preset. Conventions: docs/conventions.md.",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="module names, or `all`")
    p.add_argument("--shape", default="1,512,128,128", help="B,C,H,W of the module input (default: 1,512,128,128)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--dtype", default="fp32", choices=["fp32", "fp16", "bf16"])
    p.add_argument(
        "--mode",
        default="fwd",
        choices=["fwd", "fwd+bwd"],
        help="fwd: eval-mode inference; fwd+bwd: a train-mode forward and backward",
    )
    p.add_argument(
        "--option",
        action="append",
        default=[],
        type=parse_key_value,
        metavar="KEY=VALUE",
        help="a module option (value read as a YAML scalar), repeatable",
    )
    p.add_argument("--sweep", metavar="H1,H2,...", help="profile at H = W = each size and fit cost ~ n^k, n = H*W")
    p.add_argument("--model", metavar="PRESET", help="profile a whole-model preset instead (see --list-models)")
    p.add_argument("--size", default="512x512", help="image HxW for --model, or `published` (default: 512x512)")
    p.add_argument("--list-models", action="store_true", help="list the model presets and their published cost")
    p.add_argument("--breakdown", action="store_true", help="MACs per op for each counter")
    p.add_argument("--channels-last", action="store_true", help="channels_last memory format")
    p.add_argument("--compile", action="store_true", help="time a torch.compile'd module (counts stay eager)")
    p.add_argument(
        "--matrix",
        action="store_true",
        help="every precision (fp32, bf16; fp16 on CUDA) x memory layout (contiguous, channels-last) x "
        "eager / compiled, in one table; a setting a module cannot run is named on stderr and skipped",
    )
    p.add_argument(
        "--sdpa-backend",
        choices=["math", "flash", "efficient", "cudnn"],
        help="force this kernel for every scaled_dot_product_attention call (default: PyTorch's choice); "
        "the sdpa_backend column names the kernel that ran either way",
    )
    p.add_argument("--no-latency", action="store_true", help="skip timing")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory run")
    p.add_argument("--max-time", type=float, default=10.0, help="seconds of timed runs per row at most (default 10)")
    p.add_argument("--json", action="store_true", help="print one JSON array instead of a table")
    p.add_argument("--out", metavar="FILE", help="also write the rows to FILE (.parquet or .csv)")
    p.set_defaults(func=run_profile)


def run_profile(args: argparse.Namespace) -> int:
    from hambench import profiling
    from hambench.registry import module_names
    from hambench.shapes import parse_shape, parse_size

    if args.list_models:
        return _list_models()
    common: ProfileSettings = {
        "device": args.device,
        "dtype": args.dtype,
        "mode": args.mode,
        "channels_last": args.channels_last,
        "compile": args.compile,
        "breakdown": args.breakdown,
        "latency": not args.no_latency,
        "memory": not args.no_memory,
        "max_time": args.max_time,
        "sdpa_backend": args.sdpa_backend,
    }
    exponents: dict[str, dict[str, Any]] = {}  # module -> {"macs": ExponentFit, ...}
    rows: list[dict[str, Any]] = []
    matrix = matrix_settings(common) if args.matrix else [common]
    try:
        if args.model:
            if args.names:
                raise ValueError("give module names or --model, not both")
            from hambench.models.cost import profile_model
            from hambench.models.presets import get_preset

            size = get_preset(args.model).published.flops_size if args.size == "published" else parse_size(args.size)
            for settings in matrix:
                rows.extend(_or_skip(args.model, settings, partial(profile_model, args.model, size=size), args.matrix))
        else:
            if not args.names:
                raise ValueError("name at least one module (or `all`, or --model PRESET)")
            names = module_names() if args.names == ["all"] else args.names
            shape = parse_shape(args.shape)
            options = dict(args.option)
            for name in names:
                for settings in matrix:
                    if args.sweep:
                        sizes = [int(s) for s in args.sweep.split(",")]
                        sweep_rows, exponents[name] = profiling.profile_sweep(
                            name, sizes, shape=shape, options=options, **settings
                        )
                        rows.extend(sweep_rows)
                    else:
                        profile = partial(profiling.profile_module, name, shape=shape, options=options)
                        rows.extend(_or_skip(name, settings, profile, args.matrix))
                Console(stderr=True).print(f"[dim]profiled {name}[/dim]")  # progress; stdout stays JSON
    except ValueError as exc:
        raise UserError(str(exc)) from exc  # main prints it as one line, exit status 2

    if args.out:
        profiling.write_table(profiling.to_frame(rows), args.out)
    if args.json:
        print(json.dumps([_finite(r) for r in rows], indent=2, default=str, allow_nan=False))
        return 0
    out = console()
    out.print(_table(rows))
    if exponents:
        out.print(_exponent_table(exponents))
    if args.model:
        out.print(_published_table(rows[0]))
    if args.breakdown:
        for row in rows:
            out.print(_breakdown_table(row))
    if args.out:
        out.print(f"wrote {len(rows)} row(s) to {args.out}")
    return 0


def matrix_settings(common: ProfileSettings) -> list[ProfileSettings]:
    """``common`` at every precision (fp32, bf16, and fp16 on CUDA) x memory layout x eager/compiled."""
    dtypes = ("fp32", "bf16", "fp16") if common.get("device") == "cuda" else ("fp32", "bf16")
    return [
        {**common, "dtype": dtype, "channels_last": layout, "compile": compiled}
        for dtype in dtypes
        for layout in (False, True)
        for compiled in (False, True)
    ]


def _setting_label(settings: ProfileSettings) -> str:
    layout = "channels-last" if settings.get("channels_last") else "contiguous"
    return f"{settings.get('dtype')}, {layout}, {'compiled' if settings.get('compile') else 'eager'}"


def _or_skip(
    name: str, settings: ProfileSettings, run: Callable[..., dict[str, Any]], skip: bool
) -> list[dict[str, Any]]:
    """``[run(**settings)]``; with ``skip`` (a matrix), a setting the module has no kernel for (bf16
    on a CPU op, a compile failure) is named on stderr and skipped rather than ending the table."""
    try:
        return [run(**settings)]
    except (RuntimeError, NotImplementedError, TypeError) as exc:
        if not skip:
            raise
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        Console(stderr=True).print(f"[dim]{name} at {_setting_label(settings)}: not run ({reason})[/dim]")
        return []


def _finite(row: dict[str, Any]) -> dict[str, Any]:
    """NaN (an exponent fitted to all-zero costs) is not JSON: write null."""
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}


def _g(value: float | None, scale: float = 1e9, digits: int = 2) -> str:
    return "-" if value is None else f"{value / scale:,.{digits}f}"


def _table(rows: list[dict[str, Any]]) -> Table:
    first = rows[0]
    table = Table(
        title=f"cost on {first['device_name']} ({first['device']}, {first['dtype']}, {first['mode']}, "
        f"{first['threads']} threads, torch {first['torch_version']})"
    )
    # Two more columns only where a module declares the FLOPs of ops the counters miss.
    analytic = any(r.get("flops_analytic") for r in rows)
    for col in (
        "module",
        "shape",
        "params (M)",
        "GMACs fvcore",
        "GMACs torchprofile",
        "GFLOPs torch",
        *(("GFLOPs analytic", "GFLOPs total") if analytic else ()),
        "latency ms (IQR)",
        "p90 / p99 ms",
        "peak MiB",
        "SDPA kernel",
        "uncounted ops",
    ):
        table.add_column(col, justify="left" if col in ("module", "shape", "SDPA kernel") else "right")
    for r in rows:
        latency = "-" if r["latency_ms"] is None else f"{r['latency_ms']:.1f} ({r['latency_iqr_ms']:.1f})"
        tail = "-" if r.get("latency_p90_ms") is None else f"{r['latency_p90_ms']:.1f} / {r['latency_p99_ms']:.1f}"
        table.add_row(
            r["module"],
            r["shape"],
            _g(r["params"], 1e6, 3),
            _g(r["macs_fvcore"]),
            _g(r["macs_torchprofile"]),
            _g(r["flops_torch"]),
            *((_g(r.get("flops_analytic") or None), _g(r.get("flops_total"))) if analytic else ()),
            latency,
            tail,
            _g(r["peak_mem_bytes"], 2**20, 1),
            r.get("sdpa_backend") or "-",
            str(len(r["uncounted_ops"])),
        )
    if analytic:
        table.caption = (
            "analytic: FLOPs the module declares for ops no counter sees (analytic_ops: selective scan, FFT); "
            "total = torch + analytic"
        )
    return table


def _exponent_table(exponents: dict[str, dict[str, Any]]) -> Table:
    """Each fit as hambench.scaling states it: k over its range of n with R², or why there is none."""
    from hambench.scaling import LATENCY_FLOOR_MS, MAX_SPREAD

    table = Table(title="fitted exponent k of cost ~ n^k, n = H*W")
    for col in ("module", "MACs", "latency", "memory"):
        table.add_column(col, justify="left" if col == "module" else "right")
    for name, fits in exponents.items():
        table.add_row(name, *(fits[kind].label() for kind in ("macs", "latency", "memory")))
    table.caption = (
        f"latency fitted only over sizes with median >= {LATENCY_FLOOR_MS:g} ms and IQR/median < "
        f"{MAX_SPREAD:.0%}, three at least; MACs and memory over every size"
    )
    return table


def _published_table(row: dict[str, Any]) -> Table:
    table = Table(title=f"{row['module']} vs published ({row['published_source']})")
    for col in ("quantity", "ours", "published", "rel. diff", "convention"):
        table.add_column(col)
    table.add_row(
        "params (M)",
        _g(row["params"], 1e6, 3),
        _g(row["published_params"], 1e6, 1),
        _rel(row["params"], row["published_params"]),
        "all parameters, auxiliary head included",
    )
    ours = row.get("macs_published_convention")
    note = f"{row['published_convention']} at {row['published_size']}"
    if ours is None:
        note += f" (profiled at {row['shape']}: use --size published)"
    table.add_row(
        "GMACs",
        _g(ours),
        _g(row["published_macs"], 1e9, 1),
        "-" if ours is None else _rel(ours, row["published_macs"]),
        note,
    )
    return table


def _rel(ours: float, published: float) -> str:
    return f"{100 * (ours - published) / published:+.1f}%"


def _breakdown_table(row: dict[str, Any]) -> Table:
    table = Table(title=f"{row['module']} {row['shape']}: MACs per op (torch: FLOPs = 2 x MACs)")
    for col in ("op", "fvcore", "torchprofile", "torch"):
        table.add_column(col, justify="left" if col == "op" else "right")
    bd = row["breakdown"]
    ops = sorted({op for counts in bd.values() for op in counts})
    for op in ops:
        table.add_row(
            op, *(_g(bd[c].get(op), 1e9, 4) if op in bd[c] else "-" for c in ("fvcore", "torchprofile", "torch"))
        )
    table.caption = "uncounted (counter:op): " + ", ".join(row["uncounted_ops"])
    if row.get("flops_analytic"):
        table.caption += "\nanalytic FLOPs (not MACs) declared by the module: " + ", ".join(
            f"{op} {_g(flops, 1e9, 4)} G" for op, flops in json.loads(row["analytic_ops"]).items()
        )
    return table


def _list_models() -> int:
    from hambench.models.presets import PRESETS
    from hambench.shapes import shape_str

    table = Table(title="model presets (hambench profile --model NAME)")
    for col in ("preset", "description", "published params", "published FLOPs", "counted as"):
        table.add_column(col)
    for p in PRESETS.values():
        pub = p.published
        table.add_row(
            p.name,
            p.description,
            f"{pub.params_m}M",
            f"{pub.flops_g}G",
            f"{pub.flops_convention} at {shape_str(pub.flops_size)}",
        )
    console().print(table)
    return 0
