"""Counting a model's parameters and one forward pass's MACs, each counter under its own name.

- ``count_fvcore``: fvcore's ``FlopCountAnalysis`` (one "flop" = one MAC); convs, matmul/bmm,
  linear, norms, upsampling; elementwise ops (mul, div, add, softmax, ...) are not counted.
- ``count_torchprofile``: torchprofile's ``profile_macs``; as fvcore, but also counts ``mul``
  (not ``div``, ``add``, ``softmax``) and norms at one MAC per output element.
- ``count_torch_flops``: PyTorch's ``FlopCounterMode``: 2 FLOPs per MAC, matmuls and convs only.
- ``count_mmcv``: old mmcv/mmseg ``get_flops.py`` module hooks, blind to functional calls such as
  ``torch.bmm``; needed to reproduce some published tables.

Each counter also returns the arithmetic ops it saw but gave no count, so a caller can list them
(``uncounted_ops``) rather than drop them silently.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from hambench.memory import LiveTensorBytes
from hambench.sdpa import SDPA_OP, fvcore_handle, torchprofile_handler

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


def count_params(module: nn.Module) -> int:
    """Every parameter, trainable or not, auxiliary heads included (the published convention;
    buffers such as BN statistics are not parameters)."""
    return sum(p.numel() for p in module.parameters())


def op_name(name: str) -> str:
    """``aten::_convolution`` / ``aten.convolution.default`` -> a lower-case ``aten::op`` name."""
    name = name.lower().replace("aten.", "aten::")
    return name.split(".")[0]


def short_op(op: str) -> str:
    """A counter-neutral op name for breakdowns: ``aten::_convolution`` and fvcore's ``conv``
    both become ``conv``."""
    name = op.split("::")[-1].lstrip("_")
    return {"convolution": "conv"}.get(name, name)


def arithmetic(ops: set[str]) -> set[str]:
    """The ``aten::`` ops of ``ops`` that do floating-point arithmetic (not ``DATA_MOVEMENT``)."""
    return {op for op in ops if op.startswith("aten::") and op not in DATA_MOVEMENT}


def count_fvcore(model: nn.Module, x: torch.Tensor) -> tuple[int, dict[str, int], set[str]]:
    """fvcore: (total MACs, MACs per op, ops it has no handle for)."""
    from fvcore.nn import FlopCountAnalysis

    analysis = FlopCountAnalysis(model, x)
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    analysis.set_op_handle(SDPA_OP, fvcore_handle)  # fused attention: fvcore has no handle of its own
    by_op = {short_op(op): int(n) for op, n in analysis.by_operator().items()}
    unsupported = {op_name(op) for op in analysis.unsupported_ops()}
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
        op = op_name(node.operator)
        seen.add(op)
        handler = handlers.get(node.operator)
        if handler is not None:
            by_op[op] += int(handler(node))
    uncounted = {op for op in arithmetic(seen) if by_op.get(op, 0) == 0}
    by_op = Counter({short_op(op): n for op, n in by_op.items() if n})
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
    by_op = {op_name(str(op)): int(n) for op, n in counter.get_flop_counts().get("Global", {}).items()}
    uncounted = {op for op in arithmetic({op_name(o) for o in seen.ops}) if op not in by_op}
    return int(counter.get_total_flops()), by_op, uncounted
