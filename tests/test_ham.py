"""The Hamburger family: the algorithms (Alg. 1-3), the gradient modes, the width-relative rank, the
registered variants, no subnormal floats, parity with mmseg, the contract with options other than
the defaults (tests/test_module_contract.py checks every registered module with its defaults)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hambench.check import check_module
from hambench.modules.ham import (
    DEFAULT_INV_T,
    FACTORIZERS,
    Hamburger,
    HamNMF,
    HamNMFV1,
    HamNMFV2Plus,
    MatrixDecomposition2d,
    SubnormalCounter,
    cd,
    cd_factors,
    nmf,
    nmf_factors,
    random_bases,
    soft_assignment,
    vq,
    vq_factors,
)
from hambench.profiling import count_params
from hambench.registry import RegistryError, build_module, get_spec, list_modules, resolve_options

EPS = 1e-6
HAM_NAMES = ["ham-nmf", "ham-cd", "ham-vq", "ham-nmf-v1", "ham-nmf-v2plus"]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- A plain re-statement of the paper's algorithms, independent of modules/ham.py -----------------
# x (B, D, N), bases (B, D, R), coef = C^T (B, N, R).


def reference_iterations(method: str, x, bases, steps: int, inv_t: float):
    """Alg. 2 (NMF), Alg. 1 (VQ) and Alg. 3 (CD) written out step by step."""
    coef = torch.softmax(inv_t * x.transpose(1, 2) @ bases, dim=-1)
    for _ in range(steps):
        if method == "nmf":
            coef = coef * (x.transpose(1, 2) @ bases) / (coef @ bases.transpose(1, 2) @ bases + EPS)
            bases = bases * (x @ coef) / (bases @ coef.transpose(1, 2) @ coef + EPS)
        else:  # VQ and CD: soft (spherical) k-means
            cosine = F.normalize(x, dim=1).transpose(1, 2) @ F.normalize(bases, dim=1, eps=EPS)
            coef = torch.softmax(inv_t * cosine, dim=-1)
            bases = x @ (coef / (coef.sum(dim=1, keepdim=True) + EPS))  # X C^T diag(C 1)^-1
            if method == "cd":
                bases = F.normalize(bases, dim=1, eps=EPS)
    return bases, coef


def reference_final(method: str, x, bases, coef, inv_t: float, beta: float = 0.1):
    """The final code update, with gradient; returns the reconstruction D C (B, D, N)."""
    if method == "nmf":
        coef = coef * (x.transpose(1, 2) @ bases) / (coef @ bases.transpose(1, 2) @ bases + EPS)
    elif method == "vq":
        unit_x = x / (x.detach().norm(dim=1, keepdim=True) + EPS)  # official: ||x|| held constant
        coef = torch.softmax(inv_t * unit_x.transpose(1, 2) @ F.normalize(bases, dim=1, eps=EPS), dim=-1)
    else:
        eye = torch.eye(bases.shape[-1], dtype=x.dtype)
        ridge = torch.linalg.inv(bases.transpose(1, 2) @ bases + beta * eye) @ bases.transpose(1, 2) @ x  # (B, R, N)
        coef = ridge.transpose(1, 2)
    return bases @ coef.transpose(1, 2)


FUNCTIONS = {"nmf": (nmf, 1.0), "vq": (vq, 100.0), "cd": (cd, 100.0)}


def _inputs(method: str, b=2, d=24, n=150, r=6, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    draw = torch.rand if method == "nmf" else torch.randn  # NMF needs a non-negative X
    x = draw(b, d, n, generator=g, dtype=dtype)
    torch.manual_seed(seed)
    return x, random_bases(method, b, d, r).to(dtype)


# --- the algorithms ----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["nmf", "vq", "cd"])
def test_functions_reproduce_the_algorithms(method):
    fn, inv_t = FUNCTIONS[method]
    x, bases = _inputs(method)
    for steps in (0, 1, 4):
        got = fn(x, bases, steps)
        with torch.no_grad():
            d, c = reference_iterations(method, x, bases, steps, inv_t)
            want = reference_final(method, x, d, c, inv_t)
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-10)


def test_nmf_error_never_increases_and_factors_stay_nonnegative():
    x, bases = _inputs("nmf", d=32, n=300, r=8)
    errors = []
    for steps in range(12):  # run k is run k-1 plus one (D, C) multiplicative update
        d, c = nmf_factors(x, bases, steps)
        assert (d >= 0).all() and (c >= 0).all(), f"negative factor after {steps} steps"
        errors.append(float(torch.linalg.norm(x - d @ c.transpose(1, 2))))
    for k in range(1, len(errors)):
        assert errors[k] <= errors[k - 1] * (1 + 1e-9), f"error rose at step {k}: {errors[k - 1]} -> {errors[k]}"
    assert errors[-1] < 0.9 * errors[0], f"NMF barely reduced the error: {errors[0]} -> {errors[-1]}"


def _clustered(seed=0, d=16, r=4, per=40, noise=0.15):
    """Points around r well-separated directions, and initial bases near those directions."""
    g = torch.Generator().manual_seed(seed)
    centers = F.normalize(torch.randn(d, r, generator=g, dtype=torch.float64), dim=0)
    x = centers.repeat_interleave(per, dim=1) + noise * torch.randn(d, r * per, generator=g, dtype=torch.float64)
    bases = F.normalize(centers + 0.3 * torch.randn(d, r, generator=g, dtype=torch.float64), dim=0)
    return x[None], bases[None]


def _hard_kmeans(x, bases, steps):
    """Cosine k-means with hard assignments (T -> 0 in Alg. 1); returns the final one-hot codes."""

    def assign(b):
        cosine = F.normalize(x, dim=1).transpose(1, 2) @ F.normalize(b, dim=1)
        return F.one_hot(cosine.argmax(-1), b.shape[-1]).to(x.dtype)  # (1, N, R)

    for _ in range(steps):
        onehot = assign(bases)
        bases = x @ onehot / onehot.sum(dim=1, keepdim=True)  # each basis: mean of its pixels
    return assign(bases)


@pytest.mark.parametrize("steps", [0, 3])
def test_vq_soft_assignment_tends_to_hard_kmeans(steps):
    x, bases = _clustered()
    hard = _hard_kmeans(x, bases, steps)
    gaps = [float((vq_factors(x, bases, steps, inv_t=t)[1] - hard).abs().max()) for t in (1.0, 10.0, 100.0, 1e3, 1e4)]
    assert all(b < a for a, b in zip(gaps, gaps[1:])), f"gap to hard k-means does not shrink with 1/T: {gaps}"
    assert gaps[0] > 0.5 and gaps[-1] < 1e-6, gaps


def test_cd_final_coefficients_are_the_ridge_solution():
    x, bases = _inputs("cd", d=20, n=90, r=5)
    for beta in (0.01, 0.1, 1.0):
        d, coef = cd_factors(x, bases, 3, beta=beta)
        torch.testing.assert_close(d.norm(dim=1), torch.ones(2, 5, dtype=d.dtype))  # spherical k-means
        eye = torch.eye(5, dtype=x.dtype)
        ridge = torch.linalg.inv(d.transpose(1, 2) @ d + beta * eye) @ d.transpose(1, 2) @ x  # (B, R, N)
        torch.testing.assert_close(coef.transpose(1, 2), ridge, rtol=1e-9, atol=1e-10)
    with pytest.raises(ValueError, match="beta"):
        cd(x, bases, 1, beta=0.0)


# --- gradient modes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["nmf", "vq", "cd"])
def test_one_step_gradient_is_the_last_step_only(method):
    fn, inv_t = FUNCTIONS[method]
    x0, bases = _inputs(method)
    weight = torch.randn(x0.shape, dtype=x0.dtype, generator=torch.Generator().manual_seed(1))

    def grad_of(run):
        x = x0.clone().requires_grad_(True)
        (run(x) * weight).sum().backward()
        return x.grad

    def explicit(x):  # the iterations on detached tensors, then the last update with gradient
        with torch.no_grad():
            d, c = reference_iterations(method, x.detach(), bases, 5, inv_t)
        return reference_final(method, x, d, c, inv_t)

    one_step = grad_of(lambda x: fn(x, bases, 5, grad="one-step"))
    torch.testing.assert_close(one_step, grad_of(explicit), rtol=1e-8, atol=1e-10)
    bptt = grad_of(lambda x: fn(x, bases, 5, grad="bptt"))
    assert (bptt - one_step).abs().max() > 1e-3 * one_step.abs().max(), "BPTT gave the one-step gradient"
    with pytest.raises(ValueError, match="grad must be one of"):
        fn(x0, bases, 1, grad="truncated")


def _saved_bytes(run) -> int:
    """Bytes autograd saves for the backward pass of run()."""
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        run()
    return total


@pytest.mark.parametrize("method", ["nmf", "vq", "cd"])
def test_one_step_memory_does_not_grow_with_steps(method):
    fn, _ = FUNCTIONS[method]
    x, bases = _inputs(method, d=32, n=256, r=8, dtype=torch.float32)
    x.requires_grad_(True)
    saved = {
        (g, k): _saved_bytes(lambda k=k, g=g: fn(x, bases, k, grad=g))  # k, g bound now, not at call
        for g in ("one-step", "bptt")
        for k in (2, 12)
    }
    assert saved["one-step", 2] == saved["one-step", 12] > 0, saved
    assert saved["bptt", 12] > saved["bptt", 2] > saved["one-step", 2], saved


# --- the module ----------------------------------------------------------------------------------------


def test_decomposition_runs_in_fp32_under_autocast():
    ham = MatrixDecomposition2d(32, "nmf", rank=8).eval()
    x = torch.rand(2, 32, 9, 7).bfloat16()
    torch.manual_seed(0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = ham(x)
    torch.manual_seed(0)
    y32 = ham(x.float())  # the same bf16 values, decomposed in fp32
    assert y.dtype == torch.bfloat16
    assert torch.equal(y, y32.bfloat16())


def test_learned_bases_update_online_in_training_only():
    ham = MatrixDecomposition2d(16, "cd", rank=4, rand_init=False, eta=0.5)
    start = ham.bases.clone()
    x = torch.randn(3, 16, 5, 6)
    ham.eval()(x)
    assert torch.equal(ham.bases, start), "eval mode changed the bases"
    ham.train()(x)
    assert not torch.equal(ham.bases, start), "training did not update the bases"
    torch.testing.assert_close(ham.bases.norm(dim=1), torch.ones(1, 4))
    with pytest.raises(ValueError, match="spatial=True"):
        MatrixDecomposition2d(16, "nmf", rand_init=False, spatial=False)


def test_rank_is_capped_and_channel_mode_keeps_shape():
    assert MatrixDecomposition2d(16, "nmf", rank=64).rank == 16
    assert MatrixDecomposition2d(32, "nmf", rank=64, heads=4).rank == 8
    ham = MatrixDecomposition2d(8, "vq", spatial=False, heads=2, rank=64)  # D = H*W = 12 < R = 64
    assert ham(torch.randn(2, 8, 3, 4)).shape == (2, 8, 3, 4)


def test_bad_options_name_the_problem():
    with pytest.raises(ValueError, match="method"):
        MatrixDecomposition2d(16, "svd")
    with pytest.raises(ValueError, match="heads"):
        MatrixDecomposition2d(16, heads=3)
    with pytest.raises(ValueError, match="expected"):
        MatrixDecomposition2d(16)(torch.randn(1, 8, 4, 4))
    with pytest.raises(ValueError, match="32 groups"):
        build_module("ham-nmf-v1", 48, norm="gn")
    with pytest.raises(ValueError, match=r"\(B, D\)"):
        nmf(torch.rand(1, 8, 10), torch.rand(1, 9, 2), 1)


def test_v2plus_starts_as_identity_plus_relu():
    z = torch.randn(2, 32, 6, 5)
    for options in (dict(), dict(dual=True, heads=2)):
        block = HamNMFV2Plus(32, **options).eval()
        torch.testing.assert_close(block(z), F.relu(z))
    assert not torch.equal(HamNMFV2Plus(32, zero_ham=False).eval()(z), F.relu(z))


# --- the rank: the paper's d = 8r, relative to the ham's matrix dimension ------------------------------


def _hams(block):
    return list(block.ham) if isinstance(block.ham, torch.nn.ModuleList) else [block.ham]


@pytest.mark.parametrize("name", HAM_NAMES)
def test_rank_defaults_to_an_eighth_of_the_width(name):
    assert resolve_options(name, 64)["rank"] == 8  # a 64-channel head: R = 8, not R = D = 64
    assert resolve_options(name, 512)["rank"] == 64  # the paper's seg head: d = 512, r = 64
    assert resolve_options(name, 64, rank=16)["rank"] == 16  # the user's value wins
    assert resolve_options(name, 64, ham_channels=256)["rank"] == 32  # D is the ham's width ...
    assert resolve_options(name, 512, heads=4)["rank"] == 16  # ... split over the heads (D = 128)
    assert resolve_options(name, 4)["rank"] == 1  # never below 1


@pytest.mark.parametrize(
    "name, channels, options",
    [
        ("ham-nmf", 64, {}),
        ("ham-cd", 512, {}),
        ("ham-vq", 64, dict(rank=5)),
        ("ham-nmf-v1", 48, dict(ham_channels=96)),
        ("ham-nmf", 64, dict(heads=2)),
        ("ham-nmf-v2plus", 64, dict(dual=True, heads=2)),
        ("ham-cd", 8, {}),
    ],
)
def test_built_rank_is_the_resolved_rank(name, channels, options):
    block = build_module(name, channels, **options)
    resolved = resolve_options(name, channels, **options)["rank"]
    assert [ham.rank for ham in _hams(block)] == [resolved] * len(_hams(block))


def test_direct_construction_uses_the_same_rank_rule():
    assert MatrixDecomposition2d(64, "cd").rank == 8
    assert MatrixDecomposition2d(512, "nmf", heads=2).rank == 32
    assert Hamburger(64, method="vq", ham_channels=128).ham.rank == 16
    assert HamNMF(512).ham.rank == resolve_options("ham-nmf", 512)["rank"] == 64


def test_a_rule_that_cannot_be_worked_out_names_the_option():
    with pytest.raises(RegistryError, match=r"cannot work out rank .* heads=0"):
        resolve_options("ham-nmf", 64, heads=0)


# --- the registered variants: Hamburger with (version, method) fixed ----------------------------------

VARIANTS = {
    "ham-nmf": dict(version="v2", method="nmf"),
    "ham-cd": dict(version="v2", method="cd"),
    "ham-vq": dict(version="v2", method="vq"),
    "ham-nmf-v1": dict(version="v1", method="nmf"),
    "ham-nmf-v2plus": dict(version="v2+", method="nmf"),
}


@pytest.mark.parametrize(
    "name, options",
    [(n, {}) for n in VARIANTS]
    + [
        ("ham-nmf-v2plus", dict(dual=True, heads=2, zero_ham=False)),
        ("ham-cd", dict(rand_init=False, heads=4, beta=0.5)),
        ("ham-nmf-v1", dict(norm="gn")),
    ],
)
def test_variant_is_the_base_class_with_its_settings(name, options):
    assert get_spec(name).fixed == VARIANTS[name]
    x = torch.randn(2, 64, 9, 7)
    torch.manual_seed(0)
    variant = build_module(name, 64, **options)
    torch.manual_seed(0)
    base = Hamburger(64, **VARIANTS[name], **options)
    theirs = base.state_dict()
    assert list(variant.state_dict()) == list(theirs)
    assert all(torch.equal(v, theirs[k]) for k, v in variant.state_dict().items()), "parameters differ"
    for training in (True, False):
        outs = []
        for block in (variant, base):
            torch.manual_seed(1)  # the same initial bases
            outs.append(block.train(training)(x))
        assert torch.equal(outs[0], outs[1]), f"{name} {options} training={training}"


def test_variants_offer_only_the_options_they_use():
    options = {name: set(get_spec(name).defaults) for name in VARIANTS}
    assert all({"rank", "heads", "ham_channels", "inv_t", "norm", "grad"} <= o for o in options.values())
    assert {n for n, o in options.items() if "beta" in o} == {"ham-cd"}
    assert {n for n, o in options.items() if {"dual", "cheese_factor", "zero_ham"} <= o} == {"ham-nmf-v2plus"}
    assert not any({"version", "method"} & o for o in options.values())
    with pytest.raises(RegistryError, match=r"no option\(s\) beta"):
        build_module("ham-nmf", 64, beta=0.2)
    with pytest.raises(TypeError, match="method"):
        HamNMF(64, method="cd")  # a fixed setting is not an option of the variant either


@pytest.mark.parametrize("name", VARIANTS)
def test_inv_t_default_comes_from_its_one_home(name):
    method = VARIANTS[name]["method"]
    assert get_spec(name).defaults["inv_t"] == DEFAULT_INV_T[method]  # listed as the number
    assert build_module(name, 32).ham.inv_t == DEFAULT_INV_T[method]


# --- no subnormal floats (0 < |v| < tiny): many x86 CPUs stall on them ------------------------------


def _lower_bread_output(channels: int, size: int, seed: int = 0):
    """A feature map as the ham sees it: a He-initialised 1x1 conv of Gaussian features, (1, C, n)."""
    g = torch.Generator().manual_seed(seed)
    conv = torch.randn(channels, channels, generator=g) * (2 / channels) ** 0.5
    return torch.einsum("oc,bcn->bon", conv, torch.randn(1, channels, size * size, generator=g))


def _subnormals(t) -> int:
    return int(((t != 0) & (t.abs() < torch.finfo(t.dtype).tiny)).sum())


def test_subnormal_counter_counts_them():
    a, b = torch.tensor([1e-30, 1.0, 0.0, 1e-30]), torch.tensor([1e-10, 1e-41, 5.0, 1e-30])
    with SubnormalCounter() as counter:
        a * b  # 1e-40 and 1e-41 are subnormal; 0 and 1e-60 (which underflows to 0) are not
        a + 1.0  # all normal
    assert counter.total == 2 and counter.by_op == {"mul": 2}


@pytest.mark.parametrize("method", ["vq", "cd"])
def test_soft_assignments_hold_no_subnormals(method):
    x = _lower_bread_output(16, 8)  # 16 channels, 8 x 8 pixels, R = 4
    torch.manual_seed(0)
    bases = random_bases(method, 1, 16, 4)
    # The input is one that makes them: the plain softmax of its first assignment already holds some.
    cosine = F.normalize(x, dim=1).transpose(1, 2) @ F.normalize(bases, dim=1, eps=EPS)
    assert _subnormals(torch.softmax(100.0 * cosine, dim=-1)) > 0
    with torch.no_grad(), SubnormalCounter() as counter:  # every op: assignments, weights, bases, codes
        FACTORIZERS[method](x, bases, 7, 100.0)
    assert counter.total == 0, dict(counter.by_op)


def test_nmf_updates_hold_no_subnormals_even_after_many_steps():
    x = _lower_bread_output(16, 16).relu()
    torch.manual_seed(0)
    with torch.no_grad(), SubnormalCounter() as counter:  # 100 multiplicative updates drive entries to 0
        nmf_factors(x, random_bases("nmf", 1, 16, 4), 100)
    assert counter.total == 0, dict(counter.by_op)


@pytest.mark.parametrize("name", ["ham-cd", "ham-vq"])
def test_whole_block_forward_holds_no_subnormals(name):
    torch.manual_seed(0)
    block = build_module(name, 32).eval()
    with torch.no_grad(), SubnormalCounter() as counter:
        block(torch.randn(1, 32, 16, 16))
    assert counter.total == 0, dict(counter.by_op)


def test_soft_assignment_zeroes_only_what_fp32_cannot_resolve():
    logits = torch.linspace(0.0, -120.0, 64).repeat(3, 50, 1)  # (B, N, R): a row spanning 120 nats
    plain, ours = torch.softmax(logits, dim=-1), soft_assignment(logits)
    kept = ours > 0
    assert _subnormals(plain) > 0 and _subnormals(ours) == 0
    assert ours[kept].min() >= 2.0**24 * torch.finfo(torch.float32).tiny  # normal, with room for products
    torch.testing.assert_close(ours[kept], plain[kept], rtol=1e-6, atol=0)  # the rest unchanged
    assert plain[~kept].max() < 1e-24 and not kept[..., :20].logical_not().any()  # dropped: ~e^-58 and below


def test_soft_assignment_keeps_the_gradient():
    logits = (30 * torch.randn(2, 40, 6, dtype=torch.float64)).requires_grad_(True)
    weight = torch.randn(2, 40, 6, dtype=torch.float64)
    (soft_assignment(logits) * weight).sum().backward()
    ours = logits.grad.clone()
    logits.grad = None
    (torch.softmax(logits, dim=-1) * weight).sum().backward()
    torch.testing.assert_close(ours, logits.grad)  # fp64: nothing near its (far lower) cutoff


# --- parity with mmseg's Light-Ham (mmseg.models.decode_heads.ham_head) ---------------------------


def _light_ham_hamburger(channels: int, rank: int, norm: str):
    from mmseg.models.decode_heads.ham_head import LightHamHead

    norm_cfg = dict(type="GN", num_groups=32, requires_grad=True) if norm == "gn" else dict(type="BN")
    head = LightHamHead(
        in_channels=[32, 32],
        in_index=[0, 1],
        channels=32,
        num_classes=3,
        ham_channels=channels,
        ham_kwargs=dict(MD_R=rank),
        norm_cfg=norm_cfg,
    )
    return head.hamburger


def test_nmf_matches_mmseg_nmf2d_values_and_bptt_gradient():
    from mmseg.models.decode_heads.ham_head import NMF2D

    x0 = torch.rand(2, 64, 9, 11)
    for training in (True, False):
        theirs = NMF2D(dict(MD_R=16)).train(training)
        ours = MatrixDecomposition2d(64, "nmf", rank=16, grad="bptt").train(training)
        outs, grads = [], []
        for module in (theirs, ours):
            x = x0.clone().requires_grad_(True)
            torch.manual_seed(5)  # the same initial bases
            y = module(x)
            (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
            outs.append(y.detach())
            grads.append(x.grad)
        torch.testing.assert_close(outs[1], outs[0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-6)  # mmseg back-propagates through time


@pytest.mark.parametrize("norm", ["gn", "bn"])
def test_v1_matches_light_ham_hamburger(norm):
    theirs = _light_ham_hamburger(64, 16, norm)
    ours = HamNMFV1(64, rank=16, norm=norm, grad="bptt")
    count = count_params
    assert count(ours) == count(theirs) > 0
    # Same architecture, parameter for parameter: load their weights in order.
    pairs = list(zip(ours.state_dict().items(), theirs.state_dict().values()))
    assert len(pairs) == len(theirs.state_dict()) and all(a.shape == b.shape for (_, a), b in pairs)
    ours.load_state_dict({name: value for (name, _), value in pairs})
    for training in (True, False):
        theirs.train(training), ours.train(training)
        outs = []
        for module in (theirs, ours):
            torch.manual_seed(9)
            outs.append(module(torch.randn(2, 64, 8, 10, generator=torch.Generator().manual_seed(2))))
        torch.testing.assert_close(outs[1], outs[0], rtol=1e-5, atol=1e-5)


# --- the contract --------------------------------------------------------------------------------------


def test_the_family_is_registered():
    specs = {s.name: s for s in list_modules() if s.family == "hamburger"}
    assert set(HAM_NAMES) <= set(specs)
    assert all(specs[n].complexity == "O(n)" and "Geng" in specs[n].paper for n in HAM_NAMES)


@pytest.mark.parametrize("method", ["nmf", "vq", "cd"])
def test_the_ham_runs_the_algorithm_its_method_names(method):
    """MatrixDecomposition2d(method=m) computes m's reconstruction from the same initial bases."""
    fn, _ = FUNCTIONS[method]
    x = torch.rand(2, 24, 5, 6) if method == "nmf" else torch.randn(2, 24, 5, 6)
    ham = MatrixDecomposition2d(24, method, rank=6, eval_steps=3).eval()
    torch.manual_seed(3)
    got = ham(x)
    torch.manual_seed(3)
    bases = random_bases(method, 2, 24, 6)
    want = fn(x.reshape(2, 24, 30), bases, 3, DEFAULT_INV_T[method]).reshape(x.shape)
    torch.testing.assert_close(got, want)
    others = [m for m in FUNCTIONS if m != method]
    assert all(
        not torch.allclose(got, FUNCTIONS[m][0](x.reshape(2, 24, 30), bases, 3).reshape(x.shape)) for m in others
    )


@pytest.mark.parametrize(
    "name, options",
    [
        ("ham-nmf-v2plus", dict(dual=True, heads=2)),
        ("ham-cd", dict(rand_init=False, grad="bptt")),
        ("ham-vq", dict(heads=4, grad="bptt")),
        ("ham-nmf-v1", dict(norm="gn")),
        ("ham-nmf", dict(ham_channels=64, rank=16)),
    ],
)
def test_contract_with_options(name, options):
    failures = [f"{r.check}: {r.reason}" for r in check_module(name, **options) if not r.ok]
    assert not failures, failures


def test_soft_assignment_over_r_in_either_layout():
    logits = torch.linspace(0.0, -120.0, 8).repeat(2, 300, 1) + torch.randn(2, 300, 8)  # (B, N, R)
    by_row = soft_assignment(logits)
    by_column = soft_assignment(logits.transpose(1, 2).contiguous(), dim=1).transpose(1, 2)
    torch.testing.assert_close(by_column, by_row, rtol=1e-6, atol=0)
    assert torch.equal(by_column == 0, by_row == 0)  # the same weights cut to exact zeros


@pytest.mark.parametrize("method", ["vq", "cd"])
def test_a_zero_pixel_keeps_every_gradient_finite(method):
    torch.manual_seed(0)
    x = torch.rand(1, 16, 30, dtype=torch.float64)
    x[..., 7] = 0  # an all-zero feature column: its norm is 0
    x.requires_grad_(True)
    bases = random_bases(method, 1, 16, 4).double()
    out = FACTORIZERS[method](x, bases, 3, grad="bptt")
    sum(t.sum() for t in out).backward()
    assert torch.isfinite(x.grad).all()
