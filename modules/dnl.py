"""Disentangled non-local block (Yin et al., ECCV 2020, "Disentangled Non-Local Neural Networks").

The non-local pairwise term splits into a whitened pairwise term (queries and keys minus their
means over positions, sharpened by a temperature) and a unary term (one softmax attention map,
shared by every query, as in GCNet):

    y = x + W_z ( softmax((θ - μ_θ)ᵀ(φ - μ_φ) / (√d τ)) g(x)  +  softmax(w_m x) g(x) )

As mmseg's ``DisentangledNonLocal2d`` (``DNLHead``). O(n^2): the n x n map is materialised.
"""

from __future__ import annotations

import torch
from torch import nn

from hambench.modules.nonlocal_attn import NonLocal2d
from hambench.registry import register_module


@register_module("dnl", family="attention", paper="Yin et al., ECCV 2020 (disentangled non-local)", complexity="O(n^2)")
class DisentangledNonLocal2d(NonLocal2d):
    """Disentangled non-local block: whitened pairwise term + unary term.

    Args:
        channels: input and output width C.
        reduction: inner width d = C // reduction.
        use_scale: divide the pairwise logits by √d.
        temperature: τ of the whitened pairwise softmax (0.05 in the paper and mmseg).
        norm: BatchNorm after the output projection (as DNLHead configures it).
    """

    def __init__(
        self, channels: int, reduction: int = 2, use_scale: bool = True, temperature: float = 0.05, norm: bool = True
    ) -> None:
        super().__init__(channels, reduction=reduction, use_scale=use_scale, norm=norm)
        if temperature <= 0:
            raise ValueError(f"dnl: temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.unary = nn.Conv2d(channels, 1, 1)  # w_m: one saliency logit per position

    def pairwise(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        """Whitened pairwise term: (B, n, d) x (B, d, n) -> (B, n, n)."""
        query = query - query.mean(dim=1, keepdim=True)  # minus μ over positions
        key = key - key.mean(dim=2, keepdim=True)
        scale = (query.shape[-1] ** -0.5 if self.use_scale else 1.0) / self.temperature
        logits = (query * scale) @ key  # scaling the (B, n, d) queries, not the (B, n, n) map
        return logits.softmax(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, _, H, W = x.shape
        query, key, value = self.embed(x)
        pairwise = self.pairwise(query, key) @ value  # (B, n, d)
        saliency = self.unary(x).flatten(2).softmax(dim=-1)  # (B, 1, n)
        unary = saliency @ value  # (B, 1, d): the same context for every query
        y = (pairwise + unary).transpose(1, 2).reshape(B, self.inner, H, W)  # (B, d, H, W)
        return x + self.out(y)
