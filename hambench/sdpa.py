"""Fused attention in the cost measurements: which SDPA kernel ran, forcing one, counting its MACs.

``F.scaled_dot_product_attention`` chooses its kernel at run time from the device, dtype, shapes,
strides and the enabled backends, and falls back to the math path silently (on CPU, for instance,
when the inputs' last dimension is not contiguous). The math path is the composite QKᵀ -> softmax
-> AV with the n x n map in memory; a fused kernel never stores it. A cost row is therefore only
meaningful with the kernel named, so :class:`SDPAKernels` watches every SDPA call of a measured
forward and names what ran:

- ``flash``, ``efficient``, ``cudnn`` (CUDA), ``flash_attention_for_cpu`` (the CPU flash kernel),
  ``overrideable`` (a backend registered out of tree): the aten kernel the call dispatched to;
- ``math``: no fused kernel was dispatched (the call decomposed into bmm and softmax).

:func:`forced_backend` runs a block under ``torch.nn.attention.sdpa_kernel`` with one backend, and
turns "no kernel can run this" into a one-line :class:`SDPABackendError`.

Counting: fvcore has no handle for ``aten::scaled_dot_product_attention`` (it reports it as
unsupported) and torchprofile's own handler, where it exists, assumes equal head counts;
:func:`sdpa_macs` is the count both use here. PyTorch's FlopCounterMode has formulas for the fused
kernels and their backward (2 FLOPs per MAC, the same products), and counts the math path's bmm.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

SDPA_OP = "aten::scaled_dot_product_attention"  # as the jit trace (fvcore, torchprofile) names it

# What --sdpa-backend / a suite's `sdpa_backend` may force.
BACKENDS: dict[str, SDPBackend] = {
    "math": SDPBackend.MATH,
    "flash": SDPBackend.FLASH_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
}

# The aten kernel a fused SDPA call dispatches to -> the name a cost row carries.
KERNELS: dict[str, str] = {
    "_scaled_dot_product_flash_attention": "flash",
    "_scaled_dot_product_efficient_attention": "efficient",
    "_scaled_dot_product_cudnn_attention": "cudnn",
    "_scaled_dot_product_flash_attention_for_cpu": "flash_attention_for_cpu",
    "_scaled_dot_product_fused_attention_overrideable": "overrideable",
}
MATH = "math"

# How PyTorch says that no enabled kernel accepts the call (CPU, CUDA).
_NO_KERNEL = ("No viable backend for scaled_dot_product_attention", "No available kernel")
_REASON = "kernel not used because"  # CUDA warns this before each specific reason


class SDPABackendError(ValueError):
    """A forced SDPA backend cannot run the measured call."""


# ----------------------------------------------------------------------------- which kernel ran


def kernel_of(ops: Iterable[str]) -> str:
    """The backend that the aten ops of one SDPA call reveal: its fused kernel, else ``math``."""
    fused = [KERNELS[op] for op in ops if op in KERNELS]
    return fused[0] if fused else MATH


class _OpNames(TorchDispatchMode):
    """The names (``overloadpacket``, e.g. ``bmm``) of the aten ops dispatched while active."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        self.names.append(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


class SDPAKernels(TorchFunctionMode):
    """Names the kernel of every ``F.scaled_dot_product_attention`` call made while active.

    The call is seen at the Python API (a function mode), and the kernel below it at the
    dispatcher: SDPA itself is a composite op, so a dispatch mode sees only what it chose.
    """

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func is not F.scaled_dot_product_attention:
            return func(*args, **kwargs)
        with _OpNames() as ops:
            out = func(*args, **kwargs)
        self.calls.append(kernel_of(ops.names))
        return out

    @property
    def backend(self) -> str:
        """The row's ``sdpa_backend``: empty if SDPA never ran, else the kernels in order of first
        use, joined by ``+`` (one name for any module that calls SDPA in one way)."""
        return "+".join(dict.fromkeys(self.calls))


# ----------------------------------------------------------------------------- forcing one


@contextmanager
def forced_backend(name: str | None, where: str = "") -> Iterator[None]:
    """Run the block with only the SDPA backend ``name`` enabled (``None``: PyTorch's choice).

    A call no kernel of that backend accepts raises :class:`SDPABackendError`, one line with
    PyTorch's reasons (on CUDA it warns them one by one just before failing; they go into the
    message instead of the terminal). ``where`` says what was measured, for the message.
    """
    if name is None:
        yield
        return
    if name not in BACKENDS:
        raise SDPABackendError(f"SDPA backend must be one of {', '.join(BACKENDS)}, got {name!r}")
    caught: list[warnings.WarningMessage] = []
    kept: list[warnings.WarningMessage] | None = None  # None: all of them
    try:
        with warnings.catch_warnings(record=True) as caught, sdpa_kernel(BACKENDS[name]):
            yield
    except RuntimeError as exc:
        if not any(marker in str(exc) for marker in _NO_KERNEL):
            raise
        start = next((i for i, w in enumerate(caught) if _REASON in str(w.message)), len(caught))
        kept = caught[:start]
        reasons = [_first_line(str(w.message)) for w in caught[start:]] or [_first_line(str(exc))]
        hint = (
            " (on CPU only `math` and `flash` exist)" if name in ("efficient", "cudnn") and "cuda" not in where else ""
        )
        raise SDPABackendError(
            f"SDPA backend {name!r} cannot run {where}{hint}: {'; '.join(dict.fromkeys(reasons))}"
        ) from None
    finally:  # the other warnings of the block go out as they came
        _reissue(caught if kept is None else kept)


def _first_line(message: str) -> str:
    return message.strip().splitlines()[0] if message.strip() else message


def _reissue(caught: Iterable[warnings.WarningMessage]) -> None:
    """Warnings recorded while forcing go out as they came (they passed the filters already)."""
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


# ----------------------------------------------------------------------------- MACs


def sdpa_macs(query: Sequence[int], key: Sequence[int], value: Sequence[int]) -> int:
    """MACs of attention as its two explicit products, QKᵀ and AV, for every query head:

    batch · heads · L · S · (E + Ev), with q (..., L, E), k (..., S, E), v (..., S, Ev), and batch
    and heads read off the query (keys and values shared across heads are broadcast, each head
    still does its own products). Self-attention, L = S = n, E = Ev = d: 2·n²·d per head.
    """
    *lead, length, embed = query
    return math.prod(lead) * length * key[-2] * (embed + value[-1])


def fvcore_handle(inputs: list[Any], outputs: list[Any]) -> int:
    """fvcore op handle for ``aten::scaled_dot_product_attention`` (its unit: one MAC)."""
    from fvcore.nn.jit_handles import get_shape

    return sdpa_macs(*(get_shape(v) for v in inputs[:3]))


def torchprofile_handler(node: Any) -> int:
    """torchprofile handler for ``aten::scaled_dot_product_attention``."""
    return sdpa_macs(*(node.inputs[i].shape for i in range(3)))
