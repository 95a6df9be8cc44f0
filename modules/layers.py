"""Layers the zoo's modules share (one home, as timm's ``layers``)."""

from __future__ import annotations

from torch import nn
from torchvision.ops import Conv2dNormActivation


def conv_bn_relu(in_channels: int, out_channels: int, kernel: int = 1, dilation: int = 1) -> nn.Module:
    """Conv (no bias, 'same' padding) + BN + ReLU: mmcv's ``ConvModule`` as mmseg configures the
    ISA, OCR, ANN, PSP and ASPP heads."""
    return Conv2dNormActivation(in_channels, out_channels, kernel_size=kernel, dilation=dilation)
