"""``GanConfig``: everything one GAN run needs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from hambench.device import resolve_device


@dataclass
class GanConfig:
    context: str = "none"  # any registered context module
    options: dict[str, Any] = field(default_factory=dict)  # the context module's options
    context_res: int | None = None  # feature resolution of the context module; None: 32 for 128 images, res/2 below
    data: str = "synthetic-shapes"  # synthetic-shapes, or image-folder (with data_root)
    data_root: str | None = None
    res: int = 32  # 32 | 64 | 128
    iters: int = 200
    batch: int = 16
    ch: int = 16  # base width (BigGAN uses 64)
    z_dim: int = 128
    lr_g: float = 1e-4  # generator learning rate (TTUR: lr_d is 4x larger)
    lr_d: float = 4e-4  # discriminator learning rate
    betas: tuple[float, float] = (0.0, 0.9)
    channels_last: bool = True  # NHWC activations and conv weights: about 15% faster per iteration on a CPU
    ema: bool = False  # evaluate an exponential moving average of G's weights
    ema_decay: float = 0.999  # 0.999^200 = 0.82: for a few hundred iterations take ~0.95
    eval_interval: int = 50
    eval_samples: int = 500  # generated (and real) images per FID
    fid_weights: str | None = None  # Inception-v3 weights file -> `fid`; None -> `fid_surrogate`
    work_dir: str = "work_dirs/gan"
    resume: bool = False
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    threads: int | None = None  # torch intra-op threads of this run (None: torch's default)
    loader_workers: int = 0  # DataLoader worker processes
    log_interval: int = 25  # print the losses every N iterations (0: never)
    plugins: list[str] = field(default_factory=list)  # plugin files (re-loaded in Ray workers)

    def resolved_device(self) -> torch.device:
        return resolve_device(self.device)
