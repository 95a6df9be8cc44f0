"""ImageNet-style class folders (``root/<class>/<image>``) for the GAN task, read by torchvision."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from torchvision import transforms
from torchvision.datasets import ImageFolder

from hambench.data.datasets import DataRootError

IMAGE_FOLDER_LAYOUT = "one folder per class holding its images, <root>/<class>/*.jpg|*.png|... (as ImageNet's train/)"


def image_folder(root: str | Path, res: int) -> ImageFolder:
    """Class folders under ``root``; items are (uint8 tensor (3, res, res), class index).

    Each image is resized so that its short side is ``res``, then centre-cropped (as BigGAN)."""
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise DataRootError(f"image-folder: data root {root} does not exist; expected {IMAGE_FOLDER_LAYOUT}")
    transform = transforms.Compose([transforms.Resize(res), transforms.CenterCrop(res), transforms.PILToTensor()])
    try:
        return ImageFolder(root, transform=transform)
    except FileNotFoundError as exc:  # no class folder, or no image in any of them
        reason = " ".join(str(exc).split())  # torchvision's message may span lines
        raise DataRootError(f"image-folder: data root {root}: {reason}; expected {IMAGE_FOLDER_LAYOUT}") from None


def make_image_folder_fixture(root: Path, classes: int = 3, per_class: int = 4, size: int = 48, seed: int = 0) -> Path:
    """A tiny class-folder image set (ImageNet's ``train/<class>/*.JPEG`` layout) for ``--smoke``."""
    rng = np.random.default_rng(seed)
    for c in range(classes):
        folder = root / f"n{c:08d}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
            Image.fromarray(image).save(folder / f"n{c:08d}_{i}.JPEG", quality=90)
    return root
