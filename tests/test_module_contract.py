"""The contract of every registered context module: the zoo's, and any installed through the
``hambench.modules`` entry point. The list is the registry's, read when the tests are collected,
so a new module file is checked here with no edit to any test.

The clauses are ``hambench.check``'s, the ones ``hambench modules check`` runs: built at width 32,
the shape kept (batch 2 and 1, odd and non-square sizes), a finite output, gradients that reach
the input and every parameter, train and eval modes, bf16 autocast, eval deterministic under a
fixed seed. Beside them: the shape and the gradient at two more widths, with the width-aware
defaults worked out for each (a rule like Hamburger's rank d / 8 has to hold at any width).
Toy modules that break each clause are in tests/test_registry.py; options other than the
defaults are checked with each module's own tests (tests/test_ham.py for the Hamburgers).
"""

from __future__ import annotations

import pytest
import torch

from hambench.check import check_module
from hambench.registry import build_module, module_names

MODULES = module_names()
WIDTHS = [16, 64]  # beside the contract's 32: narrower (few heads, rank 1-2) and wider


def test_the_zoo_is_collected() -> None:
    """An empty list would pass every test below without checking anything."""
    assert {"ham-nmf", "ham-cd", "ham-vq", "nonlocal", "none"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_module_keeps_the_contract(name: str, one_thread: None) -> None:
    failures = [f"{r.check}: {r.reason}" for r in check_module(name) if not r.ok]
    assert not failures, failures


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", MODULES)
def test_module_keeps_the_shape_at_other_widths(name: str, width: int, one_thread: None) -> None:
    torch.manual_seed(0)
    module = build_module(name, width).train()
    x = torch.randn(2, width, 9, 13, requires_grad=True)  # odd and non-square: no size divides it
    y = module(x)
    assert isinstance(y, torch.Tensor) and y.shape == x.shape, f"{tuple(x.shape)} came back as {tuple(y.shape)}"
    assert torch.isfinite(y).all(), "output has NaN or Inf"
    (y * torch.randn_like(y)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0, "no gradient reached x"
