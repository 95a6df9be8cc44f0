"""VAN: the Visual Attention Network backbone (Guo et al., 2022, "Visual Attention Network").

Four stages of [overlapping patch embedding -> blocks -> LayerNorm]; each block is
``x + ls1 * Attention(BN(x))`` then ``x + ls2 * MLP(BN(x))``, where Attention gates its input by
large-kernel attention (LKA): a 5x5 depth-wise conv, a 7x7 depth-wise conv with dilation 3 (a
21x21 receptive field) and a 1x1 conv. Light-Ham (Enjoy-Hamburger ``seg_light_ham``) puts its
head on stages 2-4 of this backbone.

Importing this file registers ``VAN`` in mmseg's ``MODELS``::

    backbone = dict(type="VAN", arch="tiny", drop_path_rate=0.1)

Parameter names follow the official checkpoints (``patch_embed1.proj``, ``block1.0.attn.
spatial_gating_unit.conv0``, ``norm1``, ...), so ``init_cfg=dict(type="Pretrained",
checkpoint=...)`` loads the published ImageNet weights without renaming.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from timm.layers import DropPath
from torch import nn

# Light-Ham's ham width on each VAN (Enjoy-Hamburger seg_light_ham): 480 for VAN-Tiny (its config
# overrides the base 512), 512 for Small and Base. The presets that reproduce the published params
# and MACs and the trainable ``van-*`` backbones both read it here.
LIGHT_HAM = {"tiny": 480, "small": 512, "base": 512}


class LargeKernelAttention(nn.Module):
    """LKA: attention map = 1x1(dw-dilated-7x7(dw-5x5(x))); output = x * map."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(dim, dim, 5, padding=2, groups=dim)  # local depth-wise
        self.conv_spatial = nn.Conv2d(dim, dim, 7, padding=9, groups=dim, dilation=3)  # long-range
        self.conv1 = nn.Conv2d(dim, dim, 1)  # channel mixing

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        attn = self.conv1(self.conv_spatial(self.conv0(x)))
        return x * attn


class SpatialAttention(nn.Module):
    """1x1 -> GELU -> LKA -> 1x1, with a residual connection."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj_1 = nn.Conv2d(dim, dim, 1)
        self.activation = nn.GELU()
        self.spatial_gating_unit = LargeKernelAttention(dim)
        self.proj_2 = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.proj_2(self.spatial_gating_unit(self.activation(self.proj_1(x))))


class DepthwiseConv(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dwconv(x)


class ConvMlp(nn.Module):
    """1x1 expand -> 3x3 depth-wise -> GELU -> 1x1 project (the MLP of PVTv2 / VAN)."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.dwconv = DepthwiseConv(hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, dim, 1)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.act(self.dwconv(self.fc1(x))))
        return self.drop(self.fc2(x))


class VANBlock(nn.Module):
    """Pre-norm residual block with layer scale: attention then MLP, both on (B, C, H, W)."""

    def __init__(self, dim: int, mlp_ratio: float, drop_path: float = 0.0, layer_scale: float = 1e-2) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(dim)
        self.attn = SpatialAttention(dim)
        self.norm2 = nn.BatchNorm2d(dim)
        self.mlp = ConvMlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.layer_scale_1 = nn.Parameter(layer_scale * torch.ones(dim))
        self.layer_scale_2 = nn.Parameter(layer_scale * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.layer_scale_1[:, None, None] * self.attn(self.norm1(x)))
        return x + self.drop_path(self.layer_scale_2[:, None, None] * self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    """Overlapping patch embedding: a strided conv (kernel 7 stride 4, or 3 stride 2) + BN."""

    def __init__(self, in_channels: int, dim: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, kernel, stride=stride, padding=kernel // 2)
        self.norm = nn.BatchNorm2d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x))


@MODELS.register_module()
class VAN(BaseModule):
    """VAN backbone returning the (B, C_i, H/s_i, W/s_i) maps of the stages in ``out_indices``
    (strides 4, 8, 16, 32).

    Args:
        arch: ``tiny`` (VAN-B0), ``small`` (B1), ``base`` (B2) or ``large`` (B3).
        in_channels: image channels.
        drop_path_rate: stochastic depth, rising linearly from 0 over all blocks.
        out_indices: which stages to return.
        init_cfg: mmengine init config, e.g. ``dict(type="Pretrained", checkpoint="van_b0.pth")``.
    """

    arch_settings: dict[str, dict[str, list[Any]]] = {
        "tiny": {"embed_dims": [32, 64, 160, 256], "depths": [3, 3, 5, 2], "mlp_ratios": [8, 8, 4, 4]},
        "small": {"embed_dims": [64, 128, 320, 512], "depths": [2, 2, 4, 2], "mlp_ratios": [8, 8, 4, 4]},
        "base": {"embed_dims": [64, 128, 320, 512], "depths": [3, 3, 12, 3], "mlp_ratios": [8, 8, 4, 4]},
        "large": {"embed_dims": [64, 128, 320, 512], "depths": [3, 5, 27, 3], "mlp_ratios": [8, 8, 4, 4]},
    }

    def __init__(
        self,
        arch: str = "tiny",
        in_channels: int = 3,
        drop_path_rate: float = 0.1,
        out_indices: tuple[int, ...] = (0, 1, 2, 3),
        init_cfg: dict | list[dict] | None = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        if arch not in self.arch_settings:
            raise ValueError(f"VAN: unknown arch {arch!r}; choose one of {', '.join(self.arch_settings)}")
        if not out_indices or any(i not in range(4) for i in out_indices):
            raise ValueError(f"VAN: out_indices must be stage numbers in 0..3, got {out_indices!r}")
        settings = self.arch_settings[arch]
        dims, depths, ratios = settings["embed_dims"], settings["depths"], settings["mlp_ratios"]
        self.arch = arch
        self.out_indices = tuple(out_indices)
        self.embed_dims = list(dims)
        drop_paths = torch.linspace(0, drop_path_rate, sum(depths)).tolist()  # stochastic depth decay

        first_block = 0
        for i, (dim, depth, ratio) in enumerate(zip(dims, depths, ratios)):
            kernel, stride = (7, 4) if i == 0 else (3, 2)
            stage_in = in_channels if i == 0 else dims[i - 1]
            blocks = [VANBlock(dim, ratio, drop_paths[first_block + j]) for j in range(depth)]
            first_block += depth
            setattr(self, f"patch_embed{i + 1}", PatchEmbed(stage_in, dim, kernel, stride))
            setattr(self, f"block{i + 1}", nn.ModuleList(blocks))
            setattr(self, f"norm{i + 1}", nn.LayerNorm(dim, eps=1e-6))

    def init_weights(self) -> None:
        if self.init_cfg is not None:  # e.g. Pretrained: mmengine loads the checkpoint
            super().init_weights()
            return
        for m in self.modules():  # the official scheme: He-normal convs on fan-out, unit norms
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.LayerNorm, nn.BatchNorm2d)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for i in range(4):
            x = getattr(self, f"patch_embed{i + 1}")(x)  # (B, C_i, H_i, W_i)
            for block in getattr(self, f"block{i + 1}"):
                x = block(x)
            # LayerNorm over channels: move them last and back.
            x = getattr(self, f"norm{i + 1}")(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2).contiguous()
            if i in self.out_indices:
                outs.append(x)
        return outs
