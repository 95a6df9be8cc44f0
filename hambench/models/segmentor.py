"""mmseg ``EncoderDecoder`` segmentors: a backbone preset + a head holding any context module.

::

    cfg = segmentor_cfg("r50-d8", "ham-nmf", options=dict(train_steps=6), num_classes=150)
    model = build_segmentor(segmentor_cfg("tiny-d8", "none", num_classes=3))

Backbones (``BACKBONES``): ``r18-d8``/``r50-d8``/``r101-d8`` (ResNetV1c, output stride 8, as in
the paper), ``van-tiny``/``van-small``/``van-base`` (Light-Ham), ``timm:<model>`` (any timm model
through mmseg's ``TIMMBackbone``) and the CPU presets ``tiny-d8`` and ``r18-narrow-d8``.

Heads: ``head="context"`` is hambench's head for the backbone (``ContextHead`` on the last
level; ``LightContextHead`` on levels 1-3 for VAN, as Light-Ham does); ``"single"`` or
``"light"`` force one of the two. ``context="mmseg:<HeadType>"`` (e.g. ``mmseg:DAHead``) uses
one of mmseg's own decode heads instead, for reference runs; ``options`` then holds that
head's extra arguments.

Pretrained weights come only from a local file (``pretrained=PATH``); nothing is downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from hambench.models.blocks import cross_entropy, fcn_aux_head, resnet_v1c_d8
from hambench.models.registration import register_all

HEADS = ("context", "single", "light")  # see the module docstring
# ImageNet statistics in 0-255 BGR->RGB order, as every mmseg config uses.
MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]


@dataclass(frozen=True)
class Backbone:
    """A backbone config and where the head reads from."""

    cfg: dict[str, Any]
    out_channels: list[int]  # width of each output level
    head_channels: int  # width of the decode head (and of the context module)
    aux_index: int  # level the auxiliary FCN head reads
    light: bool = False  # multi-level Light-Ham head by default


def _resnet(depth: int, head_channels: int, **kw: Any) -> Backbone:
    cfg = resnet_v1c_d8(depth, **kw)  # its norm_cfg is the run's, set by segmentor_cfg
    expansion = 1 if depth < 50 else 4
    base = kw.get("base", 64)
    widths = [base * 2**i * expansion for i in range(cfg["num_stages"])]
    return Backbone(cfg, widths, head_channels, aux_index=max(0, len(widths) - 2))


def _van(arch: str) -> Backbone:
    """VAN-``arch`` with Light-Ham's head width for it (``LIGHT_HAM``, as the presets that
    reproduce the published params and MACs)."""
    from hambench.models.van import LIGHT_HAM, VAN  # registers VAN in mmseg's MODELS

    dims = VAN.arch_settings[arch]["embed_dims"]
    return Backbone(
        dict(type="VAN", arch=arch, drop_path_rate=0.1), list(dims), LIGHT_HAM[arch], aux_index=2, light=True
    )


def _timm(model_name: str) -> Backbone:
    import timm

    try:  # the widths of the feature levels, from an untrained copy (no download)
        probe = timm.create_model(model_name, features_only=True, pretrained=False)
    except RuntimeError as exc:
        raise ValueError(f"timm backbone {model_name!r}: {exc}") from exc
    widths = list(probe.feature_info.channels())
    cfg = dict(type="TIMMBackbone", model_name=model_name, features_only=True, pretrained=False)
    return Backbone(cfg, widths, head_channels=min(512, max(64, widths[-1] // 4)), aux_index=len(widths) - 2)


# name -> factory; factories import lazily so that listing names is cheap.
BACKBONES: dict[str, Any] = {
    "r18-d8": lambda: _resnet(18, 128),
    "r50-d8": lambda: _resnet(50, 512),
    "r101-d8": lambda: _resnet(101, 512),
    "van-tiny": lambda: _van("tiny"),
    "van-small": lambda: _van("small"),
    "van-base": lambda: _van("base"),
    # CPU presets. tiny-d8: the deep stem and two narrow stages of ResNetV1c-18 (0.2 M params,
    # output stride 8). Its receptive field is local on purpose: on synthetic-context the
    # context module has to supply what lies beyond it.
    "tiny-d8": lambda: _resnet(18, 64, base=16, stem=16, num_stages=2),
    # r18-narrow-d8: all four (dilated) stages of ResNetV1c-18 at a quarter of the width.
    "r18-narrow-d8": lambda: _resnet(18, 64, base=16, stem=16),
}


def backbone_names() -> list[str]:
    return [*BACKBONES, "timm:<model>"]


def get_backbone(name: str) -> Backbone:
    if name.startswith("timm:"):
        return _timm(name.removeprefix("timm:"))
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(backbone_names())}")
    return BACKBONES[name]()


def _with_pretrained(backbone: dict[str, Any], path: str) -> dict[str, Any]:
    file = Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(f"pretrained weights not found: {file} (weights load from a local file only)")
    if backbone["type"] == "TIMMBackbone":
        return {**backbone, "checkpoint_path": str(file)}
    return {**backbone, "init_cfg": dict(type="Pretrained", checkpoint=str(file))}


def _norm_cfg(norm: str) -> dict[str, Any]:
    cfg: dict[str, Any] = dict(type=norm, requires_grad=True)
    if norm == "GN":
        cfg["num_groups"] = 32
    return cfg


def segmentor_cfg(
    backbone: str,
    context: str,
    *,
    options: dict[str, Any] | None = None,
    num_classes: int,
    head: str = "context",
    aux_head: bool = False,
    pretrained: str | None = None,
    norm: str = "BN",
) -> dict:
    """An mmseg ``EncoderDecoder`` config dict: ``backbone`` preset + head with ``context``, built
    with ``options`` (its keyword options; for ``mmseg:<HeadType>``, that head's extra arguments)."""
    if head not in HEADS:
        raise ValueError(f"head must be one of {', '.join(HEADS)}, got {head!r}")
    bb = get_backbone(backbone)
    norm_cfg = _norm_cfg(norm)
    backbone_cfg = {**bb.cfg}
    if backbone_cfg["type"] == "ResNetV1c":  # VAN and timm models bring their own norms
        backbone_cfg["norm_cfg"] = norm_cfg
    if pretrained:
        backbone_cfg = _with_pretrained(backbone_cfg, pretrained)

    light = head == "light" or (head == "context" and bb.light)
    common = dict(
        channels=bb.head_channels,
        num_classes=num_classes,
        dropout_ratio=0.1,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=cross_entropy(1.0),
    )
    if context.startswith("mmseg:"):  # one of mmseg's own heads, on the last level
        decode = dict(
            type=context.removeprefix("mmseg:"),
            in_channels=bb.out_channels[-1],
            in_index=-1,
            **common,
            **(options or {}),
        )
    elif light:
        levels = list(range(1, len(bb.out_channels)))
        decode = dict(
            type="LightContextHead",
            context=context,
            options=options or {},
            context_channels=bb.head_channels,
            in_channels=[bb.out_channels[i] for i in levels],
            in_index=levels,
            input_transform="multiple_select",
            train_accuracy=False,  # mmseg's acc_seg: read by nothing, 10 % of a CPU step
            **common,
        )
    else:
        decode = dict(
            type="ContextHead",
            context=context,
            options=options or {},
            in_channels=bb.out_channels[-1],
            in_index=-1,
            train_accuracy=False,
            **common,
        )

    cfg = dict(
        type="EncoderDecoder",
        data_preprocessor=dict(
            type="SegDataPreProcessor", mean=MEAN, std=STD, bgr_to_rgb=True, pad_val=0, seg_pad_val=255, size_divisor=32
        ),
        backbone=backbone_cfg,
        decode_head=decode,
        train_cfg=dict(),
        test_cfg=dict(mode="whole"),
    )
    if aux_head:  # the FCN auxiliary head of the paper's ResNet runs, loss weight 0.4
        cfg["auxiliary_head"] = fcn_aux_head(
            in_channels=bb.out_channels[bb.aux_index],
            in_index=bb.aux_index,
            channels=max(64, bb.head_channels // 2),
            num_classes=num_classes,
            norm_cfg=norm_cfg,
            loss_weight=0.4,
        )
    return cfg


def build_segmentor(cfg: dict[str, Any]) -> nn.Module:
    """Build a :func:`segmentor_cfg` config (weights initialised, pretrained ones loaded)."""
    from mmengine.config import ConfigDict
    from mmengine.logging import MMLogger
    from mmseg.registry import MODELS

    # The current mmengine logger at WARNING: init_weights would otherwise print one report per parameter.
    MMLogger.get_instance("hambench", log_level="WARNING")
    register_all()
    model = MODELS.build(ConfigDict(cfg))  # ConfigDict: mmseg reads test_cfg.mode as an attribute
    model.init_weights()
    return model
