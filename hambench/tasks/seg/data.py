"""What a segmentation run reads: mmseg's transforms, data sets and loaders of its two splits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hambench.data import EMBEDDED, dataset_spec, split_kwargs
from hambench.tasks.seg.config import SegConfig


def pipelines(data: str, crop: tuple[int, int]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Train and validation transforms. The embedded sets are generated at the crop size, decoded
    once (``LoadOnce``, hambench.tasks.seg.transforms) and only flipped (scaling would move objects
    relative to the keys; every shape is mirror-symmetric); the real sets use mmseg's standard
    recipe (random resize 0.5-2x around (4*crop_h, crop_h), crop, flip, photometric distortion)."""
    load: list[dict[str, Any]] = [dict(type="LoadImageFromFile"), dict(type="LoadAnnotations")]
    if data in EMBEDDED:
        once = dict(type="LoadOnce", loads=load)
        return [once, dict(type="RandomFlip", prob=0.5), dict(type="PackSegInputs")], [once, dict(type="PackSegInputs")]
    scale = (4 * crop[0], crop[0])
    train: list[dict[str, Any]] = [
        *load,
        dict(type="RandomResize", scale=scale, ratio_range=(0.5, 2.0), keep_ratio=True),
        dict(type="RandomCrop", crop_size=crop, cat_max_ratio=0.75),
        dict(type="RandomFlip", prob=0.5),
        dict(type="PhotoMetricDistortion"),
        dict(type="PackSegInputs"),
    ]
    val: list[dict[str, Any]] = [
        dict(type="LoadImageFromFile"),
        dict(type="Resize", scale=scale, keep_ratio=True),
        dict(type="LoadAnnotations"),
        dict(type="PackSegInputs"),
    ]
    return train, val


def dataset(
    data: str, root: Path, split: dict[str, Any], pipeline: list[dict[str, Any]], *, shared: bool = False
) -> dict[str, Any]:
    """The mmseg dataset config of one split (``split``: its data_prefix, ann_file, indices).
    ``shared``: loader processes read it, so mmengine packs its list of samples into one buffer
    they share; in the training process itself that packing is a full garbage collection (0.2 s
    per split) and buys nothing."""
    spec = dataset_spec(data)
    return dict(
        type=spec.dataset_type,
        data_root=str(root),
        reduce_zero_label=spec.reduce_zero_label,
        pipeline=pipeline,
        serialize_data=shared,
        **split,
        **spec.extra,
    )


# Evaluation images at a time. A generated set's images share one size, so they batch with no
# padding and every image's prediction is its own (eval-mode BN); a real set's vary in size and go
# one at a time, as mmseg evaluates them.
EMBEDDED_EVAL_BATCH = 8


def eval_batch(data: str) -> int:
    return EMBEDDED_EVAL_BATCH if data in EMBEDDED else 1


def dataloaders(cfg: SegConfig, root: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The training and evaluation loaders; ``cfg.eval_split`` picks both splits (in val and
    test mode a real set trains on its training split less the held-out val part)."""
    train_pipe, val_pipe = pipelines(cfg.data, cfg.resolved_crop())
    train_split, eval_split = split_kwargs(dataset_spec(cfg.data), root, cfg.eval_split)
    with_workers = cfg.loader_workers > 0
    train = dict(
        batch_size=cfg.batch,
        num_workers=cfg.loader_workers,
        persistent_workers=with_workers,
        sampler=dict(type="InfiniteSampler", shuffle=True),
        dataset=dataset(cfg.data, root, train_split, train_pipe, shared=with_workers),
    )
    val = dict(
        batch_size=eval_batch(cfg.data),
        num_workers=cfg.loader_workers,
        persistent_workers=with_workers,
        sampler=dict(type="DefaultSampler", shuffle=False),
        dataset=dataset(cfg.data, root, eval_split, val_pipe, shared=with_workers),
    )
    return train, val
