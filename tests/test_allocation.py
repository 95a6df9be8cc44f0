"""Which modules allocate an n x n map, read off the tensors they create (not off timings).

At n = 64 x 64 a dispatch mode records the shape of every tensor that every aten op returns, in
one training step (forward and backward). Self-attention-like blocks (non-local, DANet's position
attention, DNL) must create an n x n map; the Hamburgers and the O(n) or O(n sqrt n) baselines
must not, nor fused attention (``nonlocal-sdpa``: O(n^2) time, O(n) memory), nor ISA, whose maps
are blocks. And for every registered module, plugins included, the complexity it declares must
agree: a module allocates an n x n map exactly when it declares O(n^2) memory ("O(n^2)" alone
stands for time and memory; "O(n^2), O(n) memory" declares them apart).
"""

from __future__ import annotations

from functools import cache

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from hambench.registry import build_module, get_spec, list_modules, module_names, register_module

SIDE = 64
N = SIDE * SIDE  # pixels: an n x n map has 16.8M entries, any (C, n) tensor at C = 32 has 131k
CHANNELS = 32

QUADRATIC = ["nonlocal", "danet", "dnl"]  # danet: its position attention (its channel attention is C x C)
SUBQUADRATIC = ["linear-attention", "ccnet", "ocr", "ema", "gcnet", "none"]  # ccnet: n (H + W)
SUBQUADRATIC += ["ann", "ppm", "aspp"]  # ann: n x S, S = 110 pyramid anchors; ppm, aspp: no attention
FUSED = ["nonlocal-sdpa"]  # n x n arithmetic, never stored
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
def created_tensors(name: str) -> list[tuple[str, tuple[int, ...]]]:
    """The op and shape of every tensor ``name`` creates in one training step at n = 64 x 64.

    Batch 1, or 2 for a module whose training step refuses batch 1 (``ppm``, ``aspp``: BatchNorm
    over a pooled 1x1 map has one value per channel); a batch of 2 doubles every tensor, an n x n
    map stays one and nothing else comes near one.
    """
    for batch in (1, 2):
        torch.manual_seed(0)
        module = build_module(name, CHANNELS).train()
        x = torch.randn(batch, CHANNELS, SIDE, SIDE, requires_grad=True)
        try:
            with TensorShapes() as shapes:
                y = module(x)
                (y * torch.randn_like(y)).sum().backward()
            break
        except ValueError as exc:
            if batch > 1 or "Expected more than 1 value per channel when training" not in str(exc):
                raise
    assert shapes.created, "the dispatch mode recorded nothing"
    return shapes.created


def largest_tensor(name: str) -> tuple[str, tuple[int, ...]]:
    return max(created_tensors(name), key=lambda created: torch.Size(created[1]).numel())


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


@pytest.mark.parametrize("name", FUSED)
def test_fused_attention_never_creates_the_map(name):
    maps = [(op, shape) for op, shape in created_tensors(name) if shape.count(N) >= 2]
    assert not maps, f"{name} created n x n tensors: {maps[:3]}"
    op, shape = largest_tensor(name)
    assert torch.Size(shape).numel() <= 2 * CHANNELS * N, f"{name}: largest tensor {shape} ({op}) is not O(C n)"
    assert any("scaled_dot_product_flash_attention_for_cpu" in op for op, _ in created_tensors(name))


def test_isa_attends_in_blocks():
    """ISA's maps are blocks: P^2 long-range maps of (n/P^2)^2 and n/P^2 short-range maps of P^4,
    at P = 8 and n = 64 x 64 both (64, 64, 64); nothing larger than n^2 / P^2."""
    block = get_spec("isa").defaults["block"]
    groups = N // block**2
    shapes = {shape for _, shape in created_tensors("isa")}
    assert (block**2, groups, groups) in shapes  # the long-range attention maps
    op, shape = largest_tensor("isa")
    assert torch.Size(shape).numel() <= N * N // block**2, f"isa: {shape} ({op}) exceeds the blocks"


class _ToyPixelAttention(torch.nn.Module):
    """Plain softmax attention over the pixels: (B, n, n) weights."""

    def __init__(self, channels: int):
        super().__init__()
        self.proj = torch.nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        b, c, h, w = x.shape
        flat = self.proj(x).flatten(2)  # (B, C, n)
        weights = torch.softmax(flat.transpose(1, 2) @ flat / c**0.5, dim=-1)  # (B, n, n)
        return (flat @ weights.transpose(1, 2)).view(b, c, h, w)


class _ToyPointwise(torch.nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.proj = torch.nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        return self.proj(x)


def test_the_detector_tells_an_n_by_n_map_from_none(scoped_registry):
    """The reading above is no formality: a toy attention over the pixels is caught, a 1x1 conv is not."""
    register_module("test-toy-pixel-attention", family="other", complexity="O(n^2)")(_ToyPixelAttention)
    register_module("test-toy-pointwise", family="other", complexity="O(n)")(_ToyPointwise)
    assert allocates_n_by_n("test-toy-pixel-attention") and largest_tensor("test-toy-pixel-attention")[1].count(N) == 2
    assert not allocates_n_by_n("test-toy-pointwise")
    assert HAMBURGERS and set(HAMBURGERS) <= set(module_names())  # the family the tests above cover exists


def declared_memory(complexity: str) -> str:
    """The memory term of a declared complexity: "O(n^2), O(n) memory" -> "O(n)"; a single term
    ("O(n^2)") states time and memory alike."""
    time, _, memory = complexity.partition(",")
    return memory.strip().removesuffix("memory").strip() if memory else time.strip()


def test_declared_memory_reads_both_forms():
    assert declared_memory("O(n^2)") == "O(n^2)"
    assert declared_memory("O(n^2), O(n) memory") == "O(n)"


@pytest.mark.parametrize("name", module_names())
def test_declared_complexity_matches_allocation(name):
    declared = get_spec(name).complexity
    op, shape = largest_tensor(name)
    assert allocates_n_by_n(name) == (declared_memory(declared) == "O(n^2)"), (
        f"{name} declares {declared} but its largest tensor is {shape} ({op}) at n = {N}"
    )
