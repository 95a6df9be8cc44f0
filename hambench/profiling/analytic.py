"""FLOPs the counters do not see, declared by the modules that run them (the selective scan, FFTs).

A module may define ``analytic_flops(self, shape) -> dict[str, int]``: for an input of ``shape``
(B, C, H, W), the real floating-point operations (a multiply, an add, an exp one FLOP each; a MAC
is two) of each op that fvcore, torchprofile and FlopCounterMode miss, as its docstring states
them (``modules/ss2d.py``'s ``SS2D.analytic_flops``, ``modules/gfnet.py``'s
``GlobalFilter.analytic_flops``). Each declares its own ops only, not those of submodules that
declare theirs.

``AnalyticFlops`` finds every such module in a model (the model itself included), records the
input shape of each of its calls during one forward, and sums the declared FLOPs per op over the
calls: a block used twice counts twice, one that sees a downsampled input counts at that size.
"""

from __future__ import annotations

import json
from types import TracebackType
from typing import Any

import torch
from torch import nn


class AnalyticFlops:
    """``with AnalyticFlops(model) as analytic: model(x)``, then ``analytic.by_op()`` (op -> FLOPs,
    summed over every call of every declaring module) and ``analytic.total()``.

    Forward pre-hooks only record each call's input shape (no tensor op runs in them, so any
    counting or dispatch mode around the forward sees nothing of them); the formulas are
    evaluated after the forward. A model without a declaring module gets no hook and ``{}``.
    """

    def __init__(self, model: nn.Module) -> None:
        self.declaring = [m for m in model.modules() if callable(getattr(m, "analytic_flops", None))]
        self.calls: list[tuple[nn.Module, tuple[int, ...]]] = []
        self._handles: list[Any] = []

    def __enter__(self) -> AnalyticFlops:
        self.calls.clear()
        self._handles = [m.register_forward_pre_hook(self._record, with_kwargs=True) for m in self.declaring]
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _record(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        x = next((a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)), None)
        if x is None:
            raise TypeError(f"{type(module).__name__} declares analytic_flops but was called without a tensor input")
        self.calls.append((module, tuple(x.shape)))

    def by_op(self) -> dict[str, int]:
        """op -> FLOPs over every recorded call, ops in sorted order."""
        total: dict[str, int] = {}
        for module, shape in self.calls:
            for op, flops in module.analytic_flops(shape).items():  # type: ignore[operator]
                total[op] = total.get(op, 0) + int(flops)
        return dict(sorted(total.items()))

    def total(self) -> int:
        return sum(self.by_op().values())


def analytic_columns(flops_torch: int, by_op: dict[str, int]) -> dict[str, Any]:
    """A row's analytic columns: ``flops_analytic`` (the declared FLOPs, 0 when no module declares
    any), ``flops_total`` (``flops_torch + flops_analytic``: FlopCounterMode counts 2 per MAC of
    matmuls and convs and nothing of the declared ops, so the sum counts each op once) and
    ``analytic_ops`` (JSON text of op -> FLOPs, ``{}`` when none)."""
    analytic = sum(by_op.values())
    return {
        "flops_analytic": analytic,
        "flops_total": flops_torch + analytic,
        "analytic_ops": json.dumps(by_op, sort_keys=True),
    }
