"""``synthetic-context``: a segmentation task that cannot be solved without global context.

Every image holds several light-grey **objects** (discs and squares of varied size) on a textured
dark-grey background, and one small **key** (a cross) in one of two colours. Every object pixel,
and every key pixel, is labelled with the **group** named by the key's colour. Classes::

    0 background   1 group-red   2 group-blue

Two groups, not more: with three, a context module often learnt to route one key colour and left
the other two confused, depending on the seed (mIoU 54 to 84 for ham-nmf at rank 8 over three
seeds); with two, routing one colour is routing both. A module can still fail to learn the rule on
a seed (docs/results.md has the 5-seed table): read intervals over seeds, never one seed.

All objects look the same in every image, so an object's own pixels and its neighbourhood say
nothing about its group: the group is decided by the key, a small region placed at least
``MIN_KEY_DISTANCE`` pixels from every object. A module that aggregates the whole image
(attention, a matrix decomposition, even global pooling) can broadcast the key's colour to every
object; a head without context only sees the key from objects close to it, and must guess (one
chance in two) for the rest.

On disk it is the ``ADEChallengeData2016`` layout (``images/{training,validation}/*.jpg``,
``annotations/{training,validation}/*.png``; annotation 0 = "other" is unused and
``reduce_zero_label`` maps 1..3 to classes 0..2), so the ADE20K loader reads it unchanged, plus a
third split, ``images/test/*.jpg`` and ``annotations/test/*.png``: the split every figure is
reported on (hambench.data.datasets.split_kwargs). ``validation`` served the design of this task
and of its budget, and the tuning protocol selects configurations on it; no figure is reported on
it. The three splits come from one random stream in the order training, validation, test, so
adding the test split left the training and validation images as they were.
Each (seed, size, counts) set is generated once, deterministically, into a cache folder.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

CLASSES = ("background", "group-red", "group-blue")
PALETTE = [[64, 64, 64], [230, 60, 60], [60, 120, 230]]
VERSION = 7  # bump when the generator changes: the cache key includes it (7: the test split)

# The key's colours (one per group): far apart, and far from the greys, so that JPEG keeps them apart.
KEY_COLOURS = np.array([[220, 40, 40], [40, 80, 230]], dtype=np.float32)
OBJECT_GREY = 200.0  # every object, whatever its group
MIN_KEY_DISTANCE = 0.4  # objects keep at least this fraction of the image size from the key's centre
KEY_SIZE = 1 / 16  # the key's half-width, as a fraction of the image size
Sample = tuple[np.ndarray, np.ndarray]  # (image (H, W, 3) uint8, annotation (H, W) uint8)


def default_cache_dir() -> Path:
    return Path(os.environ.get("HAMBENCH_CACHE", Path.home() / ".cache" / "hambench"))


def _place_objects(
    rng: np.random.Generator, size: int, radii: list[int], key: tuple[int, int], min_key_distance: float
) -> list[tuple[int, int]]:
    """Centres of objects with half-widths ``radii`` that neither overlap nor touch each other, each
    at least ``min_key_distance`` pixels (Euclidean, centre to centre) from the key's centre.

    Objects are placed in order by rejection sampling; when the tries run out (a central key
    leaves little room) the objects not yet placed are left out, so fewer may come back."""
    centres: list[tuple[int, int]] = []
    for _ in range(1000 * len(radii)):
        if len(centres) == len(radii):
            break
        r = radii[len(centres)]
        y, x = rng.integers(r, size - r, size=2)
        far_from_key = (y - key[0]) ** 2 + (x - key[1]) ** 2 >= min_key_distance**2
        apart = all(max(abs(y - cy), abs(x - cx)) > r + radii[j] + 2 for j, (cy, cx) in enumerate(centres))
        if far_from_key and apart:
            centres.append((int(y), int(x)))
    if not centres:
        raise ValueError(
            f"cannot place any object of half-widths {radii} in a {size}x{size} image "
            f"at {min_key_distance:.0f} px from a key at {key}"
        )
    return centres


def _object_mask(size: int, centre: tuple[int, int], radius: int, shape: str) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    dy, dx = np.abs(yy - centre[0]), np.abs(xx - centre[1])
    if shape == "disc":
        return dy**2 + dx**2 <= radius**2
    if shape == "square":
        return (dy <= radius) & (dx <= radius)
    arm = max(1, radius // 3)  # "cross": the key
    return ((dy <= radius) & (dx <= arm)) | ((dx <= radius) & (dy <= arm))


def make_sample(rng: np.random.Generator, size: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """One (image (H, W, 3) uint8, annotation (H, W) uint8 in {1, 2, 3}) pair."""
    group = int(rng.integers(len(KEY_COLOURS)))  # the key's colour decides every object's class
    n_objects = int(rng.integers(4, 8))  # 4..7 objects besides the key
    radii = [int(r) for r in rng.integers(max(2, size // 24), max(3, size // 10) + 1, size=n_objects)]
    shapes = rng.choice(["disc", "square"], size=n_objects)

    # Background: dark grey with low-frequency shading and pixel noise, so "no object" is not one colour.
    shade: np.ndarray = rng.uniform(70, 130) + rng.normal(0, 8, size=(size // 8 + 1, size // 8 + 1))
    shade = np.kron(shade, np.ones((8, 8)))[:size, :size]
    image = np.repeat(shade[..., None], 3, axis=2) + rng.normal(0, 4, size=(size, size, 3))
    label = np.ones((size, size), dtype=np.uint8)  # 1 = background
    cls = 2 + group  # annotation of every object and key pixel

    # The key: a small cross anywhere; the objects: away from it, mostly beyond a local receptive field.
    key_radius = max(3, int(size * KEY_SIZE))
    key_y, key_x = (int(v) for v in rng.integers(key_radius, size - key_radius, size=2))
    key_centre = (key_y, key_x)
    centres = _place_objects(rng, size, radii, key_centre, MIN_KEY_DISTANCE * size)
    for centre, r, shape in zip(centres, radii, shapes):  # the objects placed (all but rarely)
        mask = _object_mask(size, centre, r, str(shape))
        image[mask] = OBJECT_GREY + rng.normal(0, 6, size=(int(mask.sum()), 3))
        label[mask] = cls
    mask = _object_mask(size, key_centre, key_radius, "cross")
    image[mask] = KEY_COLOURS[group] + rng.normal(0, 6, size=(int(mask.sum()), 3))
    label[mask] = cls
    return np.clip(image, 0, 255).astype(np.uint8), label


def _write_split(
    root: Path,
    split: str,
    n: int,
    sample: Callable[[np.random.Generator, str], Sample],
    rng: np.random.Generator,
    prefix: str,
) -> None:
    (root / "images" / split).mkdir(parents=True)
    (root / "annotations" / split).mkdir(parents=True)
    for i in range(n):
        image, label = sample(rng, split)
        stem = f"{prefix}_{split[:5]}_{i:06d}"
        Image.fromarray(image).save(root / "images" / split / f"{stem}.jpg", quality=95)
        Image.fromarray(label).save(root / "annotations" / split / f"{stem}.png")


def write_generated(
    name: str,
    folder: str,
    root: str | Path | None,
    sample: Callable[[np.random.Generator, str], Sample],
    *,
    seed: int,
    counts: tuple[int, int, int],
    meta: dict[str, Any],
    prefix: str | None = None,
) -> Path:
    """Write a generated data set once and return its root: ``counts`` = (training, validation,
    test) samples of ``sample(rng, split)``, drawn from one stream seeded ``seed`` in that order (so the
    test split never changes the other two), in the ADE20K layout plus ``images/test``. Without
    ``root`` it goes to ``$HAMBENCH_CACHE`` (default ``~/.cache/hambench``) under ``name/folder``.
    The folder is written in a temporary sibling and renamed into place, so a half-written set
    is never seen."""
    if min(counts) < 0:
        n_train, n_val, n_test = counts
        raise ValueError(f"{name}: image counts must be >= 0; got n_train={n_train}, n_val={n_val}, n_test={n_test}")
    root = Path(root) if root is not None else default_cache_dir() / name / folder
    if (root / "meta.json").is_file():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent))
    try:
        rng = np.random.default_rng(seed)
        for split, n in zip(("training", "validation", "test"), counts):  # one stream, in this order
            _write_split(tmp, split, n, sample, rng, prefix or name)
        n_train, n_val, n_test = counts
        meta = meta | dict(seed=seed, n_train=n_train, n_val=n_val, n_test=n_test)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        try:
            os.replace(tmp, root)  # atomic when root does not exist yet
        except OSError:
            if not (root / "meta.json").is_file():  # a real failure, not a concurrent writer
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def make_synthetic_context(
    root: str | Path | None = None,
    *,
    seed: int = 0,
    size: int = 96,
    n_train: int = 1000,
    n_val: int = 200,
    n_test: int = 200,
) -> Path:
    """Generate (once) and return the data root of ``synthetic-context`` for ``seed``.

    Without ``root`` it goes to ``$HAMBENCH_CACHE`` (default ``~/.cache/hambench``) under
    ``synthetic-context/v{VERSION}-s{size}-n{n_train}-{n_val}-{n_test}-seed{seed}`` (``write_generated``).
    The test split is drawn after the other two, so ``n_test`` (0 included) never changes them.
    """
    meta = dict(name="synthetic-context", version=VERSION, size=size, classes=list(CLASSES))
    return write_generated(
        "synthetic-context",
        f"v{VERSION}-s{size}-n{n_train}-{n_val}-{n_test}-seed{seed}",
        root,
        lambda rng, split: make_sample(rng, size),
        seed=seed,
        counts=(n_train, n_val, n_test),
        meta=meta,
        prefix="synctx",
    )
