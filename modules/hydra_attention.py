"""Hydra attention (Bolya et al., ECCV Workshops 2022, "Hydra Attention: Efficient Attention with
Many Heads").

Multi-head linear attention taken to its limit, as many heads as channels (H = C, one feature per
head), with the cosine-similarity kernel φ(x) = x / ‖x‖₂ (the norm over all C features of a
token). Each head's attention then needs only a sum over the tokens, and all heads together are
elementwise products:

    Hydra(Q, K, V) = φ(Q) ⊙ Σ_t φ(K)_t ⊙ V_t            (paper, Eq. 10-11)

O(n · C) time and memory: no n x n map, no C x C state either (linear attention's per-head
d x d state shrinks to 1 x 1). As the paper's ViT block places it: pre-norm, q, k, v by one linear
layer (C -> 3C, with bias), the output projection (C -> C) and the residual:

    y = x + W_o Hydra(W_q LN(x), W_k LN(x), W_v LN(x))

The sum over tokens is a sum, as in the paper (not a mean): its scale grows with n.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import LayerNorm2d, trunc_normal_
from torch import nn

from hambench.registry import register_module

LN_EPS = 1e-6  # DeiT's norm_layer, the ViT the paper modifies


def hydra(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """φ(q) ⊙ Σ_t φ(k)_t ⊙ v_t for q, k, v (B, C, n): features on dim 1, tokens on dim 2."""
    q = F.normalize(q, dim=1)  # x / max(‖x‖, 1e-12): the paper's x / ‖x‖, safe at a zero token
    k = F.normalize(k, dim=1)
    return q * (k * v).sum(dim=2, keepdim=True)


@register_module(
    "hydra-attention",
    family="attention",
    paper="Bolya et al., ECCVW 2022 (Hydra attention: as many heads as channels, cosine kernel)",
    complexity="O(n)",
)
class HydraAttention(nn.Module):
    """Hydra attention in a pre-norm residual block: ``x + W_o Hydra(qkv(LN(x)))``.

    Args:
        channels: input and output width C (also the number of heads).
        qkv_bias: bias of the q, k, v projection (True, as DeiT's).
    """

    def __init__(self, channels: int, qkv_bias: bool = True) -> None:
        super().__init__()
        self.norm = LayerNorm2d(channels, eps=LN_EPS)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1, bias=qkv_bias)
        self.proj = nn.Conv2d(channels, channels, 1)
        for projection in (self.qkv, self.proj):  # DeiT's init of its nn.Linear layers
            trunc_normal_(projection.weight, std=0.02)
            if projection.bias is not None:
                nn.init.zeros_(projection.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(self.norm(x)).flatten(2).chunk(3, dim=1)  # each (B, C, n)
        return x + self.proj(hydra(q, k, v).reshape_as(x))
