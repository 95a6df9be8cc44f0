"""ISA, ANN (APNB), PPM and ASPP against mmseg's own heads, as ``test_baselines`` does it.

Each reference is built by mmseg at the same width with the config's ratios (a wrong default width
shows up as a parameter-count mismatch); its randomised weights are copied into ours through an
explicit name map that must cover both state dicts one to one; the outputs must agree, in eval and
in training mode (BatchNorm on batch statistics, running statistics updated alike).
"""

from __future__ import annotations

import pytest
import torch
from test_baselines import assert_close, copy_weights, inputs, mmseg_models, n_params, randomise
from torch import nn

from hambench.check import check_module
from hambench.registry import build_module, get_spec

C = 32
NEW = ["isa", "ann", "ppm", "aspp", "nonlocal-sdpa"]


def mmseg_decode_head(type: str, **cfg) -> nn.Module:
    """An mmseg decode head as the configs build it (BN, ReLU), input width C unless given."""
    cfg = {"in_channels": C, "channels": C, "num_classes": 2, "norm_cfg": dict(type="BN"), **cfg}
    return mmseg_models().build(dict(type=type, **cfg))


def conv_module_rename(ours: str, theirs: str) -> list[tuple[str, str]]:
    """Our Conv2dNormActivation (children 0: conv, 1: BN) -> mmcv's ConvModule (conv, bn)."""
    return [(f"{ours}.0.", f"{theirs}.conv."), (f"{ours}.1.", f"{theirs}.bn.")]


# --------------------------------------------------------------------------------------------- ISA


def assert_same_in_both_modes(ours: nn.Module, reference: nn.Module, x: torch.Tensor, forward) -> None:
    """Equal outputs in evaluation and then training mode (BN on batch statistics);
    ``forward(x)`` is how the reference is called."""
    for train in (False, True):
        ours.train(train)
        reference.train(train)
        with torch.no_grad():
            assert_close(ours(x), forward(x))


def isa_reference() -> nn.Module:
    """ISAHead at in = channels = C, isa_channels = C/2 (the config's 512 -> 256), 8 x 8 groups,
    with its 3x3 in_conv (the head's squeeze) and classifier replaced by identities: its forward
    is then the two relations and out_conv on ``cat([x, residual])``, on the head's own code path."""
    head = mmseg_decode_head("ISAHead", isa_channels=C // 2, down_factor=(8, 8), dropout_ratio=0.0)
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
    ours = build_module("isa", C)
    assert n_params(ours) == n_params(reference)

    randomise(reference)
    copy_weights(ours, reference, isa_rename())
    x = torch.randn(2, C, *size, generator=torch.Generator().manual_seed(1))
    assert_same_in_both_modes(ours, reference, x, lambda x: reference([x]))
    assert_close(ours.short_range.out[1].running_var, reference.local_relation.output_project.bn.running_var)


# --------------------------------------------------------------------------------------------- ANN


def apnb_reference() -> nn.Module:
    """ANNHead's APNB (its ``context``) at channels = C, project_channels = C/2 (the config's
    512 -> 256), query_scales (1,), key_pool_scales (1, 3, 6, 8)."""
    head = mmseg_decode_head(
        "ANNHead", in_channels=[C, C], in_index=[0, 1], project_channels=C // 2,
        query_scales=(1,), key_pool_scales=(1, 3, 6, 8),
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
    reference = nn.ModuleDict({
        "key_project": stage.key_project, "value_project": stage.value_project,
        "out_project": stage.out_project, "bottleneck": apnb.bottleneck,
    })
    copy_weights(
        ours, reference,
        conv_module_rename("key", "key_project") + [("value.", "value_project."), ("out.", "out_project.")]
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
    head = mmseg_decode_head("PSPHead", channels=C // 4, pool_scales=(1, 2, 3, 6))
    # Its bottleneck maps the concatenation (C + 4 x C/4) to `channels`; a shape-preserving block maps
    # it back to C: the same 3x3 ConvModule, C outputs.
    assert head.bottleneck.conv.in_channels == 2 * C and head.bottleneck.conv.kernel_size == (3, 3)
    head.bottleneck = ConvModule(2 * C, C, 3, padding=1, norm_cfg=dict(type="BN"))
    reference = nn.ModuleDict({"psp_modules": head.psp_modules, "bottleneck": head.bottleneck})
    ours = build_module("ppm", C)
    assert n_params(ours) == n_params(reference)

    randomise(reference)
    rename = [r for i in range(4) for r in conv_module_rename(f"levels.{i}.1", f"psp_modules.{i}.1")]
    copy_weights(ours, reference, rename + conv_module_rename("fuse", "bottleneck"))
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
    head = mmseg_decode_head("ASPPHead", dilations=(1, 12, 24, 36))
    reference = nn.ModuleDict({"image_pool": head.image_pool, "aspp_modules": head.aspp_modules,
                               "bottleneck": head.bottleneck})
    ours = build_module("aspp", C, fuse_kernel=3)
    assert n_params(ours) == n_params(reference)

    randomise(reference)
    copy_weights(ours, reference, aspp_rename())
    x = inputs()
    assert_same_in_both_modes(ours, reference, x, lambda x: head._forward_feature([x]))


def test_aspp_default_is_the_paper_s_1x1_projection():
    head = mmseg_decode_head("ASPPHead", dilations=(1, 12, 24, 36))
    ours = build_module("aspp", C)
    assert get_spec("aspp").defaults == {"dilations": (1, 12, 24, 36), "reduction": 1, "fuse_kernel": 1}
    # mmseg's branches, and a 1x1 conv-BN-ReLU (5C -> C) in place of the 3x3 bottleneck.
    assert n_params(ours) == n_params(head.image_pool, head.aspp_modules) + 5 * C * C + 2 * C
    assert ours.fuse[0].kernel_size == (1, 1)


# --------------------------------------------------------------------------------------------- contract


@pytest.mark.parametrize("name", NEW)
def test_contract(name):
    failures = [f"{r.check}: {r.reason}" for r in check_module(name) if not r.ok]
    assert not failures, failures


@pytest.mark.parametrize(
    "name, family, complexity",
    [("isa", "attention", "O(n^2/P^2 + n*P^2)"), ("ann", "attention", "O(n)"), ("ppm", "other", "O(n)"),
     ("aspp", "other", "O(n)"), ("nonlocal-sdpa", "attention", "O(n^2), O(n) memory")],
)
def test_registered_family_and_complexity(name, family, complexity):
    spec = get_spec(name)
    assert (spec.family, spec.complexity) == (family, complexity)
    assert spec.paper


@pytest.mark.parametrize(
    "name, options, words",
    [
        ("isa", {"block": 0}, "block"),
        ("isa", {"reduction": 0}, "reduction"),
        ("ann", {"pool_scales": []}, "pool_scales"),
        ("ann", {"reduction": 0}, "reduction"),
        ("ppm", {"pool_scales": [0, 2]}, "pool_scales"),
        ("ppm", {"reduction": 0}, "reduction"),
        ("aspp", {"dilations": []}, "dilations"),
        ("aspp", {"fuse_kernel": 5}, "fuse_kernel"),
    ],
)
def test_bad_options_name_the_problem(name, options, words):
    with pytest.raises(ValueError, match=words):
        build_module(name, C, **options)


def test_ppm_levels_default_to_one_nth_of_the_width():
    assert build_module("ppm", C).levels[0][1][0].out_channels == C // 4  # N = 4 levels
    assert build_module("ppm", C, pool_scales=[1, 2]).levels[0][1][0].out_channels == C // 2
    assert build_module("ppm", C, reduction=8).levels[0][1][0].out_channels == C // 8
