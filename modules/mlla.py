"""Mamba-like linear attention, MLLA (Han et al., NeurIPS 2024, "Demystify Mamba in Vision: A
Linear Attention Perspective").

The paper reads Mamba as linear attention with six differences and keeps the ones that help on
images: the input gate, the block design around it (Mamba's in-projection, depthwise convolution
and SiLU), and positional encodings in place of the forget gate (LePE and RoPE), with no
recurrence: the attention stays parallel and non-causal. The block, as the authors' ``MLLABlock``
less its FFN (x and h are per-pixel C-vectors; every Linear has a bias):

    x  = x + CPE_1(x)                                    CPE: depthwise 3x3 conv, a residual
    h  = LN(x)
    g  = SiLU(W_act h)                                   the input gate
    h  = SiLU(DWConv_3x3(W_in h))                        Mamba's conv branch
    q, k = elu(W_qk h) + 1,  v = h                       φ = elu + 1, per head of width d = C / heads
    A(h) = [RoPE(q) (Σ_j RoPE(k_j)ᵀ v_j / n)] / (q · mean_j k_j + 1e-6) + LePE(v)
    x  = x + W_out (A(h) ⊙ g)
    y  = x + CPE_2(x)

RoPE rotates consecutive channel pairs of q and k (over all C channels, before the split into
heads) by angles i·θ_m (first C/4 pairs) and j·θ_m (last C/4 pairs) at pixel (i, j),
θ_m = base^(-m / (C/4)): the normaliser uses the unrotated q and k, the product the rotated ones.
Its angles are computed for the input's own H x W (the authors' code builds them for one fixed
resolution). LePE is a depthwise 3x3 convolution of v.

O(n · C · d): the d x d state per head, never an n x n map.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import trunc_normal_
from torch import nn

from hambench.registry import DefaultRule, register_module

EPS = 1e-6  # the authors' normaliser epsilon
HEAD_DIM = 32  # MLLA-T/S/B: 64/2, 128/4, 256/8, 512/16 channels per head


def depthwise(channels: int) -> nn.Conv2d:
    """3x3 depthwise convolution with bias: CPE, the block's DWConv and LePE alike."""
    return nn.Conv2d(channels, channels, 3, padding=1, groups=channels)


def rope_rotations(height: int, width: int, channels: int, base: float, device: torch.device) -> torch.Tensor:
    """The unit complex rotations (H, W, C / 2) of RoPE on an H x W grid: pair m < C/4 turns by
    i·θ_m, pair C/4 + m by j·θ_m, θ_m = base^(-m / (C/4)). In float64, cast by the caller."""
    k_max = channels // 4
    theta = base ** (-torch.arange(k_max, dtype=torch.float64, device=device) / k_max)
    rows = torch.arange(height, dtype=torch.float64, device=device)[:, None, None] * theta  # (H, 1, C/4)
    columns = torch.arange(width, dtype=torch.float64, device=device)[None, :, None] * theta  # (1, W, C/4)
    angles = torch.cat([rows.expand(height, width, k_max), columns.expand(height, width, k_max)], dim=-1)
    return torch.polar(torch.ones_like(angles), angles)


def apply_rope(x: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
    """x (B, H, W, C) with channel pairs (2m, 2m + 1) as complex numbers, each turned by its
    rotation; in float32 at least (the authors' RoPE computes in float32)."""
    x = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    complex_dtype = torch.complex128 if x.dtype == torch.float64 else torch.complex64
    turned = torch.view_as_complex(x.unflatten(-1, (-1, 2)).contiguous()) * rotations.to(complex_dtype)
    return torch.view_as_real(turned).flatten(-2)


HEADS = DefaultRule(
    f"channels // {HEAD_DIM} (MLLA's head width {HEAD_DIM}), at least 1", lambda channels: max(1, channels // HEAD_DIM)
)


@register_module(
    "mlla",
    family="attention",
    paper="Han et al., NeurIPS 2024 (MLLA, Mamba-like linear attention)",
    complexity="O(n)",
    rules={"heads": HEADS},
)
class MLLA(nn.Module):
    """The MLLA block without its FFN: CPE, gated linear attention (elu+1, RoPE, LePE), CPE.

    Args:
        channels: input and output width C (a multiple of 4, for RoPE's row and column halves).
        heads: attention heads; None: C // 32 (head width 32, as every MLLA model), at least 1.
        qkv_bias: bias of the q, k projection (True, the authors' default).
        rope_base: RoPE's base (10000).
    """

    def __init__(
        self, channels: int, heads: int | None = None, qkv_bias: bool = True, rope_base: float = 10000.0
    ) -> None:
        super().__init__()
        heads = heads if heads is not None else max(1, channels // HEAD_DIM)
        if channels % 4:
            raise ValueError(f"mlla: channels must be a multiple of 4 (RoPE's row and column halves), got {channels}")
        if heads < 1 or channels % heads:
            raise ValueError(f"mlla: channels {channels} is not divisible by heads={heads}")
        self.heads, self.rope_base = heads, rope_base
        self.cpe1 = depthwise(channels)
        self.norm1 = nn.LayerNorm(channels)
        self.in_proj = nn.Linear(channels, channels)
        self.act_proj = nn.Linear(channels, channels)
        self.dwc = depthwise(channels)
        self.qk = nn.Linear(channels, 2 * channels, bias=qkv_bias)
        self.lepe = depthwise(channels)
        self.out_proj = nn.Linear(channels, channels)
        self.cpe2 = depthwise(channels)
        for linear in (self.in_proj, self.act_proj, self.qk, self.out_proj):  # MLLA._init_weights
            trunc_normal_(linear.weight, std=0.02)
            if linear.bias is not None:
                nn.init.zeros_(linear.bias)

    def attention(self, h: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Linear attention with RoPE and LePE, h (B, n, C) -> (B, n, C); v = h."""
        B, n, C = h.shape
        q, k = (F.elu(t) + 1.0 for t in self.qk(h).chunk(2, dim=-1))  # φ(q), φ(k): (B, n, C)
        rotations = rope_rotations(height, width, C, self.rope_base, h.device)
        q_rope, k_rope = (apply_rope(t.view(B, height, width, C), rotations).view(B, n, C) for t in (q, k))
        split = lambda t: t.view(B, n, self.heads, C // self.heads).transpose(1, 2)  # noqa: E731  (B, heads, n, d)
        q, k, v, q_rope, k_rope = (split(t) for t in (q, k, h, q_rope, k_rope))
        normaliser = 1 / (q @ k.mean(dim=-2, keepdim=True).transpose(-2, -1) + EPS)  # (B, heads, n, 1)
        state = (k_rope.transpose(-2, -1) * n**-0.5) @ (v * n**-0.5)  # Σ_j k_j v_jᵀ / n: (B, heads, d, d)
        out = (q_rope @ state * normaliser).transpose(1, 2).reshape(B, n, C)
        lepe = self.lepe(h.transpose(1, 2).reshape(B, C, height, width))
        return out + lepe.flatten(2).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        x = x + self.cpe1(x)
        tokens = x.flatten(2).transpose(1, 2)  # (B, n, C), the shortcut
        h = self.norm1(tokens)
        gate = F.silu(self.act_proj(h))
        h = self.in_proj(h).transpose(1, 2).reshape(B, C, H, W)
        h = F.silu(self.dwc(h)).flatten(2).transpose(1, 2)
        tokens = tokens + self.out_proj(self.attention(h, H, W) * gate)
        x = tokens.transpose(1, 2).reshape(B, C, H, W)
        return x + self.cpe2(x)
