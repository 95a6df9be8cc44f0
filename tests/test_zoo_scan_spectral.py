"""The state-space, Mamba-like, agent, many-head and spectral mixers: ``ss2d``, ``mlla``,
``agent-attention``, ``hydra-attention`` and ``gfnet``.

None of their authors' implementations can be imported here (VMamba's needs its CUDA/Triton
kernels; MLLA, Agent Attention and GFNet are research repositories, not packages; Hydra's is
pseudo-code in the paper). So each module is checked against an explicit restatement of its
paper's equations, written from the paper and from reading the authors' code, independently of
the module's vectorised code: loops over routes, pixels, heads and states, an explicit DFT, the
authors' sequence of reshapes where their layout is the specification (agent biases, GFNet's
filter resize). In float64 every module must agree to 1e-10; in float32 (module in float32,
restatement in float64) to the tolerances below. ``MAX_DIFF`` collects the measured differences
(printed with ``pytest -s``).

Also: the chunked selective scan against the sequential recurrence (values and gradients, odd
lengths, tiny memory blocks, long decays), the cross-scan, the width rules, the analytic FLOP
counts against hand counts. Bad options and the registry entries are tests/test_zoo_declarations.py's,
the module contract tests/test_module_contract.py's (every registered module), n x n maps
tests/test_allocation.py's.
"""

from __future__ import annotations

import math
from itertools import product

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from hambench.modules.gfnet import GlobalFilter
from hambench.modules.ss2d import SS2D, cross_merge, cross_scan, selective_scan
from hambench.registry import build_module

MAX_DIFF: dict[str, float] = {}  # "module dtype" -> max |ours - restatement|, for the docs


@pytest.fixture(autouse=True, scope="module")
def report_differences():
    yield
    for key, value in sorted(MAX_DIFF.items()):
        print(f"max |diff| {key}: {value:.3g}")


def inputs(channels: int, height: int = 3, width: int = 5, batch: int = 2, seed: int = 1) -> torch.Tensor:
    """Non-square, so that a swapped H and W cannot pass."""
    return torch.randn(
        batch, channels, height, width, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )


def randomise(module: nn.Module, seed: int = 0, scale: dict[str, float] | None = None) -> None:
    """Random weights of order one in every parameter (norm scales around 1); ``scale`` multiplies
    the draws of the parameters it names."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            draw = torch.randn(p.shape, generator=g, dtype=torch.float64)
            if name.endswith("norm.weight") or name.endswith("norm1.weight"):
                value = torch.rand(p.shape, generator=g, dtype=torch.float64) + 0.5
            elif p.dim() > 1:
                value = draw / math.sqrt(p[0].numel())
            else:
                value = draw * 0.5
            p.copy_(value * (scale or {}).get(name, 1.0))


def compare(key: str, ours: torch.Tensor, expected: torch.Tensor, atol: float) -> None:
    difference = float((ours.to(expected.dtype) - expected).abs().max())
    MAX_DIFF[key] = max(MAX_DIFF.get(key, 0.0), difference)
    assert difference <= atol, f"{key}: max |diff| {difference:.3g} > {atol}"


def both_precisions(name: str, module: nn.Module, x: torch.Tensor, restatement, atol32: float) -> None:
    """The module in float64 against the restatement to 1e-10, then in float32 against it to atol32."""
    module = module.double().eval()
    with torch.no_grad():
        expected = restatement(module, x)
        compare(f"{name} float64", module(x), expected, atol=1e-10)
        compare(f"{name} float32", module.float()(x.float()), expected, atol=atol32)


def layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float, dim: int) -> torch.Tensor:
    """(x - mean) / sqrt(var + eps) · w + b over dimension ``dim`` (biased variance)."""
    mean = x.mean(dim=dim, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=dim, keepdim=True)
    shape = [1] * x.dim()
    shape[dim] = -1
    return (x - mean) / torch.sqrt(var + eps) * weight.view(shape) + bias.view(shape)


def depthwise(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    return F.conv2d(x, conv.weight, conv.bias, padding=conv.padding, groups=conv.groups)


# ================================================================================================ ss2d


def sequential_scan(u, delta, A, B, C, D):
    """The recurrence step by step: h_l = exp(Δ_l A) h_{l-1} + Δ_l B_l u_l, y_l = C_l·h_l + D u_l."""
    batch, routes, channels, length = u.shape
    y = torch.empty_like(u)
    h = torch.zeros(batch, routes, channels, A.shape[-1], dtype=u.dtype)
    for step in range(length):
        h = (
            torch.exp(delta[..., step, None] * A) * h
            + (delta[..., step] * u[..., step])[..., None] * B[:, :, None, :, step]
        )
        y[..., step] = (h * C[:, :, None, :, step]).sum(-1) + D * u[..., step]
    return y


def scan_inputs(batch=2, routes=4, channels=6, length=37, states=5, dtype=torch.float64, step=0.5, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=dtype)  # noqa: E731
    u, B, C = r(batch, routes, channels, length), r(batch, routes, states, length), r(batch, routes, states, length)
    delta = torch.rand(batch, routes, channels, length, generator=g, dtype=dtype) * step
    A = -torch.rand(routes, channels, states, generator=g, dtype=dtype) * 4
    return u, delta, A, B, C, r(routes, channels)


@pytest.mark.parametrize("chunk", [None, 1, 4, 6, 37, 100])
@pytest.mark.parametrize("block_elements", [None, 1])
def test_chunked_scan_is_the_recurrence(chunk, block_elements):
    """Chunks of T steps (T not dividing L = 37: a padded last chunk), and channel groups of one."""
    args = scan_inputs()
    compare(
        "selective_scan float64",
        selective_scan(*args, chunk=chunk, block_elements=block_elements),
        sequential_scan(*args),
        atol=1e-12,
    )
    ours32 = selective_scan(*(t.float() for t in args), chunk=chunk, block_elements=block_elements)
    compare("selective_scan float32", ours32, sequential_scan(*args), atol=1e-5)


def test_chunked_scan_gradients_are_the_recurrences():
    """Through the activation checkpointing (every input requires a gradient)."""
    args = [t.requires_grad_() for t in scan_inputs(length=23, channels=3)]
    weights = torch.randn(2, 4, 3, 23, dtype=torch.float64)
    ours = torch.autograd.grad((selective_scan(*args, chunk=5, block_elements=1) * weights).sum(), args)
    expected = torch.autograd.grad((sequential_scan(*args) * weights).sum(), args)
    for name, a, b in zip("u delta A B C D".split(), ours, expected):
        compare("selective_scan grad float64", a, b, atol=1e-10), name


def test_long_decays_stay_finite_and_exact():
    """Δ up to 20 and A down to -4: per-step decays to e^-80, chunk decays far below float32's
    range. No exp of a positive number is ever taken, so nothing overflows."""
    args = scan_inputs(step=20.0, length=64)
    compare("selective_scan long decay float64", selective_scan(*args, chunk=8), sequential_scan(*args), atol=1e-12)
    ours32 = selective_scan(*(t.float() for t in args), chunk=8)
    assert torch.isfinite(ours32).all()
    compare("selective_scan long decay float32", ours32, sequential_scan(*args), atol=1e-4)


def test_cross_scan_routes_and_merge():
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float64).view(2, 3, 4, 5)
    routes = cross_scan(x)
    rows = [(i, j) for i in range(4) for j in range(5)]  # row-major
    columns = [(i, j) for j in range(5) for i in range(4)]  # column-major
    for k, order in enumerate([rows, columns, rows[::-1], columns[::-1]]):
        assert torch.equal(routes[:, k], torch.stack([x[:, :, i, j] for i, j in order], dim=-1))
    assert torch.equal(cross_merge(routes, 4, 5), 4 * x), "each route puts every pixel back where it was"


def ss2d_by_the_equations(m: SS2D, x: torch.Tensor) -> torch.Tensor:
    """VMamba's VSS block (v0) route by route, pixel by pixel, from the equations."""
    batch, _, H, W = x.shape
    D, N, R = m.inner, m.d_state, m.dt_rank
    projected = torch.einsum(
        "oc,bchw->bohw", m.in_proj.weight[:, :, 0, 0], layer_norm(x, m.norm.weight, m.norm.bias, 1e-5, 1)
    )
    h, z = (projected[:, :D], projected[:, D:]) if m.gate else (projected, None)
    h = F.silu(depthwise(h, m.conv))
    rows = [(i, j) for i in range(H) for j in range(W)]
    columns = [(i, j) for j in range(W) for i in range(H)]
    A = -torch.exp(m.A_log)  # (4, D, N)
    y = torch.zeros(batch, D, H, W, dtype=x.dtype)
    for b, (k, order) in product(range(batch), enumerate([rows, columns, rows[::-1], columns[::-1]])):
        state = torch.zeros(D, N, dtype=x.dtype)
        for i, j in order:
            u = h[b, :, i, j]
            dt, B, C = (m.x_proj_weight[k] @ u).split([R, N, N])
            delta = F.softplus(m.dt_proj_weight[k] @ dt + m.dt_proj_bias[k])  # (D,)
            state = torch.exp(delta[:, None] * A[k]) * state + (delta * u)[:, None] * B[None, :]
            y[b, :, i, j] += state @ C + m.D[k] * u
    y = layer_norm(y, m.out_norm.weight, m.out_norm.bias, 1e-5, 1)
    y = y * F.silu(z) if z is not None else y
    return x + torch.einsum("oc,bchw->bohw", m.out_proj.weight[:, :, 0, 0], y)


@pytest.mark.parametrize("chunk", [None, 2])
def test_ss2d_is_the_vss_block(chunk):
    module = build_module("ss2d", 8, d_state=4, chunk=chunk)
    randomise(module, scale={"dt_proj_bias": 2.0})
    both_precisions("ss2d", module, inputs(8), ss2d_by_the_equations, atol32=2e-5)


def test_ss2d_without_gate():
    """VMamba v2's ``_noz``: the in-projection is D wide and nothing multiplies the output."""
    module = build_module("ss2d", 8, d_state=3, gate=False)
    assert module.in_proj.out_channels == module.inner
    randomise(module)
    both_precisions("ss2d", module, inputs(8), ss2d_by_the_equations, atol32=2e-5)


@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::torch.jit.TracerWarning")  # jit's own notices
def test_ss2d_traced_is_ss2d():
    """Under jit tracing (how fvcore and torchprofile count) the scan takes larger blocks: same output."""
    module = build_module("ss2d", 16, d_state=4).eval()
    x = inputs(16, 6, 7).float()
    with torch.no_grad():
        traced = torch.jit.trace(module, x, check_trace=False)
        compare("ss2d traced float32", traced(x), module(x), atol=1e-6)


def test_ss2d_widths_follow_vmamba():
    """D = ssm_ratio · C, R = ⌈C / 16⌉, N = 16; parameters of VMamba-T's first v0 VSS block (C = 96)
    by hand: in_proj 96·384, conv 192·9 + 192, x_proj 4·(6 + 32)·192, dt_proj 4·(192·6 + 192),
    A_log 4·192·16, D 4·192, out_norm 2·192, out_proj 192·96, and the block's LayerNorm 2·96."""
    module = build_module("ss2d", 96)
    assert (module.inner, module.dt_rank, module.d_state) == (192, 6, 16)
    by_hand = (
        96 * 384
        + (192 * 9 + 192)
        + 4 * 38 * 192
        + 4 * (192 * 6 + 192)
        + 4 * 192 * 16
        + 4 * 192
        + 2 * 192
        + 192 * 96
        + 2 * 96
    )
    assert sum(p.numel() for p in module.parameters()) == by_hand == 105_408
    assert build_module("ss2d", 512).dt_rank == 32 and build_module("ss2d", 512).inner == 1024
    assert build_module("ss2d", 100, dt_rank=3, ssm_ratio=1.0).dt_proj_weight.shape == (4, 100, 3)


def test_ss2d_initialisation_is_mambas():
    torch.manual_seed(0)
    module = build_module("ss2d", 64)
    assert torch.equal(module.A_log[2, 5], torch.log(torch.arange(1, 17, dtype=torch.float32)))  # A = -(1..N)
    assert torch.equal(module.D, torch.ones(4, 128))
    dt = F.softplus(module.dt_proj_bias.detach())
    assert float(dt.min()) >= 1e-3 * 0.999 and float(dt.max()) <= 0.1 * 1.001  # Δ log-uniform in [0.001, 0.1]


class ElementwiseFlops(TorchDispatchMode):
    """Counts the output elements of every mul, add and exp: one FLOP each."""

    def __init__(self) -> None:
        super().__init__()
        self.flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func.overloadpacket in (torch.ops.aten.mul, torch.ops.aten.add, torch.ops.aten.exp):
            self.flops += out.numel()
        return out


def scan_one_op_at_a_time(u, delta, A, B, C, D):
    """The recurrence, each FLOP of the convention its own op (the hand count, made mechanical)."""
    batch, routes, channels, length = u.shape
    h = torch.zeros(batch, routes, channels, A.shape[-1], dtype=u.dtype)
    for step in range(length):
        decay = torch.exp(delta[..., step, None] * A)  # Δ·A, exp: 2 N
        drive = (delta[..., step] * u[..., step])[..., None] * B[:, :, None, :, step]  # Δ·u: 1; ·B: N
        h = decay * h + drive  # 2 N
        y = D * u[..., step]  # 1
        for n in range(A.shape[-1]):
            y = y + C[:, :, None, n, step] * h[..., n]  # 2 per state
    return h


def test_ss2d_analytic_flops_by_hand():
    """At C = 8, N = 2 (D = 16), shape 1x8x2x3 (L = 6): 4 routes x 16 channels x 6 steps x
    (7·2 + 2) = 6144 FLOPs, and the same number counted op by op on the recurrence."""
    module = build_module("ss2d", 8, d_state=2)
    assert (
        module.analytic_flops((1, 8, 2, 3)) == {"selective_scan": 4 * 16 * 6 * (7 * 2 + 2)} == {"selective_scan": 6144}
    )
    args = scan_inputs(batch=1, routes=4, channels=16, length=6, states=2)
    with torch.no_grad(), ElementwiseFlops() as counter:
        scan_one_op_at_a_time(*args)
    assert counter.flops == 6144
    assert build_module("ss2d", 512).analytic_flops((1, 512, 128, 128))["selective_scan"] == 4 * 1024 * 16384 * 114


# ================================================================================================ mlla


def rope_by_hand(x: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """x (B, H, W, C): pair m of pixel (i, j) turned by i·θ_m (m < C/4) or j·θ_{m - C/4}."""
    out = torch.empty_like(x)
    quarter = x.shape[-1] // 4
    for i, j, m in product(range(x.shape[1]), range(x.shape[2]), range(2 * quarter)):
        angle = (i if m < quarter else j) * base ** (-(m % quarter) / quarter)
        a, b = x[:, i, j, 2 * m], x[:, i, j, 2 * m + 1]
        out[:, i, j, 2 * m] = a * math.cos(angle) - b * math.sin(angle)
        out[:, i, j, 2 * m + 1] = a * math.sin(angle) + b * math.cos(angle)
    return out


def mlla_by_the_equations(m, x: torch.Tensor) -> torch.Tensor:
    batch, C, H, W = x.shape
    n, heads = H * W, m.heads
    linear = lambda layer, t: t @ layer.weight.T + layer.bias  # noqa: E731
    x = x + depthwise(x, m.cpe1)
    tokens = x.flatten(2).transpose(1, 2)  # (B, n, C), pixel p = i W + j
    h = layer_norm(tokens, m.norm1.weight, m.norm1.bias, 1e-5, -1)
    gate = F.silu(linear(m.act_proj, h))
    h = linear(m.in_proj, h).transpose(1, 2).reshape(batch, C, H, W)
    h = F.silu(depthwise(h, m.dwc)).flatten(2).transpose(1, 2)  # (B, n, C)
    q, k = (F.elu(t) + 1 for t in linear(m.qk, h).chunk(2, dim=-1))
    q_rope, k_rope = (rope_by_hand(t.view(batch, H, W, C)).view(batch, n, C) for t in (q, k))
    out = torch.empty(batch, n, C, dtype=x.dtype)
    d = C // heads
    for b, head, i in product(range(batch), range(heads), range(n)):
        ch = slice(head * d, (head + 1) * d)
        numerator = sum((q_rope[b, i, ch] @ k_rope[b, j, ch]) * h[b, j, ch] for j in range(n)) / n
        denominator = q[b, i, ch] @ (sum(k[b, j, ch] for j in range(n)) / n) + 1e-6
        out[b, i, ch] = numerator / denominator
    out = out + depthwise(h.transpose(1, 2).reshape(batch, C, H, W), m.lepe).flatten(2).transpose(1, 2)  # LePE(v)
    tokens = tokens + linear(m.out_proj, out * gate)
    x = tokens.transpose(1, 2).reshape(batch, C, H, W)
    return x + depthwise(x, m.cpe2)


def test_mlla_is_the_block_without_its_ffn():
    module = build_module("mlla", 8, heads=2)
    randomise(module)
    both_precisions("mlla", module, inputs(8), mlla_by_the_equations, atol32=2e-5)


def test_mlla_rope_is_the_authors():
    """The authors' RoPE for a fixed resolution, restated: angles t·θ over each spatial dimension,
    concatenated, turning consecutive channel pairs; ours for a 3 x 5 map must equal it."""
    from hambench.modules.mlla import apply_rope, rope_rotations

    x = torch.randn(2, 3, 5, 16, dtype=torch.float64)
    compare(
        "mlla rope float64", apply_rope(x, rope_rotations(3, 5, 16, 10000.0, x.device)), rope_by_hand(x), atol=1e-12
    )


def test_mlla_widths():
    assert build_module("mlla", 64).heads == 2 and build_module("mlla", 512).heads == 16  # head width 32
    assert build_module("mlla", 32).heads == 1 and build_module("mlla", 16).heads == 1  # at least one
    # MLLA's block less its FFN: 4 depthwise 3x3 (with bias), LN, in, act, qk (2C), out projections.
    C = 64
    assert sum(p.numel() for p in build_module("mlla", C).parameters()) == 4 * (9 * C + C) + 2 * C + 3 * (C * C + C) + (
        2 * C * C + 2 * C
    )


# ================================================================================================ agent attention


def adaptive_pool_by_hand(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bin (a, b) averages rows ⌊aH/s⌋..⌈(a+1)H/s⌉ - 1 and columns likewise."""
    H, W = x.shape[-2:]
    out = torch.empty(*x.shape[:-2], size, size, dtype=x.dtype)
    for a, b in product(range(size), range(size)):
        rows = slice(a * H // size, -(-(a + 1) * H // size))
        cols = slice(b * W // size, -(-(b + 1) * W // size))
        out[..., a, b] = x[..., rows, cols].mean(dim=(-2, -1))
    return out


def authors_agent_biases(m, H: int, W: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The authors' segmentation code path (agent_pvt.py, sr_ratio = 1), their layouts and
    reshapes: position bias (heads, A, n) and agent bias (heads, n, A)."""
    heads, A, p = m.heads, m.agents, m.pool
    n = H * W
    up = lambda t: F.interpolate(t, size=(H, W), mode="bilinear")  # noqa: E731  (their default)
    ah, aw = m.ah_bias.unsqueeze(0), m.aw_bias.unsqueeze(0)  # theirs: (1, heads, A, S, 1), (1, heads, A, 1, S)
    ha, wa = (
        m.ha_bias.permute(0, 2, 3, 1).unsqueeze(0),
        m.wa_bias.permute(0, 2, 3, 1).unsqueeze(0),
    )  # (1, heads, S, 1, A), (1, heads, 1, S, A)
    position1 = up(m.an_bias).reshape(heads, p, p, n).permute(0, 3, 1, 2).reshape(heads, n, A).permute(0, 2, 1)
    position2 = (
        up((ah + aw).squeeze(0)).reshape(heads, p, p, n).permute(0, 3, 1, 2).reshape(heads, n, A).permute(0, 2, 1)
    )
    agent1 = up(m.na_bias).reshape(heads, p, p, n).permute(0, 3, 1, 2).reshape(heads, n, A)
    agent2 = (
        up((ha + wa).squeeze(0).permute(0, 3, 1, 2)).reshape(heads, p, p, n).permute(0, 3, 1, 2).reshape(heads, n, A)
    )
    return position1 + position2, agent1 + agent2


def agent_by_the_equations(m, x: torch.Tensor) -> torch.Tensor:
    batch, C, H, W = x.shape
    n, heads, d = H * W, m.heads, C // m.heads
    h = layer_norm(x, m.norm.weight, m.norm.bias, 1e-6, 1)
    conv1x1 = lambda conv, t: torch.einsum("oc,bchw->bohw", conv.weight[:, :, 0, 0], t) + conv.bias.view(1, -1, 1, 1)  # noqa: E731
    q = conv1x1(m.q, h)
    k, v = conv1x1(m.kv, h).chunk(2, dim=1)
    agents = adaptive_pool_by_hand(q, m.pool).flatten(2)  # (B, C, A)
    q, k, v_flat = q.flatten(2), k.flatten(2), v.flatten(2)  # (B, C, n)
    bias1, bias2 = authors_agent_biases(m, H, W)
    out = torch.empty(batch, C, n, dtype=x.dtype)
    for b, head in product(range(batch), range(heads)):
        ch = slice(head * d, (head + 1) * d)
        aggregated = []
        for a in range(m.agents):  # agent aggregation: each agent a softmax over the n keys
            weights = torch.softmax(
                torch.stack([agents[b, ch, a] @ k[b, ch, j] * d**-0.5 + bias1[head, a, j] for j in range(n)]), 0
            )
            aggregated.append(sum(weights[j] * v_flat[b, ch, j] for j in range(n)))
        for i in range(n):  # agent broadcast: each query a softmax over the A agents
            weights = torch.softmax(
                torch.stack([q[b, ch, i] @ agents[b, ch, a] * d**-0.5 + bias2[head, i, a] for a in range(m.agents)]), 0
            )
            out[b, ch, i] = sum(weights[a] * aggregated[a] for a in range(m.agents))
    out = out.view(batch, C, H, W) + depthwise(v, m.dwc)
    return x + conv1x1(m.proj, out)


def test_agent_attention_is_aggregation_then_broadcast():
    """4 agents (2 x 2) from a 5 x 6 map, row and column biases on a 3-point grid: every bias resized."""
    module = build_module("agent-attention", 8, heads=2, agents=4, bias_size=3)
    randomise(module)
    both_precisions("agent-attention", module, inputs(8, 5, 6), agent_by_the_equations, atol32=2e-5)


def test_agent_biases_at_their_own_grid_are_used_as_learnt():
    """At H = W = the bias grid = the block grid (7), no resize: B₁[h, a, (i, j)] is exactly
    an[h, a, i, j] + ah[h, a, i] + aw[h, a, j], and B₂ likewise: rows are rows, columns columns."""
    module = build_module("agent-attention", 8, agents=9, bias_size=7).double().requires_grad_(False)
    randomise(module)
    to_pixels, to_agents = module.agent_biases(7, 7)
    for head, a, i, j in product(range(module.heads), range(9), range(7), range(7)):
        expected = module.an_bias[head, a, i, j] + module.ah_bias[head, a, i, 0] + module.aw_bias[head, a, 0, j]
        assert abs(float(to_pixels[head, a, 7 * i + j] - expected)) < 1e-14
        expected = module.na_bias[head, a, i, j] + module.ha_bias[head, a, i, 0] + module.wa_bias[head, a, 0, j]
        assert abs(float(to_agents[head, 7 * i + j, a] - expected)) < 1e-14


def test_agent_attention_defaults():
    module = build_module("agent-attention", 512)
    assert (module.heads, module.agents, module.pool) == (8, 49, 7)  # head width 64, 7 x 7 agents
    assert build_module("agent-attention", 32).heads == 1
    assert module.ah_bias.shape == (8, 49, 14, 1) and module.an_bias.shape == (8, 49, 7, 7)


# ================================================================================================ hydra


def hydra_by_the_equations(m, x: torch.Tensor) -> torch.Tensor:
    """C heads of width one: head c's attention weight from token s to token t is φ(q_t)_c φ(k_s)_c,
    φ(x) = x / ‖x‖ over all C features; no softmax, no normalisation over s."""
    batch, C, H, W = x.shape
    n = H * W
    tokens = layer_norm(x, m.norm.weight, m.norm.bias, 1e-6, 1).flatten(2).transpose(1, 2)  # (B, n, C)
    q, k, v = (tokens @ m.qkv.weight[:, :, 0, 0].T + m.qkv.bias).chunk(3, dim=-1)
    q = q / q.norm(dim=-1, keepdim=True)
    k = k / k.norm(dim=-1, keepdim=True)
    out = torch.empty(batch, n, C, dtype=x.dtype)
    for b, c, t in product(range(batch), range(C), range(n)):
        out[b, t, c] = sum(q[b, t, c] * k[b, s, c] * v[b, s, c] for s in range(n))
    out = out @ m.proj.weight[:, :, 0, 0].T + m.proj.bias
    return x + out.transpose(1, 2).reshape(batch, C, H, W)


def test_hydra_is_one_head_per_channel():
    module = build_module("hydra-attention", 8)
    randomise(module)
    both_precisions("hydra-attention", module, inputs(8), hydra_by_the_equations, atol32=2e-5)


def test_hydra_is_the_papers_algorithm():
    """The paper's code (q / ‖q‖, k / ‖k‖, Σ_t k ⊙ v, q ⊙ kv) on (B, T, D) tokens."""
    from hambench.modules.hydra_attention import hydra

    q, k, v = torch.randn(3, 2, 15, 8, dtype=torch.float64).unbind(0)
    expected = (q / q.norm(dim=-1, keepdim=True)) * ((k / k.norm(dim=-1, keepdim=True)) * v).sum(dim=-2, keepdim=True)
    ours = hydra(*(t.transpose(1, 2) for t in (q, k, v))).transpose(1, 2)
    compare("hydra-attention algorithm float64", ours, expected, atol=1e-14)


# ================================================================================================ gfnet


def dft_filter_by_hand(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """irFFT2(K ⊙ rFFT2(x)) with the DFT written out (ortho scaling), x (B, C, H, W), kernel
    (C, H, W // 2 + 1) complex. The inverse treats the half spectrum as Hermitian: columns v and
    W - v are conjugates, and bins 0 and W / 2 count once (their imaginary parts drop out)."""
    B, C, H, W = x.shape
    i, u = torch.arange(H, dtype=torch.float64), torch.arange(H, dtype=torch.float64)
    j, v = torch.arange(W, dtype=torch.float64), torch.arange(W // 2 + 1, dtype=torch.float64)
    row_dft = torch.exp(-2j * math.pi * torch.outer(u, i) / H) / math.sqrt(H)  # (u, i)
    col_dft = torch.exp(-2j * math.pi * torch.outer(v, j) / W) / math.sqrt(W)  # (v, j)
    spectrum = torch.einsum("ui,vj,bcij->bcuv", row_dft, col_dft, x.to(torch.complex128)) * kernel
    rows = torch.einsum("ui,bcuv->bciv", row_dft.conj(), spectrum)  # inverse over u: (B, C, H, W // 2 + 1)
    weight = torch.full((W // 2 + 1,), 2.0, dtype=torch.float64)
    weight[0] = 1.0
    if W % 2 == 0:
        weight[-1] = 1.0
    phase = torch.exp(2j * math.pi * torch.outer(v, j) / W) / math.sqrt(W)  # (v, j)
    return torch.einsum("v,bciv,vj->bcij", weight.to(torch.complex128), rows, phase).real


def gfnet_by_the_equations(m, x: torch.Tensor) -> torch.Tensor:
    """The paper's Algorithm 1 as the authors' GlobalFilter runs it (channels last, weight (h, w, C, 2))
    after the pre-norm, with the DFT written out."""
    kernel = torch.view_as_complex(m.complex_weight.contiguous()).permute(2, 0, 1)  # (C, h, w)
    normed = layer_norm(x, m.norm.weight, m.norm.bias, 1e-6, 1)
    return x + dft_filter_by_hand(normed, kernel)


@pytest.mark.parametrize("height, width", [(6, 6), (6, 7)])
def test_gfnet_is_the_global_filter(height, width):
    """At the filter's own frequency grid (6 x 4: the half spectrum of 6 x 6 and of 6 x 7) the
    learnt filter as it is; W even (a Nyquist column) and odd."""
    module = build_module("gfnet", 8, filter_size=6)
    randomise(module, scale={"complex_weight": 4.0})
    both_precisions("gfnet", module, inputs(8, height, width), gfnet_by_the_equations, atol32=2e-5)


def test_gfnet_at_another_size_resizes_then_filters():
    module = build_module("gfnet", 8, filter_size=6).double().eval()
    randomise(module, scale={"complex_weight": 4.0})
    x = inputs(8, 5, 9)  # frequency grid 5 x 5, the filter's 6 x 4
    with torch.no_grad():
        kernel = resize_as_the_authors(module.complex_weight, 5, 5)
        normed = layer_norm(x, module.norm.weight, module.norm.bias, 1e-6, 1)
        compare("gfnet resized float64", module(x), x + dft_filter_by_hand(normed, kernel), atol=1e-10)


def resize_as_the_authors(weight: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """main_gfnet.py's checkpoint resize, restated: (h, w, C, 2) -> (1, 2C, h, w), bicubic with
    align_corners=True, back to (h', w', C, 2); complex (C, h', w')."""
    h, w, C, _ = weight.shape
    grid = weight.reshape(1, h, w, C * 2).permute(0, 3, 1, 2)
    resized = F.interpolate(grid, size=(height, width), mode="bicubic", align_corners=True)
    resized = resized.permute(0, 2, 3, 1).reshape(height, width, C, 2)
    return torch.view_as_complex(resized.contiguous()).permute(2, 0, 1)


def test_gfnet_resizes_the_filter_as_the_authors():
    from hambench.modules.gfnet import resize_filter

    weight = torch.randn(6, 4, 5, 2, dtype=torch.float64)
    compare("gfnet resize float64", resize_filter(weight, 9, 5), resize_as_the_authors(weight, 9, 5), atol=1e-14)
    assert torch.equal(resize_filter(weight, 6, 4), torch.view_as_complex(weight).permute(2, 0, 1))


def radix2_fft(x: list[complex], counter: list[int]) -> list[complex]:
    """Cooley-Tukey radix 2, counting real FLOPs: a butterfly is one complex product (6) and
    two complex sums (2 + 2)."""
    if len(x) == 1:
        return x
    even, odd = radix2_fft(x[0::2], counter), radix2_fft(x[1::2], counter)
    out = [0j] * len(x)
    for m in range(len(x) // 2):
        t = complex(math.cos(-2 * math.pi * m / len(x)), math.sin(-2 * math.pi * m / len(x))) * odd[m]
        out[m], out[m + len(x) // 2] = even[m] + t, even[m] - t
        counter[0] += 6 + 2 + 2
    return out


def test_fft_convention_is_the_radix2_count():
    """5 N log2 N real FLOPs per complex FFT of N points: counted on a radix-2 FFT (N = 16, 64),
    which also equals torch.fft.fft."""
    for size in (16, 64):
        x = torch.randn(size, dtype=torch.complex128)
        counter = [0]
        ours = radix2_fft(x.tolist(), counter)
        assert counter[0] == 5 * size * math.log2(size)
        assert torch.allclose(torch.tensor(ours, dtype=torch.complex128), torch.fft.fft(x))


def test_gfnet_analytic_flops_by_hand():
    """Shape 2x3x8x16 (n = 128, log2 n = 7): fft 2 images x 3 channels x (rFFT2 + irFFT2, 2.5 n log2 n
    each) = 6 x 2 x 2.5 x 128 x 7 = 26,880; the product: 6 x 8 x 9 complex values x 6 FLOPs = 2,592."""
    module = build_module("gfnet", 3)
    assert module.analytic_flops((2, 3, 8, 16)) == {"fft": 26_880, "spectral_filter": 2_592}
    paper = GlobalFilter(512).analytic_flops((1, 512, 128, 128))
    assert paper == {"fft": 5 * 512 * 16384 * 14, "spectral_filter": 6 * 512 * 128 * 65}


def test_gfnet_defaults():
    module = build_module("gfnet", 16)
    assert module.complex_weight.shape == (64, 33, 16, 2)  # a 64 x 64 map's half spectrum
    assert float(module.complex_weight.detach().std()) == pytest.approx(0.02, rel=0.05)  # GFNet's N(0, 0.02²)


# ================================================================================================ all five


def test_mlla_needs_a_multiple_of_four():
    with pytest.raises(ValueError, match="multiple of 4"):
        build_module("mlla", 30, heads=1)


@pytest.mark.parametrize(
    "name, layers",
    [
        ("ss2d", ["in_proj", "out_proj"]),
        ("mlla", ["in_proj", "act_proj", "qk", "out_proj"]),
        ("agent-attention", ["q", "kv", "proj"]),
        ("hydra-attention", ["qkv", "proj"]),
    ],
)
def test_projections_start_as_in_the_authors_models(name, layers):
    """VSSM, MLLA, Agent-PVT and DeiT all re-initialise every nn.Linear to N(0, 0.02²) (timm's
    trunc_normal_) with zero bias; the projections here are those layers."""
    torch.manual_seed(0)
    module = build_module(name, 128)
    for layer in layers:
        weight, bias = getattr(module, layer).weight.detach(), getattr(module, layer).bias
        assert float(weight.std()) == pytest.approx(0.02, rel=0.1), layer
        assert bias is None or not bias.detach().any(), layer


@pytest.mark.parametrize("name", ["ss2d", "gfnet"])
def test_analytic_flops_are_named_integers(name):
    counts = build_module(name, 32).analytic_flops((2, 32, 12, 20))
    assert counts and all(isinstance(k, str) and isinstance(v, int) and v > 0 for k, v in counts.items())
