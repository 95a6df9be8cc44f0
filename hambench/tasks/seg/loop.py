"""One segmentation training process, read top to bottom: ``run_seg`` builds mmengine's ``Runner``
from ``runner_arguments`` (the model, the data, the loop, one training step, the evaluation, the
hooks around each step, the process), trains or resumes, and returns the final metrics.

The recipe is the paper's (HamNet, Geng et al. 2021, Sec. 4 and App. E): SGD with momentum 0.9,
weight decay 1e-4, poly learning-rate decay ``(1 - it/max)^0.9``, AMP on CUDA, a checkpoint at every
evaluation, and mIoU / aAcc / per-class IoU from mmseg's ``IoUMetric`` on the evaluation split.
``distributed``: this process is one of several Ray Train workers (``hambench.tasks.seg.ddp``).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mmengine.config import ConfigDict
from mmengine.hooks import Hook

from hambench.data import dataset_spec, prepare_data
from hambench.io import atomic_write_json
from hambench.models.registration import register_all
from hambench.models.segmentor import segmentor_cfg
from hambench.registry import load_plugins
from hambench.tasks import Callback
from hambench.tasks.seg.config import SegConfig
from hambench.tasks.seg.data import dataloaders


def run_seg(cfg: SegConfig, callback: Callback | None = None, *, distributed: bool = False) -> dict[str, Any]:
    """One training process: build the Runner, train (or resume), evaluate; return final metrics."""
    from mmengine.runner import Runner

    start, cpu_start = time.perf_counter(), time.process_time()
    load_plugins(cfg.plugins)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    register_all()
    _register_metric()
    import hambench.tasks.seg.transforms  # noqa: F401  (registers LoadOnce, which the pipelines use)

    root = prepare_data(cfg.data, cfg.data_root, cfg.seed, cfg.data_options)
    world_size = torch.distributed.get_world_size() if distributed else 1
    progress = ProgressHook(cfg, callback, world_size)
    runner = Runner(**runner_arguments(cfg, root, progress, distributed=distributed))
    _quiet_mmengine()
    runner.train()
    if not progress.history:  # resumed a finished run: nothing trained, evaluate the checkpoint
        runner.val()
    final = dict(progress.history[-1])
    final.update(
        iters=runner.iter,
        iters_run=progress.iters_run,
        seconds=round(time.perf_counter() - start, 2),
        cpu_seconds=round(time.process_time() - cpu_start, 2),  # = seconds on an idle core at 1 thread
        train_seconds=round(progress.train_seconds, 2),
        images_per_s=round(progress.images / progress.train_seconds, 2) if progress.train_seconds else None,
        work_dir=str(runner.work_dir),
        world_size=world_size,
    )
    final.pop("iter", None)
    if distributed:
        _write_worker_summary(runner, progress)
    return final


# --------------------------------------------------------------------------- the Runner's arguments


def runner_arguments(
    cfg: SegConfig, root: Path, progress: ProgressHook | None, *, distributed: bool = False
) -> dict[str, Any]:
    """mmengine's ``Runner`` arguments of one run, in the order its loop uses them (``progress``
    None: no progress lines, as an exported config has)."""
    device = cfg.resolved_device()
    amp = _mixed_precision(cfg, device)  # first: a CPU run asking for AMP fails before anything is built
    return {
        **_model(cfg, device, distributed),  # what trains
        **_data(cfg, root),  # what it reads
        **_loop(cfg),  # iters steps, an evaluation every eval_interval (and at the end)
        **_step(cfg, amp),  # one step: SGD on the loss, the poly learning-rate schedule
        **_evaluation(),  # IoU on the evaluation split
        **_hooks(cfg, progress),  # around each step: timing, learning rate, checkpoints, progress
        **_process(cfg, device, distributed),  # where, from which seed, resumed or not, alone or data-parallel
    }


def _mixed_precision(cfg: SegConfig, device: torch.device) -> bool:
    """AMP: on with CUDA unless turned off; CPU runs have none."""
    amp = (device.type == "cuda") if cfg.amp is None else cfg.amp
    if amp and device.type != "cuda":
        raise ValueError("amp is for CUDA runs; on CPU leave it off")
    return amp


def _model(cfg: SegConfig, device: torch.device, distributed: bool) -> dict[str, Any]:
    """The segmentor, its inputs padded to the training crop."""
    # SyncBN across GPU workers, as the paper; torch's SyncBatchNorm has no CPU kernel, so gloo
    # runs use BN (DDP keeps the running statistics of rank 0)
    norm = cfg.norm or ("SyncBN" if distributed and device.type == "cuda" else "BN")
    model = model_cfg(cfg, norm, cfg.pretrained)
    model["data_preprocessor"].pop("size_divisor")
    model["data_preprocessor"]["size"] = cfg.resolved_crop()
    return dict(model=ConfigDict(model))  # mmseg reads test_cfg.mode as an attribute


def model_cfg(cfg: SegConfig, norm: str, pretrained: str | None) -> dict[str, Any]:
    """The run's segmentor as an mmseg config (hambench.models.segmentor.segmentor_cfg), with the
    normalisation ``norm`` and the backbone's ``pretrained`` weights (None: none loaded)."""
    return segmentor_cfg(
        cfg.backbone,
        cfg.context,
        options=cfg.options,
        num_classes=dataset_spec(cfg.data).num_classes,
        head=cfg.head,
        aux_head=cfg.aux_head,
        pretrained=pretrained,
        norm=norm,
    )


def _data(cfg: SegConfig, root: Path) -> dict[str, Any]:
    train_loader, val_loader = dataloaders(cfg, root)
    return dict(train_dataloader=train_loader, val_dataloader=val_loader)


def _loop(cfg: SegConfig) -> dict[str, Any]:
    return dict(
        train_cfg=dict(type="IterBasedTrainLoop", max_iters=cfg.iters, val_interval=cfg.eval_interval),
        val_cfg=dict(type="ValLoop"),
    )


def _step(cfg: SegConfig, amp: bool) -> dict[str, Any]:
    return dict(
        optim_wrapper=dict(
            type="AmpOptimWrapper" if amp else "OptimWrapper",
            optimizer=dict(type="SGD", lr=cfg.resolved_lr(), momentum=cfg.momentum, weight_decay=cfg.weight_decay),
        ),
        param_scheduler=[dict(type="PolyLR", eta_min=1e-4, power=0.9, begin=0, end=cfg.iters, by_epoch=False)],
    )


def _evaluation() -> dict[str, Any]:
    return dict(val_evaluator=dict(type="PerClassIoUMetric", iou_metrics=["mIoU"]))  # _register_metric


def _hooks(cfg: SegConfig, progress: ProgressHook | None) -> dict[str, Any]:
    custom: list[Hook] = [progress] if progress is not None else []
    if cfg.channels_last:
        custom.append(ChannelsLastHook())
    return dict(
        default_hooks=dict(
            timer=dict(type="IterTimerHook"),
            logger=dict(type="LoggerHook", interval=cfg.log_interval, log_metric_by_epoch=False),
            param_scheduler=dict(type="ParamSchedulerHook"),
            checkpoint=dict(type="CheckpointHook", by_epoch=False, interval=cfg.eval_interval, max_keep_ckpts=3),
            sampler_seed=dict(type="DistSamplerSeedHook"),
        ),
        custom_hooks=custom,
        log_processor=dict(by_epoch=False),
        log_level="WARNING",  # hambench prints its own progress lines (ProgressHook)
    )


def _process(cfg: SegConfig, device: torch.device, distributed: bool) -> dict[str, Any]:
    return dict(
        work_dir=str(Path(cfg.work_dir).resolve()),
        resume=cfg.resume,  # from work_dir/last_checkpoint
        randomness=dict(seed=cfg.seed),
        env_cfg=dict(
            cudnn_benchmark=False,
            mp_cfg=dict(mp_start_method="fork", opencv_num_threads=0),
            dist_cfg=dict(backend="nccl" if device.type == "cuda" else "gloo"),
        ),
        launcher="pytorch" if distributed else "none",  # Ray Train has set up the process group
        cfg=dict(model_wrapper_cfg=_ddp_wrapper(device)) if distributed else None,
        default_scope="mmseg",
    )


def _ddp_wrapper(device: torch.device) -> dict[str, Any]:
    """mmengine's default DDP wrapper pins device_ids to LOCAL_RANK, which is wrong on CPU (and
    under Ray, whose workers see their own GPU as the current device)."""
    return dict(
        type="MMDistributedDataParallel",
        device_ids=[torch.cuda.current_device()] if device.type == "cuda" else None,
        broadcast_buffers=device.type != "cuda",  # BN (not SyncBN) on CPU: keep rank 0's statistics
    )


# --------------------------------------------------------------------------- around each step


class ProgressHook(Hook):
    """Prints progress, times the training iterations, and hands each evaluation to the callback
    together with the checkpoint saved at that iteration."""

    priority = "LOWEST"  # after CheckpointHook has saved

    def __init__(self, cfg: SegConfig, callback: Callback | None, world_size: int) -> None:
        self.cfg, self.callback, self.world_size = cfg, callback, world_size
        self.train_seconds, self.images, self.iters_run = 0.0, 0, 0
        self.history: list[dict[str, Any]] = []
        self.image_paths: set[str] = set()  # distinct training images this process saw
        self._t0 = 0.0

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        self._t0 = time.perf_counter()

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        self.train_seconds += time.perf_counter() - self._t0
        self.images += len(data_batch["inputs"]) * self.world_size
        self.image_paths.update(sample.img_path for sample in data_batch["data_samples"])
        self.iters_run += 1
        it = runner.iter + 1
        if runner.rank == 0 and (it % self.cfg.log_interval == 0 or it == runner.max_iters):
            lr = runner.optim_wrapper.get_lr()["lr"][0]
            loss = float(outputs["loss"].detach()) if outputs and "loss" in outputs else float("nan")
            print(
                f"iter {it:>6}/{runner.max_iters}  loss {loss:.4f}  lr {lr:.5f}  "
                f"{self.images / max(self.train_seconds, 1e-9):.1f} img/s",
                flush=True,
            )

    def after_val_epoch(self, runner: Any, metrics: dict[str, float] | None = None) -> None:
        # a class absent from labels and predictions has IoU nan: None keeps the JSON standard
        row = {
            "iter": runner.iter,
            **{k: None if np.isnan(v) else round(float(v), 2) for k, v in (metrics or {}).items()},
        }
        self.history.append(row)
        if runner.rank != 0:
            return
        checkpoint = Path(runner.work_dir) / f"iter_{runner.iter}.pth"
        print(f"eval  {runner.iter:>6}/{runner.max_iters}  mIoU {row['mIoU']:.2f}  aAcc {row['aAcc']:.2f}", flush=True)
        if self.callback is not None:
            self.callback(row, str(checkpoint) if checkpoint.is_file() else None, ())


class ChannelsLastHook(Hook):
    """Puts the model's 4-D weights in channels_last memory format as training starts: its
    convolutions then take their channels_last kernels, and every activation follows. Done after
    the weights are initialised or resumed, so the seed, the initial weights and the optimizer are
    those of an NCHW run (the parameters stay the same objects); only the kernels' rounding differs."""

    priority = "VERY_HIGH"

    def before_train(self, runner: Any) -> None:
        if hasattr(runner.model, "module"):  # data-parallel: DDP has laid out its buckets already
            return
        runner.model.to(memory_format=torch.channels_last)


def _register_metric() -> None:
    """``PerClassIoUMetric``: mmseg's ``IoUMetric`` that also returns ``IoU.<class>``."""
    from mmseg.evaluation import IoUMetric
    from mmseg.registry import METRICS

    if "PerClassIoUMetric" in METRICS.module_dict:
        return

    @METRICS.register_module()
    class PerClassIoUMetric(IoUMetric):
        def compute_metrics(self, results: list) -> dict[str, float]:
            metrics = super().compute_metrics(results)
            intersect, union = sum(r[0] for r in results), sum(r[1] for r in results)
            iou = (intersect / union).numpy()  # nan where a class is absent from labels and predictions
            for name, value in zip(self.dataset_meta["classes"], iou):
                metrics[f"IoU.{name}"] = float(np.round(value * 100, 2))
            return metrics


def _quiet_mmengine() -> None:
    """The Runner's logger is built at WARNING; mmengine's per-module init reports still go to
    the root 'mmengine' logger at INFO."""
    logging.getLogger("mmengine").setLevel(logging.WARNING)


def _write_worker_summary(runner: Any, progress: ProgressHook) -> None:
    """``worker<rank>.json``: what this data-parallel worker did, and a checksum of its weights
    (equal on every worker when gradients were all-reduced)."""
    model = runner.model.module if hasattr(runner.model, "module") else runner.model
    checksum = sum(float(p.detach().double().sum()) for p in model.parameters())
    atomic_write_json(
        Path(runner.work_dir) / f"worker{runner.rank}.json",
        dict(
            rank=runner.rank,
            world_size=runner.world_size,
            iters_run=progress.iters_run,
            images=progress.iters_run * runner.train_dataloader.batch_size,
            distinct_images=sorted(progress.image_paths),
            param_checksum=checksum,
        ),
    )
