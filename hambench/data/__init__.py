"""Segmentation data: the real data sets' layouts and the embedded ``synthetic-context`` task.

``prepare_data(name, root, seed)`` returns a data root that is ready to train on: it generates
``synthetic-context`` (once per seed, cached) and checks the layout of the real sets, failing
before training starts with a ``DataRootError``: one line naming the data set, the path it looked
for and the layout it expects.

Every data set has three splits for the tuning protocol (select a configuration on ``val``,
report on ``test``) besides ``standard``, what an untuned run uses (the whole training split,
evaluated on the reported split): ``synthetic-context`` has its own test split, which is also its
reported split; on the real sets the official validation split plays test (and is reported on),
and val is held out of the official training split. ``split_kwargs`` (in
``hambench.data.datasets``, which states the rule) gives the dataset arguments of each.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from hambench.data.datasets import (
    ADE20K_LAYOUT,
    DATASETS,
    HOLDOUT_EVERY,
    SPLITS,
    DataLayoutError,
    DataRootError,
    DatasetSpec,
    check_layout,
    check_split,
    count_samples,
    holdout_indices,
    make_ade20k_fixture,
    make_fixture,
    split_kwargs,
)
from hambench.data.synthetic_context import CLASSES as SYNTHETIC_CLASSES
from hambench.data.synthetic_context import PALETTE as SYNTHETIC_PALETTE
from hambench.data.synthetic_context import make_synthetic_context

SYNTHETIC_LAYOUT = (
    "images/{training,validation,test}/*.jpg and annotations/{training,validation,test}/*.png"
    " (one .png per .jpg), as make_synthetic_context writes them"
)
# synthetic-context is read like ADE20K (same folders, reduce-zero-label) with its own 3 classes,
# and has a test split of its own (images/test, annotations/test) for the tuning protocol.
SYNTHETIC = replace(
    DATASETS["ade20k"],
    name="synthetic-context",
    dataset_type="BaseSegDataset",
    num_classes=len(SYNTHETIC_CLASSES),
    layout=SYNTHETIC_LAYOUT,
    extra=dict(
        img_suffix=".jpg", seg_map_suffix=".png", metainfo=dict(classes=SYNTHETIC_CLASSES, palette=SYNTHETIC_PALETTE)
    ),
    test=dict(data_prefix=dict(img_path="images/test", seg_map_path="annotations/test")),
)
DATA_NAMES = ("synthetic-context", *DATASETS)


def dataset_spec(name: str) -> DatasetSpec:
    if name == "synthetic-context":
        return SYNTHETIC
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; choose one of {', '.join(DATA_NAMES)}")
    return DATASETS[name]


def prepare_data(name: str, root: str | Path | None = None, seed: int = 0) -> Path:
    """Make (``synthetic-context``) or validate (the real sets) a data root and return it."""
    spec = dataset_spec(name)
    if name == "synthetic-context":
        return check_layout("ade20k", make_synthetic_context(root, seed=seed))
    if root is None:
        raise DataRootError(f"{name}: no data root given (--data-root DIR); expected {spec.layout}")
    return check_layout(name, root)


__all__ = [
    "ADE20K_LAYOUT",
    "DATASETS",
    "DATA_NAMES",
    "DataLayoutError",
    "DataRootError",
    "DatasetSpec",
    "HOLDOUT_EVERY",
    "SPLITS",
    "check_layout",
    "check_split",
    "count_samples",
    "dataset_spec",
    "holdout_indices",
    "make_ade20k_fixture",
    "make_fixture",
    "make_synthetic_context",
    "prepare_data",
    "split_kwargs",
]
