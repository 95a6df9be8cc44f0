"""mmseg decode heads that hold any registered context module.

Importing this file registers ``ContextHead`` and ``LightContextHead`` in mmseg's ``MODELS``, so
any mmseg config can use a hambench module::

    custom_imports = dict(imports=["hambench.models.heads"], allow_failed_imports=False)
    decode_head = dict(type="ContextHead", context="ham-nmf", options=dict(train_steps=6, eval_steps=7),
                       in_channels=2048, in_index=3, channels=512, num_classes=150, ...)
"""

from __future__ import annotations

from typing import Any

import torch
from mmcv.cnn import ConvModule
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from torch import nn

from hambench.registry import build_module


class _Head(BaseDecodeHead):
    """mmseg's decode head whose training loss may leave out ``acc_seg``.

    mmseg adds to every training step's losses the pixel accuracy of the batch (``acc_seg``, a
    top-1 over the logits): a logged number that no loss, metric or hook of hambench reads, and
    1.5 ms of a 15 ms step of the tiny-d8 at 96x96 on one CPU thread. ``train_accuracy=False``
    skips it; the loss itself is mmseg's, term by term.
    """

    def __init__(self, *, train_accuracy: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.train_accuracy = train_accuracy

    def loss_by_feat(self, seg_logits: torch.Tensor, batch_data_samples: list) -> dict[str, torch.Tensor]:
        if self.train_accuracy:
            return super().loss_by_feat(seg_logits, batch_data_samples)
        seg_label = self._stack_batch_gt(batch_data_samples)
        seg_logits = resize(seg_logits, size=seg_label.shape[2:], mode="bilinear", align_corners=self.align_corners)
        weight = self.sampler.sample(seg_logits, seg_label) if self.sampler is not None else None
        seg_label = seg_label.squeeze(1)
        terms = self.loss_decode if isinstance(self.loss_decode, nn.ModuleList) else [self.loss_decode]
        losses: dict[str, torch.Tensor] = {}
        for term in terms:  # terms of one name add up, as in mmseg
            name = str(term.loss_name)
            value = term(seg_logits, seg_label, weight=weight, ignore_index=self.ignore_index)
            losses[name] = losses[name] + value if name in losses else value
        return losses


@MODELS.register_module()
class ContextHead(_Head):
    """The paper's single-level head (HamNet, Geng et al. 2021, Fig. 1):
    3x3 squeeze -> context module -> 3x3 align -> dropout -> 1x1 classifier.

    Args:
        context: name of a registered context module (``hambench modules list``).
        options: its keyword options (the suite's ``options``, under the same name).
        context_channels: width the context module runs at (default: ``channels``).
        train_accuracy: add mmseg's ``acc_seg`` to the training losses (see ``_Head``).
    """

    def __init__(
        self,
        context: str = "ham-nmf",
        options: dict[str, Any] | None = None,
        context_channels: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        width = context_channels or self.channels
        conv = dict(conv_cfg=self.conv_cfg, norm_cfg=self.norm_cfg, act_cfg=self.act_cfg)
        self.context_name = context
        self.squeeze = ConvModule(self.in_channels, width, 3, padding=1, **conv)
        self.context = build_module(context, width, **(options or {}))
        self.align = ConvModule(width, self.channels, 3, padding=1, **conv)

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        x = self._transform_inputs(inputs)  # (B, in_channels, H, W)
        x = self.squeeze(x)  # (B, width, H, W)
        x = self.context(x)  # (B, width, H, W): global context
        x = self.align(x)  # (B, channels, H, W)
        return self.cls_seg(x)  # dropout + 1x1 conv -> (B, num_classes, H, W)


@MODELS.register_module()
class LightContextHead(_Head):
    """Light-Ham's multi-level head (Guo et al. 2022) with any context module:
    resize levels to the finest selected one -> concat -> 1x1 squeeze -> context -> 1x1 align
    -> dropout -> classifier. Use ``in_index=[1, 2, 3]`` and ``input_transform='multiple_select'``.

    Args:
        context: name of a registered context module.
        options: its keyword options.
        context_channels: width of the squeeze, the context module and the align input.
        train_accuracy: add mmseg's ``acc_seg`` to the training losses (see ``_Head``).
    """

    def __init__(
        self,
        context: str = "ham-nmf",
        options: dict[str, Any] | None = None,
        context_channels: int = 512,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("input_transform", "multiple_select")
        super().__init__(**kwargs)
        conv = dict(conv_cfg=self.conv_cfg, norm_cfg=self.norm_cfg, act_cfg=self.act_cfg)
        self.context_name = context
        self.squeeze = ConvModule(sum(self.in_channels), context_channels, 1, **conv)
        self.context = build_module(context, context_channels, **(options or {}))
        self.align = ConvModule(context_channels, self.channels, 1, **conv)

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        levels = self._transform_inputs(inputs)
        size = levels[0].shape[2:]
        levels = [resize(x, size=size, mode="bilinear", align_corners=self.align_corners) for x in levels]
        x = self.squeeze(torch.cat(levels, dim=1))
        x = self.context(x)
        x = self.align(x)
        return self.cls_seg(x)
