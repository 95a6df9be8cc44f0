"""``SegConfig``: everything one segmentation run needs, and the data sets' defaults it falls back on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from hambench.data import DATA_OPTIONS, EMBEDDED, check_data_options, check_split, data_size
from hambench.device import resolve_device

# Learning rate per data set when none is given: the paper's 0.01 for fine-tuning on the real
# sets; synthetic-context trains from scratch within minutes, which needs a larger step.
DEFAULT_LR = {
    "synthetic-context": 0.1,
    "synthetic-recall": 0.1,
    "ade20k": 0.01,
    "voc-aug": 0.009,
    "pascal-context": 0.01,
}
# Crop (H, W) per data set when none is given: the paper's 512 for the real sets; a generated
# set's image size (its `size` option, 96 by default: hambench.data.data_size), at which it is made.
DEFAULT_CROP: dict[str, tuple[int, int]] = {
    **{name: (DATA_OPTIONS[name]["size"][0], DATA_OPTIONS[name]["size"][0]) for name in EMBEDDED},
    "ade20k": (512, 512),
    "voc-aug": (512, 512),
    "pascal-context": (480, 480),
}


@dataclass
class SegConfig:
    """Everything one segmentation run needs. ``crop=None`` takes the data set's default."""

    context: str = "ham-nmf"  # a registered module, or mmseg:<HeadType> for mmseg's own heads
    options: dict[str, Any] = field(default_factory=dict)  # the context module's options
    backbone: str = "tiny-d8"
    data: str = "synthetic-context"
    data_root: str | None = None  # the embedded sets: the cache folder by default
    data_options: dict[str, Any] = field(default_factory=dict)  # an embedded set's options (keys=2, size=128)
    iters: int = 300
    batch: int = 8  # per worker
    crop: tuple[int, int] | None = None
    work_dir: str = "work_dirs/seg"
    resume: bool = False
    seed: int = 0
    eval_interval: int = 100  # evaluate and checkpoint every N iterations (and at the end)
    eval_split: str = (
        "standard"  # standard (whole training split, the reported split) | val | test (tuning: select, report)
    )
    lr: float | None = None  # None: the data set's default (DEFAULT_LR)
    weight_decay: float = 1e-4
    momentum: float = 0.9
    device: str = "auto"  # auto | cpu | cuda
    amp: bool | None = None  # None: on with CUDA, off on CPU
    workers: int = 1  # data-parallel Ray Train workers; 1 = a plain single-process run
    pretrained: str | None = None  # local backbone weights; never downloaded
    head: str = "context"  # context | single | light (see hambench.models.segmentor)
    aux_head: bool = False
    norm: str | None = None  # None: SyncBN across GPU workers, BN otherwise
    # weights and activations in channels_last memory format: 1.19-1.25x faster training steps of
    # every quickstart module on one CPU thread (docs/results.md); data-parallel runs stay NCHW
    channels_last: bool = True
    threads: int | None = None  # torch intra-op threads of this run (None: torch's default)
    loader_workers: int = 0  # DataLoader processes per worker
    log_interval: int = 25
    plugins: list[str] = field(default_factory=list)  # plugin files (re-loaded in Ray workers)

    def __post_init__(self) -> None:
        check_split(self.eval_split)  # a ValueError naming the valid splits
        check_data_options(self.data, self.data_options)  # ... naming the data set's options

    def resolved_crop(self) -> tuple[int, int]:
        if self.crop:
            return tuple(self.crop)  # type: ignore[return-value]
        size = data_size(self.data, self.data_options)  # an embedded set is generated at the crop
        return (size, size) if size is not None else DEFAULT_CROP[self.data]

    def resolved_lr(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.data]

    def resolved_device(self) -> torch.device:
        """hambench.device's reading of ``device``; the CPU only where torch sees no GPU."""
        device = resolve_device(self.device)
        if device.type == "cpu" and torch.cuda.is_available():
            # mmengine's Runner puts the model on the visible GPU; hide it to train on CPU
            raise ValueError("device 'cpu' on a machine with CUDA: set CUDA_VISIBLE_DEVICES='' instead")
        return device
