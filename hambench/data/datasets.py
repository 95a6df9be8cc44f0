"""The real data sets' on-disk layouts, checked before training starts, and tiny fixtures in each layout.

Each data set is described by a ``DatasetSpec``: the mmseg dataset class that reads it, the
folders and split files it needs, and its class count. ``check_layout`` fails with a
``DataRootError`` whose one-line message names the data set, the path it looked for and the
layout it expects.

Splits. ``split_kwargs(spec, root, split)`` gives the dataset arguments of the training and the
evaluation split of a run, for each of the ``SPLITS``:

- ``"standard"``: what every untuned run does: the whole training split, evaluated on the split
  the data set reports on: its own test split where it has one (synthetic-context: its validation
  split served the design of the task and its budget, so no figure is reported on it), else the
  official validation split (the real sets: where published numbers are).
- ``"val"`` and ``"test"``: the tuning protocol's splits (a configuration is selected on ``val``,
  reported on ``test``). A data set with its own test split (``spec.test``: synthetic-context)
  trains on its training split and evaluates on its validation or test split. On the real sets
  (ade20k, voc-aug, pascal-context) the official validation split plays test, since published
  numbers are on it; val is every ``HOLDOUT_EVERY``-th image of the official training split (in
  the order mmseg lists it: sorted by path for a folder layout, the split file's order otherwise),
  and both protocol splits train on the rest of the training split.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image


class DataRootError(ValueError):
    """A data root that is missing or not laid out as its data set expects: a user's input, so the
    message is one line (data set, path, expected layout) and the command line prints it alone."""


DataLayoutError = DataRootError  # the same class under its former name


@dataclass(frozen=True)
class DatasetSpec:
    """One data set: how mmseg reads it, what its root must hold, and its splits.

    ``train`` and ``val`` are the official training and evaluation splits (``val``: the one
    published numbers are on). ``test``, when given, is a test split of the set's own; without
    one, the tuning protocol tests on ``val`` and validates on a part held out of ``train``
    (module docstring)."""

    name: str
    dataset_type: str  # mmseg dataset class
    num_classes: int
    reduce_zero_label: bool
    layout: str  # the expected layout in one line, printed in errors
    train: dict  # data_prefix (+ ann_file) of the training split
    val: dict  # ... of the official evaluation split
    required: tuple[str, ...]  # paths (relative to the root) that must exist
    image_glob: dict[str, str] = field(default_factory=dict)  # folder -> glob with >= 1 match
    extra: dict = field(default_factory=dict)  # more keyword arguments of the dataset class
    folder: str = ""  # the folder the data set unpacks to (the data root), e.g. ADEChallengeData2016
    test: dict | None = None  # ... of a test split of its own (None: val plays test, val is held out of train)


ADE20K_LAYOUT = (
    "ADEChallengeData2016/ holding images/training/*.jpg, images/validation/*.jpg,"
    " annotations/training/*.png and annotations/validation/*.png (one .png per .jpg)"
)
VOC_AUG_LAYOUT = (
    "VOCdevkit/VOC2012/ holding JPEGImages/*.jpg, SegmentationClass/*.png, SegmentationClassAug/*.png"
    " (SBD, converted by mmseg's voc_aug.py) and ImageSets/Segmentation/{aug,val}.txt"
)
PASCAL_CONTEXT_LAYOUT = (
    "VOCdevkit/VOC2010/ holding JPEGImages/*.jpg, SegmentationClassContext/*.png (mmseg's pascal_context.py"
    " conversion) and ImageSets/SegmentationContext/{train,val}.txt"
)


def _voc_style(
    name: str,
    dataset_type: str,
    num_classes: int,
    reduce_zero_label: bool,
    layout: str,
    *,
    folder: str,
    labels: tuple[str, str],
    split_files: tuple[str, str],
) -> DatasetSpec:
    """A data set in the VOC devkit's layout under ``folder``: JPEGImages/*.jpg, label maps
    (``labels``: the training and the evaluation split's folder) and split files (``split_files``:
    the training and the evaluation split's, relative to the root)."""
    (train_labels, val_labels), (train_file, val_file) = labels, split_files
    return DatasetSpec(
        name,
        dataset_type,
        num_classes,
        reduce_zero_label,
        layout,
        train=dict(data_prefix=dict(img_path="JPEGImages", seg_map_path=train_labels), ann_file=train_file),
        val=dict(data_prefix=dict(img_path="JPEGImages", seg_map_path=val_labels), ann_file=val_file),
        required=("JPEGImages", *dict.fromkeys((val_labels, train_labels)), train_file, val_file),
        image_glob={"JPEGImages": "*.jpg", train_labels: "*.png"},
        folder=folder,
    )


DATASETS: dict[str, DatasetSpec] = {
    "ade20k": DatasetSpec(
        "ade20k",
        "ADE20KDataset",
        150,
        True,
        ADE20K_LAYOUT,
        train=dict(data_prefix=dict(img_path="images/training", seg_map_path="annotations/training")),
        val=dict(data_prefix=dict(img_path="images/validation", seg_map_path="annotations/validation")),
        required=("images/training", "images/validation", "annotations/training", "annotations/validation"),
        image_glob={
            "images/training": "*.jpg",
            "images/validation": "*.jpg",
            "annotations/training": "*.png",
            "annotations/validation": "*.png",
        },
        folder="ADEChallengeData2016",
    ),
    # The paper's VOC setting: train on train + SBD aug (10,582 images), evaluate on val (1,449).
    "voc-aug": _voc_style(
        "voc-aug",
        "PascalVOCDataset",
        21,
        False,
        VOC_AUG_LAYOUT,
        folder="VOCdevkit/VOC2012",
        labels=("SegmentationClassAug", "SegmentationClass"),
        split_files=("ImageSets/Segmentation/aug.txt", "ImageSets/Segmentation/val.txt"),
    ),
    "pascal-context": _voc_style(
        "pascal-context",
        "PascalContextDataset59",
        59,
        True,
        PASCAL_CONTEXT_LAYOUT,
        folder="VOCdevkit/VOC2010",
        labels=("SegmentationClassContext", "SegmentationClassContext"),
        split_files=("ImageSets/SegmentationContext/train.txt", "ImageSets/SegmentationContext/val.txt"),
    ),
}


def check_layout(name: str, root: str | Path) -> Path:
    """Return ``root`` resolved if it has ``name``'s layout; raise ``DataRootError`` otherwise."""
    spec = DATASETS[name]
    root = Path(root).expanduser().resolve()
    expect = f"expected {spec.layout}"
    if root.exists() and not root.is_dir():
        raise DataRootError(f"{name}: data root {root} is not a directory; {expect}")
    if not root.is_dir():
        raise DataRootError(f"{name}: data root {root} does not exist; {expect}")
    inside = root / spec.folder
    if spec.folder and inside.is_dir() and any(not (root / rel).exists() for rel in spec.required):
        # The parent of the data set's folder was given: say which folder to pass instead.
        raise DataRootError(f"{name}: data root {root} holds {spec.folder}/: pass --data-root {inside}; {expect}")
    for rel in spec.required:
        if not (root / rel).exists():
            raise DataRootError(f"{name}: {root / rel} is missing; {expect}")
    for rel, pattern in spec.image_glob.items():
        if next((root / rel).glob(pattern), None) is None:
            raise DataRootError(f"{name}: no {pattern} file in {root / rel}; {expect}")
    if name == "ade20k":  # every image needs its annotation: mmseg would fail mid-epoch otherwise
        for split in ("training", "validation"):
            images = {p.stem for p in (root / "images" / split).glob("*.jpg")}
            labels = {p.stem for p in (root / "annotations" / split).glob("*.png")}
            if images - labels:
                missing = sorted(images - labels)[0]
                raise DataRootError(
                    f"{name}: {root / 'annotations' / split / (missing + '.png')} is missing "
                    f"({len(images - labels)} image(s) without annotation); {expect}"
                )
    return root


# --------------------------------------------------------------------------- splits

SPLITS = ("standard", "val", "test")  # what a run evaluates on (module docstring)
HOLDOUT_EVERY = 20  # the protocol's val on a real set: every 20th image of the official training split


def check_split(split: str) -> str:
    """``split`` if it is one of ``SPLITS``; a ValueError naming the valid ones otherwise."""
    if split not in SPLITS:
        raise ValueError(f"eval split {split!r} is not one of {', '.join(SPLITS)}")
    return split


def count_samples(spec: DatasetSpec, root: str | Path, kwargs: dict) -> int:
    """How many samples mmseg's dataset class lists for split ``kwargs`` (``spec.train``, ...) of
    ``root``: the split file's lines, or the image files under its folder (recursively, hidden
    files left out), as ``BaseSegDataset.load_data_list`` reads them."""
    from mmengine.fileio import list_dir_or_file, list_from_file

    root = Path(root)
    if "ann_file" in kwargs:
        return len(list_from_file(str(root / kwargs["ann_file"])))
    suffix = spec.extra.get("img_suffix", ".jpg")  # the dataset classes named here all default to .jpg
    images = root / kwargs["data_prefix"]["img_path"]
    return sum(1 for _ in list_dir_or_file(str(images), list_dir=False, suffix=suffix, recursive=True))


def holdout_indices(n: int) -> tuple[list[int], list[int]]:
    """(training, held-out) positions among ``n`` training samples: every ``HOLDOUT_EVERY``-th
    sample, from the first, is held out."""
    held_out = list(range(0, n, HOLDOUT_EVERY))
    return [i for i in range(n) if i % HOLDOUT_EVERY], held_out


def split_kwargs(spec: DatasetSpec, root: str | Path, split: str) -> tuple[dict, dict]:
    """The dataset arguments (data_prefix, ann_file, indices) of the training and the evaluation
    split of a run that evaluates on ``split`` (one of ``SPLITS``; the rule is in the module
    docstring). ``"standard"``: the whole training split and the reported split."""
    check_split(split)
    if split == "standard":
        return dict(spec.train), dict(spec.test if spec.test is not None else spec.val)
    if spec.test is not None:  # a test split of its own: nothing held out of training
        evaluate = spec.val if split == "val" else spec.test
        folder = Path(root) / evaluate["data_prefix"]["img_path"]
        if not folder.is_dir():
            raise DataRootError(f"{spec.name}: {folder} is missing (the {split} split); expected {spec.layout}")
        return dict(spec.train), dict(evaluate)
    n = count_samples(spec, root, spec.train)
    if n < 2:
        raise DataRootError(
            f"{spec.name}: the training split of {root} has {n} image(s); the {split} split "
            f"holds out every {HOLDOUT_EVERY}th of them and trains on the rest, which needs 2 or more"
        )
    train, held_out = holdout_indices(n)
    train_kwargs = dict(spec.train, indices=train)
    if split == "val":
        return train_kwargs, dict(spec.train, indices=held_out)
    return train_kwargs, dict(spec.val)


# Fixture file names: "<prefix>_train_00000000.jpg", "<prefix>_valid_00000000.jpg".
FIXTURE_PREFIX = {"ade20k": "ADE", "voc-aug": "VOC", "pascal-context": "PC"}


def _fixture_sample(rng: np.random.Generator, size: int, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A 4x4 grid of labelled blocks, each with its own colour: (size, size, 3) image, (size, size) label."""
    blocks = rng.choice(values, size=(4, 4)).astype(np.uint8)
    label = np.kron(blocks, np.ones((size // 4, size // 4), dtype=np.uint8))
    colours = rng.integers(0, 256, size=(256, 3)).astype(np.uint8)
    return colours[label], label


def make_fixture(name: str, root: str | Path, n_train: int = 8, n_val: int = 4, size: int = 32, seed: int = 0) -> Path:
    """Write a tiny data set in the exact on-disk layout of data set ``name`` and return its root.

    The layout is read off ``DATASETS[name]`` (the folders and split files the mmseg dataset class
    reads), so the fixture passes ``check_layout`` and the real loader, transforms and
    ``IoUMetric`` all run. Label values are the set's own: 0 = "other" (ignored after
    reduce-zero-label) and 1..num_classes, or 0..num_classes-1 plus 255 (ignored) for VOC.
    Written to a temporary sibling and renamed into place.
    """
    if name not in DATASETS:
        raise ValueError(f"no fixture generator for data set {name!r}; choose one of {', '.join(DATASETS)}")
    spec = DATASETS[name]
    values = np.arange(spec.num_classes + 1) if spec.reduce_zero_label else np.r_[np.arange(spec.num_classes), 255]
    root = Path(root)
    rng = np.random.default_rng(seed)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent))
    try:
        for split, tag, n in (("train", "train", n_train), ("val", "valid", n_val)):
            prefix = getattr(spec, split)["data_prefix"]
            images, labels = tmp / prefix["img_path"], tmp / prefix["seg_map_path"]
            images.mkdir(parents=True, exist_ok=True)
            labels.mkdir(parents=True, exist_ok=True)
            stems = [f"{FIXTURE_PREFIX[name]}_{tag}_{i:08d}" for i in range(n)]
            for stem in stems:
                image, label = _fixture_sample(rng, size, values)
                Image.fromarray(image).save(images / f"{stem}.jpg", quality=95)
                Image.fromarray(label).save(labels / f"{stem}.png")
            if "ann_file" in getattr(spec, split):  # a split file: one image stem per line
                ann_file = tmp / getattr(spec, split)["ann_file"]
                ann_file.parent.mkdir(parents=True, exist_ok=True)
                ann_file.write_text("".join(f"{stem}\n" for stem in stems))
        if root.exists():
            shutil.rmtree(root)
        os.replace(tmp, root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return check_layout(name, root)


def make_ade20k_fixture(root: str | Path, n_train: int = 8, n_val: int = 4, size: int = 32, seed: int = 0) -> Path:
    """A tiny data set in the exact ``ADEChallengeData2016`` layout (see ``make_fixture``)."""
    return make_fixture("ade20k", root, n_train, n_val, size, seed)
