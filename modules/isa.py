"""Interlaced sparse self-attention (Huang et al., 2019, "Interlaced Sparse Self-Attention for
Semantic Segmentation", arXiv:1907.12273).

The dense n x n affinity is factorised into two sparse ones. Cut the map into P x P blocks
(Q_h x Q_w of them, Q = ⌈H / P⌉):

1. long-range attention: the pixels at the same offset inside their blocks form a group
   (P² groups of Q_h·Q_w pixels, spaced P apart); self-attention within each group;
2. short-range attention: self-attention within each P x P block (Q_h·Q_w groups of P² pixels).

After the two steps every pixel has received information from every other. The result is
concatenated with the input and fused by a 1x1 conv-BN-ReLU back to C channels.

Cost: the long-range maps hold n²/P² pairs, the short-range ones n·P²; with the fixed P = 8 of
the paper's experiments and mmseg that is quadratic with a 1/64 constant, not O(n sqrt n) (the
paper's optimum needs P² ∝ √n). No n x n map is ever created: the largest is (B·P², n/P², n/P²).

As mmseg's ``ISAHead`` without its 3x3 ``in_conv`` (the head's squeeze) and classifier: the two
``SelfAttentionBlock`` s (``global_relation``, ``local_relation``) and ``out_conv`` on
``cat([attended, input])``. As in mmseg, a size that P does not divide is zero-padded evenly on both
sides before the permutation (the padded pixels take part in the attention) and cropped after.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hambench.modules.layers import conv_bn_relu
from hambench.registry import register_module


class GroupAttention(nn.Module):
    """Self-attention among the pixels of each group; groups are the batch: (G, C, h, w) -> same.

    mmseg's ISA ``SelfAttentionBlock``: query and key through two 1x1 conv-BN-ReLU each (to d),
    the value through a plain 1x1 conv (C -> C), logits scaled by 1/√d, then a 1x1 conv-BN-ReLU.
    """

    def __init__(self, channels: int, inner: int) -> None:
        super().__init__()
        self.query = nn.Sequential(conv_bn_relu(channels, inner), conv_bn_relu(inner, inner))
        self.key = nn.Sequential(conv_bn_relu(channels, inner), conv_bn_relu(inner, inner))
        self.value = nn.Conv2d(channels, channels, 1)
        self.out = conv_bn_relu(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        query = self.query(x).flatten(2).transpose(1, 2)  # (G, m, d), m pixels per group
        key = self.key(x).flatten(2)  # (G, d, m)
        value = self.value(x).flatten(2).transpose(1, 2)  # (G, m, C)
        attention = ((query * query.shape[-1] ** -0.5) @ key).softmax(dim=-1)  # (G, m, m)
        return self.out((attention @ value).transpose(1, 2).reshape(x.shape))


def pad_to_multiple(x: torch.Tensor, size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Zero-pad H and W up to multiples of ``size``, evenly on both sides (the extra pixel after);
    returns the padded map and the (top, left) offsets of the original inside it."""
    H, W = x.shape[-2:]
    pad_h, pad_w = -H % size, -W % size
    top, left = pad_h // 2, pad_w // 2
    if pad_h or pad_w:
        x = F.pad(x, (left, pad_w - left, top, pad_h - top))
    return x, (top, left)


@register_module(
    "isa",
    family="attention",
    paper="Huang et al., 2019 (ISA, interlaced sparse self-attention)",
    complexity="O(n^2/P^2 + n*P^2)",
)
class InterlacedSparseAttention(nn.Module):
    """Long-range then short-range attention over P x P blocks, concatenated with the input, fused.

    Args:
        channels: input and output width C.
        reduction: query/key width d = C // reduction (ISAHead's config: 512 -> 256).
        block: P, the side of the local blocks (P_h = P_w = 8 in the paper and mmseg's
            ``down_factor=(8, 8)``), in pixels of the feature map.
    """

    def __init__(self, channels: int, reduction: int = 2, block: int = 8) -> None:
        super().__init__()
        if reduction < 1 or block < 1:
            raise ValueError(f"isa: reduction and block must be >= 1, got reduction={reduction}, block={block}")
        inner = max(channels // reduction, 1)
        self.block = block
        self.long_range = GroupAttention(channels, inner)
        self.short_range = GroupAttention(channels, inner)
        self.fuse = conv_bn_relu(2 * channels, channels)  # [attended, input] -> C

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        P = self.block
        padded, (top, left) = pad_to_multiple(x, P)
        Qh, Qw = padded.shape[-2] // P, padded.shape[-1] // P
        blocks = padded.view(B, C, Qh, P, Qw, P)  # pixel (qh·P + ph, qw·P + pw)

        # 1. Long range: one group per offset (ph, pw), holding that pixel of every block.
        y = blocks.permute(0, 3, 5, 1, 2, 4).reshape(B * P * P, C, Qh, Qw)
        y = self.long_range(y).view(B, P, P, C, Qh, Qw)
        # 2. Short range: one group per block (qh, qw), holding its P x P pixels.
        y = y.permute(0, 4, 5, 3, 1, 2).reshape(B * Qh * Qw, C, P, P)
        y = self.short_range(y).view(B, Qh, Qw, C, P, P)
        # Every pixel back in its place, the padding cropped.
        y = y.permute(0, 3, 1, 4, 2, 5).reshape(B, C, Qh * P, Qw * P)[:, :, top : top + H, left : left + W]
        return self.fuse(torch.cat([y, x], dim=1))
