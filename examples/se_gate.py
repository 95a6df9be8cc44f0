"""A ten-line context module: `hambench modules check examples/se_gate.py`."""

from torch import nn

import hambench


@hambench.register_module("se-gate", family="other", paper="Hu et al., CVPR 2018", complexity="O(n)")
class SEGate(nn.Module):
    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(channels, channels // reduction),
            nn.ReLU(),
            nn.Linear(channels // reduction, channels),
            nn.Sigmoid(),
        )

    def forward(self, x):  # (B, C, H, W): scale each channel by a gate from the global mean
        return x * self.fc(x.mean(dim=(2, 3)))[:, :, None, None]
