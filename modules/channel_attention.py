"""Channel gates: squeeze-and-excitation (SE), efficient channel attention (ECA) and the
convolutional block attention module (CBAM).

Each pools the whole map into one descriptor per channel (CBAM also one per pixel) and rescales
the input by a sigmoid gate computed from it. The gate is global context of the cheapest kind:
O(n) to pool, O(C) (SE, ECA) or O(C + n) (CBAM) to compute. None has a residual of its own (in
their papers the gate sits inside a residual branch); as context modules they return the gated
input, ``y = gate ⊙ x``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from hambench.registry import register_module


def bottleneck_mlp(channels: int, reduction: int, name: str) -> nn.Sequential:
    """W_2 δ(W_1 z): C -> C / r -> C with ReLU, the excitation MLP of SE and of CBAM."""
    if reduction < 1:
        raise ValueError(f"{name}: reduction must be >= 1, got {reduction}")
    hidden = max(channels // reduction, 1)
    return nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels))


@register_module("se", family="other", paper="Hu et al., CVPR 2018 (squeeze-and-excitation)", complexity="O(n)")
class SqueezeExcitation(nn.Module):
    """Squeeze (global average pool) and excitation (bottleneck MLP, sigmoid), Eq. 2-4:

        z = GAP(x),   s = σ(W_2 δ(W_1 z)),   y_c = s_c · x_c

    Args:
        channels: input and output width C.
        reduction: r, the MLP's hidden width is C / r (16 in the paper).
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.excite = bottleneck_mlp(channels, reduction, "se")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        squeezed = x.mean(dim=(2, 3))  # z: (B, C)
        gate = torch.sigmoid(self.excite(squeezed))  # s: (B, C)
        return x * gate[:, :, None, None]


def eca_kernel_size(channels: int, gamma: float = 2.0, b: float = 1.0) -> int:
    """ECA's Eq. 12: k = |log2(C) / γ + b / γ|_odd, the odd number nearest to t (ties go up).

    For t in [2j, 2j + 1) the nearest odd number is 2j + 1, for t in [2j + 1, 2j + 2) it is
    2j + 1 too, so it is ⌊t⌋ when ⌊t⌋ is odd and ⌊t⌋ + 1 otherwise.
    """
    if channels < 1:
        raise ValueError(f"eca: channels must be >= 1, got {channels}")
    t = int(abs(math.log2(channels) / gamma + b / gamma))
    return t if t % 2 else t + 1


@register_module(
    "eca", family="other", paper="Wang et al., CVPR 2020 (ECA-Net, efficient channel attention)", complexity="O(n)"
)
class EfficientChannelAttention(nn.Module):
    """Global average pool, then a 1-D convolution of size k across the channels, sigmoid:

        ω = σ(conv1d_k(GAP(x))),   y_c = ω_c · x_c

    Each channel's gate sees only its k neighbours (local cross-channel interaction), with k
    adapted to the width C by :func:`eca_kernel_size`.

    Args:
        channels: input and output width C.
        gamma, b: the constants of the kernel-size rule (2 and 1 in the paper).
        kernel_size: override the rule with a fixed odd k (None: the rule).
    """

    def __init__(self, channels: int, gamma: float = 2.0, b: float = 1.0, kernel_size: int | None = None) -> None:
        super().__init__()
        k = eca_kernel_size(channels, gamma, b) if kernel_size is None else kernel_size
        if k < 1 or k % 2 == 0:
            raise ValueError(f"eca: kernel_size must be a positive odd number, got {k}")
        self.kernel_size = k
        # Zero padding keeps one gate per channel; no bias, as in the paper's 1-D convolution.
        self.conv = nn.Conv1d(1, 1, k, padding=(k - 1) // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = x.mean(dim=(2, 3))[:, None, :]  # (B, 1, C): channels as a 1-D signal
        gate = torch.sigmoid(self.conv(pooled))[:, 0]  # (B, C)
        return x * gate[:, :, None, None]


@register_module(
    "cbam", family="other", paper="Woo et al., ECCV 2018 (CBAM, channel then spatial attention)", complexity="O(n)"
)
class CBAM(nn.Module):
    """Channel attention, then spatial attention on the channel-refined map (Eq. 1-3):

        M_c = σ(MLP(AvgPool(F)) + MLP(MaxPool(F))),           F'  = M_c ⊗ F
        M_s = σ(f^{k×k}([AvgPool_c(F'); MaxPool_c(F')])),      F'' = M_s ⊗ F'

    The MLP (C -> C / r -> C) is shared by the two pooled descriptors; the spatial map comes
    from a k x k convolution of the two channel-pooled maps.

    Args:
        channels: input and output width C.
        reduction: r of the shared MLP (16 in the paper).
        kernel_size: k of the spatial convolution (7 in the paper).
    """

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"cbam: kernel_size must be a positive odd number, got {kernel_size}")
        self.mlp = bottleneck_mlp(channels, reduction, "cbam")
        self.spatial = nn.Conv2d(2, 1, kernel_size, padding=(kernel_size - 1) // 2)

    def channel_gate(self, x: torch.Tensor) -> torch.Tensor:
        """M_c: (B, C, 1, 1)."""
        logits = self.mlp(x.mean(dim=(2, 3))) + self.mlp(x.amax(dim=(2, 3)))
        return torch.sigmoid(logits)[:, :, None, None]

    def spatial_gate(self, x: torch.Tensor) -> torch.Tensor:
        """M_s: (B, 1, H, W)."""
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)  # (B, 2, H, W)
        return torch.sigmoid(self.spatial(pooled))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        refined = x * self.channel_gate(x)  # F'
        return refined * self.spatial_gate(refined)  # F''
