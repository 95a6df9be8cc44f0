"""The ``seg`` task, semantic segmentation: one run = one ``SegConfig`` = one ``train_seg`` call.

The training step reads top to bottom in ``hambench.tasks.seg.loop``: mmengine's ``Runner`` with the
paper's recipe, its arguments built piece by piece in the order the loop uses them (model, data,
loop, step, evaluation, hooks, process); ``data`` holds mmseg's transforms and loaders, ``config``
the run's settings. The evaluation split (``eval_split``) is the split the data set reports on, or
the tuning protocol's val or test split (hambench.data.datasets.split_kwargs). ``workers > 1``
trains data-parallel across Ray Train workers (``hambench.tasks.seg.ddp``).

``hambench train seg`` and the suite's trials both call ``train_seg``. This module declares the task
(hambench.tasks): a suite trial's budget mapped onto a SegConfig, its data set made ready once on
the driver, the trained segmentor rebuilt for the whole-model cost, and its command line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from pydantic import field_validator

from hambench.data import data_option_errors, prepare_data
from hambench.shapes import shape_str
from hambench.tasks import (
    RUN_FIELDS,
    Callback,
    DataRequest,
    Metric,
    Task,
    TaskError,
    TrainCommand,
    TrialContext,
    build_config,
    register_task,
    trial_values,
)
from hambench.tasks.seg.config import DEFAULT_CROP, DEFAULT_LR, SegConfig
from hambench.tasks.seg.ddp import train_seg_ddp
from hambench.tasks.seg.loop import model_cfg, run_seg
from hambench.trial import TaskBudget, Trial

__all__ = ["DEFAULT_CROP", "DEFAULT_LR", "SegConfig", "train_seg"]


def train_seg(cfg: SegConfig, callback: Callback | None = None) -> dict[str, Any]:
    """Train one segmentation model and return its final metrics: ``mIoU``, ``aAcc``, ``mAcc``,
    ``IoU.<class>``, ``iters``, ``seconds``, ``images_per_s``.

    ``callback(metrics, checkpoint_path, ())`` runs after every evaluation (under ``workers > 1``,
    after training, once per evaluation in order). With ``cfg.resume`` the run continues from
    the latest checkpoint in ``cfg.work_dir``.
    """
    prepare_data(cfg.data, cfg.data_root, cfg.seed, cfg.data_options)  # a bad data root fails before anything starts
    if cfg.workers > 1:
        return train_seg_ddp(cfg, callback)
    return run_seg(cfg, callback)


# ----------------------------------------------------------------------------- a suite's trial


class SegBudget(TaskBudget):
    """A seg suite's ``budget:``: the common fields and the training crop."""

    crop: tuple[int, int] | None = None  # training crop (H, W); None: the data set's default

    @field_validator("crop")
    @classmethod
    def _positive_crop(cls, crop: tuple[int, int] | None) -> tuple[int, int] | None:
        if crop is not None and min(crop) <= 0:
            raise ValueError(f"both sides of the crop (H, W) must be positive, got {list(crop)}")
        return crop


# Config fields that say what a trial is, not how it trains: never a search dimension.
FIXED_FIELDS = RUN_FIELDS | {
    "backbone",
    "workers",
    "eval_split",
    "pretrained",
    "head",
    "norm",
    "amp",
    "aux_head",
    "crop",
    "channels_last",
}


def suite_config(trial: Trial, ctx: TrialContext) -> SegConfig:
    """The trial's SegConfig: its grid point, its budget (an unset crop or lr keeps the data set's
    default), its task_options and its split (what it evaluates on, over any task option); it
    resumes from the trial's last checkpoint, if any."""
    work_dir = ctx.work_dir()  # local to the node running it
    state = ctx.restore(into=work_dir)
    if state is not None and "checkpoint" in state:  # mmengine resumes from work_dir/last_checkpoint
        (work_dir / "last_checkpoint").write_text(state["files"][state["checkpoint"]])
    runtime = trial_values(trial, ctx, work_dir, resume=state is not None)
    return build_config(
        SegConfig, runtime | dict(threads=ctx.threads, plugins=list(ctx.plugins)) | _trial_fields(trial)
    )


def _trial_fields(trial: Trial) -> dict[str, Any]:
    """The SegConfig values a trial's grid point and budget set, its task options over them and
    its split over those (a suite's trial and its export share them)."""
    assert trial.budget is not None
    budget = SegBudget.model_validate(trial.budget.model_dump())  # its crop typed again (JSON made it a list)
    return (
        dict(
            backbone=trial.backbone,
            head=trial.head,
            iters=budget.iters,
            batch=budget.batch,
            crop=tuple(budget.crop) if budget.crop else None,
            eval_interval=budget.eval_interval,
            lr=budget.lr,
            workers=1,
            pretrained=trial.pretrained,
        )
        | trial.task_options
        | dict(eval_split=trial.split)
    )


def export_config(trial: Trial, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The trial as a standalone mmseg config (hambench.tasks.seg.export), with ``overrides``
    (SegConfig fields, e.g. ``data_root``, ``iters``) over its own values. It trains in
    ``work_dirs/<trial id>`` unless ``work_dir`` is given; a generated set is made ready (the
    suite's, seed 0), a real one must be at its ``data_root``."""
    from hambench.data import EMBEDDED
    from hambench.tasks.seg.export import standalone_config

    unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(SegConfig)})
    if unknown:
        fields = ", ".join(f.name for f in dataclasses.fields(SegConfig))
        raise TaskError(f"seg has no config field {', '.join(unknown)}; fields: {fields}")
    values = dict(
        context=trial.module,
        options=dict(trial.options),
        data=trial.data,
        seed=trial.seed,
        work_dir=f"work_dirs/{trial.trial_id}",
    )
    values |= dict(data_options=dict(trial.data_options)) if trial.data_options else {}
    try:
        cfg = build_config(SegConfig, values | _trial_fields(trial) | dict(overrides))
        root = prepare_data(cfg.data, None if cfg.data in EMBEDDED else cfg.data_root, seed=0, options=cfg.data_options)
        return standalone_config(cfg, root)
    except ValueError as exc:
        raise TaskError(f"cannot export {trial.trial_id}: {exc}") from exc


def suite_data(name: str, request: DataRequest) -> Path:
    """A ready root of data set ``name``: an embedded set generated with its options; for a smoke
    run a tiny generated set in a real set's layout (the whole path runs without the data set),
    else the prepared real one."""
    from hambench.data import EMBEDDED

    if request.smoke and name not in EMBEDDED:
        from hambench.data import make_fixture

        return make_fixture(name, request.fixture_dir, n_train=4, n_val=2, size=64, seed=0)
    return prepare_data(name, None if name in EMBEDDED else request.data_root, seed=0, options=request.options)


def trained_model(cfg: SegConfig, device: torch.device) -> tuple[Any, torch.Tensor, int, None]:
    """The trial's segmentor on its inference path (backbone, decode head, logits resized to the
    input) and one image at the training crop; params count the auxiliary head, as published tables do."""
    from hambench.models.presets import InferencePath
    from hambench.models.segmentor import build_segmentor
    from hambench.profiling import count_params

    norm = "BN" if cfg.norm in (None, "SyncBN") else cfg.norm  # SyncBN needs a process group; same cost as BN
    segmentor = build_segmentor(model_cfg(cfg, norm, pretrained=None))  # its cost: no weights to load
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


# ----------------------------------------------------------------------------- `hambench train seg`


def flag_choices() -> dict[str, list[str]]:
    """The valid values of the flags that have a fixed set."""
    from hambench.data import DATA_NAMES
    from hambench.device import DEVICES
    from hambench.models.segmentor import HEADS

    return {"data": list(DATA_NAMES), "device": list(DEVICES), "head": list(HEADS)}


def flag_help() -> dict[str, str]:
    """The help of the flags whose default the task works out itself (per data set, the backbones)."""
    from hambench.data import DATA_OPTIONS
    from hambench.models.segmentor import backbone_names

    def per_data(table: dict[str, Any]) -> str:
        return ", ".join(f"{k} {shape_str(v) if isinstance(v, tuple) else v}" for k, v in table.items())

    return {
        "context": "a registered context module (`hambench modules list`), or mmseg:<HeadType> "
        "(e.g. mmseg:DAHead) for one of mmseg's own decode heads",
        "options": "an option of the context module, e.g. --option reduction=4",
        "data_options": "an option of an embedded data set, e.g. --data-option keys=4 ("
        + "; ".join(f"{d}: {', '.join(o)}" for d, o in DATA_OPTIONS.items())
        + ")",
        "backbone": f"one of {', '.join(backbone_names())} (default: tiny-d8)",
        "crop": f"training crop (default per data set: {per_data(DEFAULT_CROP)})",
        "lr": f"initial learning rate (default per data set: {per_data(DEFAULT_LR)})",
        "work_dir": "checkpoints and logs (default: work_dirs/seg/<run name>)",
        "aux_head": "add the FCN auxiliary head (loss weight 0.4)",
    }


def run_name(cfg: SegConfig) -> str:
    return f"{cfg.context.replace(':', '-')}_{cfg.backbone.replace(':', '-')}_{cfg.data}_s{cfg.seed}"


def summary(final: dict[str, Any]) -> str:
    return (
        f"mIoU {final['mIoU']:.2f}  aAcc {final['aAcc']:.2f}  {final['iters']} iters  "
        f"{final['seconds']:.1f} s  {final['images_per_s']} img/s"
    )


register_task(
    Task(
        name="seg",
        order=1,
        metrics=(
            Metric("mIoU", "max", front=True),
            Metric("mIoU_auc", "max", area_of="mIoU"),  # learning speed: how early the mIoU came
            Metric("aAcc", "max"),
            Metric("mAcc", "max", column=False),
        ),
        budget=SegBudget,
        smoke_budget={"crop": (64, 64)},
        fixed_fields=FIXED_FIELDS,
        tunable=True,
        # The quickstart's CPU budget; crop and lr unset: the data set's (96x96 and 0.1 on synthetic-context).
        # 1200 steps of 4 images rather than 600 of 8 (the same images, twice the updates): on design
        # seeds it turned runs that never learnt the key rule into runs that did (docs/results.md).
        default_budget={"iters": 1200, "batch": 4},
        grid_defaults={"backbones": ["tiny-d8"], "data": ["synthetic-context"]},
        grid_choices=grid_choices,
        data_option_errors=data_option_errors,
        config=SegConfig,
        config_for=suite_config,
        train=train_seg,
        model=trained_model,
        prepare_data=suite_data,
        module_width=module_width,
        export=export_config,
        command=TrainCommand(
            help="train a segmentation model with a context module",
            required=("context",),
            # --context-opt(s): earlier releases
            aliases={"options": ("--option", "--context-opt", "--context-opts"), "data_options": ("--data-option",)},
            choices=flag_choices,
            help_of=flag_help,
            run_name=run_name,
            summary=summary,
        ),
    )
)
