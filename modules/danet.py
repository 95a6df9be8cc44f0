"""Dual attention (Fu et al., CVPR 2019, "Dual Attention Network for Scene Segmentation").

Two attentions on the same features, summed over the input:

    y = x + α · PAM(x) + β · CAM(x)

- position attention (PAM): every pixel attends to every pixel, an n x n map: O(n^2);
- channel attention (CAM): every channel attends to every channel, a C x C map, no parameters.

α and β start at zero (the block starts as the identity). As mmseg's ``PAM`` and ``CAM`` of
``DAHead``, where each of them adds the input itself: DAHead runs them on two branches
(``pam_in_conv``, ``cam_in_conv`` ... ``pam_out_conv``, ``cam_out_conv``) and sums the branches;
here one input feeds both and the input is added once, so ``y = PAM_mmseg(x) + CAM_mmseg(x) - x``.
The branch convs are head convs (the ContextHead's squeeze and align play their part).
"""

from __future__ import annotations

import torch
from torch import nn

from hambench.registry import register_module


class PositionAttention(nn.Module):
    """PAM without its scale and residual: (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, channels: int, inner: int) -> None:
        super().__init__()
        self.query = nn.Conv2d(channels, inner, 1)
        self.key = nn.Conv2d(channels, inner, 1)
        self.value = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        query = self.query(x).flatten(2).transpose(1, 2)  # (B, n, d)
        key = self.key(x).flatten(2)  # (B, d, n)
        value = self.value(x).flatten(2)  # (B, C, n)
        attention = (query @ key).softmax(dim=-1)  # (B, n, n): pixel i attends to pixel j (no √d, as DANet)
        return (value @ attention.transpose(1, 2)).reshape(B, C, H, W)


class ChannelAttention(nn.Module):
    """CAM without its scale and residual: (B, C, H, W) -> (B, C, H, W), no parameters."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        feats = x.flatten(2)  # (B, C, n)
        # The energies are sums over n pixels: in at least float32, as float16 (AMP) overflows past
        # 65504; float64 stays float64 (upcast only).
        with torch.autocast(x.device.type, enabled=False):
            wide = feats.float() if feats.dtype in (torch.float16, torch.bfloat16) else feats
            energy = wide @ wide.transpose(1, 2)  # (B, C, C)
        # DANet's code takes softmax(max(E) - E); softmax ignores the shift, so it is softmax(-E).
        attention = (-energy).softmax(dim=-1).to(x.dtype)
        return (attention @ feats).reshape(B, C, H, W)


@register_module("danet", family="attention", paper="Fu et al., CVPR 2019 (DANet, dual attention)", complexity="O(n^2)")
class DualAttention(nn.Module):
    """Position + channel attention, summed.

    Args:
        channels: input and output width C.
        reduction: query/key width of the position attention, C // reduction (DAHead: 512 -> 64).
    """

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        if reduction < 1:
            raise ValueError(f"danet: reduction must be >= 1, got {reduction}")
        self.pam = PositionAttention(channels, max(channels // reduction, 1))
        self.cam = ChannelAttention()
        self.alpha = nn.Parameter(torch.zeros(()))  # PAM scale
        self.beta = nn.Parameter(torch.zeros(()))  # CAM scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.alpha * self.pam(x) + self.beta * self.cam(x)
