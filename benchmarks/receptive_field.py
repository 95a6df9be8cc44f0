"""How far does a trained segmentor look? The effective receptive field (Luo et al., NeurIPS 2016)
of a checkpoint on ``synthetic-context`` or ``synthetic-recall``: the gradient of the centre pixel's logits with respect
to the input, in absolute value, summed over channels and over validation images, and the radii
(around that pixel) holding 95% and 99% of it. Beside it: how far the objects lie from the key
(synthetic-recall: from the nearest key pixel).

``synthetic-context`` needs global context when the ``none`` model's 95% radius is well below the
object-to-key distances: such a head cannot see the key from most object pixels.

    python benchmarks/synthetic_context_gap.py --modules none --seeds 0        # trains work_dirs/.../none_s0
    python benchmarks/receptive_field.py work_dirs/synthetic_context_gap/none_s0/iter_600.pth
    python benchmarks/receptive_field.py CKPT --data synthetic-recall --data-option keys=1
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from hambench.data import dataset_spec, prepare_data
from hambench.models.segmentor import build_segmentor, segmentor_cfg


def load_images(root: Path, n: int) -> tuple[torch.Tensor, list[np.ndarray]]:
    """The first ``n`` validation images as a normalised (n, 3, H, W) batch, and their labels."""
    from PIL import Image

    from hambench.models.segmentor import MEAN, STD

    stems = sorted(p.stem for p in (root / "images" / "validation").glob("*.jpg"))[:n]
    images = [np.asarray(Image.open(root / "images" / "validation" / f"{s}.jpg"), dtype=np.float32) for s in stems]
    labels = [np.asarray(Image.open(root / "annotations" / "validation" / f"{s}.png")) for s in stems]
    x = (torch.from_numpy(np.stack(images)) - torch.tensor(MEAN)) / torch.tensor(STD)
    return x.permute(0, 3, 1, 2).contiguous(), labels


def gradient_map(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    """|d (sum of the centre pixel's logits) / d input|, summed over images and channels: (H, W)."""
    x = x.clone().requires_grad_(True)
    logits = model.decode_head(model.extract_feat(x))  # (B, K, h, w) at output stride 8
    logits = torch.nn.functional.interpolate(logits, size=x.shape[2:], mode="bilinear", align_corners=False)
    h, w = x.shape[2] // 2, x.shape[3] // 2
    logits[:, :, h, w].sum().backward()
    return x.grad.abs().sum(dim=(0, 1)).numpy()


def radius_holding(grad: np.ndarray, share: float) -> float:
    """The smallest radius around the centre that holds ``share`` of the gradient's mass."""
    h, w = grad.shape
    yy, xx = np.mgrid[:h, :w]
    dist = np.hypot(yy - h // 2, xx - w // 2).ravel()
    order = np.argsort(dist)
    mass = np.cumsum(grad.ravel()[order]) / grad.sum()
    return float(dist[order][np.searchsorted(mass, share)])


def object_distances(labels: list[np.ndarray], images: torch.Tensor) -> np.ndarray:
    """Distance of every grey-object pixel to its image's key centre (the key: saturated pixels).
    Pixels within the key's own reach (its half-width plus a JPEG-blurred rim of 3 px) are the key's
    pixels whatever their colour, not an object's."""
    from hambench.data.synthetic_context import KEY_SIZE

    out = []
    for label, image in zip(labels, images):
        rgb = image.permute(1, 2, 0).numpy()
        coloured = np.ptp(rgb, axis=2) > 1.0  # normalised units: the key is far from any grey
        yy, xx = np.mgrid[: label.shape[0], : label.shape[1]]
        ky, kx = yy[coloured].mean(), xx[coloured].mean()
        dist = np.hypot(yy - ky, xx - kx)
        key_reach = max(3, int(label.shape[0] * KEY_SIZE)) * np.sqrt(2) + 3
        out.append(dist[(label > 1) & (dist > key_reach)])
    return np.concatenate(out)


def recall_distances(labels: list[np.ndarray]) -> np.ndarray:
    """synthetic-recall: distance of every object pixel to the nearest key pixel of its image (the
    validation annotation marks the keys 0, unscored, and the objects 2 and up)."""
    out = []
    for label in labels:
        keys, objects = np.argwhere(label == 0), np.argwhere(label >= 2)
        gaps = np.sqrt(((objects[:, None, :] - keys[None, :, :]) ** 2).sum(-1))
        out.append(gaps.min(axis=1))
    return np.concatenate(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint")
    p.add_argument("--context", default="none")
    p.add_argument("--backbone", default="tiny-d8")
    p.add_argument("--seed", type=int, default=0, help="the data set's seed whose validation images are used")
    p.add_argument("--data", default="synthetic-context", choices=["synthetic-context", "synthetic-recall"])
    p.add_argument("--data-option", action="append", default=[], help="KEY=VALUE, e.g. keys=1 (repeatable)")
    p.add_argument("--images", type=int, default=64)
    args = p.parse_args()

    torch.set_num_threads(1)
    options = {k: int(v) for k, v in (o.split("=", 1) for o in args.data_option)}
    num_classes = dataset_spec(args.data).num_classes
    model = build_segmentor(segmentor_cfg(args.backbone, args.context, num_classes=num_classes))
    state = torch.load(args.checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    model.load_state_dict(state)
    model.eval()
    x, labels = load_images(prepare_data(args.data, None, args.seed, options), args.images)
    grad = gradient_map(model, x)
    dist = object_distances(labels, x) if args.data == "synthetic-context" else recall_distances(labels)
    where = "the key's centre" if args.data == "synthetic-context" else "the nearest key pixel"
    data = " ".join([args.data, *(f"{k}={v}" for k, v in options.items())])
    print(f"{args.context} on {args.backbone}, {args.images} validation images of {data}, seed {args.seed}")
    print(
        f"effective receptive field: 95% of the gradient within {radius_holding(grad, 0.95):.1f} px, "
        f"99% within {radius_holding(grad, 0.99):.1f} px"
    )
    print(
        f"object pixels to {where}: min {dist.min():.1f} px, 10th percentile "
        f"{np.percentile(dist, 10):.1f} px, median {np.median(dist):.1f} px"
    )


if __name__ == "__main__":
    main()
