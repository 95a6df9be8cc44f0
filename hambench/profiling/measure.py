"""One measurement of ``model(x)``: MACs by every counter, latency, peak memory, the SDPA kernel
that ran; and the rows built on it (a registered context module's, a trained model's)."""

from __future__ import annotations

import platform
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypedDict

import torch
from torch import nn

from hambench.device import resolve_device
from hambench.memory import peak_memory
from hambench.profiling.analytic import AnalyticFlops, analytic_columns
from hambench.profiling.counters import (
    arithmetic,
    count_fvcore,
    count_params,
    count_torch_flops,
    count_torchprofile,
    short_op,
)
from hambench.profiling.timing import measure_latency
from hambench.registry import build_module, get_spec
from hambench.sdpa import SDPABackendError, SDPAKernels, forced_backend
from hambench.shapes import shape_str
from hambench.trial import options_json

# A row's timing columns (ms, but the count of timed runs): the median, its spread and its tail.
LATENCY_COLUMNS = ("latency_ms", "latency_iqr_ms", "latency_p90_ms", "latency_p99_ms", "latency_reps")

if TYPE_CHECKING:
    from typing_extensions import Unpack

PAPER_SHAPE = (1, 512, 128, 128)  # the paper's module setting: B x C x H x W
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
MODES = ("fwd", "fwd+bwd")


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's (``platform.processor()``, else the machine type)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def resolve_setting(device: str, dtype: str, mode: str) -> tuple[torch.device, torch.dtype]:
    """A profile's device and dtype from their names; ``ValueError`` naming a bad dtype or mode."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    return resolve_device(device), DTYPES[dtype]


def environment_columns(device: torch.device, dtype: str, mode: str) -> dict[str, Any]:
    """The columns that say where and how a row was measured (every profile row carries them)."""
    return {
        "device": device.type,
        "device_name": device_name(device),
        "dtype": dtype,
        "mode": mode,
        "threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
    }


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

    Besides the three counters: ``flops_analytic``, ``flops_total`` and ``analytic_ops``
    (``hambench.profiling.analytic``), the FLOPs that ``model`` or its submodules declare with
    ``analytic_flops(shape)`` for ops the counters miss, at the input shape each call saw in the
    counted forward (0, ``flops_torch`` and ``{}`` when none declares any).

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
            # The forward of inference: the kernels it runs, and the input shape of every module
            # that declares the FLOPs of ops the counters miss (``analytic``).
            with SDPAKernels() as kernels, AnalyticFlops(model) as analytic:
                fl_total, fl_ops, fl_missing = count_torch_flops(lambda: model(x))
        row: dict[str, Any] = {
            "macs_fvcore": fv_total,
            "macs_torchprofile": tp_total,
            "flops_torch": fl_total,
            **analytic_columns(fl_total, analytic.by_op()),
        }

        # 2. The call we measure: inference, or a training step's forward + backward.
        if train:
            x = x.detach().requires_grad_(True)  # a module mid-network passes its gradient on
            with SDPAKernels() as kernels:  # with gradients a kernel may be ruled out: name the step's own
                row["flops_torch_fwd_bwd"], _, fl_missing = count_torch_flops(_make_call(model, x, train))
        row["sdpa_backend"] = kernels.backend
        row["peak_mem_bytes"] = peak_memory(_make_call(model, x, train), device) if memory else None
        row["uncounted_ops"] = sorted(
            {f"fvcore:{op}" for op in arithmetic(fv_missing)}
            | {f"torchprofile:{op}" for op in tp_missing}
            | {f"torch:{op}" for op in fl_missing}
        )

        # 3. Latency, optionally of the torch.compile'd module (the counts above stay eager).
        if latency:
            timed = _make_call(torch.compile(model) if compile else model, x, train)
            lat = measure_latency(timed, device, max_time=max_time)
            row.update(
                latency_ms=lat.median_ms,
                latency_iqr_ms=lat.iqr_ms,
                latency_p90_ms=lat.p90_ms,
                latency_p99_ms=lat.p99_ms,
                latency_reps=lat.reps,
            )
        else:
            row.update(dict.fromkeys(LATENCY_COLUMNS))

        if breakdown:
            torch_ops = {short_op(op): n for op, n in fl_ops.items()}
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


class ProfileSettings(TypedDict, total=False):
    """How a profile is measured: the keyword arguments that ``profile_module`` and
    ``hambench.models.cost.profile_model`` share, each optional (``PROFILE_DEFAULTS``).

    ``device`` ("cpu"), ``dtype`` ("fp32", a name of ``DTYPES``), ``mode`` ("fwd", one of
    ``MODES``); ``channels_last`` (False), ``compile`` (False), ``breakdown`` (False), ``latency``
    (True), ``memory`` (True), ``max_time`` (10.0 s), ``sdpa_backend`` (None), as ``measure``
    takes them; ``seed`` (0): of the weights and of the random input.
    """

    device: str
    dtype: str
    mode: str
    channels_last: bool
    compile: bool
    breakdown: bool
    latency: bool
    memory: bool
    max_time: float
    seed: int
    sdpa_backend: str | None


PROFILE_DEFAULTS: ProfileSettings = {
    "device": "cpu",
    "dtype": "fp32",
    "mode": "fwd",
    "channels_last": False,
    "compile": False,
    "breakdown": False,
    "latency": True,
    "memory": True,
    "max_time": 10.0,
    "seed": 0,
    "sdpa_backend": None,
}


def resolve_settings(settings: ProfileSettings) -> tuple[ProfileSettings, torch.device, torch.dtype]:
    """``settings`` with the defaults filled in, and the device and dtype they name; ``TypeError``
    for a keyword that is no setting, ``ValueError`` for a bad dtype or mode."""
    unknown = sorted(set(settings) - set(PROFILE_DEFAULTS))
    if unknown:
        raise TypeError(f"unexpected profile setting(s) {', '.join(unknown)}; known: {', '.join(PROFILE_DEFAULTS)}")
    full: ProfileSettings = {**PROFILE_DEFAULTS, **settings}
    return full, *resolve_setting(full["device"], full["dtype"], full["mode"])


def profile_row(
    model: nn.Module,
    x: torch.Tensor,
    what: dict[str, Any],
    settings: ProfileSettings,
    device: torch.device,
    *,
    params: int,
    counts: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One profile row of ``model(x)``: ``what`` was profiled (module, family, options), the
    input's ``shape``, where and how it was measured (``environment_columns``, channels_last,
    compile), ``params``, any ``counts`` the caller made itself, then ``measure``'s columns under
    ``settings`` (complete: ``resolve_settings``). The common core of module and model rows."""
    row = {
        **what,
        "shape": shape_str(tuple(x.shape)),
        **environment_columns(device, settings["dtype"], settings["mode"]),
        "channels_last": settings["channels_last"],
        "compile": settings["compile"],
        "params": params,
        **(counts or {}),
    }
    row.update(
        measure(
            model,
            x,
            mode=settings["mode"],
            device=device,
            channels_last=settings["channels_last"],
            compile=settings["compile"],
            latency=settings["latency"],
            memory=settings["memory"],
            breakdown=settings["breakdown"],
            max_time=settings["max_time"],
            sdpa_backend=settings["sdpa_backend"],
        )
    )
    return row


def profile_module(
    name: str,
    *,
    shape: tuple[int, ...] = PAPER_SHAPE,
    options: dict[str, Any] | None = None,
    **settings: Unpack[ProfileSettings],
) -> dict[str, Any]:
    """Profile the registered context module ``name`` on a random (B, C, H, W) input, built with
    ``options``, measured as ``settings`` say (``ProfileSettings``: device, dtype, mode,
    channels_last, compile, breakdown, latency, memory, max_time, seed, sdpa_backend).

    Returns one row: module, family, options (JSON), shape ("1x512x128x128"), device,
    device_name, dtype, mode, threads, torch_version, channels_last, compile, params, macs_fvcore,
    macs_torchprofile, flops_torch, flops_analytic, flops_total, analytic_ops (+
    flops_torch_fwd_bwd in fwd+bwd mode), sdpa_backend (the attention kernel that ran, empty for
    modules that call no SDPA), peak_mem_bytes, uncounted_ops, latency_ms, latency_iqr_ms,
    latency_p90_ms, latency_p99_ms, latency_reps, oom_backoff_from (the batch asked for when it
    ran out of device memory and was halved until it fit: the row's ``shape`` is what ran; None
    when it fit), and ``breakdown`` (MACs per op per counter) when asked. ``latency=False`` /
    ``memory=False`` skip those measurements (value None); ``sdpa_backend`` forces one SDPA
    backend (see ``measure``).
    """
    if len(shape) != 4:
        raise ValueError(f"a context module takes a (B, C, H, W) input; got shape {shape}")
    full, dev, torch_dtype = resolve_settings(settings)
    spec = get_spec(name)
    # options: the results table's spelling, so rows join on it
    what = {"module": name, "family": spec.family, "options": options_json(options or {})}
    batch = shape[0]
    while True:
        torch.manual_seed(full["seed"])
        module = build_module(name, shape[1], **(options or {})).to(dev, torch_dtype)
        x = torch.randn(batch, *shape[1:], generator=torch.Generator().manual_seed(full["seed"])).to(dev, torch_dtype)
        try:
            row = profile_row(module, x, what, full, dev, params=count_params(module))
        except SDPABackendError as exc:
            raise SDPABackendError(f"{name} at {shape_str(shape)}: {exc}") from None
        except torch.OutOfMemoryError:
            if batch == 1:
                raise
            del module, x  # free the device before the smaller try
            if dev.type == "cuda":
                torch.cuda.empty_cache()
            batch //= 2  # out of memory: halve the batch, as timm's benchmark does, and say so in the row
            continue
        row["oom_backoff_from"] = shape[0] if batch != shape[0] else None  # the batch that did not fit
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
    model: nn.Module,
    x: torch.Tensor,
    *,
    device: torch.device | str = "cpu",
    params: int | None = None,
    shape: str | None = None,
    max_time: float = MODEL_COST_MAX_TIME,
) -> dict[str, Any]:
    """A trained model's own cost, as a seg or gan trial records it (``hambench.schema.MODEL_COST_COLUMNS``).

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
