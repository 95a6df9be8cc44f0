"""Differential attention (Ye et al., ICLR 2025, "Differential Transformer").

Each head computes two softmax maps from two halves of its queries and keys and takes their
difference, so that attention noise common to both cancels:

    DiffAttn(X) = (softmax(Q_1 K_1ᵀ / √e) - λ softmax(Q_2 K_2ᵀ / √e)) V

    λ = exp(λ_q1 · λ_k1) - exp(λ_q2 · λ_k2) + λ_init,    λ_init = 0.8 - 0.6 exp(-0.3 (l - 1))

Q_1, Q_2, K_1, K_2 are e wide, V is 2e wide (e = C / 2H: half the head width of a transformer
with H heads, so the parameters match one), λ_q1 ... λ_k2 learnt e-vectors shared by the heads
and l the layer's index (1 for a single block). Each head's output is normalised on its own
(the paper's GroupNorm, RMSNorm in the authors' code), scaled by (1 - λ_init), the heads are
concatenated and projected.

Cost: per head 2 n² e MACs for the two maps (Q_i K_iᵀ) and 4 n² e for their products with the
2e-wide V: 3 n² C in all with C = 2 H e, 1.5 times softmax attention at width C (2 n² C). Here the
maps are computed twice (see :func:`paired_attention`), 4 n² C. Memory O(n·C): the attention is a
fused ``scaled_dot_product_attention`` call and the n x n maps are never stored.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from hambench.modules.gated import check_heads, heads_for, to_map, to_tokens
from hambench.registry import DefaultRule, register_module

DIFF_HEAD_WIDTH = 128  # 2e: a transformer head of 64 channels counts twice (the paper's h = d_model / 2d)


def lambda_init(layer: int) -> float:
    """The paper's λ_init = 0.8 - 0.6 exp(-0.3 (l - 1)) for layer l = 1, 2, ... (0.2 at l = 1)."""
    return 0.8 - 0.6 * math.exp(-0.3 * (layer - 1))


def at_least_float32(t: torch.Tensor) -> torch.Tensor:
    """fp16 and bf16 up to float32; float32 and float64 as they are."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def paired_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(softmax(Q_1 K_1ᵀ/√e) V, softmax(Q_2 K_2ᵀ/√e) V) for q, k (B, H, 2, n, e) and v (B, H, n, 2e).

    One SDPA call over 4H heads: each map against each e-wide half of V. The fused CPU kernels
    need the value width to equal the query width (a 2e-wide V sends SDPA down the math path,
    which stores the n x n map), so each QKᵀ is computed twice, once per half of V: 2 n² e MACs
    per map instead of n² e, the price of never storing the map.
    """
    B, H, _, n, e = q.shape
    v_halves = v.unflatten(-1, (2, e)).permute(0, 1, 3, 2, 4)  # (B, H, half, n, e)
    shape = (B, H, 2, 2, n, e)  # (map, half of V)
    q = q.unsqueeze(3).expand(shape).reshape(B, 4 * H, n, e)
    k = k.unsqueeze(3).expand(shape).reshape(B, 4 * H, n, e)
    v_halves = v_halves.unsqueeze(2).expand(shape).reshape(B, 4 * H, n, e)
    y = F.scaled_dot_product_attention(q, k, v_halves).view(shape)  # scale 1/√e
    y = y.permute(0, 1, 2, 4, 3, 5).reshape(B, H, 2, n, 2 * e)  # the halves of V side by side again
    return y[:, :, 0], y[:, :, 1]


DIFF_HEADS = DefaultRule(
    "heads of about 128 channels (2 x 64): the most h <= channels // 128 with channels divisible by 2h, at least 1",
    lambda channels: heads_for(channels, DIFF_HEAD_WIDTH, split=2),
)


@register_module(
    "diff-attention",
    family="attention",
    paper="Ye et al., ICLR 2025 (Differential Transformer: differential attention)",
    complexity="O(n^2), O(n) memory",
    rules={"heads": DIFF_HEADS},
)
class DiffAttention(nn.Module):
    """Pre-norm differential attention over the pixels: y = x + W_o DiffAttn(LN(x)).

    Equations in the file's docstring. Heads and channels laid out as timm's ``DiffAttention``
    (and the authors' code): the 2H query (key) heads of width e pair up as (2h, 2h + 1) =
    (Q_1, Q_2) of differential head h; V has H heads of width 2e. λ is computed in at least
    float32 (float64 stays float64). No positional terms; no special initialisation of the
    residual. Parameters: 4 C² + 4 e (λ) + 2e (the head norm's scale) + 2C (the pre-norm) + C.

    Args:
        channels: input and output width C (even).
        heads: H differential heads, each 2e = C / H wide; None: the paper's rule of half as many
            heads as a transformer with 64-wide heads (the most H <= C // 128 with 2H dividing C;
            4 at C = 512, 1 at C = 32).
        layer: l in λ_init = 0.8 - 0.6 exp(-0.3 (l - 1)); 1, a single block (λ_init = 0.2).
        qkv_bias: biases in W_q, W_k, W_v (False: the paper's and timm's; W_o has one).
        norm: LayerNorm (eps 1e-6) before the projections (pre-norm, the paper's layout).
    """

    def __init__(
        self, channels: int, heads: int | None = None, layer: int = 1, qkv_bias: bool = False, norm: bool = True
    ) -> None:
        super().__init__()
        self.heads = heads if heads is not None else heads_for(channels, DIFF_HEAD_WIDTH, split=2)
        check_heads("diff-attention", channels, self.heads, split=2)
        if layer < 1:
            raise ValueError(f"diff-attention: layer must be >= 1 (the paper counts from 1), got {layer}")
        self.head_dim = channels // self.heads // 2  # e
        self.lambda_init = lambda_init(layer)
        self.norm = nn.LayerNorm(channels, eps=1e-6) if norm else nn.Identity()
        self.qkv = nn.Linear(channels, 3 * channels, bias=qkv_bias)
        self.lambda_q1, self.lambda_k1, self.lambda_q2, self.lambda_k2 = (
            nn.Parameter(torch.randn(self.head_dim) * 0.1)
            for _ in range(4)  # N(0, 0.1²), the authors' init
        )
        self.head_norm = nn.RMSNorm(2 * self.head_dim, eps=1e-5)  # per head, over its 2e channels
        self.proj = nn.Linear(channels, channels)

    def differential_lambda(self) -> torch.Tensor:
        """λ = exp(λ_q1·λ_k1) - exp(λ_q2·λ_k2) + λ_init, a scalar."""
        q1, k1, q2, k2 = (at_least_float32(p) for p in (self.lambda_q1, self.lambda_k1, self.lambda_q2, self.lambda_k2))
        return torch.exp((q1 * k1).sum()) - torch.exp((q2 * k2).sum()) + self.lambda_init

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        n, e = H * W, self.head_dim
        q, k, v = self.qkv(self.norm(to_tokens(x))).chunk(3, dim=-1)  # (B, n, C) each
        q = q.view(B, n, self.heads, 2, e).permute(0, 2, 3, 1, 4)  # (B, heads, 2, n, e): Q_1, Q_2
        k = k.view(B, n, self.heads, 2, e).permute(0, 2, 3, 1, 4)
        v = v.view(B, n, self.heads, 2 * e).transpose(1, 2)  # (B, heads, n, 2e)
        first, second = paired_attention(q, k, v)
        y = first - self.differential_lambda().to(first.dtype) * second
        # The head norm in at least float32, as autocast runs layer_norm (rms_norm has no autocast rule).
        y = self.head_norm(at_least_float32(y)) * (1 - self.lambda_init)  # (B, heads, n, 2e)
        return x + to_map(self.proj(y.transpose(1, 2).reshape(B, n, C)), H, W)
