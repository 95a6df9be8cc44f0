"""Non-local block, embedded Gaussian (Wang et al., CVPR 2018, "Non-local Neural Networks").

    y = x + W_z softmax(θ(x)ᵀ φ(x) / √d) g(x)

As mmcv's ``NonLocal2d`` inside mmseg's ``NLHead``: θ, φ, g are 1x1 convs to d = channels // 2,
and the output projection W_z is a 1x1 conv + BatchNorm whose scale starts at zero, so the block
starts as the identity. The n x n attention map is materialised: O(n^2) time and memory.
"""

from __future__ import annotations

import torch
from torch import nn

from hambench.registry import register_module


def output_projection(inner: int, channels: int, norm: bool) -> nn.Module:
    """W_z: 1x1 conv (+ BN), zero-initialised so that the residual block starts as the identity."""
    if norm:
        conv = nn.Conv2d(inner, channels, 1, bias=False)
        bn = nn.BatchNorm2d(channels)
        nn.init.zeros_(bn.weight)
        return nn.Sequential(conv, bn)
    proj = nn.Conv2d(inner, channels, 1)
    assert proj.bias is not None  # bias=True
    nn.init.zeros_(proj.weight)
    nn.init.zeros_(proj.bias)
    return proj


@register_module(
    "nonlocal", family="attention", paper="Wang et al., CVPR 2018 (non-local neural networks)", complexity="O(n^2)"
)
class NonLocal2d(nn.Module):
    """Embedded-Gaussian non-local block.

    Args:
        channels: input and output width C.
        reduction: inner width d = C // reduction (2 in the paper and mmseg).
        use_scale: divide the logits by √d (mmseg's default).
        norm: BatchNorm after the output projection (as NLHead configures it); off: a plain conv.
    """

    def __init__(self, channels: int, reduction: int = 2, use_scale: bool = True, norm: bool = True) -> None:
        super().__init__()
        if reduction < 1:
            raise ValueError(f"nonlocal: reduction must be >= 1, got {reduction}")
        self.inner = max(channels // reduction, 1)
        self.use_scale = use_scale
        self.theta = nn.Conv2d(channels, self.inner, 1)  # queries
        self.phi = nn.Conv2d(channels, self.inner, 1)  # keys
        self.g = nn.Conv2d(channels, self.inner, 1)  # values
        self.out = output_projection(self.inner, channels, norm)
        for conv in (self.theta, self.phi, self.g):  # mmcv's init: N(0, 0.01), zero bias
            assert conv.bias is not None  # bias=True
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)

    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries (B, n, d), keys (B, d, n), values (B, n, d)."""
        query = self.theta(x).flatten(2).transpose(1, 2)
        key = self.phi(x).flatten(2)
        value = self.g(x).flatten(2).transpose(1, 2)
        return query, key, value

    def pairwise(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        """f(x_i, x_j) normalised over j: (B, n, d) x (B, d, n) -> (B, n, n)."""
        scale = query.shape[-1] ** -0.5 if self.use_scale else 1.0
        logits = (query * scale) @ key  # scaling the (B, n, d) queries, not a second (B, n, n) map
        return logits.softmax(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, _, H, W = x.shape
        query, key, value = self.embed(x)
        attention = self.pairwise(query, key)  # (B, n, n)
        y = (attention @ value).transpose(1, 2).reshape(B, self.inner, H, W)  # (B, d, H, W)
        return x + self.out(y)
