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
block, = mmseg's ``Hamburger``) and ``ham-nmf-v2plus``.
"""

from __future__ import annotations

import contextlib
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hambench.registry import register_module

__all__ = [
    "nmf", "vq", "cd", "nmf_factors", "vq_factors", "cd_factors", "FACTORIZERS", "random_bases",
    "MatrixDecomposition2d", "Hamburger",
    "HamNMF", "HamCD", "HamVQ", "HamNMFV1", "HamNMFV2Plus",
]

PAPER = "Geng et al., ICLR 2021"
GRAD_MODES = ("one-step", "bptt")
EPS = 1e-6  # the official code's epsilon in every denominator


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


def _softmax_coef(x: Tensor, bases: Tensor, inv_t: float) -> Tensor:
    """NMF's initial codes C = softmax(inv_t * X^T D) over R, as the official code (the paper's
    appendix describes it with cosine similarity: one spherical k-means assignment)."""
    return F.softmax(inv_t * torch.bmm(x.transpose(1, 2), bases), dim=-1)  # (B, N, R)


def _cosine_coef(unit_x: Tensor, bases: Tensor, inv_t: float) -> Tensor:
    """C = softmax(cosine(D, X) / T) over R, the soft assignment of VQ and CD. unit_x: X's columns
    normalized, once for all iterations (only D changes)."""
    unit_bases = F.normalize(bases, dim=1, eps=EPS)  # (B, D, R)
    return F.softmax(inv_t * torch.bmm(unit_x.transpose(1, 2), unit_bases), dim=-1)  # (B, N, R)


# NMF (Alg. 2), multiplicative updates (Lee & Seung, 2001); each keeps the factors non-negative and
# does not increase ||X - DC||_F.


def _nmf_coef_update(x: Tensor, bases: Tensor, coef: Tensor) -> Tensor:
    """C_ij <- C_ij (D^T X)_ij / (D^T D C)_ij, written for coef = C^T."""
    numerator = torch.bmm(x.transpose(1, 2), bases)  # (B, N, R)
    denominator = torch.bmm(coef, torch.bmm(bases.transpose(1, 2), bases))  # (B, N, R) @ (B, R, R)
    return coef * numerator / (denominator + EPS)


def _nmf_bases_update(x: Tensor, bases: Tensor, coef: Tensor) -> Tensor:
    """D_ij <- D_ij (X C^T)_ij / (D C C^T)_ij."""
    numerator = torch.bmm(x, coef)  # (B, D, R)
    denominator = torch.bmm(bases, torch.bmm(coef.transpose(1, 2), coef))  # (B, D, R) @ (B, R, R)
    return bases * numerator / (denominator + EPS)


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
    """D <- X C^T diag(C 1_n)^-1: each basis is the soft mean of the pixels assigned to it."""
    coef = coef / (EPS + coef.sum(dim=1, keepdim=True))  # normalize each basis' weights over N
    return torch.bmm(x, coef)  # (B, D, N) @ (B, N, R) -> (B, D, R)


def _vq_final_coef(x: Tensor, bases: Tensor, inv_t: float) -> Tensor:
    """The last soft assignment. As the official code, ||x|| is a constant in the backward pass."""
    with torch.no_grad():
        x_norm = x.norm(dim=1, keepdim=True)  # (B, 1, N)
    unit_x = x / (EPS + x_norm)
    unit_bases = F.normalize(bases, dim=1, eps=EPS)
    return F.softmax(inv_t * torch.bmm(unit_x.transpose(1, 2), unit_bases), dim=-1)  # (B, N, R)


def vq_factors(
    x: Tensor, bases: Tensor, steps: int, inv_t: float = 100.0, *, grad: str = "one-step"
) -> tuple[Tensor, Tensor]:
    """Soft VQ with temperature T = 1 / inv_t; T -> 0 (inv_t -> inf) gives k-means' hard assignment.

    Returns (bases (B, D, R), coef (B, N, R)).
    """
    _check_factor_shapes(x, bases, steps)
    with _iterations(grad):
        unit_x = F.normalize(x, dim=1)  # (B, D, N)
        for _ in range(steps):
            coef = _cosine_coef(unit_x, bases, inv_t)
            bases = _vq_bases_update(x, coef)
    return bases, _vq_final_coef(x, bases, inv_t)


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
        unit_x = F.normalize(x, dim=1)  # (B, D, N)
        for _ in range(steps):
            coef = _cosine_coef(unit_x, bases, inv_t)
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
DEFAULT_INV_T = {"nmf": 1.0, "vq": 100.0, "cd": 100.0}


def random_bases(method: str, batch: int, dim: int, rank: int, device: torch.device | str | None = None) -> Tensor:
    """Unit-column initial bases (batch, dim, rank) from the global RNG (so a seed fixes them):
    Uniform(0, 1) for NMF (non-negative), Gaussian for VQ and CD, as the official code."""
    draw = torch.rand if method == "nmf" else torch.randn
    return F.normalize(draw(batch, dim, rank, device=device), dim=1)


# ---------------------------------------------------------------------------------------------------
# The ham as a module: (B, C, H, W) -> S heads of (D, N) matrices -> low-rank reconstruction.
# ---------------------------------------------------------------------------------------------------


class MatrixDecomposition2d(nn.Module):
    """The "ham": factorize a feature map and return its low-rank reconstruction, same shape.

    Args:
        channels: input channels C.
        method: ``"nmf"``, ``"vq"`` or ``"cd"``.
        heads: S; the channels split into S groups, each factorized on its own.
        rank: R, the number of bases. Capped at the matrix dimension D (C / S in spatial mode,
            H * W in channel mode), since a rank above D adds nothing.
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

    def __init__(
        self,
        channels: int,
        method: str = "nmf",
        *,
        heads: int = 1,
        rank: int = 64,
        spatial: bool = True,
        train_steps: int = 6,
        eval_steps: int = 7,
        inv_t: float | None = None,
        beta: float = 0.1,
        rand_init: bool = True,
        eta: float = 0.9,
        grad: str = "one-step",
    ) -> None:
        super().__init__()
        if method not in FACTORIZERS:
            raise ValueError(f"method must be one of {sorted(FACTORIZERS)}, got {method!r}")
        if heads < 1 or channels % heads:
            raise ValueError(f"heads={heads} must be >= 1 and divide channels={channels}")
        if rank < 1 or train_steps < 0 or eval_steps < 0:
            raise ValueError(f"need rank >= 1 and steps >= 0; got rank={rank}, steps={train_steps}/{eval_steps}")
        if grad not in GRAD_MODES:
            raise ValueError(f"grad must be one of {GRAD_MODES}, got {grad!r}")
        if not rand_init and not spatial:
            raise ValueError("learned bases (rand_init=False) need spatial=True: in channel mode D = H*W "
                             "is only known at run time")
        self.method, self.channels, self.heads, self.spatial = method, channels, heads, spatial
        self.rank = min(rank, channels // heads) if spatial else rank
        self.train_steps, self.eval_steps = train_steps, eval_steps
        self.inv_t = DEFAULT_INV_T[method] if inv_t is None else float(inv_t)
        self.beta, self.rand_init, self.eta, self.grad = beta, rand_init, eta, grad
        if not rand_init:
            self.register_buffer("bases", random_bases(method, heads, channels // heads, self.rank))  # (S, D, R)

    def extra_repr(self) -> str:
        return (f"{self.method}, channels={self.channels}, heads={self.heads}, rank={self.rank}, "
                f"spatial={self.spatial}, steps={self.train_steps}/{self.eval_steps}, inv_t={self.inv_t}, "
                f"rand_init={self.rand_init}, grad={self.grad!r}")

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

    ``ham_channels`` (D, default ``channels``) is the width of each ham. Remaining keyword options
    go to :class:`MatrixDecomposition2d`; its ``rank`` (default 64) is capped at D / heads.
    """

    def __init__(
        self,
        channels: int,
        *,
        version: str = "v2",
        method: str = "nmf",
        ham_channels: int | None = None,
        norm: str = "bn",
        dual: bool = False,
        cheese_factor: int | None = None,
        zero_ham: bool = True,
        **ham_options,
    ) -> None:
        super().__init__()
        if version not in ("v1", "v2", "v2+"):
            raise ValueError(f"version must be 'v1', 'v2' or 'v2+', got {version!r}")
        if dual and version != "v2+":
            raise ValueError("dual hams exist only in version 'v2+'")
        width = ham_channels or channels
        self.version, self.dual = version, dual
        branches = 2 if dual else 1
        inner = branches * width

        lower = [nn.Conv2d(channels, inner, 1)]
        if method == "nmf":
            lower.append(nn.ReLU(inplace=True))
        self.lower_bread = nn.Sequential(*lower)

        if dual:
            self.ham = nn.ModuleList([
                MatrixDecomposition2d(width, method, spatial=True, **ham_options),
                MatrixDecomposition2d(width, method, spatial=False, **ham_options),
            ])
        else:
            self.ham = MatrixDecomposition2d(width, method, **ham_options)

        if version == "v1":
            self.cheese = nn.Identity()
            self.upper_bread = nn.Sequential(nn.Conv2d(inner, channels, 1, bias=False), _norm(norm, channels))
        else:
            factor = 1 if version == "v2" else branches * (cheese_factor or ham_options.get("heads", 1))
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
        if not self.dual:
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
# The registered hamburgers. Each lists its options and defaults explicitly (``hambench modules list``).
# ---------------------------------------------------------------------------------------------------


@register_module("ham-nmf", family="hamburger", paper=PAPER, complexity="O(n)")
class HamNMF(Hamburger):
    """Hamburger V2 with NMF (multiplicative updates), one-step gradient."""

    def __init__(
        self, channels: int, ham_channels: int | None = None, rank: int = 64, heads: int = 1,
        train_steps: int = 6, eval_steps: int = 7, inv_t: float = 1.0, rand_init: bool = True,
        eta: float = 0.9, grad: str = "one-step", norm: str = "bn",
    ) -> None:
        super().__init__(
            channels, version="v2", method="nmf", ham_channels=ham_channels, norm=norm, rank=rank, heads=heads,
            train_steps=train_steps, eval_steps=eval_steps, inv_t=inv_t, rand_init=rand_init, eta=eta, grad=grad,
        )


@register_module("ham-cd", family="hamburger", paper=PAPER, complexity="O(n)")
class HamCD(Hamburger):
    """Hamburger V2 with soft concept decomposition, one-step gradient."""

    def __init__(
        self, channels: int, ham_channels: int | None = None, rank: int = 64, heads: int = 1,
        train_steps: int = 6, eval_steps: int = 7, inv_t: float = 100.0, beta: float = 0.1,
        rand_init: bool = True, eta: float = 0.9, grad: str = "one-step", norm: str = "bn",
    ) -> None:
        super().__init__(
            channels, version="v2", method="cd", ham_channels=ham_channels, norm=norm, rank=rank, heads=heads,
            train_steps=train_steps, eval_steps=eval_steps, inv_t=inv_t, beta=beta, rand_init=rand_init,
            eta=eta, grad=grad,
        )


@register_module("ham-vq", family="hamburger", paper=PAPER, complexity="O(n)")
class HamVQ(Hamburger):
    """Hamburger V2 with soft vector quantization, one-step gradient."""

    def __init__(
        self, channels: int, ham_channels: int | None = None, rank: int = 64, heads: int = 1,
        train_steps: int = 6, eval_steps: int = 7, inv_t: float = 100.0, rand_init: bool = True,
        eta: float = 0.9, grad: str = "one-step", norm: str = "bn",
    ) -> None:
        super().__init__(
            channels, version="v2", method="vq", ham_channels=ham_channels, norm=norm, rank=rank, heads=heads,
            train_steps=train_steps, eval_steps=eval_steps, inv_t=inv_t, rand_init=rand_init, eta=eta, grad=grad,
        )


@register_module("ham-nmf-v1", family="hamburger", paper=PAPER, complexity="O(n)")
class HamNMFV1(Hamburger):
    """Hamburger V1 with NMF: the paper's block, and mmseg's ``Hamburger`` (use norm='gn' and
    grad='bptt' to match ``LightHamHead`` exactly)."""

    def __init__(
        self, channels: int, ham_channels: int | None = None, rank: int = 64, heads: int = 1,
        train_steps: int = 6, eval_steps: int = 7, inv_t: float = 1.0, rand_init: bool = True,
        eta: float = 0.9, grad: str = "one-step", norm: str = "bn",
    ) -> None:
        super().__init__(
            channels, version="v1", method="nmf", ham_channels=ham_channels, norm=norm, rank=rank, heads=heads,
            train_steps=train_steps, eval_steps=eval_steps, inv_t=inv_t, rand_init=rand_init, eta=eta, grad=grad,
        )


@register_module("ham-nmf-v2plus", family="hamburger", paper=PAPER, complexity="O(n)")
class HamNMFV2Plus(Hamburger):
    """Hamburger V2+ with NMF: multi-head, optional dual (spatial + channel) ham, cheese factor,
    learnable residual coefficients with the ham branch starting at zero."""

    def __init__(
        self, channels: int, ham_channels: int | None = None, rank: int = 64, heads: int = 1,
        train_steps: int = 6, eval_steps: int = 7, inv_t: float = 1.0, rand_init: bool = True,
        eta: float = 0.9, grad: str = "one-step", norm: str = "bn", dual: bool = False,
        cheese_factor: int | None = None, zero_ham: bool = True,
    ) -> None:
        super().__init__(
            channels, version="v2+", method="nmf", ham_channels=ham_channels, norm=norm, dual=dual,
            cheese_factor=cheese_factor, zero_ham=zero_ham, rank=rank, heads=heads, train_steps=train_steps,
            eval_steps=eval_steps, inv_t=inv_t, rand_init=rand_init, eta=eta, grad=grad,
        )
