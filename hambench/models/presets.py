"""Named whole-model presets: the published segmentation models whose cost we reproduce.

Each preset is an mmseg model config built from the published config (Enjoy-Hamburger
``seg_mm`` / ``seg_light_ham``, mmseg's ``configs/_base_/models``), with SyncBN replaced by BN
(same parameters, runs on one CPU) and ADE20K's 150 classes. The published Params/FLOPs sit
beside each one; ``docs/conventions.md`` says how each published number was counted.

    >>> from hambench.profiling import count_params
    >>> model = build_preset("lightham-van-tiny")      # eval mode, random weights
    >>> count_params(model)                            # 4_866_134; published "4.9M"

Their cost beside the published figures: ``hambench.models.cost.profile_model``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import nn

from hambench.models.blocks import BN, cross_entropy, fcn_aux_head, resnet_v1c_d8
from hambench.models.registration import register_all

NUM_CLASSES = 150  # ADE20K
GN32 = dict(type="GN", num_groups=32, requires_grad=True)  # Hamburger configs' head norm
# hambench's ham-nmf-v1 as mmseg's Hamburger: GN(32) after the upper bread, gradient through
# every NMF step (mmseg's NMF2D has no no_grad). Neither changes the parameter count or MACs.
HAM_V1_AS_MMSEG = dict(norm="gn", grad="bptt")


@dataclass(frozen=True)
class Published:
    """A published cost figure and where it comes from."""

    params_m: float  # millions of parameters
    flops_g: float  # "GFLOPs" as printed; the convention is in `flops_convention`
    flops_size: tuple[int, int]  # (H, W) the FLOPs were counted at
    flops_convention: str  # which counter; see docs/conventions.md
    source: str


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    config: Callable[[], dict[str, Any]]  # a fresh mmseg model config
    published: Published


# ----------------------------------------------------------------------------- building blocks


def _fcn_aux(norm_cfg: dict = BN) -> dict[str, Any]:
    """The FCN auxiliary head of the published ResNet-101 models: stage 3 (1024 channels) -> 256."""
    return fcn_aux_head(in_channels=1024, in_index=2, channels=256, num_classes=NUM_CLASSES, norm_cfg=norm_cfg)


def _encoder_decoder(backbone: dict, decode_head: dict, auxiliary_head: dict | None = None) -> dict[str, Any]:
    cfg = dict(
        type="EncoderDecoder", backbone=backbone, decode_head=decode_head, train_cfg=dict(), test_cfg=dict(mode="whole")
    )
    if auxiliary_head is not None:
        cfg["auxiliary_head"] = auxiliary_head
    return cfg


def _decode_head(head_type: str, *, in_channels: Any, in_index: Any, norm_cfg: dict, **own: Any) -> dict[str, Any]:
    """A published model's decode head: 512 channels, dropout 0.1, ADE20K's classes, cross-entropy;
    ``own``: the head type's own arguments."""
    return dict(
        type=head_type,
        in_channels=in_channels,
        in_index=in_index,
        channels=512,
        dropout_ratio=0.1,
        num_classes=NUM_CLASSES,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=cross_entropy(),
        **own,
    )


def _r101_head(head_type: str, norm_cfg: dict = BN, **own: Any) -> dict[str, Any]:
    """The decode head of the published ResNet-101 models, on stage 4 (2048 channels)."""
    return _decode_head(head_type, in_channels=2048, in_index=3, norm_cfg=norm_cfg, **own)


# ----------------------------------------------------------------------------- the presets


def hamnet_r101() -> dict[str, Any]:
    """HamNet (Enjoy-Hamburger seg_mm ``ham_r101-d8``, concat_input=False): 3x3 squeeze to 512,
    Hamburger (1x1 -> NMF -> 1x1+GN, residual), 3x3 align, classifier; GN heads, FCN aux head."""
    head = _r101_head("ContextHead", GN32, context="ham-nmf-v1", options=HAM_V1_AS_MMSEG)
    return _encoder_decoder(resnet_v1c_d8(101), head, _fcn_aux(norm_cfg=GN32))


def danet_r101() -> dict[str, Any]:
    """mmseg ``danet_r101-d8``: DAHead (position + channel attention, PAM width 64) + FCN aux."""
    return _encoder_decoder(resnet_v1c_d8(101), _r101_head("DAHead", pam_channels=64), _fcn_aux())


def dnl_r101() -> dict[str, Any]:
    """mmseg ``dnl_r101-d8``: DNLHead (disentangled non-local, embedded Gaussian, C/2) + FCN aux."""
    head = _r101_head("DNLHead", reduction=2, use_scale=True, mode="embedded_gaussian")
    return _encoder_decoder(resnet_v1c_d8(101), head, _fcn_aux())


def ocrnet_r101() -> dict[str, Any]:
    """mmseg ``ocrnet_r101-d8``: a cascade of an FCN head (soft object regions, stage 3) and the
    OCR head (object-contextual representations, width 256) on stage 4."""
    return dict(
        type="CascadeEncoderDecoder",
        num_stages=2,
        backbone=resnet_v1c_d8(101),
        decode_head=[_fcn_aux(), _r101_head("OCRHead", ocr_channels=256)],
        train_cfg=dict(),
        test_cfg=dict(mode="whole"),
    )


# Light-Ham (Enjoy-Hamburger seg_light_ham): VAN stages 2-4 -> LightContextHead holding ham-nmf-v1,
# at the ham width of ``hambench.models.van.LIGHT_HAM``.


def lightham_van(arch: str, *, reference_head: bool = False) -> dict[str, Any]:
    """Light-Ham on VAN-``arch``: concat stages 2-4 (resized to stride 8) -> 1x1 squeeze ->
    Hamburger -> 1x1 align to 512 -> classifier, GN(32) throughout.

    ``reference_head=True`` builds mmseg's own ``LightHamHead`` instead of hambench's
    ``LightContextHead`` + ``ham-nmf-v1`` (the tests check that both have the same parameters).
    """
    from hambench.models.van import LIGHT_HAM, VAN  # registers VAN in mmseg's MODELS

    stages: dict[str, Any] = dict(
        in_channels=VAN.arch_settings[arch]["embed_dims"][1:], in_index=[1, 2, 3], norm_cfg=GN32
    )
    ham_channels = LIGHT_HAM[arch]
    if reference_head:
        head = _decode_head("LightHamHead", **stages, ham_channels=ham_channels)
    else:
        head = _decode_head(
            "LightContextHead",
            **stages,
            context="ham-nmf-v1",
            options=HAM_V1_AS_MMSEG,
            context_channels=ham_channels,
        )
    return _encoder_decoder(dict(type="VAN", arch=arch, drop_path_rate=0.1), head)


# Counted at 2048x512 by fvcore as it was before it learned `bmm` (January 2021), on each
# method's original code: HamNet's NMF and the original DANet's attention multiply with
# torch.bmm (missed); DNL's non-local block with torch.matmul (counted). mmseg's DAHead uses
# matmul, so for it "fvcore-nomm" leaves out the activation-by-activation products the original's
# bmm hid. Evidence in docs/conventions.md.
def _r101(
    name: str, head: str, config: Callable[[], dict[str, Any]], params_m: float, flops_g: float, convention: str
) -> Preset:
    """A ResNet-101 model (``head`` on ResNetV1c-101-D8) and its published figures: FLOPs at
    2048x512, in ``convention``."""
    published = Published(params_m, flops_g, (512, 2048), convention, "Enjoy-Hamburger README")
    return Preset(name, f"ResNetV1c-101-D8 + {head}", config, published)


def _light_ham(arch: str, description: str, params_m: float, flops_g: float) -> Preset:
    """Light-Ham on VAN-``arch`` and its published figures: torchprofile MACs at 512x512."""
    source = "Enjoy-Hamburger / VAN-Segmentation README (seeds 000, 004)"
    published = Published(params_m, flops_g, (512, 512), "torchprofile", source)
    return Preset(f"lightham-van-{arch}", description, partial(lightham_van, arch), published)


# name, head (or description), config, published params (M) and FLOPs (G)[, FLOPs convention]
PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        _r101("hamnet-r101", "HamNet head (ham-nmf-v1) + FCN aux", hamnet_r101, 57.0, 918.0, "fvcore-nobmm"),
        _r101("danet-r101", "mmseg DAHead + FCN aux", danet_r101, 69.0, 1119.0, "fvcore-nomm"),
        _r101("ocrnet-r101", "mmseg FCN -> OCRHead cascade", ocrnet_r101, 56.0, 923.0, "fvcore-nobmm"),
        _r101("dnl-r101", "mmseg DNLHead + FCN aux", dnl_r101, 69.0, 1249.0, "fvcore-nobmm"),
        _light_ham("tiny", "VAN-Tiny + Light-Ham head (ham 480)", 4.9, 11.3),
        _light_ham("small", "VAN-Small + Light-Ham head (ham 512)", 14.7, 21.4),
        _light_ham("base", "VAN-Base + Light-Ham head (ham 512)", 27.4, 34.4),
    ]
}


def preset_names() -> list[str]:
    return list(PRESETS)


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise KeyError(f"unknown model preset {name!r}; presets: {', '.join(PRESETS)}")
    return PRESETS[name]


def preset_cfg(name: str) -> dict[str, Any]:
    """A fresh mmseg model config for the preset (a deep copy: edit it freely)."""
    return copy.deepcopy(get_preset(name).config())


def build_from_cfg(cfg: dict[str, Any]) -> nn.Module:
    """Build an mmseg model config in eval mode (random weights: nothing is downloaded)."""
    register_all(default_scope=False)  # a preset is built, not trained: mmengine's scope stays as it was
    from mmseg.registry import MODELS

    model = MODELS.build(cfg)
    return model.eval()


def build_preset(name: str) -> nn.Module:
    """Build the preset's mmseg segmentor in eval mode."""
    return build_from_cfg(preset_cfg(name))


class InferencePath(nn.Module):
    """What the published FLOPs count: backbone -> decode head(s) -> bilinear resize of the
    logits to the input size (old mmseg's ``forward_dummy``). The auxiliary head, used only in
    training, is not run (its parameters still count)."""

    def __init__(self, segmentor: nn.Module) -> None:
        super().__init__()
        self.segmentor = segmentor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # encode_decode = backbone -> decode head(s) `predict` (DAHead keeps only its fused output)
        # -> resize to img_shape.
        metas = [dict(img_shape=tuple(x.shape[2:]))] * x.shape[0]
        segmentor: Any = self.segmentor  # an mmseg segmentor: encode_decode is its own (untyped) method
        return segmentor.encode_decode(x, metas)  # (B, classes, H, W)
