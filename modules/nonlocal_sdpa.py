"""The non-local block with its attention fused: ``torch.nn.functional.scaled_dot_product_attention``.

The same block as ``nonlocal`` (Wang et al., CVPR 2018), the same parameters under the same names:

    y = x + W_z softmax(θ(x)ᵀ φ(x) / √d) g(x)

but the softmax(QKᵀ)V product is one SDPA call. A fused kernel (FlashAttention-style: the CPU
kernel ``_scaled_dot_product_flash_attention_for_cpu``, or flash / memory-efficient / cuDNN on
CUDA) walks over blocks of keys with an online softmax and never stores the n x n map, so memory is
O(n·d); the arithmetic is unchanged, 2·n²·d MACs. Which kernel ran is recorded in every profile
row (``sdpa_backend``); the math fallback materialises the map exactly as ``nonlocal`` does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hambench.modules.nonlocal_attn import NonLocal2d
from hambench.registry import register_module


def tokens(feature: torch.Tensor) -> torch.Tensor:
    """(B, d, H, W) -> (B, 1, n, d), one head, contiguous.

    The copy matters: the fused kernels require unit stride along d, and a transposed view of the
    (B, d, n) conv output has stride n there, so SDPA would silently take the math path.
    """
    return feature.flatten(2).transpose(1, 2).contiguous().unsqueeze(1)


@register_module(
    "nonlocal-sdpa",
    family="attention",
    paper="Wang et al., CVPR 2018 (non-local), attention through fused SDPA",
    complexity="O(n^2), O(n) memory",
)
class NonLocalSDPA(NonLocal2d):
    """Embedded-Gaussian non-local block, attention by ``F.scaled_dot_product_attention``.

    Options as ``nonlocal`` (``reduction=2``, ``use_scale=True``, ``norm=True``); a state dict of
    one loads into the other.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, _, H, W = x.shape
        query, key, value = (tokens(embed(x)) for embed in (self.theta, self.phi, self.g))
        scale = self.inner**-0.5 if self.use_scale else 1.0  # SDPA's default would always be 1/√d
        y = F.scaled_dot_product_attention(query, key, value, scale=scale)  # (B, 1, n, d)
        y = y.squeeze(1).transpose(1, 2).reshape(B, self.inner, H, W)
        return x + self.out(y)
