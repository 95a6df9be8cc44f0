"""What a GAN run reads: its data set's images as uint8, the batches of each iteration, and the
conversions between uint8 images and the networks' [-1, 1] floats."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Dataset, Sampler

from hambench.data.synthetic_shapes import SyntheticShapes
from hambench.tasks.gan.config import GanConfig

DATA_NAMES = ("synthetic-shapes", "image-folder")


def build_dataset(cfg: GanConfig) -> tuple[Dataset, int]:
    """The training images (uint8 (3, res, res), class) and the number of classes."""
    if cfg.data == "synthetic-shapes":
        return SyntheticShapes(res=cfg.res), len(SyntheticShapes.classes)
    if cfg.data == "image-folder":
        from hambench.data.image_folder import image_folder

        if cfg.data_root is None:
            raise ValueError(
                "data 'image-folder' needs a data root (data_root: a folder of images, one folder per class)"
            )
        ds = image_folder(cfg.data_root, cfg.res)
        return ds, len(ds.classes)
    raise ValueError(f"unknown GAN data set {cfg.data!r}; choose one of {', '.join(DATA_NAMES)}")


def size(data: Dataset) -> int:
    """The number of images of a data set ``build_dataset`` made (torch's ``Dataset`` type declares
    no ``__len__``; every map-style data set has one)."""
    return len(data)  # type: ignore[arg-type]


def num_classes(cfg: GanConfig) -> int:
    """Classes of the run's data set, as build_dataset has them (without reading its images)."""
    if cfg.data == "synthetic-shapes":
        return len(SyntheticShapes.classes)
    from torchvision.datasets.folder import (
        find_classes,  # what ImageFolder lists: the class folders
    )

    return len(find_classes(cfg.data_root)[0])


class SeededBatches(Sampler[list[int]]):
    """Batches for iterations ``start+1 .. stop``: epoch e is a permutation drawn from (seed, e), so
    iteration i's batch depends only on i and a resumed run reads exactly what it would have read."""

    def __init__(self, n: int, batch: int, seed: int, start: int, stop: int) -> None:
        if n < batch:
            raise ValueError(f"the data set has {n} images, fewer than one batch of {batch}")
        self.n, self.batch, self.seed, self.start, self.stop = n, batch, seed, start, stop

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __iter__(self) -> Iterator[list[int]]:
        per_epoch, epoch, perm = self.n // self.batch, None, None
        for it in range(self.start, self.stop):
            if it // per_epoch != epoch:
                epoch = it // per_epoch
                perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 1_000_003 + epoch))
            assert perm is not None  # drawn at the first iteration
            step = it % per_epoch
            yield perm[step * self.batch : (step + 1) * self.batch].tolist()


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats -> uint8 [0, 255]."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> [-1, 1] floats."""
    return images.float() / 127.5 - 1
