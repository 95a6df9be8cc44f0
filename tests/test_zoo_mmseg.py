"""Every zoo module that mmsegmentation (or mmcv) also implements, against mmseg's own block.

Each module is built next to the block mmseg uses in the corresponding decode head, at the same
width and with the head's defaults (so a wrong default width shows up as a parameter-count
mismatch). Then the reference's weights -- randomised, so that zero initialisations hide nothing --
are copied into ours through an explicit name mapping that must cover both state dicts exactly,
and the outputs must agree; where a block holds BatchNorm, in evaluation and in training mode
(BN on batch statistics, running statistics updated alike). The attention baselines first
(non-local, DNL, DANet, CCNet, EMA, OCR, GCNet), then ISA, ANN (APNB), PPM and ASPP. The module
contract of all of them is tests/test_module_contract.py's.
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

from hambench.profiling import count_params
from hambench.registry import RegistryError, build_module, get_spec

C = 32  # width of every block under test

# --------------------------------------------------------------------------------------------- helpers


@cache
def mmseg_models():
    """mmseg's model registry, with every decode head registered (a slow import: once per session)."""
    import mmseg.models  # noqa: F401
    from mmseg.registry import MODELS

    return MODELS


def mmseg_head(type: str, **cfg) -> nn.Module:
    """An mmseg decode head as the configs build it (BN, ReLU), input width C unless given."""
    cfg = {"in_channels": C, "channels": C, "num_classes": 2, "norm_cfg": dict(type="BN"), **cfg}
    return mmseg_models().build(dict(type=type, **cfg))


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
    return sum(count_params(m) for m in modules)


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


def ours_with_weights_of(reference: nn.Module, name: str, rename: list[tuple[str, str]], **options) -> nn.Module:
    """Our module ``name`` at width C with ``reference``'s weights, randomised first: the same
    parameter count, then every tensor copied through ``rename`` (``copy_weights``)."""
    ours = build_module(name, C, **options)
    assert n_params(ours) == n_params(reference)
    randomise(reference)
    copy_weights(ours, reference, rename)
    return ours


def assert_close(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)


def inputs(seed: int = 1) -> torch.Tensor:
    """Non-square, so that a swapped H and W cannot pass."""
    return torch.randn(2, C, 12, 20, generator=torch.Generator().manual_seed(seed))


def conv_module_rename(ours: str, theirs: str) -> list[tuple[str, str]]:
    """Our Conv2dNormActivation (children 0: conv, 1: BN) -> mmcv's ConvModule (conv, bn)."""
    return [(f"{ours}.0.", f"{theirs}.conv."), (f"{ours}.1.", f"{theirs}.bn.")]


def assert_same_in_both_modes(ours: nn.Module, reference: nn.Module, x: torch.Tensor, forward) -> None:
    """Equal outputs in evaluation and then training mode (BN on batch statistics);
    ``forward(x)`` is how the reference is called."""
    for train in (False, True):
        ours.train(train)
        reference.train(train)
        with torch.no_grad():
            assert_close(ours(x), forward(x))


# --------------------------------------------------------------------------------------------- parity


# Our non-local block's parameter names -> mmcv's NonLocal2d's (and DNL's DisentangledNonLocal2d's).
NONLOCAL_NAMES = [
    ("theta.", "theta.conv."),
    ("phi.", "phi.conv."),
    ("g.", "g.conv."),
    *conv_module_rename("out", "conv_out"),
]


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
    copy_weights(ours, reference, NONLOCAL_NAMES)
    with torch.no_grad():
        assert_close(ours(x), reference(x))


def test_dnl_matches_dnlhead_block():
    reference = mmseg_head("DNLHead").dnl_block  # DisentangledNonLocal2d(C, temperature=0.05, BN)
    ours = ours_with_weights_of(reference, "dnl", [*NONLOCAL_NAMES, ("unary.", "conv_mask.")])  # and its unary branch
    x = inputs()
    ours.eval()
    reference.eval()
    with torch.no_grad():
        assert_close(ours(x), reference(x))


def danet_with_dahead_weights() -> tuple[nn.Module, nn.Module]:
    """Our danet and mmseg's DAHead, the head's PAM and CAM randomised and copied into ours (equal
    parameter counts checked first)."""
    head = mmseg_head("DAHead", pam_channels=C // 8)  # DAHead's config: 512 -> 64
    # DAHead also holds per-branch 3x3 in/out convs and classifiers: head convs, not compared.
    reference = nn.ModuleDict({"pam": head.pam, "cam": head.cam})
    rename = [
        ("pam.query.", "pam.query_project."),
        ("pam.key.", "pam.key_project."),
        ("pam.value.", "pam.value_project."),
        ("alpha", "pam.gamma.scale"),
        ("beta", "cam.gamma.scale"),
    ]
    return ours_with_weights_of(reference, "danet", rename), head


def test_danet_matches_dahead_pam_cam():
    ours, head = danet_with_dahead_weights()
    x = inputs()
    with torch.no_grad():
        # mmseg's PAM and CAM each add the input; ours adds it once.
        assert_close(ours(x), head.pam(x) + head.cam(x) - x)


def test_ccnet_matches_mmcv_criss_cross():
    reference = mmcv_criss_cross()(C)  # as CCHead builds it; CCHead itself refuses to build without mmcv.ops
    rename = [("query.", "query_conv."), ("key.", "key_conv."), ("value.", "value_conv."), ("gamma", "gamma.scale")]
    ours = ours_with_weights_of(reference, "ccnet", rename)
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
        [
            ("project.", "ema_mid_conv.conv."),
            ("out.0.", "ema_out_conv.conv."),
            ("out.1.", "ema_out_conv.bn."),
            ("bases", "ema_module.bases"),
        ],
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
            rename += [
                (f"{ours_name}.{i}.0.", f"{theirs_name}.{i}.conv."),
                (f"{ours_name}.{i}.1.", f"{theirs_name}.{i}.bn."),
            ]
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


# --------------------------------------------------------------------------------------------- ISA


def isa_reference() -> nn.Module:
    """ISAHead at in = channels = C, isa_channels = C/2 (the config's 512 -> 256), 8 x 8 groups,
    with its 3x3 in_conv (the head's squeeze) and classifier replaced by identities: its forward
    is then the two relations and out_conv on ``cat([x, residual])``, on the head's own code path."""
    head = mmseg_head("ISAHead", isa_channels=C // 2, down_factor=(8, 8), dropout_ratio=0.0)
    head.in_conv = head.conv_seg = nn.Identity()
    return head


def isa_rename() -> list[tuple[str, str]]:
    rename = []
    for ours, theirs in (("long_range", "global_relation"), ("short_range", "local_relation")):
        for part, project in (("query", "query_project"), ("key", "key_project")):
            for i in range(2):
                rename += conv_module_rename(f"{ours}.{part}.{i}", f"{theirs}.{project}.{i}")
        rename += [(f"{ours}.value.", f"{theirs}.value_project.")]
        rename += conv_module_rename(f"{ours}.out", f"{theirs}.output_project")
    return rename + conv_module_rename("fuse", "out_conv")


@pytest.mark.parametrize("size", [(12, 20), (16, 24)])  # padded to 16 x 24 (2 x 3 blocks); divisible
def test_isa_matches_isahead(size):
    reference = isa_reference()
    ours = ours_with_weights_of(reference, "isa", isa_rename())
    x = torch.randn(2, C, *size, generator=torch.Generator().manual_seed(1))
    assert_same_in_both_modes(ours, reference, x, lambda x: reference([x]))
    assert_close(ours.short_range.out[1].running_var, reference.local_relation.output_project.bn.running_var)


# --------------------------------------------------------------------------------------------- ANN


def apnb_reference() -> nn.Module:
    """ANNHead's APNB (its ``context``) at channels = C, project_channels = C/2 (the config's
    512 -> 256), query_scales (1,), key_pool_scales (1, 3, 6, 8)."""
    head = mmseg_head(
        "ANNHead",
        in_channels=[C, C],
        in_index=[0, 1],
        project_channels=C // 2,
        query_scales=(1,),
        key_pool_scales=(1, 3, 6, 8),
    )
    return head.context


def test_ann_matches_annhead_apnb():
    apnb = apnb_reference()
    stage = apnb.stages[0]
    assert len(apnb.stages) == 1 and stage.query_project is stage.key_project  # shared: one set of weights
    ours = build_module("ann", C)
    assert n_params(ours) == n_params(apnb)
    assert not ours.out.weight.any() and not stage.out_project.weight.any()  # both start with zero context

    randomise(apnb)
    # The same tensors without the query_project alias of key_project.
    reference = nn.ModuleDict(
        {
            "key_project": stage.key_project,
            "value_project": stage.value_project,
            "out_project": stage.out_project,
            "bottleneck": apnb.bottleneck,
        }
    )
    copy_weights(
        ours,
        reference,
        conv_module_rename("key", "key_project")
        + [("value.", "value_project."), ("out.", "out_project.")]
        + conv_module_rename("fuse", "bottleneck"),
    )
    x = inputs()
    start = ours.key[1].running_mean.clone()
    assert_same_in_both_modes(ours, apnb, x, apnb)
    # mmseg calls the shared projection twice (query, then key) on the same input, so one training
    # forward moves its BN statistics twice; ours projects once and moves them once.
    m, once = ours.key[1].momentum, ours.key[1].running_mean
    batch_mean = (once - (1 - m) * start) / m
    assert_close(stage.key_project.bn.running_mean, (1 - m) * once + m * batch_mean)


# --------------------------------------------------------------------------------------------- PPM


def test_ppm_matches_psphead_with_its_bottleneck_mapping_back_to_c():
    from mmcv.cnn import ConvModule

    # PSPHead's levels at the paper's 1/N: channels = C / 4 for (1, 2, 3, 6), as the config's 2048 -> 512.
    head = mmseg_head("PSPHead", channels=C // 4, pool_scales=(1, 2, 3, 6))
    # Its bottleneck maps the concatenation (C + 4 x C/4) to `channels`; a shape-preserving block maps
    # it back to C: the same 3x3 ConvModule, C outputs.
    assert head.bottleneck.conv.in_channels == 2 * C and head.bottleneck.conv.kernel_size == (3, 3)
    head.bottleneck = ConvModule(2 * C, C, 3, padding=1, norm_cfg=dict(type="BN"))
    reference = nn.ModuleDict({"psp_modules": head.psp_modules, "bottleneck": head.bottleneck})
    rename = [r for i in range(4) for r in conv_module_rename(f"levels.{i}.1", f"psp_modules.{i}.1")]
    ours = ours_with_weights_of(reference, "ppm", rename + conv_module_rename("fuse", "bottleneck"))
    x = inputs()
    assert_same_in_both_modes(ours, reference, x, lambda x: head._forward_feature([x]))
    assert_close(ours.levels[0][1][1].running_var, head.psp_modules[0][1].bn.running_var)


# --------------------------------------------------------------------------------------------- ASPP


def aspp_rename() -> list[tuple[str, str]]:
    rename = conv_module_rename("image_pool.1", "image_pool.1")
    rename += [r for i in range(4) for r in conv_module_rename(f"branches.{i}", f"aspp_modules.{i}")]
    return rename + conv_module_rename("fuse", "bottleneck")


def test_aspp_with_a_3x3_fuse_is_asppthead():
    # ASPPHead at in = channels = C: branches as wide as the output, DeepLabv3's rates at output stride 8.
    head = mmseg_head("ASPPHead", dilations=(1, 12, 24, 36))
    reference = nn.ModuleDict(
        {"image_pool": head.image_pool, "aspp_modules": head.aspp_modules, "bottleneck": head.bottleneck}
    )
    ours = ours_with_weights_of(reference, "aspp", aspp_rename(), fuse_kernel=3)
    x = inputs()
    assert_same_in_both_modes(ours, reference, x, lambda x: head._forward_feature([x]))


def test_aspp_default_is_the_paper_s_1x1_projection():
    head = mmseg_head("ASPPHead", dilations=(1, 12, 24, 36))
    ours = build_module("aspp", C)
    assert get_spec("aspp").defaults == {"dilations": (1, 12, 24, 36), "reduction": 1, "fuse_kernel": 1}
    # mmseg's branches, and a 1x1 conv-BN-ReLU (5C -> C) in place of the 3x3 bottleneck.
    assert n_params(ours) == n_params(head.image_pool, head.aspp_modules) + 5 * C * C + 2 * C
    assert ours.fuse[0].kernel_size == (1, 1)


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


# --------------------------------------------------------------------------------------------- registration


def test_unknown_option_is_refused():
    with pytest.raises(RegistryError, match="inner"):
        build_module("nonlocal", C, inner=4)


def test_ppm_levels_default_to_one_nth_of_the_width():
    assert build_module("ppm", C).levels[0][1][0].out_channels == C // 4  # N = 4 levels
    assert build_module("ppm", C, pool_scales=[1, 2]).levels[0][1][0].out_channels == C // 2
    assert build_module("ppm", C, reduction=8).levels[0][1][0].out_channels == C // 8
