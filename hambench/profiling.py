"""Cost of a context module or a whole model: params, MACs, latency, peak memory.

Counting tools disagree, so every row carries each one, side by side, under its own name:

- ``macs_fvcore``: fvcore's ``FlopCountAnalysis`` (one "flop" = one MAC); convs, matmul/bmm,
  linear, norms, upsampling; elementwise ops (mul, div, add, softmax, ...) are not counted.
- ``macs_torchprofile``: torchprofile's ``profile_macs``; as fvcore, but also counts ``mul``
  (not ``div``, ``add``, ``softmax``) and norms at one MAC per output element.
- ``flops_torch``: PyTorch's ``FlopCounterMode``: 2 FLOPs per MAC, matmuls and convs only.
- ``macs_mmcv`` (whole models only): old mmcv/mmseg ``get_flops.py`` module hooks, blind to
  functional calls such as ``torch.bmm``; needed to reproduce some published tables.

Ops that carry arithmetic but got no count from a counter are listed in ``uncounted_ops``
(``"counter:aten::op"``), never dropped silently. MACs are those of one forward pass with the
module in the state the ``mode`` uses (eval for ``fwd``, train for ``fwd+bwd``: Hamburger runs
``eval_steps`` vs ``train_steps`` iterations). Latency and peak memory cover the whole ``mode``.
See docs/conventions.md.
"""

from __future__ import annotations

import json
import platform
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from hambench.device import resolve_device
from hambench.io import atomic_write
from hambench.memory import LiveTensorBytes, peak_memory
from hambench.registry import build_module, get_spec
from hambench.scaling import ExponentFit, fit_columns, fit_exponent, fit_sweep  # noqa: F401  (fit_exponent: API)
from hambench.sdpa import SDPA_OP, SDPABackendError, SDPAKernels, forced_backend, fvcore_handle, torchprofile_handler

PAPER_SHAPE = (1, 512, 128, 128)  # the paper's module setting: B x C x H x W
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
MODES = ("fwd", "fwd+bwd")

# Ops that only move, view or create data (or do integer shape arithmetic): no floating-point
# arithmetic, so no counter owes them a cost. (Names as the jit trace and the dispatcher spell
# them, lower-cased, overload dropped.)
DATA_MOVEMENT = {
    "aten::" + op
    for op in """
    _unsafe_view alias arange as_strided cat chunk clone constant_pad_nd contiguous copy_ detach
    dropout dropout_ empty empty_like empty_strided expand expand_as feature_dropout flatten
    floor_divide full full_like index int lift_fresh listconstruct new_empty new_zeros normal_
    numtotensor ones ones_like rand rand_like randn randn_like uniform_
    permute reshape scalarimplicit select size slice split split_with_sizes squeeze stack t to
    transpose unbind unflatten unsqueeze view zeros zeros_like _to_copy
    """.split()
}


# ----------------------------------------------------------------------------- small helpers


def shape_str(shape: tuple[int, ...]) -> str:
    return "x".join(str(s) for s in shape)


def parse_shape(text: str) -> tuple[int, ...]:
    """``"1,512,128,128"`` or ``"1x512x128x128"`` (``X`` and ``×`` too) -> (1, 512, 128, 128)."""
    parts = text.lower().replace("×", "x").replace("x", ",").split(",")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        raise ValueError(f"shape must be integers separated by ',' or 'x', got {text!r}") from None
    if any(s <= 0 for s in shape):
        raise ValueError(f"shape dimensions must be positive, got {text!r}")
    return shape


def parse_size(text: str) -> tuple[int, int]:
    """An image size ``"512x384"`` -> (512, 384) (height x width); one number ``"512"`` is a square."""
    try:
        size = parse_shape(text)
    except ValueError:
        size = ()
    if len(size) == 1:
        size = size * 2
    if len(size) != 2:
        raise ValueError(f"size must be HxW with positive integers, e.g. 512x512 (or 512 for a square); got {text!r}")
    return size  # type: ignore[return-value]


def count_params(module: nn.Module) -> int:
    """Every parameter, trainable or not, auxiliary heads included (the published convention;
    buffers such as BN statistics are not parameters)."""
    return sum(p.numel() for p in module.parameters())


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def _op_name(name: str) -> str:
    """``aten::_convolution`` / ``aten.convolution.default`` -> a lower-case ``aten::op`` name."""
    name = name.lower().replace("aten.", "aten::")
    return name.split(".")[0]


def _short(op: str) -> str:
    """A counter-neutral op name for breakdowns: ``aten::_convolution`` and fvcore's ``conv``
    both become ``conv``."""
    name = op.split("::")[-1].lstrip("_")
    return {"convolution": "conv"}.get(name, name)


def _arithmetic(ops: set[str]) -> set[str]:
    return {op for op in ops if op.startswith("aten::") and op not in DATA_MOVEMENT}


# ----------------------------------------------------------------------------- MAC counters


def count_fvcore(model: nn.Module, x: torch.Tensor) -> tuple[int, dict[str, int], set[str]]:
    """fvcore: (total MACs, MACs per op, ops it has no handle for)."""
    from fvcore.nn import FlopCountAnalysis

    analysis = FlopCountAnalysis(model, x)
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    analysis.set_op_handle(SDPA_OP, fvcore_handle)  # fused attention: fvcore has no handle of its own
    by_op = {_short(op): int(n) for op, n in analysis.by_operator().items()}
    unsupported = {_op_name(op) for op in analysis.unsupported_ops()}
    return int(analysis.total()), by_op, unsupported


def count_torchprofile(model: nn.Module, x: torch.Tensor) -> tuple[int, dict[str, int], set[str]]:
    """torchprofile: (total MACs, MACs per op, ops it gave zero or has no handler for)."""
    from torchprofile.handlers import HANDLER_MAP
    from torchprofile.trace import trace

    handlers = {**HANDLER_MAP, SDPA_OP: torchprofile_handler}  # one SDPA count for every torchprofile version
    graph = trace(model, (x,))
    by_op: Counter[str] = Counter()
    seen: set[str] = set()
    for node in graph.nodes:
        op = _op_name(node.operator)
        seen.add(op)
        handler = handlers.get(node.operator)
        if handler is not None:
            by_op[op] += int(handler(node))
    uncounted = {op for op in _arithmetic(seen) if by_op.get(op, 0) == 0}
    by_op = Counter({_short(op): n for op, n in by_op.items() if n})
    return sum(by_op.values()), dict(by_op), uncounted


def count_mmcv(model: nn.Module, x: torch.Tensor) -> int:
    """MACs as old mmseg's ``tools/get_flops.py`` counted them: mmcv's module hooks (convs,
    linear, norms, activations, pooling, ``nn.Upsample``); functional calls (``torch.bmm``,
    ``torch.matmul``, ``F.interpolate``) are invisible to it."""
    from mmcv.cnn.utils.flops_counter import add_flops_counting_methods

    counter = add_flops_counting_methods(model)
    counter.start_flops_count()
    try:
        with torch.no_grad():
            model(x)
        macs, _ = counter.compute_average_flops_cost()  # per image: batch size is 1 here
    finally:
        counter.stop_flops_count()
    return int(macs * x.shape[0])


def count_torch_flops(fn: Callable[[], Any]) -> tuple[int, dict[str, int], set[str]]:
    """PyTorch's FlopCounterMode over ``fn()``: (total FLOPs = 2 x MACs, FLOPs per op, arithmetic
    ops that ran but have no FLOP formula)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, LiveTensorBytes() as seen:
        fn()
    by_op = {_op_name(str(op)): int(n) for op, n in counter.get_flop_counts().get("Global", {}).items()}
    uncounted = {op for op in _arithmetic({_op_name(o) for o in seen.ops}) if op not in by_op}
    return int(counter.get_total_flops()), by_op, uncounted


# ----------------------------------------------------------------------------- latency


MIN_REPS = 5  # timed runs at least, however slow the call


def measure_latency(
    fn: Callable[[], Any], device: torch.device, *, min_time: float = 1.0, max_time: float = 10.0
) -> tuple[float, float, int]:
    """Median and inter-quartile range of ``fn()`` in ms, and the number of timed runs.

    One warm-up call (lazy init, compilation, allocator growth; three more on CUDA for cuDNN
    autotuning), then timed runs until the IQR is within 5 % of the median after ``min_time``
    seconds, or ``max_time`` seconds have passed; never fewer than ``MIN_REPS`` runs.
    CPU: torch.utils.benchmark's Timer (it pins the thread count). CUDA: CUDA events around each
    call, synchronised.
    """
    fn()
    if device.type == "cuda":
        for _ in range(3):
            fn()
        time_once = lambda: _cuda_time_ms(fn, device)  # noqa: E731
    else:
        from torch.utils.benchmark import Timer

        timer = Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
        time_once = lambda: timer.timeit(number=1).median * 1e3  # noqa: E731
    times: list[float] = []
    start = time.perf_counter()  # wall clock: a near-free call must not loop until its own sum adds up
    while True:
        times.append(time_once())
        spent = time.perf_counter() - start
        if len(times) >= MIN_REPS and (spent > max_time or (spent > min_time and _iqr(times) < 0.05 * _median(times))):
            break
    return _median(times), _iqr(times), len(times)


def _cuda_time_ms(fn: Callable[[], Any], device: torch.device) -> float:
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize(device)
    start.record()
    fn()
    end.record()
    torch.cuda.synchronize(device)
    return start.elapsed_time(end)


def _quantiles(times: list[float]) -> list[float]:
    return torch.tensor(times, dtype=torch.float64).quantile(torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64)).tolist()


def _median(times: list[float]) -> float:
    return _quantiles(times)[1]


def _iqr(times: list[float]) -> float:
    q = _quantiles(times)
    return q[2] - q[0]


# ----------------------------------------------------------------------------- one profile


def _resolve(device: str, dtype: str, mode: str) -> tuple[torch.device, torch.dtype]:
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    return resolve_device(device), DTYPES[dtype]


def measure(
    model: nn.Module,
    x: torch.Tensor,
    *,
    mode: str = "fwd",
    device: torch.device | str = "cpu",
    channels_last: bool = False,
    compile: bool = False,
    latency: bool = True,
    memory: bool = True,
    breakdown: bool = False,
    max_time: float = 10.0,
    sdpa_backend: str | None = None,
) -> dict[str, Any]:
    """Count, time and measure any ``model(x)``: the core of module and model profiles, usable
    on a module that is not registered. Returns the cost columns of a row.

    ``sdpa_backend`` (one of ``hambench.sdpa.BACKENDS``) forces that backend for every
    ``F.scaled_dot_product_attention`` call of the whole measurement; None leaves the choice to
    PyTorch. Either way the row's ``sdpa_backend`` names the kernel that ran (empty: no SDPA call).
    A forced backend that cannot run raises ``SDPABackendError`` (a ``ValueError``).
    """
    where = f"on {torch.device(device).type}, {str(x.dtype).removeprefix('torch.')}, {mode}"
    with forced_backend(sdpa_backend, where):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        device = torch.device(device)
        train = mode == "fwd+bwd"
        model.train(train)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)

        # 1. MACs of one forward, three ways (gradients off: counting does not train).
        with torch.no_grad():
            fv_total, fv_ops, fv_missing = count_fvcore(model, x)
            tp_total, tp_ops, tp_missing = count_torchprofile(model, x)
            with SDPAKernels() as kernels:  # the forward of inference: the kernels it runs
                fl_total, fl_ops, fl_missing = count_torch_flops(lambda: model(x))
        row: dict[str, Any] = {"macs_fvcore": fv_total, "macs_torchprofile": tp_total, "flops_torch": fl_total}

        # 2. The call we measure: inference, or a training step's forward + backward.
        if train:
            x = x.detach().requires_grad_(True)  # a module mid-network passes its gradient on
            with SDPAKernels() as kernels:  # with gradients a kernel may be ruled out: name the step's own
                row["flops_torch_fwd_bwd"], _, fl_missing = count_torch_flops(_make_call(model, x, train))
        row["sdpa_backend"] = kernels.backend
        row["peak_mem_bytes"] = peak_memory(_make_call(model, x, train), device) if memory else None
        row["uncounted_ops"] = sorted(
            {f"fvcore:{op}" for op in _arithmetic(fv_missing)}
            | {f"torchprofile:{op}" for op in tp_missing}
            | {f"torch:{op}" for op in fl_missing}
        )

        # 3. Latency, optionally of the torch.compile'd module (the counts above stay eager).
        if latency:
            timed = _make_call(torch.compile(model) if compile else model, x, train)
            row["latency_ms"], row["latency_iqr_ms"], row["latency_reps"] = measure_latency(timed, device, max_time=max_time)
        else:
            row["latency_ms"] = row["latency_iqr_ms"] = row["latency_reps"] = None

        if breakdown:
            torch_ops = {_short(op): n for op, n in fl_ops.items()}
            row["breakdown"] = {"fvcore": fv_ops, "torchprofile": dict(tp_ops), "torch": torch_ops}
        return row



def _make_call(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, train: bool) -> Callable[[], Any]:
    """The measured call: ``model(x)`` without gradients, or forward + backward of its sum
    (gradients reset first, so every call allocates them as a training step's first does)."""
    if not train:

        def infer() -> Any:
            with torch.no_grad():
                return model(x)

        return infer

    def step() -> None:
        for p in getattr(model, "parameters", lambda: [])():
            p.grad = None
        x.grad = None
        model(x).float().sum().backward()

    return step


def _environment(device: torch.device, dtype: str, mode: str) -> dict[str, Any]:
    return {
        "device": device.type,
        "device_name": device_name(device),
        "dtype": dtype,
        "mode": mode,
        "threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
    }


def profile_module(
    name: str,
    *,
    shape: tuple[int, int, int, int] = PAPER_SHAPE,
    device: str = "cpu",
    dtype: str = "fp32",
    mode: str = "fwd",
    options: dict[str, Any] | None = None,
    channels_last: bool = False,
    compile: bool = False,
    breakdown: bool = False,
    latency: bool = True,
    memory: bool = True,
    max_time: float = 10.0,
    seed: int = 0,
    sdpa_backend: str | None = None,
) -> dict[str, Any]:
    """Profile the registered context module ``name`` on a random (B, C, H, W) input.

    Returns one row: module, family, options (JSON), shape ("1x512x128x128"), device,
    device_name, dtype, mode, threads, torch_version, params, macs_fvcore, macs_torchprofile,
    flops_torch (+ flops_torch_fwd_bwd in fwd+bwd mode), latency_ms, latency_iqr_ms,
    latency_reps, peak_mem_bytes, uncounted_ops, sdpa_backend (the attention kernel that ran,
    empty for modules that call no SDPA), and ``breakdown`` (MACs per op per counter) when asked.
    ``latency=False`` / ``memory=False`` skip those measurements (value None); ``sdpa_backend``
    forces one SDPA backend (see ``measure``).
    """
    if len(shape) != 4:
        raise ValueError(f"a context module takes a (B, C, H, W) input; got shape {shape}")
    dev, torch_dtype = _resolve(device, dtype, mode)
    spec = get_spec(name)
    torch.manual_seed(seed)
    module = build_module(name, shape[1], **(options or {})).to(dev, torch_dtype)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).to(dev, torch_dtype)
    row = {
        "module": name,
        "family": spec.family,
        "options": json.dumps(options or {}, sort_keys=True),
        "shape": shape_str(shape),
        **_environment(dev, dtype, mode),
        "channels_last": channels_last,
        "compile": compile,
        "params": count_params(module),
    }
    try:
        row.update(measure(module, x, mode=mode, device=dev, channels_last=channels_last, compile=compile,
                            latency=latency, memory=memory, breakdown=breakdown, max_time=max_time,
                            sdpa_backend=sdpa_backend))
    except SDPABackendError as exc:
        raise SDPABackendError(f"{name} at {shape_str(shape)}: {exc}") from None
    return row


# ----------------------------------------------------------------------------- scaling with n


def profile_sweep(
    name: str, sizes: list[int], *, shape: tuple[int, int, int, int] = PAPER_SHAPE, **kwargs: Any
) -> tuple[list[dict[str, Any]], dict[str, ExponentFit]]:
    """Profile ``name`` at H = W = each of ``sizes`` (batch and channels from ``shape``) and fit
    cost ~ n^k against n = H * W for MACs (torchprofile), latency and peak memory
    (``hambench.scaling.fit_sweep``: latency only above the timing floor).

    Returns (rows, {"macs": fit, "latency": fit, "memory": fit}); each row also carries
    ``sweep_size`` and the fits' columns (``exponent_<kind>``, ``_r2``, ``_n_min``, ``_n_max``, ``_points``).
    """
    if len(set(sizes)) < 2:
        raise ValueError(f"a sweep needs at least two different sizes, got {sizes}")
    rows = []
    for size in sizes:
        row = profile_module(name, shape=(shape[0], shape[1], size, size), **kwargs)
        row["sweep_size"] = size
        rows.append(row)
    fits = fit_sweep({**r, "n": r["sweep_size"] ** 2} for r in rows)
    for row in rows:
        row.update(fit_columns(fits))
    return rows, fits


# ----------------------------------------------------------------------------- whole models

# The counting conventions behind published tables (docs/conventions.md) -> our column.
CONVENTIONS = {
    "torchprofile": "macs_torchprofile",
    "fvcore": "macs_fvcore",
    "fvcore-nobmm": "macs_fvcore_nobmm",
    "fvcore-nomm": "macs_fvcore_nomm",
    "mmcv": "macs_mmcv",
}


def profile_model(
    preset: str,
    *,
    size: tuple[int, int] = (512, 512),
    device: str = "cpu",
    dtype: str = "fp32",
    mode: str = "fwd",
    batch: int = 1,
    channels_last: bool = False,
    compile: bool = False,
    breakdown: bool = False,
    latency: bool = True,
    memory: bool = True,
    mmcv: bool = True,
    max_time: float = 10.0,
    seed: int = 0,
    sdpa_backend: str | None = None,
) -> dict[str, Any]:
    """Profile a whole-model preset (``hambench.models.presets``) on a (batch, 3, H, W) image.

    The counted path is inference: backbone -> decode head(s) -> logits resized to the input
    (the auxiliary head does not run; its parameters count). Adds ``macs_mmcv`` (old mmseg
    get_flops.py hooks) and the preset's published params / FLOPs with their convention.
    """
    from hambench.models.presets import InferencePath, build_preset, get_preset

    dev, torch_dtype = _resolve(device, dtype, mode)
    published = get_preset(preset).published
    torch.manual_seed(seed)
    segmentor = build_preset(preset)
    params = count_params(segmentor)  # before wrapping; the auxiliary head included
    model = InferencePath(segmentor).to(dev, torch_dtype)
    x = torch.randn(batch, 3, *size, generator=torch.Generator().manual_seed(seed)).to(dev, torch_dtype)
    row = {
        "module": preset,
        "family": "model",
        "options": "{}",
        "shape": shape_str(tuple(x.shape)),
        **_environment(dev, dtype, mode),
        "channels_last": channels_last,
        "compile": compile,
        "params": params,
    }
    if mmcv:
        model.train(mode == "fwd+bwd")
        row["macs_mmcv"] = count_mmcv(model, x)
    row.update(measure(model, x, mode=mode, device=dev, channels_last=channels_last, compile=compile,
                        latency=latency, memory=memory, breakdown=True, max_time=max_time,
                        sdpa_backend=sdpa_backend))
    fvcore_ops = row["breakdown"]["fvcore"] if breakdown else row.pop("breakdown")["fvcore"]
    # fvcore before bmm support (fvcore PR #51, Jan 2021): its total without the bmm ops; and
    # without any product of two activations (bmm and matmul), as the original DANet's bmm hid.
    row["macs_fvcore_nobmm"] = row["macs_fvcore"] - fvcore_ops.get("bmm", 0)
    row["macs_fvcore_nomm"] = row["macs_fvcore_nobmm"] - fvcore_ops.get("matmul", 0)
    at_published_size = tuple(size) == published.flops_size and batch == 1 and mode == "fwd"
    convention_column = CONVENTIONS[published.flops_convention]
    row["macs_published_convention"] = row.get(convention_column) if at_published_size else None
    row.update({
        "published_params": published.params_m * 1e6,
        "published_macs": published.flops_g * 1e9,
        "published_size": shape_str(published.flops_size),
        "published_convention": published.flops_convention,
        "published_source": published.source,
    })
    return row


MODEL_COST_MAX_TIME = 0.5  # seconds of timed runs: a trained model's cost is measured inside its trial


class WithFixedInputs(nn.Module):
    """``model(x, *fixed)`` as a one-input module, so ``measure`` (and the tracers of its counters)
    can take a model with extra inputs, e.g. a class-conditional generator's labels."""

    def __init__(self, model: nn.Module, *fixed: torch.Tensor) -> None:
        super().__init__()
        self.model = model
        for i, t in enumerate(fixed):
            self.register_buffer(f"fixed{i}", t, persistent=False)  # buffers: they follow .to(device)
        self.count = len(fixed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x, *(getattr(self, f"fixed{i}") for i in range(self.count)))


def model_cost(
    model: nn.Module, x: torch.Tensor, *, device: torch.device | str = "cpu", params: int | None = None,
    shape: str | None = None, max_time: float = MODEL_COST_MAX_TIME,
) -> dict[str, Any]:
    """A trained model's own cost, as a seg or gan trial records it (``hambench.axes.MODEL_COST_COLUMNS``).

    ``measure`` on ``model(x)``: inference (eval), the counters, latency and peak memory of the
    module rows, so the two compare. ``params`` overrides the count (a segmentor counts its
    auxiliary head, which ``model`` may not run); ``shape`` names what ``x`` stands for (a
    generator's output image rather than its noise input). ``model_macs`` is torchprofile's count,
    the report's MAC convention; fvcore's is beside it.
    """
    row = measure(model, x, mode="fwd", device=device, max_time=max_time)
    return {
        "model_params": count_params(model) if params is None else params,
        "model_macs": row["macs_torchprofile"],
        "model_macs_fvcore": row["macs_fvcore"],
        "model_latency_ms": row["latency_ms"],
        "model_latency_iqr_ms": row["latency_iqr_ms"],
        "model_peak_mem_bytes": row["peak_mem_bytes"],
        "model_shape": shape or shape_str(tuple(x.shape)),
    }


# ----------------------------------------------------------------------------- tables


def to_frame(rows: list[dict[str, Any]]) -> "pandas.DataFrame":  # noqa: F821
    """Rows -> a tidy DataFrame (one row per profile; lists and dicts as JSON strings)."""
    import pandas as pd

    flat = []
    for row in rows:
        row = dict(row)
        row["uncounted_ops"] = json.dumps(row.get("uncounted_ops", []))
        if "breakdown" in row:
            row["breakdown"] = json.dumps(row["breakdown"], sort_keys=True)
        flat.append(row)
    return pd.DataFrame(flat)


def write_table(df: "pandas.DataFrame", path: str | Path) -> Path:  # noqa: F821
    """Write ``df`` to .parquet or .csv atomically."""
    path = Path(path)
    if path.suffix not in (".parquet", ".csv"):
        raise ValueError(f"--out must end in .parquet or .csv, got {path.name!r}")
    if path.suffix == ".parquet":
        return atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))
    return atomic_write(path, lambda tmp: df.to_csv(tmp, index=False))
