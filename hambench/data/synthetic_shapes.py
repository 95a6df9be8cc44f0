"""``synthetic-shapes``: a class-conditional image set whose images have long-range structure.

Each image is a vertical colour gradient with one shape of its class (disc, square, ring, diamond,
cross, triangle), of random place, size and colour, in the left half, and its **mirror twin** in
the right half: the image is symmetric about the vertical centre line, and the twins stand 11-24
pixels apart at 32x32 (a third to three quarters of the width). A generator draws a correct image
only if pixels that far apart agree: exactly the long-range dependency that a global context
module should capture. ``symmetry_error`` scores it: 0 for every real image, about 0.18 for real
images whose right halves come from other images, about 1/3 for uniform noise.

One pair per image (earlier versions drew one to three overlapping shapes a side): a small CPU-sized
GAN learns pairs within minutes, where the crowded images stayed blobs (docs/results.md).

Images are made on the fly (nothing on disk), deterministically from ``(seed, index)``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

CLASSES = ("disc", "square", "ring", "diamond", "cross", "triangle")
SUPERSAMPLE = 2  # render at 2x and average 2x2 blocks: smooth edges, symmetry stays exact


def _shape_mask(kind: str, dx: np.ndarray, dy: np.ndarray, size: float) -> np.ndarray:
    """Boolean mask of one shape of half-width ``size`` at offsets (dx, dy) from its centre."""
    ax, ay = np.abs(dx), np.abs(dy)
    if kind == "disc":
        return dx**2 + dy**2 < size**2
    if kind == "square":
        return np.maximum(ax, ay) < size
    if kind == "ring":
        r2 = dx**2 + dy**2
        return (r2 < size**2) & (r2 > (0.55 * size) ** 2)
    if kind == "diamond":
        return ax + ay < size
    if kind == "cross":
        arm = size / 3
        return ((ax < arm) & (ay < size)) | ((ay < arm) & (ax < size))
    if kind == "triangle":  # pointing up: width grows from the apex at dy = -size to the base
        return (ay < size) & (ax < (dy + size) / 2)
    raise ValueError(f"unknown shape {kind!r}; shapes: {', '.join(CLASSES)}")


def render_shapes(rng: np.random.Generator, label: int, res: int) -> np.ndarray:
    """One mirror-symmetric image of class ``label``: uint8 (3, res, res)."""
    n = res * SUPERSAMPLE
    coords = (np.arange(n) + 0.5) / n * 2 - 1  # pixel centres in [-1, 1]
    yy, xx = np.meshgrid(coords, coords, indexing="ij")  # (n, n)

    # Background: a dark vertical gradient (symmetric under a horizontal flip by construction).
    top, bottom = rng.uniform(0.0, 0.45, size=(2, 3))
    t = (yy + 1) / 2
    img = top[:, None, None] * (1 - t) + bottom[:, None, None] * t  # (3, n, n)

    # One shape of the class, its centre in the left half at least 0.35 (of the width 2) from the
    # centre line: the mirror step below gives it a twin 0.7 to 1.5 away.
    cx, cy = rng.uniform(-0.75, -0.35), rng.uniform(-0.6, 0.6)
    size = rng.uniform(0.2, 0.35)
    colour = rng.uniform(0.5, 1.0, size=3)
    mask = _shape_mask(CLASSES[label], xx - cx, yy - cy, size)
    img[:, mask] = colour[:, None]

    # Mirror: the right half becomes the flipped left half.
    img[:, :, n // 2 :] = img[:, :, : n // 2][:, :, ::-1]
    img = img.reshape(3, res, SUPERSAMPLE, res, SUPERSAMPLE).mean(axis=(2, 4))  # (3, res, res)
    return np.round(img * 255).astype(np.uint8)


class SyntheticShapes(Dataset):
    """``n`` images of size ``res``; item ``i`` is (uint8 tensor (3, res, res), class) and depends
    only on (seed, i). Classes cycle (``i % 6``) so every class is equally frequent."""

    classes = CLASSES

    def __init__(self, n: int = 10_000, res: int = 32, seed: int = 0) -> None:
        if res % 2:
            raise ValueError(f"synthetic-shapes: res must be even (mirror symmetry), got {res}")
        self.n, self.res, self.seed = n, res, seed

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if not 0 <= index < self.n:
            raise IndexError(f"index {index} out of range for {self.n} images")
        label = index % len(CLASSES)
        rng = np.random.default_rng([self.seed, index])
        return torch.from_numpy(render_shapes(rng, label, self.res)), label


def symmetry_error(images: torch.Tensor) -> float:
    """Mean |x - mirror(x)| of uint8 images (B, 3, H, W), in [0, 1] (fraction of the pixel range).

    0 for a perfectly mirror-symmetric image; 1/3 in expectation for uniform noise."""
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise ValueError(f"symmetry_error expects uint8 images (B, C, H, W), got {images.dtype} {tuple(images.shape)}")
    x = images.float() / 255
    return (x - x.flip(-1)).abs().mean().item()
