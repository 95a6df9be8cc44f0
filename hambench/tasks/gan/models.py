"""SAGAN-style generator and discriminator with a context module at one feature resolution.

As in SAGAN (Zhang et al., 2019) and HamGAN (Geng et al., 2021): BigGAN-style residual blocks,
spectral norm on every conv / linear in both networks, conditional batch norm in the generator,
a projection discriminator (Miyato & Koyama, 2018), and the context module placed after the block
that outputs ``context_res`` x ``context_res`` features, in both networks (32x32 for 128x128 images).
Widths are multiples of ``ch`` (BigGAN's tables, ch=64 there; small by default here for CPU runs).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from hambench.registry import build_module, get_spec

# Width multipliers of ch, from BigGAN's architecture tables.
# G: width of the features at 4x4, then after each upsampling block (resolution doubles).
G_WIDTHS = {32: [4, 4, 4, 4], 64: [16, 16, 8, 4, 2], 128: [16, 16, 8, 4, 2, 1]}
# D: (width, downsample) of each block; the first block reads the RGB image.
D_BLOCKS = {
    32: [(4, True), (4, True), (4, False), (4, False)],
    64: [(1, True), (2, True), (4, True), (8, True), (16, False)],
    128: [(1, True), (2, True), (4, True), (8, True), (16, True), (16, False)],
}
RESOLUTIONS = tuple(G_WIDTHS)


def g_resolutions(res: int) -> list[int]:
    """Output resolution of each generator block."""
    return [8 * 2**i for i in range(len(G_WIDTHS[res]) - 1)]


def d_resolutions(res: int) -> list[int]:
    """Output resolution of each discriminator block."""
    out, r = [], res
    for _, down in D_BLOCKS[res]:
        r = r // 2 if down else r
        out.append(r)
    return out


def context_resolutions(res: int) -> list[int]:
    """Feature resolutions that both networks have, i.e. where the context module can go."""
    return sorted(set(g_resolutions(res)) & set(d_resolutions(res)))


def default_context_res(res: int) -> int:
    """32 for 128x128 images (the paper's choice); half the image size for smaller ones."""
    return min(32, res // 2)


def sn_conv(cin: int, cout: int, k: int) -> nn.Module:
    return spectral_norm(nn.Conv2d(cin, cout, k, padding=k // 2))


def spectral_norm_all(module: nn.Module) -> nn.Module:
    """Spectral norm on every conv / linear of ``module`` (SAGAN normalises its attention's convs
    too). A layer initialised to all zeros is left as it is: its spectral norm would be 0, and
    dividing by it gives NaN (several context modules zero-init their last layer)."""
    for m in list(module.modules()):
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)) and m.weight.detach().abs().sum() > 0:
            spectral_norm(m)
    return module


def context_block(name: str, channels: int, options: dict | None) -> nn.Module:
    """The context module, spectrally normalised. A Hamburger gets HamGAN's rank r = d / 8 (the
    paper's GAN setting, d = the input channels) unless ``options`` sets ``rank``."""
    options = dict(options or {})
    spec = get_spec(name)
    if spec.family == "hamburger" and "rank" in spec.defaults and "rank" not in options:
        options["rank"] = max(1, channels // 8)
    return spectral_norm_all(build_module(name, channels, **options))


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm whose scale and shift are looked up per class: gamma_y * BN(x) + beta_y."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gamma = nn.Embedding(num_classes, channels)
        self.beta = nn.Embedding(num_classes, channels)
        nn.init.ones_(self.gamma.weight)
        nn.init.zeros_(self.beta.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.gamma(y)[:, :, None, None], self.beta(y)[:, :, None, None]  # (B, C, 1, 1)
        return gamma * self.bn(x) + beta


class GBlock(nn.Module):
    """CBN -> ReLU -> 2x upsample -> conv3x3 -> CBN -> ReLU -> conv3x3, plus an upsampled 1x1 shortcut."""

    def __init__(self, cin: int, cout: int, num_classes: int) -> None:
        super().__init__()
        self.bn1 = ConditionalBatchNorm2d(cin, num_classes)
        self.conv1 = sn_conv(cin, cout, 3)
        self.bn2 = ConditionalBatchNorm2d(cout, num_classes)
        self.conv2 = sn_conv(cout, cout, 3)
        self.shortcut = sn_conv(cin, cout, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = F.interpolate(F.relu(self.bn1(x, y)), scale_factor=2, mode="nearest")
        h = self.conv2(F.relu(self.bn2(self.conv1(h), y)))
        return h + self.shortcut(F.interpolate(x, scale_factor=2, mode="nearest"))


class DBlock(nn.Module):
    """(ReLU) -> conv3x3 -> ReLU -> conv3x3 -> (avg-pool), plus a 1x1 shortcut. The first block reads
    the image: no ReLU before its first conv, and its shortcut pools before the 1x1 conv."""

    def __init__(self, cin: int, cout: int, downsample: bool, first: bool = False) -> None:
        super().__init__()
        self.conv1 = sn_conv(cin, cout, 3)
        self.conv2 = sn_conv(cout, cout, 3)
        self.shortcut = sn_conv(cin, cout, 1) if (cin != cout or downsample) else None
        self.downsample, self.first = downsample, first

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, 2) if self.downsample else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(x if self.first else F.relu(x))
        h = self._pool(self.conv2(F.relu(h)))
        if self.shortcut is None:
            s = x
        elif self.first:
            s = self.shortcut(self._pool(x))
        else:
            s = self._pool(self.shortcut(x))
        return h + s


class Generator(nn.Module):
    """z (B, z_dim), y (B,) -> image (B, 3, res, res) in [-1, 1]."""

    def __init__(
        self,
        res: int,
        num_classes: int,
        *,
        ch: int = 16,
        z_dim: int = 128,
        context: str = "none",
        context_res: int | None = None,
        options: dict | None = None,
    ) -> None:
        super().__init__()
        check_resolutions(res, context_res)
        widths = [ch * m for m in G_WIDTHS[res]]
        self.context_res = context_res or default_context_res(res)
        self.z_dim, self.num_classes = z_dim, num_classes
        self.linear = spectral_norm(nn.Linear(z_dim, widths[0] * 4 * 4))
        self.blocks = nn.ModuleList(GBlock(a, b, num_classes) for a, b in zip(widths[:-1], widths[1:]))
        self.context_at = g_resolutions(res).index(self.context_res)  # index of the block it follows
        self.context = context_block(context, widths[self.context_at + 1], options)
        self.bn = nn.BatchNorm2d(widths[-1])
        self.to_rgb = sn_conv(widths[-1], 3, 3)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.linear(z).view(z.shape[0], -1, 4, 4)  # (B, C0, 4, 4)
        for i, block in enumerate(self.blocks):
            h = block(h, y)  # resolution doubles
            if i == self.context_at:
                h = self.context(h)  # (B, C, context_res, context_res)
        return torch.tanh(self.to_rgb(F.relu(self.bn(h))))


class Discriminator(nn.Module):
    """image (B, 3, res, res), y (B,) -> logit (B,): linear(phi(x)) + <embed(y), phi(x)> (projection)."""

    def __init__(
        self,
        res: int,
        num_classes: int,
        *,
        ch: int = 16,
        context: str = "none",
        context_res: int | None = None,
        options: dict | None = None,
    ) -> None:
        super().__init__()
        check_resolutions(res, context_res)
        self.context_res = context_res or default_context_res(res)
        widths = [3] + [ch * m for m, _ in D_BLOCKS[res]]
        self.blocks = nn.ModuleList(
            DBlock(a, b, down, first=(i == 0))
            for i, (a, b, (_, down)) in enumerate(zip(widths[:-1], widths[1:], D_BLOCKS[res]))
        )
        self.context_at = d_resolutions(res).index(self.context_res)  # the first block that reaches it
        self.context = context_block(context, widths[self.context_at + 1], options)
        self.linear = spectral_norm(nn.Linear(widths[-1], 1))
        self.embed = spectral_norm(nn.Embedding(num_classes, widths[-1]))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = x
        for i, block in enumerate(self.blocks):
            h = block(h)
            if i == self.context_at:
                h = self.context(h)
        h = F.relu(h).sum(dim=(2, 3))  # (B, C): global sum pooling
        return self.linear(h).squeeze(1) + (self.embed(y) * h).sum(dim=1)


def check_resolutions(res: int, context_res: int | None) -> None:
    if res not in G_WIDTHS:
        raise ValueError(f"image resolution {res} not supported; choose one of {', '.join(map(str, RESOLUTIONS))}")
    valid = context_resolutions(res)
    if context_res is not None and context_res not in valid:
        raise ValueError(
            f"context resolution {context_res} not available for {res}x{res} images; "
            f"both networks have features at {', '.join(map(str, valid))}"
        )
