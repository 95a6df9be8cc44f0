"""Pyramid context by pooling and by atrous convolution: PSPNet's pyramid pooling module and
DeepLabv3's atrous spatial pyramid pooling. Neither attends: context comes from pooled or dilated
views of the map, O(n).

Both mmseg heads (``PSPHead``, ``ASPPHead``) run straight on the backbone features and end in a 3x3
``bottleneck`` to ``channels``. Here each is the block between ContextHead's squeeze and align:
the input has C channels and the fuse maps the concatenation back to C.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from hambench.modules.layers import conv_bn_relu
from hambench.registry import register_module


def _positive(name: str, option: str, values: Sequence[int]) -> tuple[int, ...]:
    if not values or min(values) < 1:
        raise ValueError(f"{name}: {option} must be a non-empty list of positive integers, got {values}")
    return tuple(values)


@register_module(
    "ppm",
    family="other",
    paper="Zhao et al., CVPR 2017 (PSPNet, pyramid pooling module)",
    complexity="O(n)",
)
class PyramidPooling(nn.Module):
    """Pyramid pooling: average pools to s x s bins, 1x1 conv-BN-ReLU each, bilinear upsampling,
    concatenation with the input, 3x3 conv-BN-ReLU back to C.

    Each level reduces the width to 1/N of the input for a pyramid of N levels (the paper, Sec. 3.2;
    PSPHead's 2048 -> 4 x 512). The paper follows the concatenation with "a convolution layer";
    the fuse is PSPHead's ``bottleneck``, a 3x3 conv-BN-ReLU, mapping to C instead of ``channels``.

    Args:
        channels: input and output width C.
        pool_scales: bin sizes of the pyramid (1, 2, 3, 6 in the paper and mmseg).
        reduction: width of each level C // reduction; None: the number of levels N (the paper's 1/N).

    Training mode needs a batch of at least 2, as in mmseg: BN over the 1x1 level sees one value
    per channel per image.
    """

    def __init__(self, channels: int, pool_scales: Sequence[int] = (1, 2, 3, 6), reduction: int | None = None) -> None:
        super().__init__()
        self.pool_scales = _positive("ppm", "pool_scales", pool_scales)
        reduction = len(self.pool_scales) if reduction is None else reduction
        if reduction < 1:
            raise ValueError(f"ppm: reduction must be >= 1 (or None), got {reduction}")
        inner = max(channels // reduction, 1)
        self.levels = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(s), conv_bn_relu(channels, inner)) for s in self.pool_scales
        )
        self.fuse = conv_bn_relu(channels + len(self.levels) * inner, channels, kernel=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        pyramid = [F.interpolate(level(x), size=size, mode="bilinear", align_corners=False) for level in self.levels]
        return self.fuse(torch.cat([x, *pyramid], dim=1))


@register_module(
    "aspp",
    family="other",
    paper="Chen et al., 2017 (DeepLabv3, atrous spatial pyramid pooling)",
    complexity="O(n)",
)
class AtrousSpatialPyramidPooling(nn.Module):
    """ASPP: image-level pooling + one 1x1 and three dilated 3x3 conv-BN-ReLU branches in parallel,
    concatenated, projected back to C by a conv-BN-ReLU.

    Args:
        channels: input and output width C.
        dilations: rates of the branches, 1 meaning a 1x1 conv; (1, 12, 24, 36) is the paper's set
            at output stride 8 (hambench's backbones) and mmseg's DeepLabv3 config.
        reduction: width of each branch C // reduction. 1: the branches are as wide as the block's
            output, as in the paper (256 -> 256) and mmseg (512 -> ``channels`` = 512).
        fuse_kernel: 1, the paper's 1x1 projection after the concatenation; 3, mmseg's 3x3
            ``bottleneck`` (ContextHead's 3x3 align follows the block in either case).

    Training mode needs a batch of at least 2, as in mmseg: BN over the pooled 1x1 image feature
    sees one value per channel per image.
    """

    def __init__(
        self, channels: int, dilations: Sequence[int] = (1, 12, 24, 36), reduction: int = 1, fuse_kernel: int = 1
    ) -> None:
        super().__init__()
        dilations = _positive("aspp", "dilations", dilations)
        if reduction < 1:
            raise ValueError(f"aspp: reduction must be >= 1, got {reduction}")
        if fuse_kernel not in (1, 3):
            raise ValueError(f"aspp: fuse_kernel must be 1 (the paper) or 3 (mmseg), got {fuse_kernel}")
        inner = max(channels // reduction, 1)
        self.image_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), conv_bn_relu(channels, inner))
        self.branches = nn.ModuleList(
            conv_bn_relu(channels, inner, kernel=1 if d == 1 else 3, dilation=d) for d in dilations
        )
        self.fuse = conv_bn_relu((len(self.branches) + 1) * inner, channels, kernel=fuse_kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Upsampling a 1x1 map bilinearly repeats it: the image feature, broadcast to every pixel.
        image = self.image_pool(x).expand(-1, -1, *x.shape[-2:])
        return self.fuse(torch.cat([image, *(branch(x) for branch in self.branches)], dim=1))
