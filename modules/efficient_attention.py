"""Attention without the n x n map: FAVOR+ (Performer), the Nyström approximation
(Nyströmformer), external attention (EANet) and double attention (A²-Net).

Performer and Nyströmformer approximate the non-local block's softmax attention and sit where
it sits: 1x1 projections to d = C // 2, the approximate attention, an output projection
(1x1 conv + BN, zero-initialised, so the block starts as the identity) and the residual, like
``linear-attention``. External and double attention are blocks of their own, built as their
papers (and EANet's official code) build them.

Each keeps every intermediate at most (n x m), m the number of random features, landmarks,
memory units or global descriptors: O(n) in the number of pixels n for a fixed m.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from hambench.modules.nonlocal_attn import output_projection
from hambench.registry import register_module


class HeadProjections(nn.Module):
    """Queries, keys and values by 1x1 convs C -> d, split into heads: each (B, heads, n, d / heads)."""

    def __init__(self, channels: int, reduction: int, heads: int, name: str) -> None:
        super().__init__()
        if reduction < 1:
            raise ValueError(f"{name}: reduction must be >= 1, got {reduction}")
        self.inner = max(channels // reduction, 1)
        if heads < 1 or self.inner % heads:
            raise ValueError(f"{name}: inner width {self.inner} is not divisible by heads={heads}")
        self.heads = heads
        self.query = nn.Conv2d(channels, self.inner, 1)
        self.key = nn.Conv2d(channels, self.inner, 1)
        self.value = nn.Conv2d(channels, self.inner, 1)

    def split(self, t: torch.Tensor) -> torch.Tensor:
        """(B, d, H, W) -> (B, heads, n, d / heads)."""
        return t.reshape(t.shape[0], self.heads, self.inner // self.heads, -1).transpose(2, 3)

    def merge(self, t: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """(B, heads, n, d / heads) -> (B, d, H, W)."""
        return t.transpose(2, 3).reshape(t.shape[0], self.inner, height, width)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.split(self.query(x)), self.split(self.key(x)), self.split(self.value(x))


def at_least_float32(*tensors: torch.Tensor) -> list[torch.Tensor]:
    """fp16 and bf16 up to float32; float32 and float64 as they are."""
    return [t.float() if t.dtype in (torch.float16, torch.bfloat16) else t for t in tensors]


# ------------------------------------------------------------------------------------- Performer


def orthogonal_gaussian(features: int, dim: int, device: torch.device | None = None) -> torch.Tensor:
    """The FAVOR+ projection ω (features, dim), from the global RNG of ``device``.

    Rows come in blocks of ``dim`` exactly orthogonal directions (Q of the QR decomposition of a
    Gaussian matrix, signs fixed so that Q is Haar-distributed); each row is then given the
    length of an independent Gaussian vector, so that every row is marginally N(0, I) and the
    estimate stays unbiased (the official code's ``ortho_scaling=0``; its ``ortho_scaling=1``,
    every length √dim, is not used).
    """
    blocks = []
    for _ in range(math.ceil(features / dim)):
        q, r = torch.linalg.qr(torch.randn(dim, dim, device=device))
        blocks.append((q * torch.sign(torch.diagonal(r))).T)  # rows orthonormal
    directions = torch.cat(blocks)[:features]
    lengths = torch.randn(features, dim, device=device).norm(dim=1, keepdim=True)
    return directions * lengths


def positive_random_features(
    x: torch.Tensor, projection: torch.Tensor, is_query: bool, stabiliser: float = 0.0
) -> torch.Tensor:
    """φ(x) = (exp(ωᵀx - ‖x‖² / 2 - M) + ε) / √m for every row of x (..., n, e): (..., n, m), all positive.

    With ε = ``stabiliser`` = 0 this is the paper's estimator: E[φ(q)ᵀφ(k)] = exp(qᵀk) up to the
    constant factor e^(-M_q - M_k), where M is a shift that keeps exp from overflowing, the
    maximum of the exponent per query (it cancels in that query's normalisation) and, for keys,
    per matrix (it cancels between numerator and denominator).

    With ε > 0 it is the features of the authors' code and performer-pytorch: M is the maximum of
    ωᵀx alone (per query; per matrix for keys) and ε is added after exp. ε no longer cancels: in
    the original units it is ε·e^M, which grows with the largest projection; see
    :func:`favor_attention` for what that does to the estimate.
    """
    projected = x @ projection.T
    exponent = projected - x.pow(2).sum(dim=-1, keepdim=True) / 2
    shifted = projected if stabiliser else exponent  # the official code shifts by max ωᵀx
    shift = shifted.amax(dim=-1, keepdim=True) if is_query else shifted.amax(dim=(-2, -1), keepdim=True)
    features = torch.exp(exponent - shift.detach())
    if stabiliser:
        features = features + stabiliser
    return features / math.sqrt(projection.shape[0])


def favor_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    projection: torch.Tensor,
    eps: float = 1e-6,
    stabiliser: float = 0.0,
) -> torch.Tensor:
    """FAVOR+ estimate of softmax(qkᵀ / √e) v, right to left: D⁻¹ φ(q) (φ(k)ᵀ v), O(n m e).

    q, k, v: (..., n, e); projection: (m, e). Scaling q and k by e^(-1/4) each gives qᵀk / √e.

    ``stabiliser`` ε (the features' additive constant, :func:`positive_random_features`):

    - ε = 0, **unbiased** (the paper's Lemma 1): the kernel estimate φ(q)ᵀφ(k) is unbiased, but
      each feature is log-normal with log-variance ‖q‖²/√e, so at unit-scale queries and keys
      (‖q‖² ≈ e) its variance is e^(√e) - 1 (≈ 290 at e = 32): a few features dominate, the
      normaliser D is a ratio of noisy sums, and the output is biased and very noisy in practice.
    - ε > 0, **stabilised** (the authors' code: ε = 1e-6 in its ``make_fast_softmax_attention``,
      1e-4 in its feature function and in performer-pytorch): in expectation over ω each kernel
      value gains c_q = ε(e^{M_k} + e^{M_q}) + ε² e^{M_q + M_k}, the same for every key of a
      query, so the attention is mixed with the uniform average of the values:
      A_stab ≈ (1 - β_q) A + β_q / n, β_q = n c_q / (Σ_j exp(qᵀk_j/√e) + n c_q). Biased toward the
      mean of V, the more so the larger the projections (M grows with ‖q‖, ‖k‖ and, slowly, with
      m and n), and not consistent: as m grows its error falls to the bias, not to zero. Its
      variance is bounded by the floor ε puts under every weight.

    Relative error ‖ŷ - y‖ / ‖y‖ against exact attention, q, k, v ~ N(0, I) at e = 32, range over
    5 draws of q, k, v and ω (float64; "mean of V", ŷ = mean_j v_j at every query, for reference):

    ========  ====  ====  =============  =============  =============  =============
    q, k      n     m     ε = 0          ε = 1e-6       ε = 1e-4       mean of V
    ========  ====  ====  =============  =============  =============  =============
    0.5       1024  110   0.249 - 0.378  0.249 - 0.378  0.243 - 0.363  0.181 - 0.253
    0.5       1024  1024  0.090 - 0.151  0.090 - 0.151  0.085 - 0.143  0.181 - 0.253
    0.5       1024  8192  0.035 - 0.050  0.035 - 0.050  0.043 - 0.054  0.181 - 0.253
    1         1024  110   2.195 - 3.411  2.053 - 2.971  0.836 - 0.939  0.688 - 0.811
    1         1024  1024  1.483 - 2.200  0.887 - 1.458  0.679 - 0.806  0.688 - 0.811
    1         1024  8192  1.567 - 1.894  0.865 - 0.905  0.688 - 0.807  0.688 - 0.811
    1         4096  110   2.884 - 3.246  2.439 - 2.932  0.809 - 0.871  0.808 - 0.836
    1         4096  1024  2.190 - 2.902  1.338 - 1.703  0.800 - 0.828  0.808 - 0.836
    ========  ====  ====  =============  =============  =============  =============

    At scale 0.5 every ε estimates the attention (the error falls with m; ε = 1e-4 levels off
    at m = 8192, its bias). At unit scale none does: the unbiased estimate is 1.5-3.4 times
    worse than returning zeros (error 1), ε = 1e-6 up to 3 times; ε = 1e-4 is about the mean of V.
    """
    scale = q.shape[-1] ** -0.25
    q_features = positive_random_features(q * scale, projection, is_query=True, stabiliser=stabiliser)  # (..., n, m)
    k_features = positive_random_features(k * scale, projection, is_query=False, stabiliser=stabiliser)  # (..., n, m)
    memory = k_features.transpose(-2, -1) @ v  # Σ_j φ(k_j) v_jᵀ: (..., m, e)
    normaliser = q_features @ k_features.sum(dim=-2, keepdim=True).transpose(-2, -1)  # (..., n, 1)
    return (q_features @ memory) / (normaliser + eps)


@register_module(
    "performer",
    family="attention",
    paper="Choromanski et al., ICLR 2021 (Performer, FAVOR+ positive orthogonal random features)",
    complexity="O(n)",
)
class Performer(nn.Module):
    """FAVOR+ attention in a non-local-style residual block.

    The projection ω is a buffer (saved with the weights), drawn at construction from the global
    torch RNG. With ``redraw=True`` (the official code's default, ``redraw_features=True``) it is
    redrawn at every training-mode forward; eval mode never redraws, so inference is
    deterministic and a loaded checkpoint reproduces its outputs.

    Args:
        channels: input and output width C.
        reduction: inner width d = C // reduction, split over the heads.
        heads: attention heads (1: one d-wide head, like the non-local block).
        features: m random features per head; None: the width rule m = ⌊e ln e⌋ for head width
            e = d / heads (the paper's m = Θ(e log e); 266 at e = 64, where the official code's
            default is 256).
        redraw: redraw ω at every training forward; False: keep the features drawn at construction.
        norm: BatchNorm after the output projection.
        eps: keeps the normaliser away from zero.
        stabiliser: ε added to every random feature (:func:`favor_attention`): 1e-4, the stabilised
            estimator of the authors' code and performer-pytorch (biased toward the mean of the
            values, bounded error); 0.0, the paper's unbiased estimator (its error exceeds that
            of returning zeros at unit-scale queries and keys).
    """

    projection: torch.Tensor  # buffer ω (features, head_dim), registered in __init__

    def __init__(
        self,
        channels: int,
        reduction: int = 2,
        heads: int = 1,
        features: int | None = None,
        redraw: bool = True,
        norm: bool = True,
        eps: float = 1e-6,
        stabiliser: float = 1e-4,
    ) -> None:
        super().__init__()
        self.qkv = HeadProjections(channels, reduction, heads, "performer")
        head_dim = self.qkv.inner // heads
        self.features = features if features is not None else max(int(head_dim * math.log(head_dim)), 1)
        if self.features < 1:
            raise ValueError(f"performer: features must be >= 1, got {features}")
        if stabiliser < 0:
            raise ValueError(f"performer: stabiliser must be >= 0, got {stabiliser}")
        self.redraw = redraw
        self.eps = eps
        self.stabiliser = stabiliser
        self.register_buffer("projection", orthogonal_gaussian(self.features, head_dim))
        self.out = output_projection(self.qkv.inner, channels, norm)

    @torch.no_grad()
    def redraw_features(self) -> None:
        """A fresh ω from the global RNG of the buffer's device, in place (the buffer stays registered)."""
        features, dim = self.projection.shape
        self.projection.copy_(orthogonal_gaussian(features, dim, device=self.projection.device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.redraw:
            self.redraw_features()
        _, _, H, W = x.shape
        q, k, v = self.qkv(x)
        # In float32: exp of the feature exponents loses too much in bf16, and overflows in fp16.
        with torch.autocast(x.device.type, enabled=False):
            q, k, v = at_least_float32(q, k, v)
            y = favor_attention(q, k, v, self.projection.to(q.dtype), self.eps, self.stabiliser)
        return x + self.out(self.qkv.merge(y.to(x.dtype), H, W))


# ------------------------------------------------------------------------------------- Nyströmformer


def segment_means(x: torch.Tensor, segments: int) -> torch.Tensor:
    """Means of ``segments`` contiguous runs of the rows of x (..., n, e): (..., segments, e).

    When ``segments`` divides n these are the paper's landmarks (runs of n / m rows). Otherwise the
    first n mod m runs take one row more than the others, so that every row is used once.
    """
    n = int(x.shape[-2])  # an int even under jit tracing (the profilers trace)
    size, longer = divmod(n, segments)
    split = longer * (size + 1)
    head = x[..., :split, :].unflatten(-2, (longer, size + 1)).mean(dim=-2)
    tail = x[..., split:, :].unflatten(-2, (segments - longer, size)).mean(dim=-2)
    return torch.cat([head, tail], dim=-2)


def iterative_pinv(a: torch.Tensor, iterations: int = 6) -> torch.Tensor:
    """Moore-Penrose pseudo-inverse of each (m, m) matrix in a, by the paper's iteration (Eq. 15):

        Z_0 = Aᵀ / (‖A‖_1 ‖A‖_∞),   Z_{j+1} = ¼ Z_j (13 I - A Z_j (15 I - A Z_j (7 I - A Z_j)))

    The norms are each matrix's own (the official code's ``init_option="original"`` takes the
    maximum over the whole batch, which makes one image's output depend on the others in it).
    """
    identity = torch.eye(a.shape[-1], device=a.device, dtype=a.dtype)
    max_column_sum = a.abs().sum(dim=-2).amax(dim=-1)  # ‖A‖_1
    max_row_sum = a.abs().sum(dim=-1).amax(dim=-1)  # ‖A‖_∞
    z = a.transpose(-2, -1) / (max_column_sum * max_row_sum)[..., None, None]
    for _ in range(iterations):
        az = a @ z
        z = 0.25 * z @ (13 * identity - az @ (15 * identity - az @ (7 * identity - az)))
    return z


def nystrom_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, landmarks: int, iterations: int = 6
) -> torch.Tensor:
    """Nyström estimate of softmax(qkᵀ / √e) v (Eq. 14), right to left, O(n m e):

        softmax(q k̃ᵀ / √e) · pinv(softmax(q̃ k̃ᵀ / √e)) · (softmax(q̃ kᵀ / √e) v)

    q̃, k̃: segment means of q and k (m = min(landmarks, n) of them). q, k, v: (..., n, e).
    """
    m = min(landmarks, int(q.shape[-2]))
    q = q * q.shape[-1] ** -0.5
    q_landmarks, k_landmarks = segment_means(q, m), segment_means(k, m)
    kernel_left = (q @ k_landmarks.transpose(-2, -1)).softmax(dim=-1)  # F̃: (..., n, m)
    kernel_middle = (q_landmarks @ k_landmarks.transpose(-2, -1)).softmax(dim=-1)  # Ã: (..., m, m)
    kernel_right = (q_landmarks @ k.transpose(-2, -1)).softmax(dim=-1)  # B̃: (..., m, n)
    return kernel_left @ (iterative_pinv(kernel_middle, iterations) @ (kernel_right @ v))


@register_module(
    "nystromformer",
    family="attention",
    paper="Xiong et al., AAAI 2021 (Nyströmformer, segment-mean landmarks, iterative pseudo-inverse)",
    complexity="O(n)",
)
class Nystromformer(nn.Module):
    """Nyström-approximated softmax attention in a non-local-style residual block.

    Landmarks are means of contiguous segments of the pixels in raster order (runs of rows of
    the image). With as many landmarks as pixels the approximation is exact up to the iterative
    pseudo-inverse: Ã is then the attention matrix A itself and A A⁺ A = A.

    Args:
        channels: input and output width C.
        reduction: inner width d = C // reduction, split over the heads.
        heads: attention heads (1: one d-wide head, like the non-local block).
        landmarks: m, the number of landmarks (64 in the paper); capped at n.
        pinv_iterations: iterations of the pseudo-inverse (6 in the paper).
        norm: BatchNorm after the output projection.
    """

    def __init__(
        self,
        channels: int,
        reduction: int = 2,
        heads: int = 1,
        landmarks: int = 64,
        pinv_iterations: int = 6,
        norm: bool = True,
    ) -> None:
        super().__init__()
        if landmarks < 1:
            raise ValueError(f"nystromformer: landmarks must be >= 1, got {landmarks}")
        if pinv_iterations < 1:
            raise ValueError(f"nystromformer: pinv_iterations must be >= 1, got {pinv_iterations}")
        self.qkv = HeadProjections(channels, reduction, heads, "nystromformer")
        self.landmarks = landmarks
        self.pinv_iterations = pinv_iterations
        self.out = output_projection(self.qkv.inner, channels, norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, _, H, W = x.shape
        q, k, v = self.qkv(x)
        # In float32: the pseudo-inverse iteration multiplies (m x m) matrices six times over.
        with torch.autocast(x.device.type, enabled=False):
            q, k, v = at_least_float32(q, k, v)
            y = nystrom_attention(q, k, v, self.landmarks, self.pinv_iterations)
        return x + self.out(self.qkv.merge(y.to(x.dtype), H, W))


# ------------------------------------------------------------------------------------- external attention


def double_normalise(logits: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    """EANet's double normalisation of the (B, S, n) map F M_kᵀ (Eq. 5): a softmax over the n
    pixels for each memory unit, then an l1 normalisation over the S units at each pixel."""
    attention = logits.softmax(dim=-1)
    return attention / (eps + attention.sum(dim=1, keepdim=True))


@register_module(
    "external-attention",
    family="attention",
    paper="Guo et al., 2021 (external attention: two linear layers, memories M_k and M_v)",
    complexity="O(n)",
)
class ExternalAttention(nn.Module):
    """External attention with S learnt memory units shared by all images:

        A = DoubleNorm(F M_kᵀ)   (n x S),   F_out = A M_v   (n x C)

    As the official segmentation block (``External_attention`` in EANet's ``model_torch.py``):
    1x1 conv in, external attention, 1x1 conv + BN out, residual, ReLU: y = ReLU(x + BN(W F_out)).

    Args:
        channels: input and output width C.
        memory: S, the number of memory units (64 in the paper's segmentation model).
    """

    def __init__(self, channels: int, memory: int = 64) -> None:
        super().__init__()
        if memory < 1:
            raise ValueError(f"external-attention: memory must be >= 1, got {memory}")
        self.proj_in = nn.Conv2d(channels, channels, 1)
        self.memory_key = nn.Parameter(torch.empty(memory, channels))  # M_k: (S, C)
        self.memory_value = nn.Parameter(torch.empty(memory, channels))  # M_v: (S, C)
        conv_out = nn.Conv2d(channels, channels, 1, bias=False)
        self.proj_out = nn.Sequential(conv_out, nn.BatchNorm2d(channels))
        # The official init, N(0, 2 / fan_out) for every conv and memory; BN at the identity.
        for conv in (self.proj_in, conv_out):
            nn.init.normal_(conv.weight, std=math.sqrt(2.0 / channels))
        assert self.proj_in.bias is not None  # bias=True
        nn.init.zeros_(self.proj_in.bias)
        nn.init.normal_(self.memory_key, std=math.sqrt(2.0 / memory))
        nn.init.normal_(self.memory_value, std=math.sqrt(2.0 / channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        pixels = self.proj_in(x).flatten(2)  # F: (B, C, n)
        # In float32: a softmax over n = 128 x 128 pixels has entries near 1/n, which underflow
        # to 0 in fp16 at some pixels, and 0 / (0 + 1e-9) is NaN there (1e-9 is 0 in fp16).
        attention = double_normalise((self.memory_key @ pixels).float()).to(pixels.dtype)  # (B, S, n)
        y = (self.memory_value.T @ attention).reshape(B, C, H, W)  # (A M_v)ᵀ: (B, C, n)
        return F.relu(x + self.proj_out(y))


# ------------------------------------------------------------------------------------- double attention


@register_module(
    "double-attention",
    family="attention",
    paper="Chen et al., NeurIPS 2018 (A²-Nets, double attention: gather then distribute)",
    complexity="O(n)",
)
class DoubleAttention(nn.Module):
    """Double attention block (Eq. 4-6): gather c_n global descriptors by second-order attention
    pooling, then distribute them to each pixel with a second attention over the descriptors:

        G = A softmax_n(B)ᵀ   (c_m x c_n),    Z = G softmax_c(V)   (c_m x n),   y = x + W Z

    A = φ(X) (c_m maps), B = θ(X) (c_n attention maps, each a softmax over the pixels),
    V = ρ(X) (c_n attention vectors, each pixel's a softmax over the descriptors), all 1x1 convs.
    W (1x1 conv c_m -> C) is zero-initialised, so the block starts as the identity.

    Args:
        channels: input and output width C.
        reduction: c_m = C // reduction, the width of each global descriptor.
        descriptors_reduction: c_n = C // descriptors_reduction, the number of global descriptors.
        norm: BatchNorm after W (the paper's block has none).
    """

    def __init__(self, channels: int, reduction: int = 4, descriptors_reduction: int = 4, norm: bool = False) -> None:
        super().__init__()
        if reduction < 1 or descriptors_reduction < 1:
            raise ValueError(
                f"double-attention: reduction and descriptors_reduction must be >= 1, "
                f"got {reduction} and {descriptors_reduction}"
            )
        self.width = max(channels // reduction, 1)  # c_m
        self.descriptors = max(channels // descriptors_reduction, 1)  # c_n
        self.features = nn.Conv2d(channels, self.width, 1)  # φ -> A
        self.gather_maps = nn.Conv2d(channels, self.descriptors, 1)  # θ -> B
        self.distribute_maps = nn.Conv2d(channels, self.descriptors, 1)  # ρ -> V
        self.out = output_projection(self.width, channels, norm)

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """G: (B, c_m, c_n), each descriptor a weighted sum of A's pixels, the weights summing to one."""
        features = self.features(x).flatten(2)  # A: (B, c_m, n)
        maps = self.gather_maps(x).flatten(2).softmax(dim=-1)  # softmax over pixels: (B, c_n, n)
        return features @ maps.transpose(1, 2)

    def distribute(self, descriptors: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Z: (B, c_m, n), at each pixel a convex combination of the descriptors."""
        vectors = self.distribute_maps(x).flatten(2).softmax(dim=1)  # softmax over descriptors: (B, c_n, n)
        return descriptors @ vectors

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, _, H, W = x.shape
        z = self.distribute(self.gather(x), x).reshape(B, self.width, H, W)
        return x + self.out(z)
