"""``none``: the no-context reference. The head runs exactly as with a context module, minus the module."""

from __future__ import annotations

import torch
from torch import nn

from hambench.registry import register_module


@register_module("none", family="none", paper="no context module (identity reference)", complexity="O(n)")
class NoContext(nn.Module):
    """The identity: what a head scores without any global context. No parameters, no cost."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x  # the gradient flows straight through to the input
