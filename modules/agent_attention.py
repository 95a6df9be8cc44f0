"""Agent attention (Han et al., ECCV 2024, "Agent Attention: On the Integration of Softmax and
Linear Attention").

A small set of A agent tokens stands between the queries and the keys: the agents first gather
from all keys and values by softmax attention (agent aggregation), then every query reads from the
agents by softmax attention (agent broadcast). Per head of width d, with Q, K, V (n x d):

    Â      = pool(Q)                                   A agents: Q average-pooled to √A x √A
    V_A    = softmax(Â Kᵀ / √d + B₁) V                 agent aggregation, (A x n)(n x d)
    O      = softmax(Q Âᵀ / √d + B₂) V_A + DWC(V)      agent broadcast, (n x A)(A x d)

B₁ (A x n) and B₂ (n x A) are the agent biases, each the sum of a block bias (learnt on a 7 x 7
grid) and a row plus a column bias (learnt on a ``bias_size``-point grid), all resized bilinearly
to the input's H x W, as the authors' segmentation backbone (``downstream/segmentation/.../
agent_pvt.py``, ``sr_ratio=1``) resizes them. DWC is a depthwise 3x3 convolution of V that
restores feature diversity. The block is the Agent-PVT block's attention half: pre-norm, the
attention with its output projection, the residual: y = x + W_o O(LN(x)).

O(n · A · d): two n x A maps, never n x n.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from timm.layers import LayerNorm2d, trunc_normal_
from torch import nn

from hambench.registry import DefaultRule, register_module

LN_EPS = 1e-6  # Agent-PVT's norm_layer: partial(nn.LayerNorm, eps=1e-6)
HEAD_DIM = 64  # Agent-PVT: 64/1, 128/2, 320/5, 512/8 channels per head
BLOCK_BIAS = 7  # the block biases' grid (an_bias, na_bias: heads x A x 7 x 7)


def resize(bias: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(heads, A, h, w) -> (heads, A, H · W): bilinear, ``align_corners=False``, as the authors'."""
    return F.interpolate(bias, size=(height, width), mode="bilinear", align_corners=False).flatten(2)


HEADS = DefaultRule(
    f"channels // {HEAD_DIM} (Agent-PVT's head width {HEAD_DIM}), at least 1",
    lambda channels: max(1, channels // HEAD_DIM),
)


@register_module(
    "agent-attention",
    family="attention",
    paper="Han et al., ECCV 2024 (Agent attention: agent aggregation, agent broadcast, agent bias, DWC)",
    complexity="O(n)",
    rules={"heads": HEADS},
)
class AgentAttention(nn.Module):
    """Agent attention in a pre-norm residual block: ``x + W_o AgentAttn(LN(x))``.

    Args:
        channels: input and output width C.
        heads: attention heads; None: C // 64 (Agent-PVT's head width), at least 1.
        agents: the number of agent tokens A, a square (49 = 7 x 7: Agent-PVT's stages 3-4 and
            the 7 x 7 agent grid of the authors' segmentation backbone).
        qkv_bias: bias of the q and kv projections (True, as Agent-PVT).
        kernel_size: of the depthwise convolution on V (3).
        bias_size: the grid the row and column agent biases are learnt on (14: Agent-PVT's first
            49-agent stage, 224 / 16), resized to the input.
    """

    def __init__(
        self,
        channels: int,
        heads: int | None = None,
        agents: int = 49,
        qkv_bias: bool = True,
        kernel_size: int = 3,
        bias_size: int = 14,
    ) -> None:
        super().__init__()
        heads = heads if heads is not None else max(1, channels // HEAD_DIM)
        if heads < 1 or channels % heads:
            raise ValueError(f"agent-attention: channels {channels} is not divisible by heads={heads}")
        pool = math.isqrt(agents)
        if agents < 1 or pool * pool != agents:
            raise ValueError(f"agent-attention: agents must be a square number (pooled to √A x √A), got {agents}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"agent-attention: kernel_size must be odd, got {kernel_size}")
        if bias_size < 1:
            raise ValueError(f"agent-attention: bias_size must be >= 1, got {bias_size}")
        self.heads, self.agents, self.pool = heads, agents, pool
        self.scale = (channels // heads) ** -0.5
        self.norm = LayerNorm2d(channels, eps=LN_EPS)
        self.q = nn.Conv2d(channels, channels, 1, bias=qkv_bias)
        self.kv = nn.Conv2d(channels, 2 * channels, 1, bias=qkv_bias)
        self.dwc = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels)
        self.proj = nn.Conv2d(channels, channels, 1)
        for projection in (self.q, self.kv, self.proj):  # Agent-PVT's _init_weights (its nn.Linear layers)
            trunc_normal_(projection.weight, std=0.02)
            if projection.bias is not None:
                nn.init.zeros_(projection.bias)
        # B₁ (agents -> pixels) and B₂ (pixels -> agents): block + row + column biases.
        self.an_bias = nn.Parameter(torch.zeros(heads, agents, BLOCK_BIAS, BLOCK_BIAS))
        self.na_bias = nn.Parameter(torch.zeros(heads, agents, BLOCK_BIAS, BLOCK_BIAS))
        self.ah_bias = nn.Parameter(torch.zeros(heads, agents, bias_size, 1))
        self.aw_bias = nn.Parameter(torch.zeros(heads, agents, 1, bias_size))
        self.ha_bias = nn.Parameter(torch.zeros(heads, agents, bias_size, 1))
        self.wa_bias = nn.Parameter(torch.zeros(heads, agents, 1, bias_size))
        for bias in (self.an_bias, self.na_bias, self.ah_bias, self.aw_bias, self.ha_bias, self.wa_bias):
            trunc_normal_(bias, std=0.02)

    def agent_biases(self, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """B₁ (heads, A, n) and B₂ (heads, n, A) at H x W."""
        to_pixels = resize(self.an_bias, height, width) + resize(self.ah_bias + self.aw_bias, height, width)
        to_agents = resize(self.na_bias, height, width) + resize(self.ha_bias + self.wa_bias, height, width)
        return to_pixels, to_agents.transpose(1, 2)

    def split(self, t: torch.Tensor) -> torch.Tensor:
        """(B, C, ...) -> (B, heads, tokens, d)."""
        return t.flatten(2).unflatten(1, (self.heads, -1)).transpose(2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        h = self.norm(x)
        q = self.q(h)
        k, v = self.kv(h).chunk(2, dim=1)
        agents = self.split(F.adaptive_avg_pool2d(q, self.pool))  # (B, heads, A, d), pooled queries
        q, k, v_tokens = self.split(q), self.split(k), self.split(v)  # (B, heads, n, d)
        to_pixels, to_agents = self.agent_biases(H, W)
        aggregated = torch.softmax((agents * self.scale) @ k.transpose(-2, -1) + to_pixels, dim=-1) @ v_tokens
        broadcast = torch.softmax((q * self.scale) @ agents.transpose(-2, -1) + to_agents, dim=-1) @ aggregated
        out = broadcast.transpose(2, 3).reshape(B, C, H, W) + self.dwc(v)
        return x + self.proj(out)
