"""Gated blocks: MambaOut's gated CNN block (``gated-conv``) and softmax attention with an output
gate (``gated-attention``).

- ``gated-conv`` (Yu & Wang, 2024, "MambaOut: Do We Really Need Mamba for Vision?"): Mamba's
  block without its state-space model, a gated linear unit with a 7x7 depth-wise conv on part of
  the gated branch. Local (7 x 7 reach), O(n): the zoo's "is the state space needed?" control.
- ``gated-attention`` (Qiu et al., 2025, "Gated Attention for Large Language Models:
  Non-linearity, Sparsity, and Attention-Sink-Free"): multi-head softmax attention through fused
  SDPA whose output is multiplied, head by head and channel by channel, by a sigmoid gate computed
  from the block's (normalised) input: the paper's G1 position, its best variant.

Both work on channels-last tokens (B, n, C) with ``nn.Linear`` projections, as timm's MambaOut
and ViT blocks do, so that weights load from them one to one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hambench.registry import DefaultRule, register_module

HEAD_WIDTH = 64  # a ViT's (and timm's) attention head width


def heads_for(channels: int, head_width: int, split: int = 1) -> int:
    """The most heads h <= channels // head_width (at least 1) with channels divisible by
    split · h: heads of about ``head_width`` channels that tile the width exactly."""
    for heads in range(max(1, channels // head_width), 0, -1):
        if channels % (split * heads) == 0:
            return heads
    raise ValueError(f"{channels} channels cannot be split into {split} parts per head")


def to_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, n, C), n = H·W in raster order."""
    return x.flatten(2).transpose(1, 2)


def to_map(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, n, C) -> (B, C, H, W), contiguous."""
    return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], height, width)


def check_heads(name: str, channels: int, heads: int, split: int = 1) -> None:
    if heads < 1 or channels % (split * heads):
        raise ValueError(
            f"{name}: channels={channels} must be divisible by {'2 x ' if split == 2 else ''}heads={heads}"
        )


# ------------------------------------------------------------------------------------- gated CNN


@register_module(
    "gated-conv",
    family="other",
    paper="Yu & Wang, 2024 (MambaOut: gated CNN block, Mamba without its SSM)",
    complexity="O(n)",
)
class GatedConv(nn.Module):
    """MambaOut's gated CNN block, timm's ``GatedConvBlock`` on (B, C, H, W):

        h = W_1 LN(x) = [g, i, c],   y = x + W_2 (GELU(g) ⊙ [i, DW_k(c)])

    W_1: C -> 2 h_w (h_w = ⌊8C/3⌋, the expansion), split into the gate g (h_w channels), the
    identity part i (h_w - C_c) and the conv part c (C_c = ⌊r C⌋, r = ``conv_ratio``), DW_k a
    k x k depth-wise conv on c alone, W_2: h_w -> C. Cost per pixel 3 C h_w + k² C_c MACs: O(n).
    LayerNorm over the channels (eps 1e-6), GELU, k = 7, expansion 8/3, r = 1: MambaOut's
    defaults in every model size. No layer scale (MambaOut's models use none) and no drop path.

    Args:
        channels: input and output width C.
        expansion_ratio: h_w = ⌊expansion_ratio · C⌋ (8/3, so that the block's 3 C h_w
            parameters match a 4x MLP's 8 C², as in Mamba and MambaOut).
        kernel_size: k of the depth-wise conv (7).
        conv_ratio: the share r of the channels the conv sees, C_c = ⌊r C⌋ (1.0; MambaOut's
            partial-channel option, from InceptionNeXt).
    """

    def __init__(
        self, channels: int, expansion_ratio: float = 8 / 3, kernel_size: int = 7, conv_ratio: float = 1.0
    ) -> None:
        super().__init__()
        hidden = int(expansion_ratio * channels)
        conv_channels = int(conv_ratio * channels)
        if not 1 <= conv_channels <= hidden:
            raise ValueError(
                f"gated-conv: conv_ratio={conv_ratio} gives {conv_channels} conv channels; need 1..{hidden} "
                f"(the hidden width from expansion_ratio={expansion_ratio})"
            )
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"gated-conv: kernel_size must be odd and >= 1, got {kernel_size}")
        self.split_sizes = (hidden, hidden - conv_channels, conv_channels)  # g, i, c
        self.norm = nn.LayerNorm(channels, eps=1e-6)
        self.fc1 = nn.Linear(channels, 2 * hidden)
        self.act = nn.GELU()
        self.conv = nn.Conv2d(conv_channels, conv_channels, kernel_size, padding=kernel_size // 2, groups=conv_channels)
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.permute(0, 2, 3, 1)  # (B, H, W, C): the linear layers and the norm act on channels last
        gate, identity, conv_part = torch.split(self.fc1(self.norm(tokens)), list(self.split_sizes), dim=-1)
        conv_part = self.conv(conv_part.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        y = self.fc2(self.act(gate) * torch.cat((identity, conv_part), dim=-1))
        return x + y.permute(0, 3, 1, 2)


# ------------------------------------------------------------------------------------- gated attention


GATED_HEADS = DefaultRule(
    "heads of about 64 channels: the most h <= channels // 64 dividing channels, at least 1",
    lambda channels: heads_for(channels, HEAD_WIDTH),
)


@register_module(
    "gated-attention",
    family="attention",
    paper="Qiu et al., 2025 (gated attention: head-specific sigmoid gate after SDPA, G1)",
    complexity="O(n^2), O(n) memory",
    rules={"heads": GATED_HEADS},
)
class GatedAttention(nn.Module):
    """Pre-norm multi-head self-attention over the pixels with an elementwise output gate:

        X = LN(x),   Y_h = softmax(Q_h K_hᵀ / √e) V_h,   Y' = [Y_1 ... Y_H] ⊙ σ(X W_θ),   y = x + Y' W_o

    (Q, K, V) = X (W_q, W_k, W_v), e = C / H the head width, W_θ: C -> C one gate per head and
    channel, computed from the same normalised input as the queries (query-dependent: the gate
    of pixel i reads pixel i). The attention is one ``F.scaled_dot_product_attention`` call
    (a fused kernel: the n x n map is never stored, memory O(n·C), arithmetic 2 n² C MACs). No
    positional terms, as the zoo's other attention blocks. The residual has no zero
    initialisation (a transformer's sub-layer; Qiu et al. initialise nothing specially).

    Args:
        channels: input and output width C.
        heads: H; None: heads of about 64 channels (the most H <= C // 64 that divides C;
            8 at C = 512, 1 at C = 32).
        qkv_bias: biases in W_q, W_k, W_v and W_θ (True, as timm's ViT; W_o always has one).
        norm: LayerNorm (eps 1e-6) before the projections (pre-norm, the paper's layout).
    """

    def __init__(self, channels: int, heads: int | None = None, qkv_bias: bool = True, norm: bool = True) -> None:
        super().__init__()
        self.heads = heads if heads is not None else heads_for(channels, HEAD_WIDTH)
        check_heads("gated-attention", channels, self.heads)
        self.norm = nn.LayerNorm(channels, eps=1e-6) if norm else nn.Identity()
        self.qkv = nn.Linear(channels, 3 * channels, bias=qkv_bias)
        self.gate = nn.Linear(channels, channels, bias=qkv_bias)
        self.proj = nn.Linear(channels, channels)

    def split_heads(self, t: torch.Tensor) -> torch.Tensor:
        """(B, n, C) -> (B, H, n, e), unit stride along e (what the fused kernels need)."""
        return t.unflatten(-1, (self.heads, -1)).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        tokens = self.norm(to_tokens(x))  # X: (B, n, C)
        q, k, v = (self.split_heads(t) for t in self.qkv(tokens).chunk(3, dim=-1))
        y = F.scaled_dot_product_attention(q, k, v)  # (B, heads, n, e), scale 1/√e
        y = y.transpose(1, 2).reshape(B, H * W, C) * torch.sigmoid(self.gate(tokens))  # the G1 gate
        return x + to_map(self.proj(y), H, W)
