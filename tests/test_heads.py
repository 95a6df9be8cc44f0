"""Any registered module drops into an mmseg config through `ContextHead` / `LightContextHead`."""

from __future__ import annotations

import pytest
import torch
from mmseg.registry import MODELS
from mmseg.utils import register_all_modules

import hambench.models.heads  # noqa: F401  (registers the heads)
from hambench.profiling import count_params

register_all_modules()  # mmseg's default scope: the data preprocessor, backbones, heads


def _data_preprocessor():
    return dict(type="SegDataPreProcessor", mean=[0.0] * 3, std=[1.0] * 3, size=(32, 32))


@pytest.mark.parametrize("context", ["ham-nmf", "none"])
def test_context_head_in_an_encoder_decoder(context):
    cfg = dict(
        type="EncoderDecoder",
        data_preprocessor=_data_preprocessor(),
        backbone=dict(
            type="ResNetV1c",
            depth=18,
            num_stages=4,
            out_indices=(0, 1, 2, 3),
            dilations=(1, 1, 2, 4),
            strides=(1, 2, 1, 1),
            norm_cfg=dict(type="BN"),
        ),
        decode_head=dict(
            type="ContextHead",
            context=context,
            options={},
            in_channels=512,
            in_index=3,
            channels=64,
            num_classes=5,
            norm_cfg=dict(type="BN"),
            dropout_ratio=0.1,
        ),
        test_cfg=dict(mode="whole"),
    )
    model = MODELS.build(cfg).eval()
    block = model.decode_head.context
    assert isinstance(block, hambench.get_spec(context).cls)  # the registry's module, at the head's width
    assert count_params(block) == count_params(hambench.build_module(context, 64))
    seen = []
    block.register_forward_hook(lambda module, inputs, output: seen.append((inputs[0].shape, output.shape)))
    with torch.no_grad():
        logits = model(torch.randn(2, 3, 32, 32), mode="tensor")
    assert logits.shape == (2, 5, 4, 4)  # output stride 8
    assert seen == [((2, 64, 4, 4), (2, 64, 4, 4))]  # the head runs it once, on its 64-channel features


def test_light_context_head_fuses_levels():
    head = MODELS.build(
        dict(
            type="LightContextHead",
            context="ham-nmf",
            context_channels=32,
            in_channels=[16, 24, 40],
            in_index=[0, 1, 2],
            channels=32,
            num_classes=3,
            norm_cfg=dict(type="GN", num_groups=8),
        )
    )
    feats = [torch.randn(1, 16, 16, 16), torch.randn(1, 24, 8, 8), torch.randn(1, 40, 4, 4)]
    assert head.eval()(feats).shape == (1, 3, 16, 16)


def test_unknown_context_fails_with_valid_names():
    with pytest.raises(Exception, match="unknown context module 'attention-ish'"):
        MODELS.build(dict(type="ContextHead", context="attention-ish", in_channels=8, channels=8, num_classes=2))


@pytest.mark.parametrize("head", ["ContextHead", "LightContextHead"])
def test_options_reach_the_context_module(head):
    # The suite's `options` keep their name down to the head, which builds the module with them.
    levels = dict(in_channels=[16, 24], in_index=[0, 1]) if head == "LightContextHead" else dict(in_channels=16)
    built = MODELS.build(
        dict(
            type=head,
            context="ham-nmf",
            options={"rank": 8},
            context_channels=32,
            channels=32,
            num_classes=3,
            norm_cfg=dict(type="GN", num_groups=8),
            **levels,
        )
    )
    assert built.context.ham.rank == 8 and hambench.build_module("ham-nmf", 32).ham.rank != 8
