"""A seg run as a standalone mmseg config, for ``hambench export``.

mmengine's ``Runner.from_cfg(Config.fromfile(path))`` (or mmseg's ``tools/train.py``) trains the
written file with no hambench code in between but the context module's own: ``custom_imports``
loads ``hambench.models.heads``, which registers ``ContextHead`` and ``LightContextHead`` in mmseg's
``MODELS`` and builds the module from hambench's registry (an entry-point plugin's module too).

The file holds the run's model (backbone, head, the module and its resolved options), data sets
and their pipelines, loop, optimizer and schedule, evaluation and seed. It leaves out what is
hambench's own speed or reporting and changes no number a training computes: the progress lines,
the channels-last layout (the kernels round differently, nothing else), the decoded-image cache
(mmseg's loading transforms instead) and the per-class IoU (mmseg's ``IoUMetric``, mIoU and aAcc).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from hambench.tasks.seg.config import SegConfig
from hambench.tasks.seg.loop import runner_arguments

# What the written config imports for mmengine: the heads that host a hambench module.
STANDALONE_IMPORTS = ("hambench.models.heads",)


def standalone_config(cfg: SegConfig, root: Path) -> dict[str, Any]:
    """The run ``cfg`` on the data at ``root`` as a plain config dict (``mmengine.Config`` dumps
    it): the Runner's arguments (hambench.tasks.seg.loop) less hambench's hooks, transforms and metric."""
    if cfg.plugins:
        raise ValueError(
            f"module {cfg.context!r} comes from a plugin file ({', '.join(cfg.plugins)}), which an mmseg "
            "config cannot import by name; install it as an entry point (hambench.modules) to export it"
        )
    if cfg.workers > 1:
        raise ValueError("workers > 1 runs under Ray Train; export a single-process run (workers=1)")
    args = runner_arguments(dataclasses.replace(cfg, channels_last=False), root, progress=None)
    args.pop("cfg", None)
    args["model"] = args["model"].to_dict()
    args["val_evaluator"] = dict(type="IoUMetric", iou_metrics=["mIoU"])
    for loader in ("train_dataloader", "val_dataloader"):
        dataset = args[loader]["dataset"]
        dataset["pipeline"] = _mmseg_loading(dataset["pipeline"])
    args["custom_imports"] = dict(imports=list(STANDALONE_IMPORTS), allow_failed_imports=False)
    args["log_level"] = "INFO"  # mmengine's own progress lines: hambench's are not there to replace them
    return args


def _mmseg_loading(pipeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``pipeline`` with hambench's ``LoadOnce`` replaced by the mmseg loading transforms it runs."""
    steps: list[dict[str, Any]] = []
    for step in pipeline:
        steps.extend([dict(s) for s in step["loads"]] if step["type"] == "LoadOnce" else [dict(step)])
    return steps
