"""Expectation-maximisation attention (Li et al., ICCV 2019, "Expectation-Maximization Attention
Networks for Semantic Segmentation").

K bases μ (C x K) explain the n pixels: a few EM steps alternate the responsibilities
Z = softmax(Xᵀμ) (E-step) and the bases μ = normalise(X Z / Σ Z) (M-step); X̃ = μ Zᵀ is a
rank-K reconstruction. Cost O(nK). As mmseg's ``EMAHead`` around its ``EMAModule``:

    y = relu(x + BN(conv1x1(relu(EMA(conv1x1_frozen(x))))))

The EM steps run without gradient (as in EMANet), so gradient reaches the input through the
residual only; the input projection therefore never learns and is frozen, as in mmseg. The bases
start from a moving average over training batches (momentum update in training mode only).
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from hambench.registry import register_module


def _mean_over_workers(tensor: torch.Tensor) -> torch.Tensor:
    """Average across data-parallel workers, so that every copy keeps the same bases."""
    if not (dist.is_available() and dist.is_initialized()):
        return tensor
    tensor = tensor.clone()
    dist.all_reduce(tensor)
    return tensor / dist.get_world_size()


@register_module("ema", family="attention", paper="Li et al., ICCV 2019 (EMANet, EM attention)", complexity="O(n)")
class EMAttention(nn.Module):
    """EM attention unit with its input/output projections and residual.

    Args:
        channels: input and output width C.
        bases: number of bases K (64 in EMANet and mmseg).
        stages: EM iterations (3 in EMANet and mmseg).
        momentum: moving-average rate of the bases across training batches (0.1 in mmseg).
    """

    bases: torch.Tensor  # buffer (1, C, K), registered in __init__

    def __init__(self, channels: int, bases: int = 64, stages: int = 3, momentum: float = 0.1) -> None:
        super().__init__()
        if bases < 1 or stages < 1:
            raise ValueError(f"ema: bases and stages must be >= 1, got {bases}, {stages}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"ema: momentum must lie in [0, 1], got {momentum}")
        self.stages = stages
        self.momentum = momentum
        # Maps the ReLU'd input (0, inf) to (-inf, inf); no gradient reaches it (see module docstring).
        self.project = nn.Conv2d(channels, channels, 1)
        self.project.requires_grad_(False)
        self.out = nn.Sequential(nn.Conv2d(channels, channels, 1, bias=False), nn.BatchNorm2d(channels))
        mu = torch.randn(1, channels, bases) * math.sqrt(2.0 / bases)
        self.register_buffer("bases", F.normalize(mu, dim=1))  # (1, C, K), unit columns

    @torch.no_grad()
    def expectation_maximisation(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """EM on (B, C, n) features: bases (B, C, K), responsibilities (B, n, K)."""
        mu = self.bases.to(feats.dtype).expand(feats.shape[0], -1, -1)
        for _ in range(self.stages):
            z = torch.einsum("bcn,bck->bnk", feats, mu).softmax(dim=2)  # E-step
            mu = torch.einsum("bcn,bnk->bck", feats, F.normalize(z, p=1, dim=1))  # M-step: weighted means
            mu = F.normalize(mu, dim=1)
        return mu, z

    @torch.no_grad()
    def update_bases(self, mu: torch.Tensor) -> None:
        """Moving average of the batch's final bases (training mode only)."""
        mu = F.normalize(_mean_over_workers(mu.float().mean(dim=0, keepdim=True)), dim=1)
        self.bases.lerp_(mu.to(self.bases.dtype), self.momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        feats = self.project(x).flatten(2)  # (B, C, n)
        mu, z = self.expectation_maximisation(feats)
        recon = torch.einsum("bck,bnk->bcn", mu, z).reshape(B, C, H, W)  # rank-K reconstruction
        if self.training:
            self.update_bases(mu)
        return F.relu(x + self.out(F.relu(recon)))
