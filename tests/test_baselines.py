"""The attention baselines against mmsegmentation's own blocks, and the module contract.

Each baseline is built next to the block mmseg (or mmcv) uses in the corresponding decode head, at
the same width and with the head's defaults (so a wrong default width shows up as a parameter-count
mismatch). Then the reference's weights -- randomised, so that zero initialisations hide nothing --
are copied into ours through an explicit name mapping that must cover both state dicts exactly,
and the outputs must agree.
"""

from __future__ import annotations

import importlib.util
import math
from functools import cache
from itertools import chain
from pathlib import Path

import pytest
import torch
from torch import nn

from hambench.check import check_module
from hambench.registry import RegistryError, build_module, get_spec

C = 32  # width of every block under test
BASELINES = ["none", "nonlocal", "dnl", "danet", "ccnet", "ema", "ocr", "gcnet", "linear-attention"]


# --------------------------------------------------------------------------------------------- helpers


@cache
def mmseg_models():
    """mmseg's model registry, with every decode head registered (a slow import: once per session)."""
    import mmseg.models  # noqa: F401
    from mmseg.registry import MODELS

    return MODELS


def mmseg_head(type: str, **cfg) -> nn.Module:
    """An mmseg decode head at width C, as the configs build it (BN, ReLU)."""
    return mmseg_models().build(
        dict(type=type, in_channels=C, channels=C, num_classes=2, norm_cfg=dict(type="BN"), **cfg)
    )


@cache
def mmcv_criss_cross():
    """mmcv's pure-PyTorch CrissCrossAttention. ``mmcv.ops`` itself cannot be imported without the
    compiled ops, so the one file is loaded on its own (it needs only torch, mmengine, mmcv.cnn)."""
    import mmcv

    path = Path(mmcv.__file__).parent / "ops" / "cc_attention.py"
    spec = importlib.util.spec_from_file_location("mmcv_ops_cc_attention", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.CrissCrossAttention


def n_params(*modules: nn.Module) -> int:
    return sum(p.numel() for m in modules for p in m.parameters())


def randomise(module: nn.Module, seed: int = 0) -> None:
    """Random values in every parameter and float buffer, at scales that keep activations of order
    one, so that no softmax is uniform or saturated by accident (either would hide a wrong scale)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            for name, t in chain(m.named_parameters(recurse=False), m.named_buffers(recurse=False)):
                if not t.is_floating_point():
                    continue
                if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.LayerNorm)) and name in ("weight", "running_var"):
                    t.copy_(torch.rand(t.shape, generator=g) + 0.5)
                elif t.dim() > 1:  # conv weights: unit gain
                    t.copy_(torch.randn(t.shape, generator=g) / math.sqrt(t[0].numel()))
                else:  # biases, BN means, attention scales, EMA bases
                    t.copy_(torch.randn(t.shape, generator=g) * 0.5)


def copy_weights(ours: nn.Module, reference: nn.Module, rename: list[tuple[str, str]]) -> None:
    """Load ``reference``'s state into ``ours``; ``rename`` maps our key prefixes to theirs.

    Every key on either side must be matched, with the same shape: the two blocks hold exactly
    the same tensors.
    """
    theirs = reference.state_dict()
    mapped = {}
    for key in ours.state_dict():
        prefix = next((p for p, _ in rename if key.startswith(p)), None)
        assert prefix is not None, f"no mapping for our parameter {key}"
        mapped[key] = dict(rename)[prefix] + key[len(prefix) :]
    assert sorted(mapped.values()) == sorted(theirs), "the two state dicts do not correspond one to one"
    ours.load_state_dict({k: theirs[v] for k, v in mapped.items()})


def assert_close(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)


def inputs(seed: int = 1) -> torch.Tensor:
    """Non-square, so that a swapped H and W cannot pass."""
    return torch.randn(2, C, 12, 20, generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------------------------- parity


def test_nonlocal_matches_nlhead_block():
    reference = mmseg_head("NLHead").nl_block  # mmcv NonLocal2d(C, reduction=2, use_scale=True, BN)
    ours = build_module("nonlocal", C)
    assert n_params(ours) == n_params(reference)

    x = inputs()
    ours.eval()
    reference.eval()
    with torch.no_grad():  # both start as the identity (zero-initialised BN scale)
        assert_close(ours(x), x)
        assert_close(reference(x), x)

    randomise(reference)
    copy_weights(
        ours,
        reference,
        [("theta.", "theta.conv."), ("phi.", "phi.conv."), ("g.", "g.conv."),
         ("out.0.", "conv_out.conv."), ("out.1.", "conv_out.bn.")],
    )
    with torch.no_grad():
        assert_close(ours(x), reference(x))


def test_dnl_matches_dnlhead_block():
    reference = mmseg_head("DNLHead").dnl_block  # DisentangledNonLocal2d(C, temperature=0.05, BN)
    ours = build_module("dnl", C)
    assert n_params(ours) == n_params(reference)

    randomise(reference)
    copy_weights(
        ours,
        reference,
        [("theta.", "theta.conv."), ("phi.", "phi.conv."), ("g.", "g.conv."),
         ("out.0.", "conv_out.conv."), ("out.1.", "conv_out.bn."), ("unary.", "conv_mask.")],
    )
    x = inputs()
    ours.eval()
    reference.eval()
    with torch.no_grad():
        assert_close(ours(x), reference(x))


def test_danet_matches_dahead_pam_cam():
    head = mmseg_head("DAHead", pam_channels=C // 8)  # DAHead's config: 512 -> 64
    # DAHead also holds per-branch 3x3 in/out convs and classifiers: head convs, not compared.
    reference = nn.ModuleDict({"pam": head.pam, "cam": head.cam})
    ours = build_module("danet", C)
    assert n_params(ours) == n_params(reference)

    randomise(reference)
    copy_weights(
        ours,
        reference,
        [("pam.query.", "pam.query_project."), ("pam.key.", "pam.key_project."),
         ("pam.value.", "pam.value_project."), ("alpha", "pam.gamma.scale"), ("beta", "cam.gamma.scale")],
    )
    x = inputs()
    with torch.no_grad():
        # mmseg's PAM and CAM each add the input; ours adds it once.
        assert_close(ours(x), head.pam(x) + head.cam(x) - x)


def test_ccnet_matches_mmcv_criss_cross():
    reference = mmcv_criss_cross()(C)  # as CCHead builds it; CCHead itself refuses to build without mmcv.ops
    ours = build_module("ccnet", C)
    assert n_params(ours) == n_params(reference)

    randomise(reference)
    copy_weights(
        ours,
        reference,
        [("query.", "query_conv."), ("key.", "key_conv."), ("value.", "value_conv."), ("gamma", "gamma.scale")],
    )
    x = inputs()
    with torch.no_grad():
        assert_close(ours(x), reference(reference(x)))  # CCHead: recurrence=2, shared weights


def ema_reference() -> nn.Module:
    """EMAHead with its head convs (3x3 in, 3x3 bottleneck, classifier) replaced by identities:
    its forward is then exactly EMA unit + projections + residual, on the head's own code path."""
    head = mmseg_head("EMAHead", ema_channels=C, num_bases=64, num_stages=3, concat_input=False, dropout_ratio=0)
    head.ema_in_conv = head.bottleneck = head.conv_seg = nn.Identity()
    return head


def test_ema_matches_emahead():
    reference = ema_reference()
    ours = build_module("ema", C)
    # Corresponding parts: ema_mid_conv (frozen), ema_out_conv, ema_module (bases: a buffer).
    assert n_params(ours) == n_params(reference.ema_mid_conv, reference.ema_out_conv, reference.ema_module)
    assert ours.bases.shape == reference.ema_module.bases.shape
    assert [p.requires_grad for p in ours.project.parameters()] == [
        p.requires_grad for p in reference.ema_mid_conv.parameters()
    ]

    randomise(reference)
    with torch.no_grad():  # EM needs unit-length bases
        reference.ema_module.bases.copy_(nn.functional.normalize(reference.ema_module.bases, dim=1))
    copy_weights(
        ours,
        reference,
        [("project.", "ema_mid_conv.conv."), ("out.0.", "ema_out_conv.conv."), ("out.1.", "ema_out_conv.bn."),
         ("bases", "ema_module.bases")],
    )
    x = inputs()
    with torch.no_grad():
        ours.eval()
        reference.eval()
        before = ours.bases.clone()
        assert_close(ours(x), reference([x]))
        assert torch.equal(ours.bases, before), "eval mode must not move the bases"

        ours.train()  # one momentum update of the bases on both sides
        reference.train()
        assert_close(ours(x), reference([x]))
        assert_close(ours.bases, reference.ema_module.bases)
        assert not torch.allclose(ours.bases, before), "training mode must update the bases"


def test_ocr_matches_ocrhead_blocks():
    head = mmseg_head("OCRHead", ocr_channels=C // 2)  # OCRHead's config: 512 -> 256
    reference = head.object_context_block  # the spatial gather has no parameters
    ours = build_module("ocr", C)
    # Ours also predicts its soft regions (a 1x1 conv C -> K); OCRNet takes them from its
    # auxiliary FCN head (prev_output). OCRHead's 3x3 input bottleneck is a head conv.
    assert n_params(ours) == n_params(reference) + (C + 1) * get_spec("ocr").defaults["regions"]

    randomise(reference)
    randomise(ours.regions, seed=1)
    # Our conv_bn_relu is torchvision's Conv2dNormActivation: children 0 (conv), 1 (BN), 2 (ReLU).
    rename = []
    for ours_name, theirs_name in (("query", "query_project"), ("key", "key_project")):
        for i in range(2):
            rename += [(f"{ours_name}.{i}.0.", f"{theirs_name}.{i}.conv."),
                       (f"{ours_name}.{i}.1.", f"{theirs_name}.{i}.bn.")]
    for ours_name, theirs_name in (("value", "value_project"), ("out", "out_project"), ("fuse", "bottleneck")):
        rename += [(f"{ours_name}.0.", f"{theirs_name}.conv."), (f"{ours_name}.1.", f"{theirs_name}.bn.")]
    both = nn.ModuleDict({"block": reference, "regions": ours.regions})
    copy_weights(ours, both, [(p, "block." + q) for p, q in rename] + [("regions.", "regions.")])

    x = inputs()
    ours.eval()
    reference.eval()
    with torch.no_grad():
        objects = head.spatial_gather_module(x, ours.regions(x))  # (B, C, K, 1)
        assert_close(ours(x), reference(x, objects))


def test_gcnet_matches_gchead_block():
    reference = mmseg_head("GCHead").gc_block  # mmcv ContextBlock(C, 1/4, 'att', ('channel_add',))
    ours = build_module("gcnet", C)
    assert n_params(ours) == n_params(reference)

    x = inputs()
    with torch.no_grad():  # both start as the identity (zero last conv)
        assert_close(ours(x), x)

    randomise(reference)
    copy_weights(ours, reference, [("attend.", "conv_mask."), ("transform.", "channel_add_conv.")])
    with torch.no_grad():
        assert_close(ours(x), reference(x))


# --------------------------------------------------------------------------------------------- own behaviour


def test_none_is_the_identity_without_parameters():
    module = build_module("none", C)
    x = inputs()
    assert n_params(module) == 0
    assert torch.equal(module(x), x)


def test_linear_attention_equals_quadratic_form():
    """The associative O(n) evaluation equals the explicit normalised n x n kernel attention."""
    module = build_module("linear-attention", C, heads=2).eval()
    randomise(module)
    x = inputs()
    with torch.no_grad():
        B, _, H, W = x.shape
        phi = lambda t: nn.functional.elu(module.split_heads(t)) + 1  # noqa: E731
        q, k, v = phi(module.query(x)), phi(module.key(x)), module.split_heads(module.value(x))
        kernel = q @ k.transpose(2, 3)  # (B, heads, n, n)
        y = (kernel / kernel.sum(dim=-1, keepdim=True)) @ v
        expected = x + module.out(y.transpose(2, 3).reshape(B, module.inner, H, W))
        assert_close(module(x), expected)


@pytest.mark.parametrize(
    "name, options, words",
    [
        ("linear-attention", {"heads": 5}, "heads"),
        ("nonlocal", {"reduction": 0}, "reduction"),
        ("dnl", {"temperature": 0.0}, "temperature"),
        ("ema", {"momentum": 2.0}, "momentum"),
        ("ocr", {"regions": 0}, "regions"),
        ("gcnet", {"ratio": 0.001}, "ratio"),
        ("ccnet", {"recurrence": 0}, "recurrence"),
        ("danet", {"reduction": 0}, "reduction"),
    ],
)
def test_bad_options_name_the_problem(name, options, words):
    with pytest.raises(ValueError, match=words):
        build_module(name, C, **options)


def test_unknown_option_is_refused():
    with pytest.raises(RegistryError, match="inner"):
        build_module("nonlocal", C, inner=4)


@pytest.mark.parametrize("name", BASELINES)
def test_registered_family_and_complexity(name):
    spec = get_spec(name)
    assert spec.family == ("none" if name == "none" else "attention")
    assert spec.complexity in {"O(n)", "O(n^2)", "O(n*sqrt(n))"}
    assert spec.paper


@pytest.mark.parametrize("name", BASELINES)
def test_contract(name):
    failures = [f"{r.check}: {r.reason}" for r in check_module(name) if not r.ok]
    assert not failures, failures
