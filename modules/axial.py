"""Axial attention (Ho et al., 2019, "Axial Attention in Multidimensional Transformers"; the
vision setting of Wang et al., ECCV 2020, "Axial-DeepLab").

Self-attention along one axis at a time: every pixel attends to its row, then (on the result)
to its column, so two layers reach the whole image at a cost of n (H + W) instead of n²:
O(n·√n) for a square map, like criss-cross attention.

hambench follows Ho et al.'s axial attention layer: plain multi-head softmax attention along
the axis, and adds no positional terms of any kind. Axial-DeepLab's position-sensitive terms
(learnt relative embeddings for queries, keys and values) need a fixed span, so they tie the
module to one input size; the zoo's other attention blocks (non-local, criss-cross) have none
either. From
Axial-DeepLab it takes the width (the attention runs at half the block's width) and 8 heads.
The block is non-local-style: a row layer then a column layer (Axial-DeepLab goes height
first; either order reaches the whole image), each with its own 1x1 projections, then an output
projection (1x1 conv + BN, zero-initialised, so the block starts as the identity) and the
residual.
"""

from __future__ import annotations

import torch
from torch import nn

from hambench.modules.nonlocal_attn import output_projection
from hambench.registry import register_module


def attend_along(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, axis: int) -> torch.Tensor:
    """Softmax attention along one spatial axis of (B, heads, e, H, W) tensors.

    axis=-1: each pixel attends to the pixels of its row (length W); axis=-2: of its column
    (length H). The maps are (B, heads, lines, L, L): one L x L map per row or column.
    """
    order = (0, 1, 3, 4, 2) if axis == -1 else (0, 1, 4, 3, 2)  # (B, heads, lines, L, e)
    q, k, v = (t.permute(order) for t in (q, k, v))
    weights = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)  # (B, heads, lines, L, L)
    out = weights.softmax(dim=-1) @ v  # (B, heads, lines, L, e)
    return out.permute([order.index(dim) for dim in range(5)])  # back to (B, heads, e, H, W)


class AxialLayer(nn.Module):
    """One axial-attention layer: 1x1 projections in -> d, multi-head attention along ``axis``."""

    def __init__(self, in_channels: int, inner: int, heads: int, axis: int) -> None:
        super().__init__()
        self.heads = heads
        self.axis = axis
        self.qkv = nn.Conv2d(in_channels, 3 * inner, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, _, H, W = x.shape
        q, k, v = self.qkv(x).reshape(B, 3, self.heads, -1, H, W).unbind(dim=1)  # each (B, heads, e, H, W)
        return attend_along(q, k, v, self.axis).reshape(B, -1, H, W)


@register_module(
    "axial",
    family="attention",
    paper="Ho et al., 2019 (axial attention, rows then columns); width and heads as Wang et al., ECCV 2020",
    complexity="O(n*sqrt(n))",
)
class AxialAttention(nn.Module):
    """Row attention then column attention, in a non-local-style residual block.

    Args:
        channels: input and output width C.
        reduction: inner width d = C // reduction (2: half width, as Axial-DeepLab's blocks).
        heads: attention heads, splitting d (8 in Axial-DeepLab).
        norm: BatchNorm after the output projection.
    """

    def __init__(self, channels: int, reduction: int = 2, heads: int = 8, norm: bool = True) -> None:
        super().__init__()
        if reduction < 1:
            raise ValueError(f"axial: reduction must be >= 1, got {reduction}")
        self.inner = max(channels // reduction, 1)
        if heads < 1 or self.inner % heads:
            raise ValueError(f"axial: inner width {self.inner} is not divisible by heads={heads}")
        self.rows = AxialLayer(channels, self.inner, heads, axis=-1)  # along W, within each row
        self.columns = AxialLayer(self.inner, self.inner, heads, axis=-2)  # along H, within each column
        self.out = output_projection(self.inner, channels, norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.out(self.columns(self.rows(x)))
