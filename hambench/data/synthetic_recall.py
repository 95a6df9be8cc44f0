"""``synthetic-recall``: associative recall in an image, solvable only by matching content.

The vision counterpart of the multi-query associative recall task that separates attention from
its sub-quadratic replacements in language modelling (Zoology, Arora et al. 2023). Every image
holds ``keys`` = k **keys**, each a distinct shape drawn in a distinct colour, in a band along one
side of the image; and several grey **objects** on the far side, each with the shape of one of
the keys. Every object pixel is labelled with the class of the colour of the key that has its
shape. Classes::

    0 background   1 red   2 green   3 blue   4 yellow

The shape-to-colour assignment is drawn anew for every image, so an object's own pixels say only
which shape it is; its colour is wherever the key of that shape is, and nothing but matching the
object to that key by content (its shape) finds it. What each kind of module can do with it:

- **no context**: objects lie at least ``MIN_KEY_DISTANCE`` of the image size from every key
  pixel, beyond the reach of the convolutions (benchmarks/receptive_field.py measures it); the
  head can only guess among the colours.
- **global pooling** (``se``, ``gcnet``) gives every pixel the same summary of the image: it can
  carry the one key's colour at k = 1 but, at k >= 2, a mixture of all the keys that says nothing
  about which colour goes with which shape.
- **a low-rank reconstruction** (Hamburger's NMF, CD, VQ) recalls through r bases shared by the
  image: it is bounded by its rank and by how the bases separate the keys.
- **attention** can match each object (query) to the key of its shape (key) and read its colour
  (value), at any k up to the number of colours.

The key pixels themselves are not scored (annotation 0, ignored): a key's colour is local, and
scoring it would reward a head without context. So the score is background plus the objects'
recall. With k keys an object has one chance in k of a guessed colour among those present.

On disk it is synthetic-context's layout (``images/{training,validation,test}/*.jpg``,
``annotations/...png``, ``reduce_zero_label``: annotation 1..5 -> classes 0..4, 0 -> ignored),
generated once per (seed, options) into a cache folder. ``validation`` served the design of the
probe and its levels; figures are reported on ``test``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hambench.data.synthetic_context import write_generated

CLASSES = ("background", "red", "green", "blue", "yellow")
PALETTE = [[64, 64, 64], [230, 60, 60], [60, 200, 60], [60, 100, 230], [230, 210, 40]]
# The keys' colours, one per class after background: far apart and far from the greys, so JPEG keeps them apart.
KEY_COLOURS = np.array([[225, 40, 40], [40, 190, 40], [40, 80, 235], [235, 215, 30]], dtype=np.float32)
# One shape per colour at most: k keys need k distinct shapes. Chosen to differ at stride 8.
SHAPES = ("square", "ring", "cross", "bar")
MAX_KEYS = len(SHAPES)
VERSION = 1  # bump when the generator changes: the cache key includes it
OBJECT_GREY = 200.0
RADIUS = 1 / 10  # every key's and object's half-width, as a fraction of the image size
MIN_KEY_DISTANCE = 1 / 3  # every object pixel keeps at least this fraction of the image size from every key pixel
N_OBJECTS = (3, 6)  # objects per image, drawn in this range (inclusive)


def shape_mask(size: int, centre: tuple[int, int], radius: int, shape: str) -> np.ndarray:
    """The pixels of ``shape`` with half-width ``radius`` centred at ``centre`` in a size x size image."""
    yy, xx = np.mgrid[:size, :size]
    dy, dx = np.abs(yy - centre[0]), np.abs(xx - centre[1])
    arm = max(1, radius // 2)  # thick strokes: shapes stay apart at the features' stride of 8
    if shape == "square":
        return (dy <= radius) & (dx <= radius)
    if shape == "ring":  # a square frame
        return (dy <= radius) & (dx <= radius) & ((dy > radius - 1 - arm) | (dx > radius - 1 - arm))
    if shape == "cross":
        return ((dy <= radius) & (dx <= arm)) | ((dx <= radius) & (dy <= arm))
    if shape == "bar":  # a horizontal bar as wide as the others, half as tall
        return (dy <= arm) & (dx <= radius)
    raise ValueError(f"unknown shape {shape!r}; one of {', '.join(SHAPES)}")


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Dark grey with low-frequency shading and pixel noise (synthetic-context's), as (H, W, 3) float."""
    shade: np.ndarray = rng.uniform(70, 130) + rng.normal(0, 8, size=(size // 8 + 1, size // 8 + 1))
    shade = np.kron(shade, np.ones((8, 8)))[:size, :size]
    return np.repeat(shade[..., None], 3, axis=2) + rng.normal(0, 4, size=(size, size, 3))


def _key_centres(rng: np.random.Generator, size: int, k: int, radius: int) -> list[tuple[int, int]]:
    """k key centres spread along a band at the top of the image (rotated later): one per slot of
    width size / k, jittered within it."""
    slot = size / k
    centres = []
    for i in range(k):
        low, high = int(i * slot) + radius, int((i + 1) * slot) - radius
        x = int(rng.integers(low, max(low + 1, high)))
        centres.append((int(rng.integers(radius, radius + 3)), min(x, size - 1 - radius)))
    return centres


def _object_centres(rng: np.random.Generator, size: int, radius: int, top: int, n: int) -> list[tuple[int, int]]:
    """Up to n centres of non-touching objects with every pixel at row >= ``top``."""
    centres: list[tuple[int, int]] = []
    for _ in range(200 * n):
        if len(centres) == n:
            break
        y = int(rng.integers(top + radius, size - radius))
        x = int(rng.integers(radius, size - radius))
        if all(max(abs(y - cy), abs(x - cx)) > 2 * radius + 2 for cy, cx in centres):
            centres.append((y, x))
    return centres


def make_sample(
    rng: np.random.Generator, size: int = 96, keys: int = 2, *, score_keys: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """One (image (H, W, 3) uint8, annotation (H, W) uint8 in {0 ignored, 1 background, 2.. colours})."""
    if not 1 <= keys <= MAX_KEYS:
        raise ValueError(f"synthetic-recall: keys must be in 1..{MAX_KEYS}, got {keys}")
    radius = max(3, round(size * RADIUS))
    colours = rng.permutation(len(KEY_COLOURS))[:keys]  # key i: colour colours[i] ...
    shapes = rng.permutation(len(SHAPES))[:keys]  # ... and shape shapes[i]: a new pairing every image
    image = _background(rng, size)
    label = np.ones((size, size), dtype=np.uint8)  # 1 = background

    key_centres = _key_centres(rng, size, keys, radius)
    band = 2 * radius + 3  # rows the keys may occupy
    top = band + int(np.ceil(MIN_KEY_DISTANCE * size))
    n_objects = int(rng.integers(N_OBJECTS[0], N_OBJECTS[1] + 1))
    which = rng.integers(keys, size=n_objects)  # each object's key
    which[: min(keys, n_objects)] = rng.permutation(keys)[: min(keys, n_objects)]  # every key recalled at least once
    for centre, i in zip(_object_centres(rng, size, radius, top, n_objects), which):
        mask = shape_mask(size, centre, radius, SHAPES[shapes[i]])
        image[mask] = OBJECT_GREY + rng.normal(0, 6, size=(int(mask.sum()), 3))
        label[mask] = 2 + colours[i]
    for centre, i in zip(key_centres, range(keys)):
        mask = shape_mask(size, centre, radius, SHAPES[shapes[i]])
        image[mask] = KEY_COLOURS[colours[i]] + rng.normal(0, 6, size=(int(mask.sum()), 3))
        label[mask] = 2 + colours[i] if score_keys else 0
    turns = int(rng.integers(4))  # the band on any of the four sides
    image, label = np.rot90(image, turns), np.rot90(label, turns)
    return np.clip(image, 0, 255).astype(np.uint8), np.ascontiguousarray(label)


def make_synthetic_recall(
    root: str | Path | None = None,
    *,
    seed: int = 0,
    keys: int = 2,
    size: int = 96,
    n_train: int = 1000,
    n_val: int = 200,
    n_test: int = 200,
) -> Path:
    """Generate (once) and return the data root of ``synthetic-recall`` with ``keys`` keys for ``seed``
    (cache folder ``$HAMBENCH_CACHE/synthetic-recall/v{VERSION}-k{keys}-s{size}-n...-seed{seed}``)."""
    if not 1 <= keys <= MAX_KEYS:
        raise ValueError(f"synthetic-recall: keys must be in 1..{MAX_KEYS}, got {keys}")
    meta = dict(name="synthetic-recall", version=VERSION, keys=keys, classes=list(CLASSES))
    return write_generated(
        "synthetic-recall",
        f"v{VERSION}-k{keys}-s{size}-n{n_train}-{n_val}-{n_test}-seed{seed}",
        root,
        lambda rng, split: make_sample(rng, size, keys, score_keys=split == "training"),
        seed=seed,
        counts=(n_train, n_val, n_test),
        meta=meta | dict(size=size),
    )
