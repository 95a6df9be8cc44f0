"""Which modules allocate an n x n map, read off the tensors they create (not off timings).

At n = 64 x 64 a dispatch mode records the shape of every tensor that every aten op returns, in
one training step (forward and backward). Self-attention-like blocks (non-local, DANet's position
attention, DNL) must create an n x n map; the Hamburgers and the O(n) or O(n sqrt n) baselines
must not. And for every registered module, plugins included, the complexity it declares must
agree: a module allocates an n x n map exactly when it declares "O(n^2)".
"""

from __future__ import annotations

from functools import cache

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from hambench.registry import build_module, get_spec, list_modules, module_names

SIDE = 64
N = SIDE * SIDE  # pixels: an n x n map has 16.8M entries, any (C, n) tensor at C = 32 has 131k
CHANNELS = 32

QUADRATIC = ["nonlocal", "danet", "dnl"]  # danet: its position attention (its channel attention is C x C)
SUBQUADRATIC = ["linear-attention", "ccnet", "ocr", "ema", "gcnet", "none"]  # ccnet: n (H + W)
HAMBURGERS = [s.name for s in list_modules() if s.family == "hamburger"]


class TensorShapes(TorchDispatchMode):
    """Records (op, shape) for every tensor every aten op returns while active."""

    def __init__(self) -> None:
        super().__init__()
        self.created: list[tuple[str, tuple[int, ...]]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.created += [(str(func), tuple(t.shape)) for t in tree_leaves(out) if isinstance(t, torch.Tensor)]
        return out


@cache
def largest_tensor(name: str) -> tuple[str, tuple[int, ...]]:
    """The op and shape of the largest tensor ``name`` creates in one training step at n = 64 x 64."""
    torch.manual_seed(0)
    module = build_module(name, CHANNELS).train()
    x = torch.randn(1, CHANNELS, SIDE, SIDE, requires_grad=True)
    with TensorShapes() as shapes:
        y = module(x)
        (y * torch.randn_like(y)).sum().backward()
    assert shapes.created, "the dispatch mode recorded nothing"
    return max(shapes.created, key=lambda created: torch.Size(created[1]).numel())


def allocates_n_by_n(name: str) -> bool:
    return torch.Size(largest_tensor(name)[1]).numel() >= N * N


@pytest.mark.parametrize("name", QUADRATIC)
def test_attention_allocates_n_by_n(name):
    op, shape = largest_tensor(name)
    assert allocates_n_by_n(name), f"{name}: largest tensor {shape} from {op}, expected an n x n = {N} x {N} map"
    assert shape.count(N) >= 2, f"{name}: the largest tensor {shape} is not an n x n map"


@pytest.mark.parametrize("name", HAMBURGERS + SUBQUADRATIC)
def test_no_n_by_n_map(name):
    op, shape = largest_tensor(name)
    assert not allocates_n_by_n(name), f"{name} allocates {shape} ({op}): an n x n map at n = {N}"


def test_hamburgers_are_registered():
    assert HAMBURGERS, "no module of the `hamburger` family is registered"


@pytest.mark.parametrize("name", module_names())
def test_declared_complexity_matches_allocation(name):
    declared = get_spec(name).complexity
    op, shape = largest_tensor(name)
    assert allocates_n_by_n(name) == (declared == "O(n^2)"), (
        f"{name} declares {declared} but its largest tensor is {shape} ({op}) at n = {N}"
    )
