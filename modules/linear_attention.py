"""Linear attention (Katharopoulos et al., ICML 2020, "Transformers are RNNs: Fast Autoregressive
Transformers with Linear Attention").

Softmax attention with the kernel exp(qᵀk) replaced by φ(q)ᵀφ(k), φ = elu + 1. Associativity
then computes Σ_j φ(k_j) v_jᵀ (d x d) once, instead of the n x n map:

    y_i = φ(q_i)ᵀ Σ_j φ(k_j) v_jᵀ / φ(q_i)ᵀ Σ_j φ(k_j)        O(n d²)

Placed like the non-local block it replaces: 1x1 projections to d = C // 2, output projection
(1x1 conv + BN, zero-initialised) and the residual y = x + W_z(...).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hambench.modules.nonlocal_attn import output_projection
from hambench.registry import register_module


@register_module(
    "linear-attention",
    family="attention",
    paper="Katharopoulos et al., ICML 2020 (linear attention, elu+1)",
    complexity="O(n)",
)
class LinearAttention(nn.Module):
    """elu+1 linear attention in a non-local-style residual block.

    Args:
        channels: input and output width C.
        reduction: inner width d = C // reduction, split over the heads.
        heads: attention heads (1: one d-wide head, like the non-local block).
        norm: BatchNorm after the output projection.
        eps: keeps the normaliser away from zero.
    """

    def __init__(self, channels: int, reduction: int = 2, heads: int = 1, norm: bool = True, eps: float = 1e-6) -> None:
        super().__init__()
        self.inner = max(channels // reduction, 1)
        if heads < 1 or self.inner % heads:
            raise ValueError(f"linear-attention: inner width {self.inner} is not divisible by heads={heads}")
        self.heads = heads
        self.eps = eps
        self.query = nn.Conv2d(channels, self.inner, 1)
        self.key = nn.Conv2d(channels, self.inner, 1)
        self.value = nn.Conv2d(channels, self.inner, 1)
        self.out = output_projection(self.inner, channels, norm)

    def split_heads(self, t: torch.Tensor) -> torch.Tensor:
        """(B, d, H, W) -> (B, heads, n, d / heads)."""
        B = t.shape[0]
        return t.reshape(B, self.heads, self.inner // self.heads, -1).transpose(2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, _, H, W = x.shape
        query = F.elu(self.split_heads(self.query(x))) + 1  # φ(q): (B, h, n, e)
        key = F.elu(self.split_heads(self.key(x))) + 1  # φ(k): (B, h, n, e)
        value = self.split_heads(self.value(x))  # (B, h, n, e)
        # Means over j instead of sums: the ratio is the same, and the terms stay of order d
        # rather than n·d (a sum over n = 128 x 128 pixels would overflow float16 under AMP).
        key = key / key.shape[2]  # φ(k_j) / n: the sums over j below are means
        memory = key.transpose(2, 3) @ value  # mean_j φ(k_j) v_jᵀ: (B, h, e, e)
        normaliser = query @ key.sum(dim=2, keepdim=True).transpose(2, 3)  # φ(q_i)ᵀ mean_j φ(k_j): (B, h, n, 1)
        y = (query @ memory) / (normaliser + self.eps)  # (B, h, n, e)
        y = y.transpose(2, 3).reshape(B, self.inner, H, W)  # (B, d, H, W)
        return x + self.out(y)
