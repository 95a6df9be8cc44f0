"""``synthetic-context``: a segmentation task that cannot be solved without global context.

Every image holds one **key** (a large cross) and several discs and squares, on a textured grey
background. Each object's colour is drawn from a palette; an object whose colour is the key's
colour is labelled **match**, any other object **other**. Classes::

    0 background   1 key   2 match   3 other

An object and its surroundings say nothing about its label: about half the objects match, every
colour is the key colour in some images and not in others, and the key is anywhere in the image.
The label is decided by a small region that is usually far away, which is what a global context
module (attention, or a matrix decomposition that groups pixels by colour) can look up and a
small receptive field cannot.

On disk it is the ``ADEChallengeData2016`` layout (``images/{training,validation}/*.jpg``,
``annotations/{training,validation}/*.png``; annotation 0 = "other" is unused and
``reduce_zero_label`` maps 1..4 to classes 0..3), so the ADE20K loader reads it unchanged.
Each (seed, size, counts) set is generated once, deterministically, into a cache folder.
"""

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("background", "key", "match", "other")
PALETTE = [[64, 64, 64], [255, 255, 255], [230, 60, 60], [60, 120, 230]]
VERSION = 4  # bump when the generator changes: the cache key includes it

# Object colours: far apart, and far from the grey background, so that JPEG keeps them apart.
OBJECT_COLOURS = np.array([[220, 40, 40], [40, 180, 40], [40, 80, 230]], dtype=np.float32)
MATCH_PROBABILITY = 0.5  # each object has the key's colour with this probability


def default_cache_dir() -> Path:
    return Path(os.environ.get("HAMBENCH_CACHE", Path.home() / ".cache" / "hambench"))


def _place_objects(rng: np.random.Generator, size: int, radii: list[int]) -> list[tuple[int, int]]:
    """Centres of objects with half-widths ``radii`` that neither overlap nor touch."""
    centres: list[tuple[int, int]] = []
    for _ in range(1000 * len(radii)):
        if len(centres) == len(radii):
            break
        r = radii[len(centres)]
        y, x = rng.integers(r, size - r, size=2)
        if all(max(abs(y - cy), abs(x - cx)) > r + radii[j] + 2 for j, (cy, cx) in enumerate(centres)):
            centres.append((int(y), int(x)))
    if len(centres) < len(radii):
        raise ValueError(f"cannot place {len(radii)} objects of half-widths {radii} in a {size}x{size} image")
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
    """One (image (H, W, 3) uint8, annotation (H, W) uint8 in {1, 2, 3, 4}) pair."""
    radius = max(3, size // 12)
    n_objects = int(rng.integers(3, 7))  # 3..6 objects besides the key
    key_colour = int(rng.integers(len(OBJECT_COLOURS)))
    others = [c for c in range(len(OBJECT_COLOURS)) if c != key_colour]
    matches = rng.random(n_objects) < MATCH_PROBABILITY
    colours = [key_colour if m else int(rng.choice(others)) for m in matches]
    shapes = rng.choice(["disc", "square"], size=n_objects)

    # Background: grey with low-frequency shading and pixel noise, so "no object" is not one colour.
    shade = rng.uniform(90, 160) + rng.normal(0, 6, size=(size // 8 + 1, size // 8 + 1))
    shade = np.kron(shade, np.ones((8, 8)))[:size, :size]
    image = np.repeat(shade[..., None], 3, axis=2) + rng.normal(0, 4, size=(size, size, 3))
    label = np.ones((size, size), dtype=np.uint8)  # 1 = background

    key_radius = radius * 3 // 2  # the key is a large cross: easy to tell from the objects
    key_centre, *centres = _place_objects(rng, size, [key_radius] + [radius] * n_objects)
    painted = [(key_centre, key_radius, "cross", key_colour, 2)]
    painted += [(c, radius, str(s), colour, 3 if m else 4) for c, s, colour, m in zip(centres, shapes, colours, matches)]
    for centre, r, shape, colour, cls in painted:
        mask = _object_mask(size, centre, r, shape)
        image[mask] = OBJECT_COLOURS[colour] + rng.normal(0, 6, size=(int(mask.sum()), 3))
        label[mask] = cls
    return np.clip(image, 0, 255).astype(np.uint8), label


def _write_split(root: Path, split: str, n: int, size: int, rng: np.random.Generator) -> None:
    (root / "images" / split).mkdir(parents=True)
    (root / "annotations" / split).mkdir(parents=True)
    for i in range(n):
        image, label = make_sample(rng, size)
        stem = f"synctx_{split[:5]}_{i:06d}"
        Image.fromarray(image).save(root / "images" / split / f"{stem}.jpg", quality=95)
        Image.fromarray(label).save(root / "annotations" / split / f"{stem}.png")


def make_synthetic_context(
    root: str | Path | None = None, *, seed: int = 0, size: int = 96, n_train: int = 1000, n_val: int = 100
) -> Path:
    """Generate (once) and return the data root of ``synthetic-context`` for ``seed``.

    Without ``root`` it goes to ``$HAMBENCH_CACHE`` (default ``~/.cache/hambench``) under
    ``synthetic-context/v{VERSION}-s{size}-n{n_train}-{n_val}-seed{seed}``. The folder is
    written in a temporary sibling and renamed into place, so a half-written set is never seen.
    """
    if root is None:
        root = default_cache_dir() / "synthetic-context" / f"v{VERSION}-s{size}-n{n_train}-{n_val}-seed{seed}"
    root = Path(root)
    if (root / "meta.json").is_file():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent))
    try:
        rng = np.random.default_rng(seed)
        _write_split(tmp, "training", n_train, size, rng)
        _write_split(tmp, "validation", n_val, size, rng)
        meta = dict(name="synthetic-context", version=VERSION, seed=seed, size=size,
                    n_train=n_train, n_val=n_val, classes=list(CLASSES))
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        try:
            os.replace(tmp, root)  # atomic when root does not exist yet
        except OSError:
            if not (root / "meta.json").is_file():  # a real failure, not a concurrent writer
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root
