"""Zoo modules that no maintained package implements to compare with: SE, ECA, CBAM, axial
attention, Performer, Nyströmformer, external attention and double attention, each against a
direct restatement of its paper's equations on a small input (explicit loops or sums, written
independently of the module's vectorised code). The module contract of every registered module
is checked by tests/test_module_contract.py, and that none of them allocates an n x n map by
tests/test_allocation.py.
"""

from __future__ import annotations

import math
from itertools import product

import pytest
import torch
from torch import nn

from hambench.modules.channel_attention import eca_kernel_size
from hambench.modules.efficient_attention import (
    double_normalise,
    favor_attention,
    iterative_pinv,
    nystrom_attention,
    orthogonal_gaussian,
    segment_means,
)
from hambench.registry import build_module

C = 32


def inputs(channels: int = C, height: int = 5, width: int = 7, seed: int = 1) -> torch.Tensor:
    """Non-square, so that a swapped H and W cannot pass."""
    return torch.randn(2, channels, height, width, generator=torch.Generator().manual_seed(seed))


def randomise(module: nn.Module, seed: int = 0) -> None:
    """Random weights of order one in every parameter and float buffer (zero-initialised output
    projections would otherwise hide everything behind the residual)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            for name, t in list(m.named_parameters(recurse=False)) + list(m.named_buffers(recurse=False)):
                if not t.is_floating_point() or name == "projection":  # FAVOR+'s ω has its own law
                    continue
                if isinstance(m, nn.BatchNorm2d) and name in ("weight", "running_var"):
                    t.copy_(torch.rand(t.shape, generator=g) + 0.5)
                elif t.dim() > 1:
                    t.copy_(torch.randn(t.shape, generator=g) / math.sqrt(t[0].numel()))
                else:
                    t.copy_(torch.randn(t.shape, generator=g) * 0.5)


def softmax_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Exact scaled dot-product attention, the n x n map explicit."""
    return torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1) @ v


def assert_close(ours: torch.Tensor, expected: torch.Tensor, **tol) -> None:
    torch.testing.assert_close(ours, expected, **({"rtol": 1e-4, "atol": 1e-5} | tol))


# --------------------------------------------------------------------------------------------- channel gates


def test_se_is_the_papers_excitation():
    module = build_module("se", C).eval()
    randomise(module)
    fc1, fc2 = module.excite[0], module.excite[2]
    assert fc1.out_features == C // 16, "SE's bottleneck is C / 16"
    x = inputs()
    with torch.no_grad():
        z = x.sum(dim=(2, 3)) / (x.shape[2] * x.shape[3])  # Eq. 2, the squeeze
        s = torch.sigmoid(fc2.weight @ torch.relu(fc1.weight @ z.T + fc1.bias[:, None]) + fc2.bias[:, None])  # Eq. 3
        expected = torch.stack([x[b] * s[:, b, None, None] for b in range(x.shape[0])])  # Eq. 4
        assert_close(module(x), expected)


@pytest.mark.parametrize(
    "channels, k",
    # t = (log2 C + 1) / 2 by hand: 2 -> 1, 8 -> 2, 64 -> 3.5, 128 -> 4, 256 -> 4.5, 1024 -> 5.5, 2048 -> 6
    [(2, 1), (8, 3), (32, 3), (64, 3), (128, 5), (256, 5), (512, 5), (1024, 5), (2048, 7)],
)
def test_eca_kernel_size_from_the_width(channels, k):
    assert eca_kernel_size(channels) == k
    assert build_module("eca", channels).conv.kernel_size == (k,)


@pytest.mark.parametrize("channels", [3, 24, 100, 384, 777, 4096])
def test_eca_kernel_size_is_the_nearest_odd_number(channels):
    t = math.log2(channels) / 2 + 1 / 2
    nearest = min(range(1, 99, 2), key=lambda odd: (abs(odd - t), -odd))  # ties to the larger one
    assert eca_kernel_size(channels) == nearest


def test_eca_is_a_local_cross_channel_convolution():
    module = build_module("eca", 64).eval()  # k = 3
    randomise(module)
    w = module.conv.weight[0, 0]
    x = inputs(channels=64)
    with torch.no_grad():
        y = x.mean(dim=(2, 3))  # (B, C)
        padded = nn.functional.pad(y, (1, 1))  # zeros beyond the first and last channel
        # ω_c = σ(Σ_j w_j y_{c + j - 1}): channel c sees channels c-1, c, c+1 only
        omega = torch.sigmoid(sum(w[j] * padded[:, j : j + 64] for j in range(3)))
        assert_close(module(x), x * omega[:, :, None, None])


def test_cbam_is_channel_then_spatial_attention():
    module = build_module("cbam", C).eval()
    randomise(module)
    x = inputs()
    B, _, H, W = x.shape
    with torch.no_grad():
        mlp = lambda f: module.mlp[2](torch.relu(module.mlp[0](f)))  # noqa: E731  (W_1 δ(W_0 f))
        m_c = torch.sigmoid(mlp(x.mean(dim=(2, 3))) + mlp(x.flatten(2).max(dim=2).values))  # Eq. 2
        refined = x * m_c[:, :, None, None]
        pooled = torch.stack([refined.mean(dim=1), refined.max(dim=1).values], dim=1)  # [avg; max]: (B, 2, H, W)
        padded = nn.functional.pad(pooled, (3, 3, 3, 3))
        kernel, bias = module.spatial.weight[0], module.spatial.bias[0]  # (2, 7, 7)
        m_s = torch.empty(B, H, W)
        for b, i, j in product(range(B), range(H), range(W)):  # f^{7x7}, window by window (Eq. 3)
            m_s[b, i, j] = torch.sigmoid((padded[b, :, i : i + 7, j : j + 7] * kernel).sum() + bias)
        assert_close(module(x), refined * m_s[:, None])


# --------------------------------------------------------------------------------------------- axial


def explicit_line_attention(q, k, v, heads: int) -> torch.Tensor:
    """Multi-head softmax attention over the positions of one line: q, k, v (d, L) -> (d, L)."""
    e = q.shape[0] // heads
    out = torch.empty_like(v)
    for h in range(heads):
        ch = slice(h * e, (h + 1) * e)
        weights = torch.softmax(q[ch].T @ k[ch] / math.sqrt(e), dim=-1)  # (L, L)
        out[ch] = (weights @ v[ch].T).T
    return out


def explicit_axial_layer(layer: nn.Module, x: torch.Tensor, along_rows: bool) -> torch.Tensor:
    d = layer.qkv.out_channels // 3
    q, k, v = layer.qkv(x).split(d, dim=1)
    B, _, H, W = q.shape
    out = torch.empty(B, d, H, W)
    for b in range(B):
        if along_rows:
            for i in range(H):
                out[b, :, i, :] = explicit_line_attention(q[b, :, i, :], k[b, :, i, :], v[b, :, i, :], layer.heads)
        else:
            for j in range(W):
                out[b, :, :, j] = explicit_line_attention(q[b, :, :, j], k[b, :, :, j], v[b, :, :, j], layer.heads)
    return out


def test_axial_is_row_then_column_attention():
    module = build_module("axial", C, heads=4).eval()
    randomise(module)
    x = inputs()
    with torch.no_grad():
        rows = explicit_axial_layer(module.rows, x, along_rows=True)
        columns = explicit_axial_layer(module.columns, rows, along_rows=False)
        assert_close(module(x), x + module.out(columns))


def test_axial_reaches_the_whole_image_in_two_layers():
    module = build_module("axial", C).eval()
    randomise(module)
    x = inputs(height=6, width=8).requires_grad_()
    module.rows(x)[0, :, 0, 0].sum().backward()
    reach = x.grad[0].abs().sum(dim=0)
    assert (reach[0] > 0).all() and (reach[1:] == 0).all(), "the row layer sees exactly its row"

    x.grad = None
    (module(x) - x)[0, :, 0, 0].sum().backward()
    assert (x.grad[0].abs().sum(dim=0) > 0).all(), "rows then columns see every pixel"
    assert x.grad[1].abs().sum() == 0, "nothing crosses between images"


# --------------------------------------------------------------------------------------------- Performer


def test_orthogonal_features_are_orthogonal_gaussian_rows():
    torch.manual_seed(0)
    w = orthogonal_gaussian(20, 8)  # blocks of 8, 8 and 4 rows
    for block in (w[:8], w[8:16], w[16:]):
        gram = block @ block.T
        assert_close(gram, torch.diag(torch.diagonal(gram)), atol=1e-4, rtol=0)
    torch.manual_seed(1)
    lengths = orthogonal_gaussian(4096, 8).pow(2).sum(dim=1)  # χ²(8): mean 8, standard deviation 4
    assert abs(float(lengths.mean()) - 8) < 5 * 4 / math.sqrt(4096)


def favor_error(features: int, seeds: int = 5) -> float:
    """Mean absolute error of FAVOR+ against exact softmax attention, averaged over draws of ω."""
    g = torch.Generator().manual_seed(0)
    q, k = 0.5 * torch.randn(2, 16, 8, generator=g), 0.5 * torch.randn(2, 16, 8, generator=g)
    v = torch.randn(2, 16, 8, generator=g)
    exact = softmax_attention(q, k, v)
    errors = []
    for seed in range(seeds):
        torch.manual_seed(100 + seed)
        errors.append(float((favor_attention(q, k, v, orthogonal_gaussian(features, 8), eps=0.0) - exact).abs().mean()))
    return sum(errors) / seeds


def test_favor_converges_to_softmax_attention():
    """The estimator is unbiased with variance ~ 1/m: the error falls like 1/√m, 23x from m = 64
    to m = 32768. Asserted with slack: at least 6x, and under 1 % of the output's scale (0.27)."""
    coarse, fine = favor_error(64), favor_error(32768)
    assert fine < 0.01 and fine < coarse / 6, (coarse, fine)


def test_performer_features_follow_the_width_rule():
    assert build_module("performer", 128).projection.shape == (int(64 * math.log(64)), 64)  # e = 64: 266
    assert build_module("performer", 128, heads=4).projection.shape == (int(16 * math.log(16)), 16)
    assert build_module("performer", 128, features=32).projection.shape == (32, 64)


def test_performer_redraws_in_training_only():
    torch.manual_seed(0)
    module = build_module("performer", C)
    x = inputs()
    drawn = module.projection.clone()
    module.eval()
    with torch.no_grad():
        first = module(x)
        assert torch.equal(module(x), first) and torch.equal(module.projection, drawn), "eval never redraws"
        module.train()
        module(x)
        assert not torch.equal(module.projection, drawn), "a training forward redraws ω"
        frozen = build_module("performer", C, redraw=False).train()
        kept = frozen.projection.clone()
        frozen(x)
        assert torch.equal(frozen.projection, kept)


def test_performer_block_approximates_the_softmax_block():
    torch.manual_seed(0)
    module = build_module("performer", 16, features=32768, stabiliser=0.0).eval()  # d = e = 8, unbiased
    randomise(module)
    x = 0.5 * inputs(channels=16, height=4, width=5)
    with torch.no_grad():
        q, k, v = module.qkv(x)
        exact = x + module.out(module.qkv.merge(softmax_attention(q, k, v), 4, 5))
        error = (module(x) - exact).abs().max() / (exact - x).abs().max()
        assert error < 0.05, float(error)


# --------------------------------------------------------------------------------------------- Nyströmformer


def test_segment_means_partition_the_rows():
    x = torch.randn(3, 23, 4, generator=torch.Generator().manual_seed(0))
    means = segment_means(x, 5)  # runs of 5, 5, 5, 4, 4 rows
    bounds = [0, 5, 10, 15, 19, 23]
    expected = torch.stack([x[:, a:b].mean(dim=1) for a, b in zip(bounds, bounds[1:])], dim=1)
    assert_close(means, expected)
    assert_close(segment_means(x[:, :20], 5), x[:, :20].reshape(3, 5, 4, 4).mean(dim=2))  # the paper's case
    assert torch.equal(segment_means(x, 23), x)


def test_iterative_pinv_converges_to_the_pseudo_inverse():
    g = torch.Generator().manual_seed(0)
    a = torch.softmax(torch.randn(2, 12, 12, generator=g) * 2, dim=-1)
    exact = torch.linalg.pinv(a)
    coarse, fine = iterative_pinv(a, 6), iterative_pinv(a, 30)
    relative = lambda z: float((z - exact).norm() / exact.norm())  # noqa: E731
    assert relative(fine) < 1e-4 and relative(fine) < relative(coarse)
    assert_close(a @ fine @ a, a, atol=1e-5, rtol=1e-4)  # the first Penrose condition


def test_nystrom_is_exact_with_a_landmark_per_position():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 24, 8, generator=g) for _ in range(3))
    # m = n: q̃ = q, k̃ = k, so F̃ Ã⁺ B̃ = A A⁺ A = A, up to the iterative pseudo-inverse.
    exact = softmax_attention(q, k, v)
    assert_close(nystrom_attention(q, k, v, landmarks=24, iterations=30), exact, atol=1e-4, rtol=1e-3)
    assert_close(nystrom_attention(q, k, v, landmarks=99, iterations=30), exact, atol=1e-4, rtol=1e-3)  # m capped at n


def test_nystrom_is_the_papers_three_kernels():
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 24, 8, generator=g) for _ in range(3))
    scale = 8**-0.5
    q_l, k_l = q.reshape(2, 6, 4, 8).mean(dim=2), k.reshape(2, 6, 4, 8).mean(dim=2)  # m = 6 segments of 4
    f = torch.softmax(q @ k_l.transpose(1, 2) * scale, dim=-1)
    a = torch.softmax(q_l @ k_l.transpose(1, 2) * scale, dim=-1)
    b = torch.softmax(q_l @ k.transpose(1, 2) * scale, dim=-1)
    expected = f @ torch.linalg.pinv(a) @ b @ v
    assert_close(nystrom_attention(q, k, v, landmarks=6, iterations=30), expected, atol=1e-4, rtol=1e-3)


def test_nystromformer_block_with_n_landmarks_is_the_softmax_block():
    module = build_module("nystromformer", 16, heads=2, landmarks=64, pinv_iterations=60).eval()
    randomise(module)
    # In float64: Ã is then the whole 20 x 20 attention map, here conditioned ~1e5, too badly
    # for float32 iterations to invert it to the tolerance below.
    module.double()
    x = inputs(channels=16, height=4, width=5).double()  # n = 20 < 64 landmarks: m = n
    with torch.no_grad():
        q, k, v = module.qkv(x)
        exact = x + module.out(module.qkv.merge(softmax_attention(q, k, v), 4, 5))
        assert_close(module(x), exact, atol=1e-8, rtol=1e-6)


# --------------------------------------------------------------------------------------------- external attention


def test_double_normalisation():
    logits = torch.randn(2, 5, 30, generator=torch.Generator().manual_seed(0))  # (B, S, n)
    attention = double_normalise(logits, eps=0.0)
    # α̂ = exp(α̃) / Σ over pixels of exp(α̃), for each memory unit
    softmax_over_pixels = logits.exp() / logits.exp().sum(dim=2, keepdim=True)
    assert_close(attention, softmax_over_pixels / softmax_over_pixels.sum(dim=1, keepdim=True))
    assert_close(attention.sum(dim=1), torch.ones(2, 30))  # each pixel: an l1-normalised weighting of the S units
    assert not torch.allclose(attention.sum(dim=2), torch.ones(2, 5))  # but no longer a softmax over pixels


def test_external_attention_is_two_linear_layers_over_memories():
    module = build_module("external-attention", C, memory=6).eval()
    randomise(module)
    x = inputs()
    B, _, H, W = x.shape
    with torch.no_grad():
        f = module.proj_in(x).flatten(2).transpose(1, 2)  # F: (B, n, C)
        logits = f @ module.memory_key.T  # F M_kᵀ: (B, n, S)
        a = logits.softmax(dim=1)  # over the pixels
        a = a / a.sum(dim=2, keepdim=True)  # over the memory units
        out = (a @ module.memory_value).transpose(1, 2).reshape(B, C, H, W)  # A M_v
        assert_close(module(x), torch.relu(x + module.proj_out(out)))


# --------------------------------------------------------------------------------------------- double attention


def test_double_attention_gathers_then_distributes():
    module = build_module("double-attention", C).eval()
    randomise(module)
    assert (module.width, module.descriptors) == (C // 4, C // 4)
    x = inputs()
    B, _, H, W = x.shape
    with torch.no_grad():
        a = module.features(x).flatten(2)  # (B, c_m, n)
        b = module.gather_maps(x).flatten(2)  # (B, c_n, n)
        v = module.distribute_maps(x).flatten(2)  # (B, c_n, n)
        z = torch.zeros(B, module.width, H * W)
        for batch in range(B):
            # Gathering (Eq. 4): g_i = Σ_j softmax_j(b_i)_j a_j, one global descriptor per attention map.
            g = [(a[batch] * torch.softmax(b[batch, i], dim=0)).sum(dim=1) for i in range(module.descriptors)]
            # Distribution (Eq. 5): z_j = Σ_i softmax_i(v_{:, j})_i g_i, each pixel choosing its mixture.
            for j in range(H * W):
                weights = torch.softmax(v[batch, :, j], dim=0)
                z[batch, :, j] = sum(weights[i] * g[i] for i in range(module.descriptors))
        assert_close(module(x), x + module.out(z.reshape(B, module.width, H, W)))


# --------------------------------------------------------------------------------------------- registration


@pytest.mark.parametrize("name", ["axial", "performer", "nystromformer", "double-attention"])
def test_residual_blocks_start_as_the_identity(name):
    module = build_module(name, C).eval()
    x = inputs()
    with torch.no_grad():
        assert torch.equal(module(x), x)
