"""Global context block (Cao et al., ICCVW 2019, "GCNet: Non-local Networks Meet
Squeeze-Excitation Networks and Beyond").

The non-local attention map barely depends on the query, so GCNet computes one map for all
queries (context modelling), then a bottleneck transform, and adds the result at every pixel:

    y = x + W_2 ReLU(LN(W_1 Σ_j softmax(w_k x)_j x_j))

O(n). As mmcv's ``ContextBlock`` (``pooling_type='att'``, ``fusion_types=('channel_add',)``) in
mmseg's ``GCHead``, ratio 1/4.
"""

from __future__ import annotations

import torch
from torch import nn

from hambench.registry import register_module


@register_module("gcnet", family="attention", paper="Cao et al., ICCVW 2019 (GCNet, global context)", complexity="O(n)")
class GlobalContext(nn.Module):
    """Global context block with attention pooling and channel-add fusion.

    Args:
        channels: input and output width C.
        ratio: bottleneck width C * ratio of the transform (1/4 in GCHead).
    """

    def __init__(self, channels: int, ratio: float = 0.25) -> None:
        super().__init__()
        planes = int(channels * ratio)
        if planes < 1:
            raise ValueError(f"gcnet: channels * ratio must be >= 1, got {channels} * {ratio}")
        self.attend = nn.Conv2d(channels, 1, 1)  # w_k: one attention logit per position
        # Built in this order (the convs draw their initial weights from the global RNG), named so
        # that the last one's init below is typed.
        squeeze = nn.Conv2d(channels, planes, 1)
        norm = nn.LayerNorm([planes, 1, 1])
        expand = nn.Conv2d(planes, channels, 1)
        self.transform = nn.Sequential(squeeze, norm, nn.ReLU(inplace=True), expand)
        assert self.attend.bias is not None and expand.bias is not None  # bias=True
        nn.init.kaiming_normal_(self.attend.weight, mode="fan_in", nonlinearity="relu")
        nn.init.zeros_(self.attend.bias)
        nn.init.zeros_(expand.weight)  # starts as the identity
        nn.init.zeros_(expand.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, _, _ = x.shape
        weights = self.attend(x).flatten(2).softmax(dim=-1)  # (B, 1, n): shared by every query
        context = (x.flatten(2) @ weights.transpose(1, 2)).reshape(B, C, 1, 1)  # (B, C, 1, 1)
        return x + self.transform(context)  # broadcast over positions
