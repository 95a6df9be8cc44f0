"""Semantic segmentation training: one run = one ``SegConfig`` = one ``train_seg`` call.

The loop is mmengine's ``Runner`` with the paper's recipe (HamNet, Geng et al. 2021, Sec. 4 and
App. E): SGD with momentum 0.9, weight decay 1e-4, poly learning-rate decay ``(1 - it/max)^0.9``,
AMP on CUDA, a checkpoint at every evaluation, resume from the latest checkpoint, and mIoU / aAcc
/ per-class IoU from mmseg's ``IoUMetric`` on the evaluation split (``eval_split``: the split the
data set reports on, or the tuning protocol's val or test split, hambench.data.datasets.split_kwargs).
``workers > 1`` trains data-parallel across Ray Train workers (``hambench.tasks.ddp``).

The CLI (``hambench train seg``) and the suite's trials both call ``train_seg``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from mmengine.config import ConfigDict
from mmengine.hooks import Hook

from hambench.data import check_split, dataset_spec, prepare_data, split_kwargs
from hambench.io import atomic_write_json
from hambench.models.segmentor import register_all, segmentor_cfg
from hambench.device import resolve_device
from hambench.registry import load_plugins

Callback = Callable[[dict, "str | None"], None]

# Learning rate per data set when none is given: the paper's 0.01 for fine-tuning on the real
# sets; synthetic-context trains from scratch within minutes, which needs a larger step.
DEFAULT_LR = {"synthetic-context": 0.1, "ade20k": 0.01, "voc-aug": 0.009, "pascal-context": 0.01}
# Crop (H, W) per data set when none is given: the paper's 512 for the real sets.
DEFAULT_CROP = {"synthetic-context": (96, 96), "ade20k": (512, 512), "voc-aug": (512, 512), "pascal-context": (480, 480)}


@dataclass
class SegConfig:
    """Everything one segmentation run needs. ``crop=None`` takes the data set's default."""

    context: str = "ham-nmf"  # a registered module, or mmseg:<HeadType> for mmseg's own heads
    context_opts: dict[str, Any] = field(default_factory=dict)
    backbone: str = "tiny-d8"
    data: str = "synthetic-context"
    data_root: str | None = None  # synthetic-context: the cache folder by default
    iters: int = 300
    batch: int = 8  # per worker
    crop: tuple[int, int] | None = None
    work_dir: str = "work_dirs/seg"
    resume: bool = False
    seed: int = 0
    eval_interval: int = 100  # evaluate and checkpoint every N iterations (and at the end)
    eval_split: str = "standard"  # standard (whole training split, the reported split) | val | test (tuning: select, report)
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
    threads: int | None = None  # torch intra-op threads of this run (None: torch's default)
    loader_workers: int = 0  # DataLoader processes per worker
    log_interval: int = 25
    plugins: list[str] = field(default_factory=list)  # plugin files (re-loaded in Ray workers)

    def __post_init__(self) -> None:
        check_split(self.eval_split)  # a ValueError naming the valid splits

    def resolved_crop(self) -> tuple[int, int]:
        return tuple(self.crop) if self.crop else DEFAULT_CROP[self.data]  # type: ignore[return-value]

    def resolved_lr(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.data]

    def resolved_device(self) -> str:
        """``"cpu"`` or ``"cuda"`` (hambench.device's reading of ``device``)."""
        device = resolve_device(self.device).type
        if device == "cpu" and torch.cuda.is_available():
            # mmengine's Runner puts the model on the visible GPU; hide it to train on CPU
            raise ValueError("device 'cpu' on a machine with CUDA: set CUDA_VISIBLE_DEVICES='' instead")
        return device


# --------------------------------------------------------------------------- data


def _pipelines(data: str, crop: tuple[int, int]) -> tuple[list[dict], list[dict]]:
    """Train and validation transforms. synthetic-context is generated at the crop size and only
    flipped (scaling would move objects relative to the key); the real sets
    use mmseg's standard recipe (random resize 0.5-2x around (4*crop_h, crop_h), crop, flip,
    photometric distortion)."""
    load = [dict(type="LoadImageFromFile"), dict(type="LoadAnnotations")]
    if data == "synthetic-context":
        return [*load, dict(type="RandomFlip", prob=0.5), dict(type="PackSegInputs")], [*load, dict(type="PackSegInputs")]
    scale = (4 * crop[0], crop[0])
    train = [
        *load,
        dict(type="RandomResize", scale=scale, ratio_range=(0.5, 2.0), keep_ratio=True),
        dict(type="RandomCrop", crop_size=crop, cat_max_ratio=0.75),
        dict(type="RandomFlip", prob=0.5),
        dict(type="PhotoMetricDistortion"),
        dict(type="PackSegInputs"),
    ]
    val = [dict(type="LoadImageFromFile"), dict(type="Resize", scale=scale, keep_ratio=True),
           dict(type="LoadAnnotations"), dict(type="PackSegInputs")]
    return train, val


def _dataset(data: str, root: Path, split: dict, pipeline: list[dict]) -> dict:
    """The mmseg dataset config of one split (``split``: its data_prefix, ann_file, indices)."""
    spec = dataset_spec(data)
    return dict(type=spec.dataset_type, data_root=str(root), reduce_zero_label=spec.reduce_zero_label,
                pipeline=pipeline, **split, **spec.extra)


def _dataloaders(cfg: SegConfig, root: Path) -> tuple[dict, dict]:
    """The training and evaluation loaders; ``cfg.eval_split`` picks both splits (in val and
    test mode a real set trains on its training split less the held-out val part)."""
    train_pipe, val_pipe = _pipelines(cfg.data, cfg.resolved_crop())
    train_split, eval_split = split_kwargs(dataset_spec(cfg.data), root, cfg.eval_split)
    persistent = cfg.loader_workers > 0
    train = dict(batch_size=cfg.batch, num_workers=cfg.loader_workers, persistent_workers=persistent,
                 sampler=dict(type="InfiniteSampler", shuffle=True),
                 dataset=_dataset(cfg.data, root, train_split, train_pipe))
    val = dict(batch_size=1, num_workers=cfg.loader_workers, persistent_workers=persistent,
               sampler=dict(type="DefaultSampler", shuffle=False),
               dataset=_dataset(cfg.data, root, eval_split, val_pipe))
    return train, val


# --------------------------------------------------------------------------- metrics and progress


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


class ProgressHook(Hook):
    """Prints progress, times the training iterations, and hands each evaluation to the callback
    together with the checkpoint saved at that iteration."""

    priority = "LOWEST"  # after CheckpointHook has saved

    def __init__(self, cfg: SegConfig, callback: Callback | None, world_size: int) -> None:
        self.cfg, self.callback, self.world_size = cfg, callback, world_size
        self.train_seconds, self.images, self.iters_run = 0.0, 0, 0
        self.history: list[dict] = []
        self.image_paths: set[str] = set()  # distinct training images this process saw
        self._t0 = 0.0

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        self._t0 = time.perf_counter()

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.train_seconds += time.perf_counter() - self._t0
        self.images += len(data_batch["inputs"]) * self.world_size
        self.image_paths.update(sample.img_path for sample in data_batch["data_samples"])
        self.iters_run += 1
        it = runner.iter + 1
        if runner.rank == 0 and (it % self.cfg.log_interval == 0 or it == runner.max_iters):
            lr = runner.optim_wrapper.get_lr()["lr"][0]
            loss = float(outputs["loss"].detach()) if outputs and "loss" in outputs else float("nan")
            print(f"iter {it:>6}/{runner.max_iters}  loss {loss:.4f}  lr {lr:.5f}  "
                  f"{self.images / max(self.train_seconds, 1e-9):.1f} img/s", flush=True)

    def after_val_epoch(self, runner, metrics: dict | None = None) -> None:
        # a class absent from labels and predictions has IoU nan: None keeps the JSON standard
        row = {"iter": runner.iter, **{k: None if np.isnan(v) else round(float(v), 2) for k, v in (metrics or {}).items()}}
        self.history.append(row)
        if runner.rank != 0:
            return
        checkpoint = Path(runner.work_dir) / f"iter_{runner.iter}.pth"
        print(f"eval  {runner.iter:>6}/{runner.max_iters}  mIoU {row['mIoU']:.2f}  aAcc {row['aAcc']:.2f}", flush=True)
        if self.callback is not None:
            self.callback(row, str(checkpoint) if checkpoint.is_file() else None)


# --------------------------------------------------------------------------- the run


def runner_kwargs(cfg: SegConfig, root: Path, *, distributed: bool = False) -> dict[str, Any]:
    """The mmengine ``Runner`` arguments of a run (without hooks)."""
    spec = dataset_spec(cfg.data)
    device = cfg.resolved_device()
    amp = (device == "cuda") if cfg.amp is None else cfg.amp
    if amp and device != "cuda":
        raise ValueError("amp is for CUDA runs; on CPU leave it off")
    # SyncBN across GPU workers, as the paper; torch's SyncBatchNorm has no CPU kernel, so gloo
    # runs use BN (DDP keeps the running statistics of rank 0)
    norm = cfg.norm or ("SyncBN" if distributed and device == "cuda" else "BN")
    model = segmentor_cfg(cfg.backbone, cfg.context, context_cfg=cfg.context_opts, num_classes=spec.num_classes,
                          head=cfg.head, aux_head=cfg.aux_head, pretrained=cfg.pretrained, norm=norm)
    model["data_preprocessor"].pop("size_divisor")
    model["data_preprocessor"]["size"] = cfg.resolved_crop()
    train_loader, val_loader = _dataloaders(cfg, root)
    return dict(
        model=ConfigDict(model),  # mmseg reads test_cfg.mode as an attribute
        work_dir=str(Path(cfg.work_dir).resolve()),
        train_dataloader=train_loader,
        val_dataloader=val_loader,
        val_evaluator=dict(type="PerClassIoUMetric", iou_metrics=["mIoU"]),
        train_cfg=dict(type="IterBasedTrainLoop", max_iters=cfg.iters, val_interval=cfg.eval_interval),
        val_cfg=dict(type="ValLoop"),
        optim_wrapper=dict(
            type="AmpOptimWrapper" if amp else "OptimWrapper",
            optimizer=dict(type="SGD", lr=cfg.resolved_lr(), momentum=cfg.momentum, weight_decay=cfg.weight_decay),
        ),
        param_scheduler=[dict(type="PolyLR", eta_min=1e-4, power=0.9, begin=0, end=cfg.iters, by_epoch=False)],
        default_hooks=dict(
            timer=dict(type="IterTimerHook"),
            logger=dict(type="LoggerHook", interval=cfg.log_interval, log_metric_by_epoch=False),
            param_scheduler=dict(type="ParamSchedulerHook"),
            checkpoint=dict(type="CheckpointHook", by_epoch=False, interval=cfg.eval_interval, max_keep_ckpts=3),
            sampler_seed=dict(type="DistSamplerSeedHook"),
        ),
        env_cfg=dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method="fork", opencv_num_threads=0),
                     dist_cfg=dict(backend="nccl" if device == "cuda" else "gloo")),
        log_processor=dict(by_epoch=False),
        log_level="WARNING",  # hambench prints its own progress lines
        randomness=dict(seed=cfg.seed),
        resume=cfg.resume,
        launcher="pytorch" if distributed else "none",  # Ray Train has set up the process group
        # mmengine's default DDP wrapper pins device_ids to LOCAL_RANK, which is wrong on CPU (and
        # under Ray, whose workers see their own GPU as the current device)
        cfg=dict(model_wrapper_cfg=dict(
            type="MMDistributedDataParallel",
            device_ids=[torch.cuda.current_device()] if device == "cuda" else None,
            broadcast_buffers=device != "cuda",  # BN (not SyncBN) on CPU: keep rank 0's statistics
        )) if distributed else None,
        default_scope="mmseg",
    )


def run_seg(cfg: SegConfig, callback: Callback | None = None, *, distributed: bool = False) -> dict:
    """One training process: build the Runner, train (or resume), evaluate; return final metrics.
    ``distributed``: this process is one of several Ray Train workers."""
    from mmengine.runner import Runner

    start, cpu_start = time.perf_counter(), time.process_time()
    load_plugins(cfg.plugins)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    register_all()
    _register_metric()
    root = prepare_data(cfg.data, cfg.data_root, cfg.seed)
    world_size = torch.distributed.get_world_size() if distributed else 1
    progress = ProgressHook(cfg, callback, world_size)
    runner = Runner(**runner_kwargs(cfg, root, distributed=distributed), custom_hooks=[progress])
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


def _write_worker_summary(runner: Any, progress: ProgressHook) -> None:
    """``worker<rank>.json``: what this data-parallel worker did, and a checksum of its weights
    (equal on every worker when gradients were all-reduced)."""
    model = runner.model.module if hasattr(runner.model, "module") else runner.model
    checksum = sum(float(p.detach().double().sum()) for p in model.parameters())
    atomic_write_json(Path(runner.work_dir) / f"worker{runner.rank}.json", dict(
        rank=runner.rank, world_size=runner.world_size, iters_run=progress.iters_run,
        images=progress.iters_run * runner.train_dataloader.batch_size,
        distinct_images=sorted(progress.image_paths), param_checksum=checksum,
    ))


def _quiet_mmengine() -> None:
    """The Runner's logger is built at WARNING; mmengine's per-module init reports still go to
    the root 'mmengine' logger at INFO."""
    logging.getLogger("mmengine").setLevel(logging.WARNING)


def train_seg(cfg: SegConfig, callback: Callback | None = None) -> dict:
    """Train one segmentation model and return its final metrics: ``mIoU``, ``aAcc``, ``mAcc``,
    ``IoU.<class>``, ``iters``, ``seconds``, ``images_per_s``.

    ``callback(metrics, checkpoint_path)`` runs after every evaluation (under ``workers > 1``,
    after training, once per evaluation in order). With ``cfg.resume`` the run continues from
    the latest checkpoint in ``cfg.work_dir``.
    """
    prepare_data(cfg.data, cfg.data_root, cfg.seed)  # fail on a bad data root before anything starts
    if cfg.workers > 1:
        from hambench.tasks.ddp import train_seg_ddp

        return train_seg_ddp(cfg, callback)
    return run_seg(cfg, callback)


# ----------------------------------------------------------------------------- the seg task
# A suite's seg trial (hambench.tasks): its budget mapped onto a SegConfig, its data set made
# ready once on the driver, and the trained segmentor rebuilt for the whole-model cost.

from typing import TYPE_CHECKING  # noqa: E402

from hambench.tasks import DataRequest, Metric, Task, build_config, register_task  # noqa: E402

if TYPE_CHECKING:
    from hambench.suite import Trial
    from hambench.tuning.trainable import TrialContext


def suite_config(trial: Trial, ctx: TrialContext) -> SegConfig:
    """The trial's SegConfig: its grid point, its budget (an unset crop or lr keeps the data set's
    default), its task_options and its split (what it evaluates on, over any task option); it
    resumes from the trial's last checkpoint, if any."""
    budget = trial.budget
    assert budget is not None
    work_dir = ctx.work_dir()  # local to the node running it
    state = ctx.restore(into=work_dir)
    if state is not None and "checkpoint" in state:  # mmengine resumes from work_dir/last_checkpoint
        (work_dir / "last_checkpoint").write_text(state["files"][state["checkpoint"]])
    return build_config(SegConfig, dict(
        context=trial.module, context_opts=dict(trial.options), backbone=trial.backbone, head=trial.head,
        data=trial.data, data_root=ctx.data_roots.get(trial.data), iters=budget.iters, batch=budget.batch,
        crop=tuple(budget.crop) if budget.crop else None, work_dir=str(work_dir), resume=state is not None,
        seed=trial.seed, eval_interval=budget.eval_interval, lr=budget.lr, device=ctx.device, workers=1,
        pretrained=trial.pretrained, threads=ctx.threads, plugins=list(ctx.plugins),
    ) | trial.task_options | dict(eval_split=trial.split))


def suite_data(name: str, request: DataRequest) -> Path:
    """A ready root of data set ``name``: a tiny generated set in its layout for a smoke run (the
    whole path runs without the data set), else the prepared real one."""
    if request.smoke and name != "synthetic-context":
        from hambench.data import make_fixture

        return make_fixture(name, request.fixture_dir, n_train=4, n_val=2, size=64, seed=0)
    return prepare_data(name, None if name == "synthetic-context" else request.data_root, seed=0)


def trained_model(cfg: SegConfig, device: torch.device) -> tuple[Any, torch.Tensor, int, None]:
    """The trial's segmentor on its inference path (backbone, decode head, logits resized to the
    input) and one image at the training crop; params count the auxiliary head, as published tables do."""
    from hambench.models.presets import InferencePath
    from hambench.models.segmentor import build_segmentor
    from hambench.profiling import count_params

    norm = "BN" if cfg.norm in (None, "SyncBN") else cfg.norm  # SyncBN needs a process group; same cost as BN
    segmentor = build_segmentor(cfg.backbone, cfg.context, context_cfg=cfg.context_opts,
                                num_classes=dataset_spec(cfg.data).num_classes, head=cfg.head,
                                aux_head=cfg.aux_head, norm=norm)
    params = count_params(segmentor)
    x = torch.randn(1, 3, *cfg.resolved_crop(), generator=torch.Generator().manual_seed(0))
    return InferencePath(segmentor).to(device), x.to(device), params, None


def module_width(trial: Trial) -> int:
    """The backbone's head width: what the context module is built at."""
    from hambench.models.segmentor import get_backbone

    return get_backbone(trial.backbone).head_channels


def grid_choices() -> dict[str, list[str]]:
    """The backbones and data sets a seg grid may name."""
    from hambench.data import DATA_NAMES
    from hambench.models.segmentor import backbone_names

    return {"backbones": backbone_names(), "data": list(DATA_NAMES)}


register_task(Task(
    name="seg", order=1,
    metrics=(Metric("mIoU", "max", front=True), Metric("aAcc", "max"), Metric("mAcc", "max", column=False)),
    budget_fields=("iters", "eval_interval", "batch", "crop", "lr"), tunable=True,
    # The quickstart's CPU budget; crop and lr unset: the data set's (96x96 and 0.1 on synthetic-context).
    # 1200 steps of 4 images rather than 600 of 8 (the same images, twice the updates): on design
    # seeds it turned runs that never learnt the key rule into runs that did (docs/results.md).
    default_budget={"iters": 1200, "batch": 4},
    grid_defaults={"backbones": ["tiny-d8"], "data": ["synthetic-context"]}, grid_choices=grid_choices,
    config=SegConfig, config_for=suite_config, train=train_seg, model=trained_model,
    prepare_data=suite_data, module_width=module_width,
))
