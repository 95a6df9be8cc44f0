"""VMamba's 2D selective scan, SS2D (Liu et al., NeurIPS 2024, "VMamba: Visual State Space Model").

A selective state-space model (Mamba's S6: Gu and Dao, 2023) made two-dimensional by scanning the
map along four routes and adding the four results. In the VSS block of VMamba (v0, the arXiv
release; its block is exactly ``x + SS2D(LN(x))``, MLP ratio 0):

    x, z  = in_proj(LN(x))                       C -> 2 D (D = ssm_ratio · C), no bias
    x     = SiLU(DWConv_3x3(x))                  depthwise, with bias
    u_k   = cross_scan(x)_k,  k = 1..4           rows; columns; rows reversed; columns reversed (L = H W)
    Δ_k, B_k, C_k = x_proj_k(u_k)                (R + 2N) per pixel, R = ⌈C / 16⌉ (dt_rank)
    Δ_k   = softplus(dt_proj_k(Δ_k) + bias_k)    per channel, D wide
    per channel d and route k, over l = 1..L, state h ∈ R^N:
        h_l = exp(Δ_l A) ⊙ h_{l-1} + Δ_l B_l u_l,     A = -exp(A_log) (N values per channel)
        y_l = C_l · h_l + D_skip u_l
    y     = cross_merge(y_1..y_4)                each route's output put back at its pixel, summed
    out   = x + out_proj(LN_out(y) ⊙ SiLU(z))   D -> C, no bias

The scan is plain PyTorch (no CUDA extension), chunked: L is cut into chunks of T steps
(T = ⌈√L⌉ by default). (1) From a zero state, T sequential steps run for every chunk at once and
give each chunk's end state; (2) the state entering each chunk is carried across the chunks
(L / T small steps, each chunk's total decay exp(A Σ Δ) ≤ 1); (3) every chunk is run again from
its entering state, all chunks at once, reading y_l. So L sequential steps become 2T + L / T
Python steps on tensors L / T times larger. Every decay is a product of factors ≤ 1 (no exp of a
positive number): as stable as the sequential recurrence, equal to it up to rounding. Channels
are processed in groups so that no intermediate exceeds ``SCAN_BLOCK_ELEMENTS`` (B·4·g·L·N ≤
2^22 on CPU; 2^26 on a GPU and under jit tracing); with gradients each group runs under
activation checkpointing, so training memory stays bounded too (the scan's forward is recomputed
once in backward). The scan runs in float32 at least, as VMamba forces it.

Relation to VMamba's code (``classification/models/vmamba.py``, ``SS2Dv0``): the same parameters
(``x_proj_weight``, ``dt_projs_*``, ``A_logs``, ``Ds`` per route; here ``A_log`` and ``D`` are
(4, D, N) and (4, D) where VMamba flattens them to (4D, N) and (4D)), the projections as 1x1
convolutions (VMamba's ``Linear2d`` for its channel-first models), the same initialisation
(``mamba_init``; VSSM's truncated N(0, 0.02²) for in_proj and out_proj). VMamba's later
configurations (v2: d_state 1, no gate, an FFN after the mixer) are ``d_state=1, gate=False``
here, except that the depthwise convolution keeps its bias.

Cost: O(n) in the number of pixels n = L: 4 routes × D channels × L steps × N states.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from timm.layers import LayerNorm2d, trunc_normal_
from torch import nn
from torch.utils.checkpoint import checkpoint

from hambench.registry import DefaultRule, register_module

ROUTES = 4  # the cross-scan's directions
# The largest (B, 4, g, L, N) intermediate of the scan: 16 MiB in float32 on CPU (cache-friendly,
# and below the n x n = 2^24 elements tests/test_allocation.py looks for at n = 64²); 256 MiB on
# other devices (each Python step is a kernel launch: fewer, larger ones) and under torch.jit
# tracing, which fvcore and torchprofile count by: the tracer keeps every op of the unrolled loops,
# and at 1x512x128x128 blocks of 2^22 made fvcore hold over 13 GiB for over 5 minutes (2^26:
# 4.7 GiB, 62 s, two threads).
SCAN_BLOCK_ELEMENTS = {"cpu": 2**22, "tracing": 2**26, "default": 2**26}
LN_EPS = 1e-5  # nn.LayerNorm's default, which VMamba's VSSM and SS2D use


# ------------------------------------------------------------------------------ the selective scan


def selective_scan(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor,
    chunk: int | None = None,
    block_elements: int | None = None,
) -> torch.Tensor:
    """S6 over L steps for every batch, route and channel, chunked.

        h_l = exp(Δ_l A) ⊙ h_{l-1} + Δ_l B_l u_l,   h_0 = 0,   y_l = C_l · h_l + D u_l

    Args:
        u, delta: (batch, K, D, L), the input and the (positive) step sizes Δ.
        A: (K, D, N), negative. B, C: (batch, K, N, L), shared by the D channels of a route.
        D: (K, D), the skip.
        chunk: steps per chunk T; None: ⌈√L⌉.
        block_elements: the largest (batch, K, g, L, N) block processed at once; None: the
            device's ``SCAN_BLOCK_ELEMENTS`` (or the tracing one).

    Returns y: (batch, K, D, L), in the dtype of the inputs.
    """
    batch, routes, channels, length = (int(size) for size in u.shape)  # ints even under jit tracing
    states = int(A.shape[-1])
    steps = min(chunk or math.isqrt(length - 1) + 1, length)  # ⌈√L⌉
    if steps < 1:
        raise ValueError(f"selective_scan: chunk must be >= 1, got {chunk}")
    chunks = -(-length // steps)
    pad = chunks * steps - length
    if pad:  # Δ = 0 (decay 1, no input) after the end: the causal scan's first L outputs are unchanged
        u, delta, B, C = (F.pad(t, (0, pad)) for t in (u, delta, B, C))
    # Time-in-chunk before chunk: the tensors of one step t (every chunk at once) are contiguous.
    # B, C: (batch, K, N, L) -> (batch, K, 1, T, chunks, N), broadcast over the channels.
    B, C = (t.unflatten(-1, (chunks, steps)).permute(0, 1, 4, 3, 2).unsqueeze(2).contiguous() for t in (B, C))
    if block_elements is None:
        where = "tracing" if torch.jit.is_tracing() else u.device.type
        block_elements = SCAN_BLOCK_ELEMENTS.get(where, SCAN_BLOCK_ELEMENTS["default"])
    group = max(1, block_elements // (batch * routes * chunks * steps * states))
    outputs = []
    for start in range(0, channels, group):
        part = slice(start, start + group)
        args = (u[:, :, part], delta[:, :, part], A[:, part], B, C)
        if torch.is_grad_enabled() and any(t.requires_grad for t in args):
            # Recomputed in backward: training keeps one block of (.., L, N) intermediates, not all.
            outputs.append(checkpoint(_scan_group, *args, use_reentrant=False))
        else:
            outputs.append(_scan_group(*args))
    y = torch.cat(outputs, dim=2)[..., :length]
    return y + D[..., None] * u[..., :length]


def _scan_group(
    u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor
) -> torch.Tensor:
    """The scan without its skip term for a group of g channels: u, delta (batch, K, g, chunks·T),
    A (K, g, N), B and C (batch, K, 1, T, chunks, N). Returns (batch, K, g, chunks·T)."""
    steps, chunks = int(B.shape[3]), int(B.shape[4])
    # (batch, K, g, chunks·T) -> (batch, K, g, T, chunks): step t of every chunk side by side
    u, delta = (t.unflatten(-1, (chunks, steps)).transpose(-1, -2).contiguous() for t in (u, delta))
    A = A[None, :, :, None, None, :]  # (1, K, g, 1, 1, N)
    # Ā_l = exp(Δ_l A) <= 1: (batch, K, g, T, chunks, N). In place: the product is not needed again.
    decay = (delta.unsqueeze(-1) * A).exp_()
    drive = (delta * u).unsqueeze(-1) * B  # B̄_l u_l = Δ_l B_l u_l
    # 1. Each chunk's end state from a zero start: T steps, every chunk at once.
    h = drive[..., 0, :, :]
    for t in range(1, steps):
        h = torch.addcmul(drive[..., t, :, :], decay[..., t, :, :], h)
    # 2. The state entering each chunk: the previous chunk's end state plus the decayed state
    #    that entered it (chunks small steps on (batch, K, g, N)).
    chunk_decay = (delta.sum(dim=-2).unsqueeze(-1) * A.squeeze(-3)).exp()  # Π_t Ā_t = exp(A Σ_t Δ_t)
    entering = [torch.zeros_like(h[..., 0, :])]
    for c in range(chunks - 1):
        entering.append(torch.addcmul(h[..., c, :], chunk_decay[..., c, :], entering[-1]))
    # 3. Each chunk again from its entering state, every chunk at once, reading y_l = C_l · h_l.
    h = torch.stack(entering, dim=-2)  # (batch, K, g, chunks, N)
    outputs = []
    for t in range(steps):
        h = torch.addcmul(drive[..., t, :, :], decay[..., t, :, :], h)
        outputs.append(torch.linalg.vecdot(h, C[..., t, :, :]))
    return torch.stack(outputs, dim=-1).flatten(-2)  # (batch, K, g, chunks, T) -> chunk-major time


# ------------------------------------------------------------------------------ cross-scan and merge


def cross_scan(x: torch.Tensor) -> torch.Tensor:
    """(B, D, H, W) -> (B, 4, D, L): row-major, column-major, and both reversed."""
    rows = x.flatten(2)
    columns = x.transpose(2, 3).flatten(2)
    return torch.stack([rows, columns, rows.flip(-1), columns.flip(-1)], dim=1)


def cross_merge(y: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, 4, D, L) -> (B, D, H, W): each route's outputs back at their pixels, summed."""
    rows = y[:, 0] + y[:, 2].flip(-1)  # (B, D, L) in row-major order
    columns = y[:, 1] + y[:, 3].flip(-1)  # (B, D, L) in column-major order
    columns = columns.unflatten(-1, (width, height)).transpose(2, 3)
    return rows.unflatten(-1, (height, width)) + columns


# ------------------------------------------------------------------------------ the module


def inverse_softplus(x: torch.Tensor) -> torch.Tensor:
    """y with softplus(y) = x (x > 0)."""
    return x + torch.log(-torch.expm1(-x))


DT_RANK = DefaultRule("⌈channels / 16⌉ (VMamba's dt_rank='auto')", lambda channels: math.ceil(channels / 16))


@register_module(
    "ss2d",
    family="other",
    paper="Liu et al., NeurIPS 2024 (VMamba, SS2D: four-direction selective scan)",
    complexity="O(n)",
    rules={"dt_rank": DT_RANK},
)
class SS2D(nn.Module):
    """VMamba's VSS block (v0): ``x + SS2D(LN(x))``, the selective scan in chunked plain PyTorch.

    Args:
        channels: input and output width C.
        d_state: N, the state size per channel (16: VMamba v0 and Mamba; the v2 configs use 1).
        ssm_ratio: the inner width D = ssm_ratio · C (2.0).
        dt_rank: R, the rank of Δ's projection; None: ⌈C / 16⌉.
        d_conv: kernel of the depthwise convolution (3; < 2: none).
        gate: multiply by SiLU(z) before the output projection (v0; VMamba v2's ``_noz`` drops it).
        chunk: steps per scan chunk; None: ⌈√L⌉. Changes speed only, not the result.
    """

    def __init__(
        self,
        channels: int,
        d_state: int = 16,
        ssm_ratio: float = 2.0,
        dt_rank: int | None = None,
        d_conv: int = 3,
        gate: bool = True,
        chunk: int | None = None,
    ) -> None:
        super().__init__()
        inner = int(ssm_ratio * channels)
        rank = dt_rank if dt_rank is not None else math.ceil(channels / 16)
        for name, value in (("d_state", d_state), ("inner width ssm_ratio * channels", inner), ("dt_rank", rank)):
            if value < 1:
                raise ValueError(f"ss2d: {name} must be >= 1, got {value}")
        if d_conv > 1 and d_conv % 2 == 0:
            raise ValueError(f"ss2d: d_conv must be odd (a centred 'same' padding) or < 2 (no conv), got {d_conv}")
        if chunk is not None and chunk < 1:
            raise ValueError(f"ss2d: chunk must be >= 1 or None, got {chunk}")
        self.inner, self.d_state, self.dt_rank, self.gate, self.chunk = inner, d_state, rank, gate, chunk
        self.norm = LayerNorm2d(channels, eps=LN_EPS)
        self.in_proj = nn.Conv2d(channels, inner * (2 if gate else 1), 1, bias=False)
        self.conv = (
            nn.Conv2d(inner, inner, d_conv, padding=(d_conv - 1) // 2, groups=inner) if d_conv > 1 else nn.Identity()
        )
        # Per route: x_proj (R + 2N rows), dt_proj (D x R) and its bias, A_log (D x N), the skip D.
        self.x_proj_weight = nn.Parameter(torch.empty(ROUTES, rank + 2 * d_state, inner))
        self.dt_proj_weight = nn.Parameter(torch.empty(ROUTES, inner, rank))
        self.dt_proj_bias = nn.Parameter(torch.empty(ROUTES, inner))
        self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(ROUTES, inner, 1))
        self.D = nn.Parameter(torch.ones(ROUTES, inner))
        self.out_norm = LayerNorm2d(inner, eps=LN_EPS)
        self.out_proj = nn.Conv2d(inner, channels, 1, bias=False)
        for projection in (self.in_proj, self.out_proj):  # VSSM._init_weights: its nn.Linear layers
            trunc_normal_(projection.weight, std=0.02)
        self.reset_scan_parameters()

    @torch.no_grad()
    def reset_scan_parameters(self, dt_min: float = 1e-3, dt_max: float = 0.1, dt_floor: float = 1e-4) -> None:
        """Mamba's initialisation (VMamba's ``mamba_init``): x_proj as nn.Linear's default;
        dt_proj ~ U(±R^-1/2); its bias the inverse softplus of Δ log-uniform in [dt_min, dt_max];
        A = -(1, 2, ..., N) per channel (S4D-real); D = 1."""
        bound = self.inner**-0.5
        nn.init.uniform_(self.x_proj_weight, -bound, bound)
        nn.init.uniform_(self.dt_proj_weight, -(self.dt_rank**-0.5), self.dt_rank**-0.5)
        log_dt = torch.rand(self.dt_proj_bias.shape) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        self.dt_proj_bias.copy_(inverse_softplus(log_dt.exp().clamp(min=dt_floor)))

    def scan(self, x: torch.Tensor) -> torch.Tensor:
        """The SSM part: (B, D, H, W) after the convolution -> (B, D, H, W) merged, before out_norm."""
        _, _, height, width = x.shape
        u = cross_scan(x)  # (B, 4, D, L)
        projected = torch.einsum("bkdl,kcd->bkcl", u, self.x_proj_weight)  # (B, 4, R + 2N, L)
        dt, B, C = projected.split([self.dt_rank, self.d_state, self.d_state], dim=2)
        dt = torch.einsum("bkrl,kdr->bkdl", dt, self.dt_proj_weight)  # (B, 4, D, L)
        # The scan in float32 at least, as VMamba forces it: exp and long products in bf16 drift.
        with torch.autocast(x.device.type, enabled=False):
            u, dt, B, C = (t.float() if t.dtype in (torch.float16, torch.bfloat16) else t for t in (u, dt, B, C))
            delta = F.softplus(dt + self.dt_proj_bias.to(dt.dtype)[None, :, :, None])
            A = -torch.exp(self.A_log.to(u.dtype))
            y = selective_scan(u, delta, A, B, C, self.D.to(u.dtype), chunk=self.chunk)
        return cross_merge(y, height, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        projected = self.in_proj(self.norm(x))
        if self.gate:
            h, z = projected.chunk(2, dim=1)
        else:
            h, z = projected, None
        h = F.silu(self.conv(h))
        y = self.out_norm(self.scan(h))
        if z is not None:
            y = y * F.silu(z)
        return x + self.out_proj(y.to(projected.dtype))

    def analytic_flops(self, shape: tuple[int, int, int, int]) -> dict[str, int]:
        """FLOPs of the selective scan, which MAC counters do not see as such, at input ``shape``.

        Convention: real floating-point operations, a multiply, an add and an exp one FLOP each
        (a MAC is two). Per batch b, route k (4), channel d (D), step l (L = H W), state n (N):
        Δ·A (mul), exp, (Δu)·B (mul), Ā·h (mul), + B̄u (add), C·h (mul), + into y (add): 7 FLOPs;
        per (b, k, d, l): Δ·u (mul) and D·u (mul): 2 FLOPs. So

            selective_scan = B · 4 · D · L · (7 N + 2)

        Not included (elementwise, and uncounted in every module alike): the softplus and bias of
        Δ, the cross-merge's adds, the SiLUs and the gate. VMamba's own fvcore hook counts
        9 B L D N + B D L per scan call (from state-spaces/mamba issue #110).
        """
        batch, _, height, width = shape
        return {"selective_scan": batch * ROUTES * self.inner * height * width * (7 * self.d_state + 2)}
