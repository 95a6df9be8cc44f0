"""The ``gan`` task, class-conditional image generation (SAGAN-style) with a context module in G and D.

``train_gan(cfg, callback)`` (``loop``) is one loop you can read top to bottom; ``config`` holds the
run's settings (``GanConfig``), ``data`` its images and batches, ``evaluate`` FID (or its surrogate),
the Inception score, ``symmetry_error`` and the sample grid, ``models`` the generator and discriminator.

This module declares the task (hambench.tasks): a suite trial's budget mapped onto a GanConfig, its
image folder made ready once on the driver, the trained generator rebuilt for the whole-model cost,
and its command line (``hambench train gan``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from pydantic import Field

from hambench.tasks import (
    RUN_FIELDS,
    Artifact,
    DataRequest,
    Metric,
    Task,
    TrainCommand,
    TrialContext,
    build_config,
    register_task,
    trial_values,
)
from hambench.tasks.gan.config import GanConfig
from hambench.tasks.gan.data import DATA_NAMES, num_classes
from hambench.tasks.gan.evaluate import INCEPTION_FILE, SAMPLES_FILE
from hambench.tasks.gan.loop import train_gan
from hambench.tasks.gan.models import RESOLUTIONS, Generator, default_context_res
from hambench.trial import TaskBudget, Trial

__all__ = ["DATA_NAMES", "GanConfig", "train_gan"]


# ----------------------------------------------------------------------------- a suite's trial


class GanBudget(TaskBudget):
    """A gan suite's ``budget:``: the common fields and the image resolution."""

    res: int | None = Field(None, gt=0)  # image resolution; None: the task's default (32)


# Config fields that say what a trial is, not how it trains: never a search dimension.
FIXED_FIELDS = RUN_FIELDS | {"res"}


def suite_config(trial: Trial, ctx: TrialContext) -> GanConfig:
    """The trial's GanConfig: its grid point, its budget and its task_options; it resumes from the
    trial's last checkpoint, if any. The budget's ``lr`` is G's learning rate and D's keeps its
    TTUR multiple of it (4x by default); task_options ``lr_g``/``lr_d`` set either alone."""
    assert trial.budget is not None
    budget = GanBudget.model_validate(trial.budget.model_dump())
    work_dir = ctx.work_dir()  # local to the node running it
    state = ctx.restore(into=work_dir)
    lr_d = budget.lr * GanConfig.lr_d / GanConfig.lr_g if budget.lr is not None else None
    return build_config(
        GanConfig,
        trial_values(trial, ctx, work_dir, resume=state is not None)
        | dict(
            res=budget.res,
            iters=budget.iters,
            batch=budget.batch,
            eval_interval=budget.eval_interval,
            lr_g=budget.lr,
            lr_d=lr_d,
        )
        | trial.task_options,
    )


def suite_data(name: str, request: DataRequest) -> Path | None:
    """synthetic-shapes is rendered in memory (no root); an image folder is generated for a smoke
    run, else it is the given root."""
    if name == "synthetic-shapes":
        return None
    if request.smoke:
        from hambench.data.image_folder import make_image_folder_fixture

        return make_image_folder_fixture(request.fixture_dir)
    if request.data_root is None:
        raise ValueError(f"data {name!r} needs a data root: a folder with one folder of images per class")
    return Path(request.data_root)


def trained_model(cfg: GanConfig, device: torch.device) -> tuple[Any, torch.Tensor, None, str]:
    """The trial's generator from one noise vector and a fixed class to one image at its output size."""
    from hambench.profiling import WithFixedInputs

    G = Generator(
        cfg.res,
        num_classes(cfg),
        z_dim=cfg.z_dim,
        ch=cfg.ch,
        context=cfg.context,
        context_res=cfg.context_res or default_context_res(cfg.res),
        options=cfg.options,
    )
    z = torch.randn(1, cfg.z_dim, generator=torch.Generator().manual_seed(0))
    label = torch.zeros(1, dtype=torch.long)  # the class only picks rows of the embeddings: any costs the same
    return WithFixedInputs(G, label).to(device), z.to(device), None, f"1x3x{cfg.res}x{cfg.res}"


def grid_choices() -> dict[str, list[str]]:
    """The data sets a gan grid may name (it has no backbone)."""
    return {"data": list(DATA_NAMES)}


# ----------------------------------------------------------------------------- `hambench train gan`


def flag_choices() -> dict[str, list[Any]]:
    """The valid values of the flags that have a fixed set."""
    from hambench.device import DEVICES

    return {"data": list(DATA_NAMES), "res": list(RESOLUTIONS), "device": list(DEVICES)}


def flag_help() -> dict[str, str]:
    """The help of the flags the task explains its own way."""
    return {
        "context": "a registered context module (`hambench modules list`); none = no context",
        "options": "an option of the context module, e.g. --option rank=16",
        "data_root": "image-folder: a folder with one sub-folder of images per class",
        "fid_weights": f"torch-fidelity's Inception-v3 weights ({INCEPTION_FILE}) for the real FID and IS; "
        "never downloaded. Without them: fid_surrogate on a fixed random network",
        "work_dir": "checkpoint, history and samples (default: work_dirs/gan/<run name>)",
    }


def run_name(cfg: GanConfig) -> str:
    return f"{cfg.context}_{cfg.data}_r{cfg.res}_s{cfg.seed}"


def summary(final: dict[str, Any]) -> str:
    keys = ("fid", "fid_surrogate", "inception_score", "symmetry_error")
    scores = "  ".join(f"{k} {final[k]:.4f}" for k in keys if k in final)
    return f"{scores}  {final['iters']} iters  {final['seconds']:.1f} s  {final['images_per_s']:.1f} img/s"


register_task(
    Task(
        name="gan",
        order=2,
        # No FID weights, no fid: the headline is then fid_surrogate (hambench.stats.reported_metrics).
        metrics=(
            Metric("fid", "min", front=True),
            Metric("fid_surrogate", "min", front=True),
            Metric("symmetry_error", "min"),
        ),
        budget=GanBudget,
        smoke_budget={"res": 32},
        fixed_fields=FIXED_FIELDS,
        # gan-synthetic's budget (what fits its 20 minutes on a 2-core CPU); res unset: 32.
        default_budget={"iters": 1800, "batch": 8},
        grid_defaults={"data": ["synthetic-shapes"]},
        grid_choices=grid_choices,
        artifacts=(
            Artifact(
                SAMPLES_FILE,
                "Samples",
                "What each configuration's generator draws at the end of training: "
                "the last evaluation's fixed noise, one column per class",
            ),
        ),
        config=GanConfig,
        config_for=suite_config,
        train=train_gan,
        model=trained_model,
        prepare_data=suite_data,
        command=TrainCommand(
            help="train a class-conditional GAN with a context module",
            required=("context",),
            # --context-opt(s), --out-dir: the flags of earlier releases
            aliases={"options": ("--option", "--context-opt", "--context-opts"), "work_dir": ("--out-dir",)},
            choices=flag_choices,
            help_of=flag_help,
            run_name=run_name,
            summary=summary,
        ),
    )
)
