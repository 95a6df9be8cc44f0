"""Convolutional attention: VAN's large-kernel attention (LKA) and SegNeXt's multi-scale
convolutional attention (MSCA).

Both replace the attention map by a stack of depth-wise convolutions and use it as a gate:

    y = x + W_2 (a ⊙ A(a)),   a = GELU(W_1 x)

with W_1, W_2 1x1 convs (VAN's ``proj_1``, ``proj_2``), A the depth-wise "attention" and ⊙ the
elementwise product: a spatial gating unit, not a softmax over pixels. The reach is that of the
convolutions (23 x 23 and 25 x 25), not global; the cost is O(n) in the number of pixels n. They are
the Light-Ham backbone's own mixer (VAN, hambench.models.van) and SegNeXt's (MSCAN, the backbone of
SegNeXt's Hamburger head), and sit in the zoo as the "large kernel, no attention" control.

Parameter names are the official ones (VAN's ``Attention`` / SegNeXt's ``MSCASpatialAttention``),
so a block's weights from either checkpoint load without renaming.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from hambench.registry import register_module


def official_init(module: nn.Module) -> None:
    """VAN's and SegNeXt's ``init_weights`` for convs: N(0, 2 / fan_out) with fan_out =
    k_h k_w C_out / groups, biases zero (He-normal on fan-out, groups counted)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def depthwise(channels: int, kernel: tuple[int, int], dilation: int = 1) -> nn.Conv2d:
    """A depth-wise conv with 'same' padding (odd kernels)."""
    padding = (dilation * (kernel[0] - 1) // 2, dilation * (kernel[1] - 1) // 2)
    return nn.Conv2d(channels, channels, kernel, padding=padding, dilation=dilation, groups=channels)


class SpatialGatingBlock(nn.Module):
    """``x + proj_2(A(GELU(proj_1(x))))``, A a gating unit ``a -> a ⊙ attention(a)`` (shared by LKA and MSCA)."""

    def __init__(self, channels: int, gating_unit: nn.Module) -> None:
        super().__init__()
        self.proj_1 = nn.Conv2d(channels, channels, 1)
        self.activation = nn.GELU()
        self.spatial_gating_unit = gating_unit
        self.proj_2 = nn.Conv2d(channels, channels, 1)
        official_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.proj_2(self.spatial_gating_unit(self.activation(self.proj_1(x))))


# ------------------------------------------------------------------------------------- LKA


def lka_kernels(kernel_size: int, dilation: int) -> tuple[int, int]:
    """VAN's decomposition of a K x K conv: a (2d - 1) x (2d - 1) depth-wise conv and a
    ⌈K/d⌉ x ⌈K/d⌉ depth-wise conv of dilation d (K = 21, d = 3: 5 x 5 then 7 x 7, reach 23 x 23
    ⊇ 21 x 21). Both must be odd for 'same' padding."""
    if dilation < 1 or kernel_size < 1:
        raise ValueError(f"lka: kernel_size and dilation must be >= 1, got {kernel_size} and {dilation}")
    local, dilated = 2 * dilation - 1, math.ceil(kernel_size / dilation)
    if dilated % 2 == 0:
        raise ValueError(
            f"lka: kernel_size={kernel_size}, dilation={dilation} give an even dilated kernel ⌈K/d⌉ = {dilated}; "
            "choose K and d with ⌈K/d⌉ odd (e.g. 21 and 3, 14 and 2)"
        )
    return local, dilated


class LargeKernelGate(nn.Module):
    """LKA's gating unit: a ⊙ conv1(conv_spatial(conv0(a))), depth-wise local, depth-wise dilated, 1x1."""

    def __init__(self, channels: int, kernel_size: int = 21, dilation: int = 3) -> None:
        super().__init__()
        local, dilated = lka_kernels(kernel_size, dilation)
        self.conv0 = depthwise(channels, (local, local))
        self.conv_spatial = depthwise(channels, (dilated, dilated), dilation)
        self.conv1 = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.conv1(self.conv_spatial(self.conv0(x)))


@register_module(
    "lka",
    family="other",
    paper="Guo et al., 2022 (VAN, Visual Attention Network: large-kernel attention)",
    complexity="O(n)",
)
class LKA(SpatialGatingBlock):
    """VAN's attention sub-block (``Attention`` in VAN, ``SpatialAttention`` in hambench's VAN):

        a = GELU(W_1 x),   y = x + W_2 (a ⊙ W_c DW_d(DW_l(a)))

    DW_l a (2d - 1)² depth-wise conv, DW_d a ⌈K/d⌉² depth-wise conv with dilation d, W_c, W_1,
    W_2 1x1 convs. K = 21, d = 3 (the paper's): 5x5, 7x7 dilation 3. Cost per pixel
    C (25 + 49) + 3 C² MACs: O(n C²), O(n) in the pixels; reach 23 x 23, not global.
    VAN's block also has a BatchNorm before and a layer scale after the sub-block: the norm is the
    head's (ContextHead's squeeze ends in BN), the layer scale (1e-2) is left out.

    Args:
        channels: input and output width C (every conv is C -> C; no width ratio).
        kernel_size: K, the large kernel LKA decomposes (21).
        dilation: d (3).
    """

    def __init__(self, channels: int, kernel_size: int = 21, dilation: int = 3) -> None:
        super().__init__(channels, LargeKernelGate(channels, kernel_size, dilation))


# ------------------------------------------------------------------------------------- MSCA


class MultiScaleGate(nn.Module):
    """MSCA's gating unit: a ⊙ conv3(d + Σ_i strip_i(d)), d = conv0(a), strip_i a 1 x k_i then a
    k_i x 1 depth-wise conv, k = 7, 11, 21."""

    STRIPS = (7, 11, 21)

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv0 = depthwise(channels, (5, 5))
        for i, k in enumerate(self.STRIPS):
            self.add_module(f"conv{i}_1", depthwise(channels, (1, k)))
            self.add_module(f"conv{i}_2", depthwise(channels, (k, 1)))
        self.conv3 = nn.Conv2d(channels, channels, 1)  # channel mixing (SegNeXt's name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        local = self.conv0(x)
        attention = local
        for i in range(len(self.STRIPS)):
            attention = attention + getattr(self, f"conv{i}_2")(getattr(self, f"conv{i}_1")(local))
        return x * self.conv3(attention)


@register_module(
    "msca",
    family="other",
    paper="Guo et al., NeurIPS 2022 (SegNeXt, multi-scale convolutional attention)",
    complexity="O(n)",
)
class MSCA(SpatialGatingBlock):
    """SegNeXt's attention sub-block (``MSCASpatialAttention``, with ``MSCAAttention`` inside):

        a = GELU(W_1 x),   d = DW_5x5(a),   y = x + W_2 (a ⊙ W_c (d + Σ_{k=7,11,21} DW_kx1(DW_1xk(d))))

    Strip convolutions (1 x k then k x 1) stand for k x k depth-wise kernels at 2k parameters.
    Cost per pixel C (25 + 2·(7 + 11 + 21)) + 3 C² MACs: O(n C²), O(n) in the pixels; reach
    25 x 25 (the 5x5, then strips up to 21), not global. MSCAN's block also has a BatchNorm
    before and a layer scale after the sub-block: the norm is the head's, the layer scale (1e-2)
    is left out.

    Args:
        channels: input and output width C (every conv is C -> C; no width ratio, no options:
            the kernel sizes are the paper's, fixed in every SegNeXt model).
    """

    def __init__(self, channels: int) -> None:
        super().__init__(channels, MultiScaleGate(channels))
