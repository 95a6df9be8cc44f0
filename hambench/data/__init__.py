"""Segmentation data: the real data sets' layouts and the embedded tasks ``synthetic-context`` and
``synthetic-recall``.

``prepare_data(name, root, seed, options)`` returns a data root that is ready to train on: it
generates an embedded set (once per seed and options, cached) and checks the layout of the real
sets, failing before training starts with a ``DataRootError``: one line naming the data set, the
path it looked for and the layout it expects.

**Data-set options** are an embedded set's knobs (``DATA_OPTIONS``): ``synthetic-recall``'s number
of keys (its difficulty), either set's image size (reach at scale). A suite's grid sweeps them as
it sweeps module options (``data: [{name: synthetic-recall, options: {keys: [1, 2, 4]}}]``); each
value is its own comparison in the summary and the ranks. ``check_data_options`` refuses an
unknown option or a bad value in one line.

Every data set has three splits for the tuning protocol (select a configuration on ``val``,
report on ``test``) besides ``standard``, what an untuned run uses (the whole training split,
evaluated on the reported split): ``synthetic-context`` has its own test split, which is also its
reported split; on the real sets the official validation split plays test (and is reported on),
and val is held out of the official training split. ``split_kwargs`` (in
``hambench.data.datasets``, which states the rule) gives the dataset arguments of each.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

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
from hambench.data.synthetic_recall import CLASSES as RECALL_CLASSES
from hambench.data.synthetic_recall import MAX_KEYS, make_synthetic_recall
from hambench.data.synthetic_recall import PALETTE as RECALL_PALETTE

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
# synthetic-recall: the same layout, its own classes (background and the keys' colours).
RECALL = replace(
    SYNTHETIC,
    name="synthetic-recall",
    num_classes=len(RECALL_CLASSES),
    extra=dict(img_suffix=".jpg", seg_map_suffix=".png", metainfo=dict(classes=RECALL_CLASSES, palette=RECALL_PALETTE)),
)
EMBEDDED = {"synthetic-context": SYNTHETIC, "synthetic-recall": RECALL}  # generated on the fly, never downloaded
DATA_NAMES = (*EMBEDDED, *DATASETS)

# The embedded sets' options: name -> (default, valid range (low, high) inclusive, what it sets).
MAX_SIZE = 512
DATA_OPTIONS: dict[str, dict[str, tuple[int, tuple[int, int], str]]] = {
    "synthetic-context": {"size": (96, (32, MAX_SIZE), "image side in pixels (the training crop follows it)")},
    "synthetic-recall": {
        "keys": (2, (1, MAX_KEYS), "keys per image, each a shape in a colour: the difficulty"),
        "size": (96, (48, MAX_SIZE), "image side in pixels (the training crop follows it)"),
    },
}


def dataset_spec(name: str) -> DatasetSpec:
    if name in EMBEDDED:
        return EMBEDDED[name]
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; choose one of {', '.join(DATA_NAMES)}")
    return DATASETS[name]


def data_option_errors(name: str, options: Mapping[str, Any]) -> list[str]:
    """What is wrong with data set ``name``'s ``options``, one message per bad option (none: valid)."""
    valid = DATA_OPTIONS.get(name, {})
    errors = []
    for key, value in options.items():
        if key not in valid:
            choices = ", ".join(valid) if valid else "none"
            errors.append(f"data set {name} has no option {key!r}; its options: {choices}")
            continue
        _, (low, high), _ = valid[key]
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            errors.append(f"data set {name}: option {key} must be an integer in {low}..{high}, got {value!r}")
    return errors


def check_data_options(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` if valid for data set ``name``; a ValueError naming the first bad one otherwise."""
    errors = data_option_errors(name, options)
    if errors:
        raise ValueError(errors[0])
    return dict(options)


def data_size(name: str, options: Mapping[str, Any]) -> int | None:
    """The side of an embedded set's images (its ``size`` option or default); None for a real set."""
    if name not in EMBEDDED:
        return None
    return int(options.get("size", DATA_OPTIONS[name]["size"][0]))


def prepare_data(
    name: str, root: str | Path | None = None, seed: int = 0, options: Mapping[str, Any] | None = None
) -> Path:
    """Make (the embedded sets, with their ``options``) or validate (the real sets) a data root and return it."""
    spec = dataset_spec(name)
    options = check_data_options(name, options or {})
    if name == "synthetic-context":
        return check_layout("ade20k", make_synthetic_context(root, seed=seed, **options))
    if name == "synthetic-recall":
        return check_layout("ade20k", make_synthetic_recall(root, seed=seed, **options))
    if root is None:
        raise DataRootError(f"{name}: no data root given (--data-root DIR); expected {spec.layout}")
    return check_layout(name, root)


__all__ = [
    "ADE20K_LAYOUT",
    "DATASETS",
    "DATA_NAMES",
    "DATA_OPTIONS",
    "EMBEDDED",
    "DataLayoutError",
    "DataRootError",
    "DatasetSpec",
    "HOLDOUT_EVERY",
    "SPLITS",
    "check_data_options",
    "check_layout",
    "data_option_errors",
    "data_size",
    "check_split",
    "count_samples",
    "dataset_spec",
    "holdout_indices",
    "make_ade20k_fixture",
    "make_fixture",
    "make_synthetic_context",
    "make_synthetic_recall",
    "prepare_data",
    "split_kwargs",
]
