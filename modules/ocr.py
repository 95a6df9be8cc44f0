"""Object-contextual representations (Yuan et al., ECCV 2020, "Object-Contextual Representations
for Semantic Segmentation").

1. soft object regions: a 1x1 conv predicts K region maps, each a softmax over the pixels;
2. object region representations: each region's weighted mean of the pixel features (spatial gather);
3. pixel-region relation: every pixel attends to the K region representations (object attention);
4. the object context is concatenated with the pixel features and fused by a 1x1 conv.

Cost O(nK): the attention map is n x K, never n x n. As mmseg's ``OCRHead`` (its
``SpatialGatherModule`` and ``ObjectAttentionBlock``), with one difference: OCRNet predicts the
regions with an auxiliary head supervised by the labels (K = number of classes); a context module
sees no labels, so here the regions are learnt end to end and K is an option.
"""

from __future__ import annotations

import torch
from torch import nn

from hambench.modules.layers import conv_bn_relu
from hambench.registry import register_module


@register_module("ocr", family="attention", paper="Yuan et al., ECCV 2020 (OCRNet, object context)", complexity="O(n)")
class ObjectContext(nn.Module):
    """OCR block with its own soft object regions.

    Args:
        channels: input and output width C.
        regions: number of soft object regions K (OCRNet: the number of classes; 64 here,
            the Hamburger's latent dimension r and EMANet's number of bases).
        reduction: key/query/value width d = C // reduction (OCRHead: 512 -> 256).
    """

    def __init__(self, channels: int, regions: int = 64, reduction: int = 2) -> None:
        super().__init__()
        if regions < 1 or reduction < 1:
            raise ValueError(f"ocr: regions and reduction must be >= 1, got {regions}, {reduction}")
        inner = max(channels // reduction, 1)
        self.inner = inner
        self.regions = nn.Conv2d(channels, regions, 1)  # soft object regions (B, K, H, W)
        # Object attention block: pixels query the region representations.
        self.query = nn.Sequential(conv_bn_relu(channels, inner), conv_bn_relu(inner, inner))
        self.key = nn.Sequential(conv_bn_relu(channels, inner), conv_bn_relu(inner, inner))
        self.value = conv_bn_relu(channels, inner)
        self.out = conv_bn_relu(inner, channels)
        self.fuse = conv_bn_relu(2 * channels, channels)  # [object context, pixels] -> C

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """Object region representations: (B, C, H, W) -> (B, C, K, 1)."""
        weights = self.regions(x).flatten(2).softmax(dim=-1)  # (B, K, n): a distribution over pixels
        objects = weights @ x.flatten(2).transpose(1, 2)  # (B, K, C)
        return objects.transpose(1, 2).unsqueeze(-1)

    def object_attention(self, x: torch.Tensor, objects: torch.Tensor) -> torch.Tensor:
        """Pixel-region relation and object context: (B, C, H, W), (B, C, K, 1) -> (B, C, H, W)."""
        B, _, H, W = x.shape
        query = self.query(x).flatten(2).transpose(1, 2)  # (B, n, d)
        key = self.key(objects).flatten(2)  # (B, d, K)
        value = self.value(objects).flatten(2).transpose(1, 2)  # (B, K, d)
        relation = (query @ key * self.inner**-0.5).softmax(dim=-1)  # (B, n, K)
        context = (relation @ value).transpose(1, 2).reshape(B, self.inner, H, W)
        return self.out(context)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        context = self.object_attention(x, self.gather(x))
        return self.fuse(torch.cat([context, x], dim=1))
