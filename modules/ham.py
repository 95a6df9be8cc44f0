"""Hamburger: global context by matrix decomposition (Geng et al., ICLR 2021).

"Is Attention Better Than Matrix Decomposition?" models global context as low-rank completion: unfold
the feature map into X (D x N), factorize X ~ D C with a few iterations of a classic optimizer and keep
the low-rank reconstruction. The iterations *are* the architecture (the "ham"), wrapped between two
linear "breads". Three decompositions:

- NMF, non-negative matrix factorization by multiplicative updates (Alg. 2);
- VQ, soft vector quantization, a soft k-means with cosine similarity (Alg. 1);
- CD, soft concept decomposition: spherical k-means bases, ridge-regression codes (Appendix B, Alg. 3).

Layout (as the official ham.py): x (B, D, N) with N = H*W pixels as columns, bases D (B, D, R) and
coefficients stored transposed, coef = C^T (B, N, R), so the reconstruction is D C = bases @ coef^T.

Gradient modes: ``"one-step"`` (the paper's default, Sec. 2.3) runs the K iterations without gradient;
the gradient flows only through the final coefficient update and the reconstruction, so training
memory is O(1) in K. ``"bptt"`` back-propagates through every iteration, as mmseg's ``LightHamHead``
(its ``NMF2D`` has no ``no_grad``) does.

Registered modules: ``ham-nmf``, ``ham-cd``, ``ham-vq`` (Hamburger V2), ``ham-nmf-v1`` (the paper's
block, = mmseg's ``Hamburger``) and ``ham-nmf-v2plus``: each is :class:`Hamburger` with its version and
decomposition fixed. The rank defaults to the paper's d = 8r, relative to the ham's width.
"""

from __future__ import annotations

import contextlib
import math
from collections import Counter
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode

from hambench.registry import DefaultRule, register_module

__all__ = [
    "nmf",
    "vq",
    "cd",
    "nmf_factors",
    "vq_factors",
    "cd_factors",
    "FACTORIZERS",
    "random_bases",
    "paper_rank",
    "soft_assignment",
    "SubnormalCounter",
    "MatrixDecomposition2d",
    "Hamburger",
    "HamNMF",
    "HamCD",
    "HamVQ",
    "HamNMFV1",
    "HamNMFV2Plus",
]

PAPER = "Geng et al., ICLR 2021"
GRAD_MODES = ("one-step", "bptt")
EPS = 1e-6  # the official code's epsilon in every denominator

# The paper's settings (the official settings.py and mmseg's ham_kwargs): the one home of each
# default, read by both MatrixDecomposition2d and Hamburger.
TRAIN_STEPS = 6  # K in training
EVAL_STEPS = 7  # K in evaluation: the official ham.py's default and mmseg's (the official settings.py sets 6)
DEFAULT_INV_T = {"nmf": 1.0, "vq": 100.0, "cd": 100.0}  # 1 / T of the soft assignments
BETA = 0.1  # CD's ridge coefficient
ETA = 0.9  # momentum of the learned bases' online update
D_PER_R = 8  # "We use d = 8r for Hamburger" (seg head: d = 512, r = 64)


def paper_rank(dim: int) -> int:
    """The paper's rank for a matrix dimension D: r = d / 8, at least 1."""
    return max(1, dim // D_PER_R)


# ---------------------------------------------------------------------------------------------------
# The decompositions, as functions of (x, initial bases). x (B, D, N), bases (B, D, R), coef (B, N, R).
# ---------------------------------------------------------------------------------------------------


def _iterations(grad: str) -> contextlib.AbstractContextManager:
    """The context the K iterations run in: no gradient for the one-step gradient, full for BPTT."""
    if grad not in GRAD_MODES:
        raise ValueError(f"grad must be one of {GRAD_MODES}, got {grad!r}")
    return torch.no_grad() if grad == "one-step" else contextlib.nullcontext()


def _check_factor_shapes(x: Tensor, bases: Tensor, steps: int) -> None:
    if x.dim() != 3 or bases.dim() != 3:
        raise ValueError(f"x must be (B, D, N) and bases (B, D, R); got {tuple(x.shape)} and {tuple(bases.shape)}")
    if x.shape[:2] != bases.shape[:2]:
        raise ValueError(f"x {tuple(x.shape)} and bases {tuple(bases.shape)} disagree on (B, D)")
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")


# --- No subnormal floats -------------------------------------------------------------------------
#
# With inv_t = 100 a cosine gap of 0.9 puts a logit 90 below its row's max: exp(-90) ~ 8e-40 is a
# subnormal fp32 (below tiny = 2^-126 ~ 1.2e-38), and many x86 CPUs take a slow microcode path for
# every operation that reads or writes one. The assignments of VQ and CD are full of them, and so
# are the bases' weights after the normalisation over N and the products in the next bmm.
#
# soft_assignment sets the logits more than t below their row's max to -inf, i.e. exact zeros, with
#     t = ln(1 / (tiny * 2^24 * R * (N + 1))),      (about 58 at R = 64, N = 4096, in fp32)
# and that settles every place a subnormal came from:
#   - a kept weight c = e^(z - max) / S, S <= R (the row sum), is >= e^-t / R;
#   - after the normalisation over N, w = c / (eps + sum_n c) with sum_n c <= N, it is
#     >= e^-t / (R (N + 1)) = 2^24 tiny: normal, with 2^24 to spare, so that the products w * x in
#     the bases update (and c * D in the reconstruction) stay normal for every |x| >= 2^-24 as well;
#   - what is dropped was below fp32's resolution: each dropped c < e^-t, so together they moved any
#     basis' normalised weights by at most N e^-t / eps (~2e-16 at R = 64, N = 4096; ~3e-14 at R = 512,
#     N = 128 x 128), far below the 2^-24 ~ 6e-8 that fp32 resolves; each row sum moved by < R e^-t.
#     On the inputs we compared, the outputs are bitwise those of the unguarded code (docs/zoo.md).
# The guard lies ~84 binary orders of magnitude below the row's max, so the assignments still tend
# to hard k-means as inv_t grows.
#
# NMF's initial assignment has inv_t = 1 (logit gaps of a few units, never near t). Its
# multiplicative updates keep a zero at zero and scale an entry by (D^T X) / (D^T D C + eps) each
# step; entries on their way to zero reach subnormals after 50 steps or more (none at K <= 20).
# _flush_to_zero sends an entry below the same 2^24 tiny to zero one step early: it contributes
# nothing fp32 can see to D C (features are O(1); at scales where it could, eps = 1e-6 in the
# denominators already dominates), and the products with it stay normal. CD's ridge codes are a
# linear solve against X, with no exponential to underflow. Under bf16 autocast the decomposition
# runs in fp32, and casting its output to bf16 (the same exponent range) makes no new subnormal.
# fp64 (the tests) gets its own tiny and resolution; any other dtype fp32's, whose small weights it
# could not hold anyway.


def _normal_floor(dtype: torch.dtype) -> float:
    """2^24 tiny in fp32 (2^53 tiny in fp64): the smallest weight kept, normal with room to spare
    for its products with any value down to the dtype's resolution."""
    info = torch.finfo(torch.float64 if dtype == torch.float64 else torch.float32)
    return info.tiny * 2.0 / info.eps


def _assignment_cutoff(pixels: int, rank: int, dtype: torch.dtype) -> float:
    """t: how far below its row's max a logit may lie and still get a nonzero weight (see above)."""
    return math.log(1.0 / (_normal_floor(dtype) * rank * (pixels + 1)))


def soft_assignment(logits: Tensor, dim: int = -1) -> Tensor:
    """softmax over R (dimension ``dim``) of logits (B, N, R) or (B, R, N), with the logits more
    than t below their pixel's max given an exact zero instead of a subnormal weight (the bound is
    explained above)."""
    rank = logits.shape[dim]
    cutoff = _assignment_cutoff(pixels=logits[0].numel() // rank, rank=rank, dtype=logits.dtype)
    row_max = logits.detach().amax(dim=dim, keepdim=True)
    return F.softmax(logits.masked_fill(logits < row_max - cutoff, float("-inf")), dim=dim)


# The codes' logits are computed as (B, R, N), N contiguous, and the softmax over R runs along dim 1:
# on a CPU a softmax over a last dimension of R = 8 is a slow short-row loop (0.63 ms at N = 4096 on
# one thread) and one over dim 1 vectorises along N (0.05 ms). The codes come out as the transposed
# view coef = C^T (B, N, R) that everything else reads.


def _flush_to_zero(factor: Tensor) -> Tensor:
    """A non-negative NMF factor with its entries below the normal floor set to exact zeros."""
    return factor.masked_fill(factor < _normal_floor(factor.dtype), 0.0)


def _softmax_coef(x: Tensor, bases: Tensor, inv_t: float) -> Tensor:
    """NMF's initial codes C = softmax(inv_t * X^T D) over R, as the official code (the paper's
    appendix describes it with cosine similarity: one spherical k-means assignment)."""
    return soft_assignment(inv_t * torch.bmm(bases.transpose(1, 2), x), dim=1).transpose(1, 2)  # (B, N, R)


def _column_squares(x: Tensor) -> Tensor:
    """Each pixel's sum of squares over the channels, (B, 1, N). torch's norm over a dimension that
    is not the last is a strided loop on a CPU (1.0 ms at D = 64, N = 4096 on one thread, against
    0.06 ms for this sum)."""
    return x.square().sum(dim=1, keepdim=True)


def _inverse_norms(squares: Tensor, eps: float = 1e-12) -> Tensor:
    """1 / max(||x||, eps) from the sums of squares: F.normalize's divisor. The clamp comes before
    the square root, so a zero pixel's gradient stays zero, as F.normalize's."""
    return squares.clamp_min(eps * eps).rsqrt()


def _cosine_coef(x: Tensor, inv_norms: Tensor, bases: Tensor, inv_t: float) -> Tensor:
    """C = softmax(cosine(D, X) / T) over R, the soft assignment of VQ and CD. ``inv_norms``
    (B, 1, N): 1 / ||x|| per pixel, applied to the (B, R, N) products d.x rather than to X itself:
    the same cosines, one pass over R x N instead of two over D x N (normalising X, and the final
    step's X / (eps + ||X||))."""
    unit_bases = F.normalize(bases, dim=1, eps=EPS)  # (B, D, R)
    logits = torch.bmm(inv_t * unit_bases.transpose(1, 2), x) * inv_norms  # (B, R, N); 1/T scales the small factor
    return soft_assignment(logits, dim=1).transpose(1, 2)  # (B, N, R)


# NMF (Alg. 2), multiplicative updates (Lee & Seung, 2001); each keeps the factors non-negative and
# does not increase ||X - DC||_F.


def _nmf_coef_update(x: Tensor, bases: Tensor, coef: Tensor) -> Tensor:
    """C_ij <- C_ij (D^T X)_ij / (D^T D C)_ij, on C (B, R, N) with N contiguous (a product with a
    long inner N runs 3-8x faster on a CPU than the same one written for C^T), returned as coef = C^T."""
    codes = coef.transpose(1, 2)  # C (B, R, N)
    numerator = torch.bmm(bases.transpose(1, 2), x)  # D^T X (B, R, N)
    denominator = torch.bmm(torch.bmm(bases.transpose(1, 2), bases), codes)  # (D^T D) C: (B, R, R) @ (B, R, N)
    return _flush_to_zero(codes * numerator / (denominator + EPS)).transpose(1, 2)


def _nmf_bases_update(x: Tensor, bases: Tensor, coef: Tensor) -> Tensor:
    """D_ij <- D_ij (X C^T)_ij / (D C C^T)_ij."""
    numerator = torch.bmm(x, coef)  # (B, D, R)
    denominator = torch.bmm(bases, torch.bmm(coef.transpose(1, 2), coef))  # (B, D, R) @ (B, R, R)
    return _flush_to_zero(bases * numerator / (denominator + EPS))


def nmf_factors(
    x: Tensor, bases: Tensor, steps: int, inv_t: float = 1.0, *, grad: str = "one-step"
) -> tuple[Tensor, Tensor]:
    """NMF by multiplicative updates. x (B, D, N) and bases (B, D, R) non-negative.

    Returns (bases (B, D, R), coef (B, N, R)) after ``steps`` iterations and the final code update.
    """
    _check_factor_shapes(x, bases, steps)
    with _iterations(grad):
        coef = _softmax_coef(x, bases, inv_t)  # inv_t = 1 keeps C away from 0, where MU would stall
        for _ in range(steps):
            coef = _nmf_coef_update(x, bases, coef)
            bases = _nmf_bases_update(x, bases, coef)
    coef = _nmf_coef_update(x, bases, coef)  # the one step the gradient goes through
    return bases, coef


# VQ (Alg. 1): soft k-means. C <- softmax(cosine(D, X) / T); D <- X C^T diag(C 1_n)^-1.
# (VQ and CD recompute C from D alone, so no initial C is needed.)


def _vq_bases_update(x: Tensor, coef: Tensor) -> Tensor:
    """D <- X C^T diag(C 1_n)^-1: each basis is the soft mean of the pixels assigned to it. The
    weights' normalisation over N is applied to the product, (X C^T) diag(...)^-1: the same
    numbers, one (B, D, R) division instead of one over every code."""
    return torch.bmm(x, coef) / (EPS + coef.sum(dim=1, keepdim=True))  # (B, D, N) @ (B, N, R) -> (B, D, R)


def _vq_final_coef(x: Tensor, squares: Tensor, bases: Tensor, inv_t: float) -> Tensor:
    """The last soft assignment. As the official code, ||x|| (B, 1, N) is a constant in the backward
    pass, and x is divided by eps + ||x||."""
    return _cosine_coef(x, 1.0 / (EPS + squares.detach().sqrt()), bases, inv_t)  # (B, N, R)


def vq_factors(
    x: Tensor, bases: Tensor, steps: int, inv_t: float = 100.0, *, grad: str = "one-step"
) -> tuple[Tensor, Tensor]:
    """Soft VQ with temperature T = 1 / inv_t; T -> 0 (inv_t -> inf) gives k-means' hard assignment.

    Returns (bases (B, D, R), coef (B, N, R)).
    """
    _check_factor_shapes(x, bases, steps)
    squares = _column_squares(x)  # (B, 1, N), once for the iterations and the final step
    with _iterations(grad):
        inv_norms = _inverse_norms(squares)
        for _ in range(steps):
            coef = _cosine_coef(x, inv_norms, bases, inv_t)
            bases = _vq_bases_update(x, coef)
    return bases, _vq_final_coef(x, squares, bases, inv_t)


# CD (Appendix B, Alg. 3): spherical k-means for D, then ridge regression for C.


def _cd_bases_update(x: Tensor, coef: Tensor) -> Tensor:
    """D <- normalize(X C^T): spherical k-means keeps unit-norm bases."""
    return F.normalize(_vq_bases_update(x, coef), dim=1, eps=EPS)


def _ridge_coef(x: Tensor, bases: Tensor, beta: float) -> Tensor:
    """C = (D^T D + beta I)^-1 D^T X, solved (never inverted) and returned as coef = C^T (B, N, R)."""
    rank = bases.shape[-1]
    gram = torch.bmm(bases.transpose(1, 2), bases)  # (B, R, R)
    regularized = gram + beta * torch.eye(rank, dtype=gram.dtype, device=gram.device)
    return torch.linalg.solve(regularized, torch.bmm(bases.transpose(1, 2), x)).transpose(1, 2)


def cd_factors(
    x: Tensor, bases: Tensor, steps: int, inv_t: float = 100.0, beta: float = 0.1, *, grad: str = "one-step"
) -> tuple[Tensor, Tensor]:
    """Soft concept decomposition. bases (B, D, R) should have unit columns (the module's init does).

    Returns (bases (B, D, R), coef (B, N, R)).
    """
    _check_factor_shapes(x, bases, steps)
    if beta <= 0:
        raise ValueError(f"beta must be > 0 (it makes D^T D + beta I positive definite), got {beta}")
    with _iterations(grad):
        inv_norms = _inverse_norms(_column_squares(x))  # (B, 1, N)
        for _ in range(steps):
            coef = _cosine_coef(x, inv_norms, bases, inv_t)
            bases = _cd_bases_update(x, coef)
    return bases, _ridge_coef(x, bases, beta)


def _reconstruct(bases: Tensor, coef: Tensor) -> Tensor:
    """X_hat = D C: (B, D, R) @ (B, R, N) -> (B, D, N)."""
    return torch.bmm(bases, coef.transpose(1, 2))


def nmf(x: Tensor, bases: Tensor, steps: int, inv_t: float = 1.0, *, grad: str = "one-step") -> Tensor:
    """The low-rank NMF reconstruction (B, D, N) of x (B, D, N) from initial bases (B, D, R)."""
    return _reconstruct(*nmf_factors(x, bases, steps, inv_t, grad=grad))


def vq(x: Tensor, bases: Tensor, steps: int, inv_t: float = 100.0, *, grad: str = "one-step") -> Tensor:
    """The soft-VQ reconstruction (B, D, N) of x (B, D, N) from initial bases (B, D, R)."""
    return _reconstruct(*vq_factors(x, bases, steps, inv_t, grad=grad))


def cd(
    x: Tensor, bases: Tensor, steps: int, inv_t: float = 100.0, beta: float = 0.1, *, grad: str = "one-step"
) -> Tensor:
    """The concept-decomposition reconstruction (B, D, N) of x (B, D, N) from initial bases (B, D, R)."""
    return _reconstruct(*cd_factors(x, bases, steps, inv_t, beta, grad=grad))


FACTORIZERS: dict[str, Callable[..., tuple[Tensor, Tensor]]] = {"nmf": nmf_factors, "vq": vq_factors, "cd": cd_factors}


def random_bases(method: str, batch: int, dim: int, rank: int, device: torch.device | str | None = None) -> Tensor:
    """Unit-column initial bases (batch, dim, rank) from the global RNG (so a seed fixes them):
    Uniform(0, 1) for NMF (non-negative), Gaussian for VQ and CD, as the official code."""
    draw = torch.rand if method == "nmf" else torch.randn
    return F.normalize(draw(batch, dim, rank, device=device), dim=1)


class SubnormalCounter(TorchDispatchMode):
    """Counts the subnormal values (0 < |v| < the dtype's tiny) in the outputs of every aten op run
    while it is active, by op: ``with SubnormalCounter() as counter: ...; counter.total``."""

    def __init__(self) -> None:
        super().__init__()
        self.by_op: Counter[str] = Counter()

    @property
    def total(self) -> int:
        return sum(self.by_op.values())

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, Tensor) and t.is_floating_point() and t.numel():
                count = int(((t != 0) & (t.abs() < torch.finfo(t.dtype).tiny)).sum())
                if count:
                    self.by_op[str(func.overloadpacket.__name__)] += count
        return out


# ---------------------------------------------------------------------------------------------------
# The ham as a module: (B, C, H, W) -> S heads of (D, N) matrices -> low-rank reconstruction.
# ---------------------------------------------------------------------------------------------------


class MatrixDecomposition2d(nn.Module):
    """The "ham": factorize a feature map and return its low-rank reconstruction, same shape.

    Args:
        channels: input channels C.
        method: ``"nmf"``, ``"vq"`` or ``"cd"``.
        heads: S; the channels split into S groups, each factorized on its own.
        rank: R, the number of bases; default: the paper's d = 8r, ``paper_rank(C / S)`` (the channel
            ham of a dual V2+ block gets the same R as its spatial sibling, as the official code's one
            MD_R). Capped at the matrix dimension D (C / S in spatial mode, H * W in channel mode),
            since a rank above D adds nothing.
        spatial: True factorizes X (D = C / S, N = H * W), pixels as columns; False the transpose
            (D = H * W, N = C / S), channels as columns.
        train_steps, eval_steps: K, the iterations in training and evaluation.
        inv_t: 1 / T, the inverse temperature of the soft assignments (default: 1 for NMF, 100 else).
        beta: CD's ridge coefficient.
        rand_init: draw fresh bases every forward (the paper's best); False keeps learned bases
            in a buffer, updated online in training only: D <- normalize(D + eta (mean_B D_K - D)).
        eta: the momentum of that online update.
        grad: ``"one-step"`` or ``"bptt"``.

    The decomposition runs in fp32 even under autocast (NMF's multiplicative updates underflow in
    bf16) and the output is cast back to the input's dtype.
    """

    bases: Tensor  # buffer (S, D, R), registered in __init__ only when rand_init=False

    def __init__(
        self,
        channels: int,
        method: str = "nmf",
        *,
        heads: int = 1,
        rank: int | None = None,
        spatial: bool = True,
        train_steps: int = TRAIN_STEPS,
        eval_steps: int = EVAL_STEPS,
        inv_t: float | None = None,
        beta: float = BETA,
        rand_init: bool = True,
        eta: float = ETA,
        grad: str = GRAD_MODES[0],
    ) -> None:
        super().__init__()
        if method not in FACTORIZERS:
            raise ValueError(f"method must be one of {sorted(FACTORIZERS)}, got {method!r}")
        if heads < 1 or channels % heads:
            raise ValueError(f"heads={heads} must be >= 1 and divide channels={channels}")
        rank = paper_rank(channels // heads) if rank is None else rank
        if rank < 1 or train_steps < 0 or eval_steps < 0:
            raise ValueError(f"need rank >= 1 and steps >= 0; got rank={rank}, steps={train_steps}/{eval_steps}")
        if grad not in GRAD_MODES:
            raise ValueError(f"grad must be one of {GRAD_MODES}, got {grad!r}")
        if not rand_init and not spatial:
            raise ValueError(
                "learned bases (rand_init=False) need spatial=True: in channel mode D = H*W is only known at run time"
            )
        self.method, self.channels, self.heads, self.spatial = method, channels, heads, spatial
        self.rank = min(rank, channels // heads) if spatial else rank
        self.train_steps, self.eval_steps = train_steps, eval_steps
        self.inv_t = DEFAULT_INV_T[method] if inv_t is None else float(inv_t)
        self.beta, self.rand_init, self.eta, self.grad = beta, rand_init, eta, grad
        if not rand_init:
            self.register_buffer("bases", random_bases(method, heads, channels // heads, self.rank))  # (S, D, R)

    def extra_repr(self) -> str:
        return (
            f"{self.method}, channels={self.channels}, heads={self.heads}, rank={self.rank}, "
            f"spatial={self.spatial}, steps={self.train_steps}/{self.eval_steps}, inv_t={self.inv_t}, "
            f"rand_init={self.rand_init}, grad={self.grad!r}"
        )

    def _to_matrices(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B * S, D, N)."""
        b, c, h, w = x.shape
        if self.spatial:
            return x.reshape(b * self.heads, c // self.heads, h * w)
        return x.reshape(b * self.heads, c // self.heads, h * w).transpose(1, 2)  # D = H*W, N = C / S

    def _from_matrices(self, m: Tensor, shape: torch.Size) -> Tensor:
        """(B * S, D, N) -> (B, C, H, W)."""
        return (m if self.spatial else m.transpose(1, 2)).reshape(shape)

    def _initial_bases(self, batch: int, dim: int, device: torch.device) -> Tensor:
        if self.rand_init:
            return random_bases(self.method, batch * self.heads, dim, min(self.rank, dim), device)
        return self.bases.repeat(batch, 1, 1)  # (S, D, R) -> (B * S, D, R)

    @torch.no_grad()
    def _online_update(self, bases: Tensor, batch: int) -> None:
        """Warm start for the next forward: move the stored bases towards this batch's solution."""
        solved = bases.reshape(batch, *self.bases.shape).mean(dim=0)  # (S, D, R)
        self.bases.lerp_(solved, self.eta)
        self.bases.copy_(F.normalize(self.bases, dim=1))

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f"expected (B, {self.channels}, H, W), got {tuple(x.shape)}")
        with torch.autocast(x.device.type, enabled=False):
            matrices = self._to_matrices(x.float())  # (B * S, D, N)
            bases = self._initial_bases(x.shape[0], matrices.shape[1], x.device)  # (B * S, D, R)
            steps = self.train_steps if self.training else self.eval_steps
            options = dict(beta=self.beta) if self.method == "cd" else {}
            bases, coef = FACTORIZERS[self.method](matrices, bases, steps, self.inv_t, grad=self.grad, **options)
            if self.training and not self.rand_init:
                self._online_update(bases, x.shape[0])
            low_rank = _reconstruct(bases, coef)  # (B * S, D, N)
        return self._from_matrices(low_rank, x.shape).to(x.dtype)


# ---------------------------------------------------------------------------------------------------
# Hamburger: lower bread -> ham -> (cheese) -> upper bread, with a skip connection.
# ---------------------------------------------------------------------------------------------------


def _norm(kind: str, channels: int) -> nn.Module:
    """BatchNorm (the paper) or GroupNorm with 32 groups (Light-Ham's mmseg configs)."""
    if kind == "bn":
        return nn.BatchNorm2d(channels)
    if kind == "gn":
        if channels % 32:
            raise ValueError(f"norm='gn' uses 32 groups, which must divide its {channels} channels")
        return nn.GroupNorm(32, channels)
    raise ValueError(f"norm must be 'bn' or 'gn', got {kind!r}")


def _conv_norm_relu(cin: int, cout: int, norm: str) -> nn.Sequential:
    """The cheese: 1x1 conv -> norm -> ReLU."""
    return nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), _norm(norm, cout), nn.ReLU(inplace=True))


VERSIONS = ("v1", "v2", "v2+")


class Hamburger(nn.Module):
    """H(Z) = W_u M(W_l Z), added to Z through a skip connection (the paper's Fig. 1).

    Versions, as the official burger.py:
        ``v1``: lower bread 1x1 conv (+ ReLU for NMF, whose input must be non-negative) -> ham ->
            upper bread 1x1 conv + norm -> + Z -> ReLU. The paper's block and mmseg's ``Hamburger``.
        ``v2``: v1 plus the cheese (1x1 conv-norm-ReLU) after the ham; the upper bread has no norm.
        ``v2+``: v2 with an optional dual ham (a spatial and a channel ham side by side on two
            halves of a doubled lower bread), a cheese that shrinks the width by ``cheese_factor``
            (default: heads, doubled when dual), and learnable coefficients on both branches,
            the ham's starting at 0 (``zero_ham``) so the block starts as the identity + ReLU.

    ``ham_channels`` (the ham's width, default ``channels``) split into ``heads`` matrices gives
    the matrix dimension D = ham_channels / heads, and ``rank`` defaults to the paper's d = 8r,
    ``paper_rank(D)``. ``rank``, ``heads``, ``train_steps``, ``eval_steps``, ``inv_t``, ``beta``,
    ``rand_init``, ``eta`` and ``grad`` go to :class:`MatrixDecomposition2d`; ``norm`` is the
    blocks' normalization, BatchNorm (``"bn"``) or GroupNorm(32) (``"gn"``, Light-Ham's configs).
    """

    def __init__(
        self,
        channels: int,
        *,
        version: str = "v2",
        method: str = "nmf",
        ham_channels: int | None = None,
        rank: int | None = None,
        heads: int = 1,
        train_steps: int = TRAIN_STEPS,
        eval_steps: int = EVAL_STEPS,
        inv_t: float | None = None,
        beta: float = BETA,
        rand_init: bool = True,
        eta: float = ETA,
        grad: str = GRAD_MODES[0],
        norm: str = "bn",
        dual: bool = False,
        cheese_factor: int | None = None,
        zero_ham: bool = True,
    ) -> None:
        super().__init__()
        if version not in VERSIONS:
            raise ValueError(f"version must be one of {VERSIONS}, got {version!r}")
        if dual and version != "v2+":
            raise ValueError("dual hams exist only in version 'v2+'")
        width = ham_channels or channels
        self.version, self.dual = version, dual
        branches = 2 if dual else 1
        inner = branches * width

        def make_ham(spatial: bool) -> MatrixDecomposition2d:
            return MatrixDecomposition2d(
                width,
                method,
                heads=heads,
                rank=rank,
                spatial=spatial,
                train_steps=train_steps,
                eval_steps=eval_steps,
                inv_t=inv_t,
                beta=beta,
                rand_init=rand_init,
                eta=eta,
                grad=grad,
            )

        lower: list[nn.Module] = [nn.Conv2d(channels, inner, 1)]
        if method == "nmf":
            lower.append(nn.ReLU(inplace=True))
        self.lower_bread = nn.Sequential(*lower)

        self.ham: MatrixDecomposition2d | nn.ModuleList  # dual: [spatial ham, channel ham]
        if dual:
            self.ham = nn.ModuleList([make_ham(spatial=True), make_ham(spatial=False)])
        else:
            self.ham = make_ham(spatial=True)

        self.cheese: nn.Module
        self.upper_bread: nn.Module
        if version == "v1":
            self.cheese = nn.Identity()
            self.upper_bread = nn.Sequential(nn.Conv2d(inner, channels, 1, bias=False), _norm(norm, channels))
        else:
            factor = 1 if version == "v2" else branches * (cheese_factor or heads)
            if inner % factor:
                raise ValueError(f"cheese factor {factor} must divide the ham width {inner}")
            self.cheese = _conv_norm_relu(inner, inner // factor, norm)
            self.upper_bread = nn.Conv2d(inner // factor, channels, 1, bias=False)

        if version == "v2+":
            self.coef_shortcut = nn.Parameter(torch.tensor([1.0]))
            self.coef_ham = nn.Parameter(torch.tensor([0.0 if zero_ham else 1.0]))
        self._init_weights()

    def _init_weights(self) -> None:
        """As the official code: conv weights N(0, 2 / (k * k * out)), norms to the identity."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _ham(self, x: Tensor) -> Tensor:
        if not isinstance(self.ham, nn.ModuleList):  # one ham (not dual)
            return self.ham(x)
        spatial_half, channel_half = x.chunk(2, dim=1)
        return torch.cat([self.ham[0](spatial_half), self.ham[1](channel_half)], dim=1)

    def forward(self, z: Tensor) -> Tensor:
        x = self.lower_bread(z)  # (B, D, H, W)
        x = self._ham(x)  # low-rank reconstruction, same shape
        x = self.cheese(x)
        x = self.upper_bread(x)  # (B, C, H, W)
        if self.version == "v2+":
            return F.relu(self.coef_ham * x + self.coef_shortcut * z)
        return F.relu(x + z)


# ---------------------------------------------------------------------------------------------------
# The registered hamburgers: Hamburger with its version and decomposition fixed, as the official
# code's settings files. The registry reads the options (and their defaults) from Hamburger.
# ---------------------------------------------------------------------------------------------------

V2PLUS_OPTIONS = ("dual", "cheese_factor", "zero_ham")

HAMBURGER_RULES = {
    # d = 8r (the paper's seg head: d = 512, r = 64), with d the matrix dimension: the ham's width
    # split over the heads (the official D = MD_D per head, C = S * D; mmseg's D = ham_channels / S).
    "rank": DefaultRule(
        "the paper's d = 8r: (ham_channels or channels) // heads // 8, at least 1",
        lambda channels, ham_channels, heads: paper_rank((ham_channels or channels) // heads),
    ),
    # One value per decomposition (a variant fixes it, so the registry lists the number).
    "inv_t": DefaultRule("1.0 for NMF, 100.0 for VQ and CD", lambda method: DEFAULT_INV_T[method]),
}


def _register_hamburger(name: str, *, version: str, method: str) -> Callable[[type], type]:
    """Register a subclass of Hamburger as the variant (version, method). It does not offer the
    options it has no use for: CD's ``beta`` elsewhere, V2+'s dual ham and cheese in V1 and V2."""
    unused = (() if method == "cd" else ("beta",)) + (() if version == "v2+" else V2PLUS_OPTIONS)
    return register_module(
        name,
        family="hamburger",
        paper=PAPER,
        complexity="O(n)",
        rules=HAMBURGER_RULES,
        fixed=dict(version=version, method=method),
        hidden=unused,
    )


@_register_hamburger("ham-nmf", version="v2", method="nmf")
class HamNMF(Hamburger):
    """Hamburger V2 with NMF (multiplicative updates), one-step gradient."""


@_register_hamburger("ham-cd", version="v2", method="cd")
class HamCD(Hamburger):
    """Hamburger V2 with soft concept decomposition, one-step gradient."""


@_register_hamburger("ham-vq", version="v2", method="vq")
class HamVQ(Hamburger):
    """Hamburger V2 with soft vector quantization, one-step gradient."""


@_register_hamburger("ham-nmf-v1", version="v1", method="nmf")
class HamNMFV1(Hamburger):
    """Hamburger V1 with NMF: the paper's block, and mmseg's ``Hamburger`` (use norm='gn' and
    grad='bptt' to match ``LightHamHead`` exactly)."""


@_register_hamburger("ham-nmf-v2plus", version="v2+", method="nmf")
class HamNMFV2Plus(Hamburger):
    """Hamburger V2+ with NMF: multi-head, optional dual (spatial + channel) ham, cheese factor,
    learnable residual coefficients with the ham branch starting at zero."""
