"""The contract every context module must keep, checked one clause at a time.

``check_module(name)`` builds the module at a small width and runs each clause: shape kept,
batch 1, odd and non-square sizes, gradients reach the input and every trainable parameter,
train and eval modes, bf16 autocast, determinism under a fixed seed in eval mode.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from hambench.registry import build_module

CHANNELS = 32


@dataclass(frozen=True)
class CheckResult:
    module: str
    check: str
    ok: bool
    reason: str = ""


class ContractError(AssertionError):
    pass


def _forward(module: nn.Module, shape: tuple[int, int, int, int], seed: int = 0) -> torch.Tensor:
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        y = module(x)
    _expect_same_shape(x, y)
    return y


def _expect_same_shape(x: torch.Tensor, y: Any) -> None:
    if not isinstance(y, torch.Tensor):
        raise ContractError(f"forward returned {type(y).__name__}, expected a Tensor")
    if tuple(y.shape) != tuple(x.shape):
        raise ContractError(f"input {tuple(x.shape)} came back as {tuple(y.shape)}")
    if not torch.isfinite(y.float()).all():
        raise ContractError("output has NaN or Inf")


def _keeps_shape(*shapes: tuple[int, int, int, int]) -> Callable[[nn.Module], None]:
    """The clause: in eval mode, an input of each of ``shapes`` (B, C, H, W) comes back as it went in."""

    def check(module: nn.Module) -> None:
        module.eval()
        for shape in shapes:
            _forward(module, shape)

    return check


def _check_backward(module: nn.Module) -> None:
    module.train()
    x = torch.randn(2, CHANNELS, 16, 16, requires_grad=True)
    module.zero_grad(set_to_none=True)
    y = module(x)
    _expect_same_shape(x, y)
    # A random projection of the output, so no gradient cancels by symmetry.
    (y * torch.randn_like(y)).sum().backward()
    if x.grad is None or not torch.isfinite(x.grad).all():
        raise ContractError("no finite gradient reached the input")
    if float(x.grad.abs().sum()) == 0.0:
        raise ContractError("the gradient reaching the input is identically zero")
    missing = [n for n, p in module.named_parameters() if p.requires_grad and p.grad is None]
    if missing:
        raise ContractError(f"no gradient reached parameter(s): {', '.join(missing)}")
    bad = [n for n, p in module.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
    if bad:
        raise ContractError(f"NaN/Inf gradient in parameter(s): {', '.join(bad)}")


def _check_train_eval(module: nn.Module) -> None:
    module.train()
    with torch.no_grad():
        y = module(torch.randn(2, CHANNELS, 16, 16))
    _expect_same_shape(torch.empty(2, CHANNELS, 16, 16), y)
    module.eval()
    _forward(module, (2, CHANNELS, 16, 16))


def _check_bf16(module: nn.Module) -> None:
    module.eval()
    x = torch.randn(2, CHANNELS, 16, 16)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        y = module(x)
    _expect_same_shape(x, y)


def _check_deterministic(module: nn.Module) -> None:
    module.eval()
    outs = []
    for _ in range(2):
        torch.manual_seed(1234)
        outs.append(_forward(module, (2, CHANNELS, 16, 16), seed=7))
    if not torch.equal(outs[0], outs[1]):
        diff = float((outs[0] - outs[1]).abs().max())
        raise ContractError(f"two eval-mode forwards under the same seed differ (max |diff| = {diff:.3g})")


CHECKS: dict[str, Callable[[nn.Module], None]] = {
    "shape (2,C,16,16)": _keeps_shape((2, CHANNELS, 16, 16)),
    "batch 1": _keeps_shape((1, CHANNELS, 16, 16)),
    "odd size 33x47": _keeps_shape((2, CHANNELS, 33, 47)),
    "non-square 12x28 / 28x12": _keeps_shape((2, CHANNELS, 12, 28), (2, CHANNELS, 28, 12)),
    "backward: input and every parameter": _check_backward,
    "train and eval modes": _check_train_eval,
    "bf16 autocast": _check_bf16,
    "deterministic in eval (fixed seed)": _check_deterministic,
}


def check_module(name: str, **options: Any) -> list[CheckResult]:
    """Run every clause of the contract on the registered module ``name``."""
    torch.manual_seed(0)
    try:
        module = build_module(name, CHANNELS, **options)
    except Exception as exc:
        return [CheckResult(name, "build", False, f"{type(exc).__name__}: {exc}")]
    results = [CheckResult(name, "build", True)]
    for check, fn in CHECKS.items():
        try:
            fn(module)
            results.append(CheckResult(name, check, True))
        except ContractError as exc:
            results.append(CheckResult(name, check, False, str(exc)))
        except Exception as exc:  # the module raised: report where
            where = traceback.extract_tb(exc.__traceback__)[-1]
            results.append(
                CheckResult(name, check, False, f"{type(exc).__name__}: {exc} ({where.filename}:{where.lineno})")
            )
    return results
