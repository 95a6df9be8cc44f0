"""Criss-cross attention (Huang et al., ICCV 2019, "CCNet: Criss-Cross Attention for Semantic
Segmentation").

Each pixel attends to the H + W - 1 pixels of its row and column; applied twice with shared
weights (recurrence 2), every pixel reaches every other. Cost O(n (H + W)) = O(n·sqrt(n)) for
square maps: the (B, H, W, H + W) map replaces the n x n one. Pure PyTorch (einsum), the same
computation as mmcv's ``CrissCrossAttention`` that mmseg's ``CCHead`` applies ``recurrence`` times.
"""

from __future__ import annotations

import torch
from torch import nn

from hambench.registry import register_module


@register_module(
    "ccnet", family="attention", paper="Huang et al., ICCV 2019 (CCNet, criss-cross)", complexity="O(n*sqrt(n))"
)
class CrissCrossAttention(nn.Module):
    """Recurrent criss-cross attention: ``recurrence`` passes of y = x + γ · Σ_{row ∪ column} a v.

    Args:
        channels: input and output width C.
        recurrence: passes with shared weights (2 in the paper: enough to connect all pixels).
        reduction: query/key width C // reduction (8 in the paper and mmcv).
    """

    def __init__(self, channels: int, recurrence: int = 2, reduction: int = 8) -> None:
        super().__init__()
        if recurrence < 1 or reduction < 1:
            raise ValueError(f"ccnet: recurrence and reduction must be >= 1, got {recurrence}, {reduction}")
        self.recurrence = recurrence
        inner = max(channels // reduction, 1)
        self.query = nn.Conv2d(channels, inner, 1)
        self.key = nn.Conv2d(channels, inner, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(()))  # starts as the identity

    def criss_cross(self, x: torch.Tensor) -> torch.Tensor:
        H = x.shape[2]
        query, key, value = self.query(x), self.key(x), self.value(x)
        # Pixel (h, w) against its column (g, w) and its row (h, v).
        column = torch.einsum("bchw,bcgw->bhwg", query, key)  # (B, H, W, H)
        row = torch.einsum("bchw,bchv->bhwv", query, key)  # (B, H, W, W)
        # The pixel itself lies on both; count it once (in its row).
        itself = torch.eye(H, dtype=torch.bool, device=x.device).unsqueeze(1)  # (H, 1, H) over (h, w, g)
        column = column.masked_fill(itself, float("-inf"))
        attention = torch.cat([column, row], dim=-1).softmax(dim=-1)  # (B, H, W, H + W)
        out = torch.einsum("bcgw,bhwg->bchw", value, attention[..., :H])
        out = out + torch.einsum("bchv,bhwv->bchw", value, attention[..., H:])
        return x + self.gamma * out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(self.recurrence):
            x = self.criss_cross(x)
        return x
