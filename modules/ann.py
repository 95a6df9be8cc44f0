"""Asymmetric pyramid non-local block, APNB (Zhu et al., ICCV 2019, "Asymmetric Non-local Neural
Networks for Semantic Segmentation").

A non-local block whose keys and values are not all n pixels but S anchors sampled by pyramid
pooling: adaptive average pools to 1x1, 3x3, 6x6 and 8x8, S = 1 + 9 + 36 + 64 = 110. Every pixel
attends to the S anchors, an n x S map, O(n·S) = O(n) for a fixed pyramid:

    context = W_out softmax(θ(x)ᵀ P(θ(x)) / √d) P(g(x))ᵀ          P: pyramid sampling
    y       = fuse([context, x])                                    1x1 conv-BN-ReLU, 2C -> C

Query and key share one projection θ (1x1 conv-BN-ReLU to d); the value g and the output W_out
are plain 1x1 convs, W_out zero-initialised (the context starts at zero).

As mmseg's ``APNB`` (``ANNHead.context``), with its default single query scale (1,): the
``SelfAttentionBlock`` with ``share_key_query=True`` and ``PPMConcat`` as key/value sampler, then
``bottleneck`` on ``cat([context, x])``. ANNHead's other block, AFNB, fuses two backbone stages
and cannot be a single-input context module; its 3x3 ``bottleneck`` between AFNB and APNB is a
head conv (ContextHead's squeeze plays its part).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from hambench.modules.layers import conv_bn_relu
from hambench.registry import register_module


def pyramid_sample(x: torch.Tensor, scales: Sequence[int]) -> torch.Tensor:
    """(B, d, H, W) -> (B, d, S): the cells of an average-pooling pyramid, S = Σ s², as anchors."""
    return torch.cat([F.adaptive_avg_pool2d(x, s).flatten(2) for s in scales], dim=2)


@register_module(
    "ann",
    family="attention",
    paper="Zhu et al., ICCV 2019 (ANN, asymmetric pyramid non-local block)",
    complexity="O(n)",
)
class AsymmetricPyramidNonLocal(nn.Module):
    """APNB: pixels attend to S pyramid-pooled anchors; context and input concatenated and fused.

    Args:
        channels: input and output width C.
        reduction: key/query/value width d = C // reduction (ANNHead's config: 512 -> 256).
        pool_scales: output sizes of the pyramid pools (the paper and mmseg: 1, 3, 6, 8).
    """

    def __init__(self, channels: int, reduction: int = 2, pool_scales: Sequence[int] = (1, 3, 6, 8)) -> None:
        super().__init__()
        if reduction < 1:
            raise ValueError(f"ann: reduction must be >= 1, got {reduction}")
        if not pool_scales or min(pool_scales) < 1:
            raise ValueError(f"ann: pool_scales must be positive sizes, got {pool_scales}")
        inner = max(channels // reduction, 1)
        self.pool_scales = tuple(pool_scales)
        self.key = conv_bn_relu(channels, inner)  # θ, shared by query and key
        self.value = nn.Conv2d(channels, inner, 1)  # g
        self.out = nn.Conv2d(inner, channels, 1)  # W_out
        self.fuse = conv_bn_relu(2 * channels, channels)  # [context, x] -> C
        assert self.out.bias is not None  # bias=True
        nn.init.zeros_(self.out.weight)  # as mmseg: the context starts at zero
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, _, H, W = x.shape
        embedded = self.key(x)  # (B, d, H, W)
        query = embedded.flatten(2).transpose(1, 2)  # (B, n, d): every pixel asks
        key = pyramid_sample(embedded, self.pool_scales)  # (B, d, S)
        value = pyramid_sample(self.value(x), self.pool_scales).transpose(1, 2)  # (B, S, d)
        attention = ((query * query.shape[-1] ** -0.5) @ key).softmax(dim=-1)  # (B, n, S)
        context = (attention @ value).transpose(1, 2).reshape(B, -1, H, W)  # (B, d, H, W)
        return self.fuse(torch.cat([self.out(context), x], dim=1))
