"""mmseg config pieces that both the trainable segmentors (``hambench.models.segmentor``) and the
published whole-model presets (``hambench.models.presets``) are made of: one builder each."""

from __future__ import annotations

from typing import Any

BN = dict(type="BN", requires_grad=True)  # SyncBN in the published configs: same parameters


def cross_entropy(weight: float = 1.0) -> dict[str, Any]:
    """mmseg's softmax cross-entropy loss with ``weight``."""
    return dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=weight)


def resnet_v1c_d8(
    depth: int, *, base: int = 64, stem: int = 64, num_stages: int = 4, norm_cfg: dict[str, Any] = BN
) -> dict[str, Any]:
    """ResNetV1c (deep stem) with output stride 8, as mmseg's ``*-d8`` configs: stages 3-4 not
    strided but dilated by 2 and 4 (DeepLab/PSP). ``base``/``stem`` narrow it, ``num_stages``
    shortens it (hambench's CPU presets); the defaults are the published ResNets."""
    return dict(
        type="ResNetV1c",
        depth=depth,
        base_channels=base,
        stem_channels=stem,
        num_stages=num_stages,
        strides=(1, 2, 1, 1)[:num_stages],
        dilations=(1, 1, 2, 4)[:num_stages],
        out_indices=tuple(range(num_stages)),
        contract_dilation=True,
        norm_cfg=norm_cfg,
        norm_eval=False,
        style="pytorch",
    )


def fcn_aux_head(
    *,
    in_channels: int,
    in_index: int,
    channels: int,
    num_classes: int,
    norm_cfg: dict[str, Any] = BN,
    loss_weight: float = 0.4,
) -> dict[str, Any]:
    """mmseg's auxiliary FCN head: one 3x3 conv to ``channels``, dropout 0.1, classifier; its loss
    weighs ``loss_weight`` (0.4 in the papers' ResNet runs). On ResNet-101 stage 3: 1024 -> 256."""
    return dict(
        type="FCNHead",
        in_channels=in_channels,
        in_index=in_index,
        channels=channels,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=num_classes,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=cross_entropy(loss_weight),
    )
