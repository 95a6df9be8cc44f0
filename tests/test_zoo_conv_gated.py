"""Large-kernel and gated mixers (``lka``, ``msca``, ``gated-conv``, ``gated-attention``,
``diff-attention``) against their peers, and the danet and performer fixes of issue 25.

Peers, with the reference's randomised weights copied into ours through an explicit name map that
must cover both state dicts one to one, then equal outputs in float32 and float64:

- ``lka``: hambench's own VAN backbone (``hambench.models.van.SpatialAttention``, the block VAN's
  checkpoints name ``attn``);
- ``msca``: mmseg's ``MSCASpatialAttention`` (SegNeXt's MSCAN);
- ``gated-conv``: timm's ``GatedConvBlock`` (MambaOut), channels last;
- ``diff-attention``: timm's ``DiffAttention`` behind a LayerNorm;
- ``gated-attention``: no peer in a package: an explicit restatement of Qiu et al.'s equations
  (per head, the n x n map written out).

``PAIRS`` builds each comparison; ``benchmarks``-style scripts can import it to print the
maximum differences (the figures in docs/zoo.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import nn

from hambench.modules.diff_attention import lambda_init
from hambench.modules.efficient_attention import favor_attention, orthogonal_gaussian, positive_random_features
from hambench.modules.gated import heads_for
from hambench.registry import build_module, get_spec
from test_allocation import TensorShapes
from test_zoo_mmseg import danet_with_dahead_weights, ours_with_weights_of, randomise

C = 32
DTYPES = [torch.float32, torch.float64]
# Peers compute the same operations in the same order, or nearly: float32 to 1e-5, float64 to 1e-12.
TOLERANCE = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.float64: dict(rtol=1e-12, atol=1e-12)}


def inputs(channels: int = C, height: int = 24, width: int = 40, seed: int = 1) -> torch.Tensor:
    """Non-square, and larger than the 23 x 23 and 25 x 25 reach of LKA and MSCA, so that a wrong
    padding or a swapped H and W cannot pass."""
    return torch.randn(2, channels, height, width, generator=torch.Generator().manual_seed(seed))


def identical_names(module: nn.Module) -> list[tuple[str, str]]:
    """The rename map of two modules whose state dicts use the same names."""
    return [(f"{name}.", f"{name}.") for name, _ in module.named_children()]


# (ours, the reference module (moved to the dtype with ours), how the reference is called, the input)
Pair = tuple[nn.Module, nn.Module, Callable[[torch.Tensor], torch.Tensor], torch.Tensor]


# --------------------------------------------------------------------------------------------- the pairs


def lka_pair() -> Pair:
    from hambench.models.van import SpatialAttention

    reference = SpatialAttention(C)
    ours = ours_with_weights_of(reference, "lka", identical_names(reference))
    return ours, reference, reference, inputs()


def msca_pair() -> Pair:
    from mmseg.models.backbones.mscan import MSCASpatialAttention

    reference = MSCASpatialAttention(C)  # the paper's kernels: 5, (1, 7), (1, 11), (1, 21)
    spatial = [
        (f"spatial_gating_unit.{name}.", f"spatial_gating_unit.{name}.")
        for name, _ in reference.spatial_gating_unit.named_children()
    ]
    ours = ours_with_weights_of(reference, "msca", [("proj_1.", "proj_1."), ("proj_2.", "proj_2.")] + spatial)
    return ours, reference, reference, inputs()


def gated_conv_pair(conv_ratio: float = 1.0) -> Pair:
    from timm.models.mambaout import GatedConvBlock

    reference = GatedConvBlock(C, conv_ratio=conv_ratio)  # MambaOut's: expansion 8/3, 7x7, LayerNorm, GELU
    ours = ours_with_weights_of(reference, "gated-conv", identical_names(reference), conv_ratio=conv_ratio)

    def channels_last(x: torch.Tensor) -> torch.Tensor:  # timm's MambaOut runs on (B, H, W, C)
        return reference(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    return ours, reference, channels_last, inputs()


class TimmDiffBlock(nn.Module):
    """x + DiffAttention(LN(x)) on the pixels as tokens: timm's attention in our block."""

    def __init__(self, heads: int, layer: int) -> None:
        from timm.layers.diff_attention import DiffAttention

        super().__init__()
        self.norm = nn.LayerNorm(C, eps=1e-6)
        self.attn = DiffAttention(C, num_heads=heads, depth=layer - 1)  # timm counts layers from 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, _, H, W = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        return (tokens + self.attn(self.norm(tokens))).transpose(1, 2).reshape(B, C, H, W)


def diff_attention_pair(heads: int = 2, layer: int = 3, float64_lambda: bool = False) -> Pair:
    """``float64_lambda``: give timm our λ (timm computes λ in float32 whatever the dtype, so in
    float64 the two differ by λ's float32 rounding, about 1e-8; with our λ, by nothing else)."""
    reference = TimmDiffBlock(heads, layer)
    rename = [("norm.", "norm."), ("qkv.", "attn.qkv."), ("head_norm.", "attn.sub_norm."), ("proj.", "attn.proj.")]
    rename += [(f"lambda_{p}", f"attn.lambda_{p}") for p in ("q1", "k1", "q2", "k2")]
    ours = ours_with_weights_of(reference, "diff-attention", rename, heads=heads, layer=layer)
    if float64_lambda:
        reference.attn._compute_lambda = ours.differential_lambda  # this instance only
    return ours, reference, reference, inputs(height=6, width=10)


def gated_attention_restated(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Qiu et al.'s G1 gated attention written out: per image and head, the n x n map explicit.

    X = LN(x),  Y_h = softmax(Q_h K_hᵀ / √e) V_h,  Y' = [Y_1 .. Y_H] ⊙ σ(X W_θ + b_θ),  y = x + Y' W_oᵀ + b_o
    """
    B, _, H, W = x.shape
    heads, e = module.heads, C // module.heads
    w_q, w_k, w_v = module.qkv.weight.split(C)
    b_q, b_k, b_v = module.qkv.bias.split(C)
    outputs = []
    for b in range(B):
        tokens = x[b].reshape(C, H * W).T  # (n, C)
        normed = torch.nn.functional.layer_norm(tokens, (C,), module.norm.weight, module.norm.bias, 1e-6)
        heads_out = []
        for h in range(heads):
            rows = slice(h * e, (h + 1) * e)
            q = normed @ w_q[rows].T + b_q[rows]
            k = normed @ w_k[rows].T + b_k[rows]
            v = normed @ w_v[rows].T + b_v[rows]
            attention = torch.softmax(q @ k.T / math.sqrt(e), dim=1)  # (n, n)
            heads_out.append(attention @ v)
        gate = torch.sigmoid(normed @ module.gate.weight.T + module.gate.bias)  # (n, C): per head, per channel
        y = (torch.cat(heads_out, dim=1) * gate) @ module.proj.weight.T + module.proj.bias
        outputs.append(tokens + y)
    return torch.stack([o.T.reshape(C, H, W) for o in outputs])


def gated_attention_pair(heads: int = 2) -> Pair:
    ours = build_module("gated-attention", C, heads=heads)
    randomise(ours)
    return ours, ours, lambda x: gated_attention_restated(ours, x), inputs(height=6, width=10)


PAIRS: dict[str, Callable[[], Pair]] = {
    "lka": lka_pair,
    "msca": msca_pair,
    "gated-conv": gated_conv_pair,
    "gated-conv (conv_ratio=0.5)": lambda: gated_conv_pair(0.5),
    "gated-attention": gated_attention_pair,
    "diff-attention": diff_attention_pair,
    "diff-attention (timm given our λ)": lambda: diff_attention_pair(float64_lambda=True),
}


def peer_outputs(name: str, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x, ours(x), theirs(x)) of pair ``name`` in eval mode at ``dtype``."""
    ours, reference, forward, x = PAIRS[name]()
    ours.to(dtype).eval()
    reference.to(dtype).eval()
    x = x.to(dtype)
    with torch.no_grad():
        expected = forward(x)
        return x, ours(x), expected


def max_difference(name: str, dtype: torch.dtype) -> tuple[float, float]:
    """(max |ours - theirs|, max |theirs|) in eval mode at ``dtype``."""
    _, y, expected = peer_outputs(name, dtype)
    return float((y - expected).abs().max()), float(expected.abs().max())


# --------------------------------------------------------------------------------------------- parity


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "name",
    [
        "lka",
        "msca",
        "gated-conv",
        "gated-conv (conv_ratio=0.5)",
        "gated-attention",
        "diff-attention (timm given our λ)",
    ],
)
def test_matches_its_peer(name, dtype):
    x, y, expected = peer_outputs(name, dtype)
    assert (expected - x).abs().max() > 0.1, "the context term must not be negligible"
    torch.testing.assert_close(y, expected, **TOLERANCE[dtype])


def test_diff_attention_differs_from_timm_by_its_float32_lambda_only():
    """timm rounds λ to float32 in any dtype; ours computes it in the input's (at least float32)."""
    difference, scale = max_difference("diff-attention", torch.float64)
    assert 1e-13 < difference < 1e-6 * scale, difference
    assert max_difference("diff-attention", torch.float32)[0] < 1e-5


def test_lka_loads_a_van_block_without_renaming():
    """A VAN backbone block's ``attn`` (as VAN's checkpoints name it) is an ``lka`` state dict."""
    from hambench.models.van import VAN

    backbone = VAN("tiny")
    backbone.init_weights()
    block = backbone.block2[0].attn  # stage 2: 64 channels
    ours = build_module("lka", 64)
    ours.load_state_dict(block.state_dict())  # strict: the same names and shapes
    x = inputs(channels=64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), block(x))


@pytest.mark.parametrize("kernel_size, dilation, kernels", [(21, 3, (5, 7)), (14, 2, (3, 7)), (35, 5, (9, 7))])
def test_lka_decomposes_the_large_kernel_as_van(kernel_size, dilation, kernels):
    gate = build_module("lka", C, kernel_size=kernel_size, dilation=dilation).spatial_gating_unit
    assert (gate.conv0.kernel_size[0], gate.conv_spatial.kernel_size[0]) == kernels
    assert gate.conv_spatial.dilation == (dilation, dilation)


def test_convolutional_blocks_start_with_the_official_init():
    for name in ("lka", "msca"):
        module = build_module(name, C)
        convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
        assert all(not conv.bias.any() for conv in convs)
        proj = module.proj_1.weight.detach()  # 1x1, fan_out = C: std √(2 / C) = 0.25
        assert 0.2 < float(proj.std()) < 0.3


# --------------------------------------------------------------------------------------------- width rules


@pytest.mark.parametrize("channels, heads", [(32, 1), (96, 1), (128, 2), (200, 2), (512, 8), (768, 12)])
def test_gated_attention_heads_are_about_64_wide(channels, heads):
    assert heads_for(channels, 64) == heads
    assert build_module("gated-attention", channels).heads == heads


@pytest.mark.parametrize("channels, heads", [(32, 1), (128, 1), (256, 2), (512, 4), (768, 6)])
def test_diff_attention_has_half_the_heads(channels, heads):
    module = build_module("diff-attention", channels)
    assert module.heads == heads and module.head_dim == channels // heads // 2


def test_diff_attention_lambda_init_is_the_papers():
    assert lambda_init(1) == pytest.approx(0.2)
    for layer in (1, 2, 5, 12):
        from timm.layers.diff_attention import DiffAttention

        timm_block = DiffAttention(C, num_heads=1, depth=layer - 1)
        assert build_module("diff-attention", C, layer=layer).lambda_init == pytest.approx(timm_block.lambda_init)
        assert lambda_init(layer) == pytest.approx(0.8 - 0.6 * math.exp(-0.3 * (layer - 1)))


def test_gated_conv_widths_are_mambaouts():
    module = build_module("gated-conv", 96)
    assert module.fc1.out_features == 2 * 256 and module.split_sizes == (256, 256 - 96, 96)  # ⌊8 · 96 / 3⌋
    assert module.conv.kernel_size == (7, 7)


# --------------------------------------------------------------------------------------------- fused attention


@pytest.mark.parametrize("name", ["gated-attention", "diff-attention"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_attention_is_fused_and_never_stores_the_map(name, dtype):
    """One training step at n = 32 x 32: the CPU flash kernel runs (forward and backward) and no
    tensor has two n-sized dimensions."""
    n = 32 * 32
    torch.manual_seed(0)
    module = build_module(name, C).to(dtype).train()
    x = torch.randn(1, C, 32, 32, dtype=dtype, requires_grad=True)
    with TensorShapes() as record:
        (module(x) * torch.randn_like(x)).sum().backward()
    ops = {op for op, _ in record.created}
    assert "aten._scaled_dot_product_flash_attention_for_cpu.default" in ops
    assert "aten._scaled_dot_product_flash_attention_for_cpu_backward.default" in ops
    assert not [shape for _, shape in record.created if shape.count(n) >= 2]


# --------------------------------------------------------------------------------------------- danet fix


def test_danet_computes_float64_in_float64():
    ours, head = danet_with_dahead_weights()
    ours.double().eval()
    head.double().eval()
    x = inputs(height=12, width=20).double()
    with torch.no_grad():
        expected = head.pam(x) + head.cam(x) - x  # mmseg's PAM and CAM each add the input; ours once
        torch.testing.assert_close(ours(x), expected, rtol=1e-12, atol=1e-12)


def test_danet_channel_attention_upcasts_half_precision_only():
    cam = build_module("danet", C).cam
    x = inputs(height=12, width=20)
    for dtype in (torch.float16, torch.bfloat16):
        y = cam(x.to(dtype))
        assert y.dtype == dtype and torch.isfinite(y).all()
    assert cam(x.double()).dtype == torch.float64


# --------------------------------------------------------------------------------------------- performer fix


def performer_pytorch_features(x: torch.Tensor, projection: torch.Tensor, is_query: bool, eps: float) -> torch.Tensor:
    """performer-pytorch's ``softmax_kernel`` restated for one (n, e) matrix, row by row:
    ratio · (exp(ωᵀx' - ‖x'‖²/2 - max ωᵀx') + ε), x' = x e^(-1/4), the max per row for queries and
    over the whole matrix for keys."""
    x = x * x.shape[-1] ** -0.25
    projected = x @ projection.T  # (n, m)
    matrix_max = projected.max()
    rows = []
    for i in range(x.shape[0]):
        shift = projected[i].max() if is_query else matrix_max
        rows.append(torch.exp(projected[i] - x[i].pow(2).sum() / 2 - shift) + eps)
    return torch.stack(rows) / math.sqrt(projection.shape[0])


def test_stabilised_features_are_performer_pytorchs():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 16, generator=g, dtype=torch.float64)
    torch.manual_seed(0)
    projection = orthogonal_gaussian(44, 16).double()
    for is_query in (True, False):
        ours = positive_random_features(x * 16**-0.25, projection, is_query=is_query, stabiliser=1e-4)
        torch.testing.assert_close(ours, performer_pytorch_features(x, projection, is_query, 1e-4), rtol=1e-12, atol=0)


def test_stabiliser_zero_is_the_unbiased_estimator_bit_for_bit():
    """stabiliser = 0 runs the code of the paper's estimator as it was before the option."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 64, 8, generator=g) for _ in range(3))
    torch.manual_seed(0)
    projection = orthogonal_gaussian(20, 8)

    def features(x: torch.Tensor, is_query: bool) -> torch.Tensor:
        exponent = x @ projection.T - x.pow(2).sum(dim=-1, keepdim=True) / 2
        shift = exponent.amax(dim=-1, keepdim=True) if is_query else exponent.amax(dim=(-2, -1), keepdim=True)
        return torch.exp(exponent - shift) / math.sqrt(20)

    fq, fk = features(q * 8**-0.25, True), features(k * 8**-0.25, False)
    before = (fq @ (fk.transpose(-2, -1) @ v)) / (fq @ fk.sum(dim=-2, keepdim=True).transpose(-2, -1) + 1e-6)
    assert torch.equal(favor_attention(q, k, v, projection), before)
    assert torch.equal(favor_attention(q, k, v, projection, stabiliser=0.0), before)


def relative_errors(stabiliser: float, n: int = 1024, e: int = 32, draws: int = 5) -> list[float]:
    """‖ŷ - y‖ / ‖y‖ of FAVOR+ against exact attention at unit-scale q, k, v ~ N(0, I), with the
    width rule's m = ⌊e ln e⌋ = 110 features, one draw of q, k, v and ω per seed (float64)."""
    features = int(e * math.log(e))
    errors = []
    for seed in range(draws):
        g = torch.Generator().manual_seed(seed)
        q, k, v = (torch.randn(n, e, generator=g, dtype=torch.float64) for _ in range(3))
        torch.manual_seed(100 + seed)
        projection = orthogonal_gaussian(features, e).double()
        exact = torch.softmax(q @ k.T / math.sqrt(e), dim=-1) @ v
        estimate = favor_attention(q, k, v, projection, stabiliser=stabiliser)
        errors.append(float((estimate - exact).norm() / exact.norm()))
    return errors


def test_stabilised_favor_beats_zeros_at_unit_scale_where_the_unbiased_one_does_not(one_thread):
    """At n = 1024, e = 32, m = 110 (measured: unbiased 2.20-3.41, stabilised 0.84-0.94; zeros: 1)."""
    stabilised, unbiased = relative_errors(1e-4), relative_errors(0.0)
    assert max(stabilised) < 1.0, stabilised
    assert min(unbiased) > 1.5, unbiased
    assert sum(stabilised) < sum(unbiased) / 2


def test_performer_defaults_to_the_stabilised_estimator():
    assert get_spec("performer").defaults["stabiliser"] == 1e-4
    assert build_module("performer", C).stabiliser == 1e-4
    assert build_module("performer", C, stabiliser=0.0).stabiliser == 0.0


# --------------------------------------------------------------------------------------------- registry, contract


def test_diff_attention_refuses_an_odd_width():
    with pytest.raises(ValueError, match="channels"):
        build_module("diff-attention", 33)
