"""How synthetic-recall's levels and budget were chosen: design runs that never touch a reported
data set or seed. Each run draws its own images from a design stream (generator seed 1000 + seed),
trains tiny-d8 with one context module in a plain PyTorch loop (the trial's recipe: SGD, momentum
0.9, weight decay 1e-4, poly learning rate, batch 4, random flips), and scores validation images of
the same stream at ``--evals`` points: mIoU and the object pixels' accuracy (chance: 1/k among the
colours present).

    python benchmarks/recall_design.py nonlocal-sdpa --keys 1 2 3 4 --seed 100
    python benchmarks/recall_design.py ham-nmf se none --keys 2 --seed 101 --iters 2000

Prints one JSON line per run: module, keys, seed, seconds and the curve [(iteration, mIoU, object
accuracy), ...]. A plain loop rather than ``hambench train seg``: the same model and data at about
two thirds of a trial's time per step, which is what design sweeps need; the suite's trials report.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F

from hambench.data.synthetic_recall import CLASSES, make_sample
from hambench.models.segmentor import MEAN, STD, build_segmentor, segmentor_cfg

DESIGN_STREAM = 1000  # images come from generator seed DESIGN_STREAM + seed: never a reported set


def images(rng: np.random.Generator, n: int, size: int, keys: int, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """n samples as a normalised (n, 3, H, W) batch and (n, H, W) class labels (255: not scored)."""
    xs, ys = zip(*(make_sample(rng, size, keys, score_keys=train) for _ in range(n)))
    x = (torch.from_numpy(np.stack(xs)).float() - torch.tensor(MEAN)) / torch.tensor(STD)
    y = torch.from_numpy(np.stack(ys)).long() - 1  # reduce_zero_label, as the trial reads them
    y[y < 0] = 255
    return x.permute(0, 3, 1, 2).contiguous(), y


def logits(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model.encode_decode(x, [dict(img_shape=tuple(x.shape[2:]))] * len(x))  # type: ignore[operator]


@torch.no_grad()
def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(mIoU over the classes present, object pixels' accuracy), both in %."""
    k = len(CLASSES)
    model.eval()
    conf = torch.zeros(k, k)
    for i in range(0, len(x), 20):
        pred, target = logits(model, x[i : i + 20]).argmax(1), y[i : i + 20]
        scored = target != 255
        conf += torch.bincount(target[scored] * k + pred[scored], minlength=k * k).reshape(k, k).float()
    model.train()
    iou = conf.diag() / (conf.sum(0) + conf.sum(1) - conf.diag())
    objects = conf[1:, 1:].diag().sum() / conf[1:].sum()
    return float(iou[~iou.isnan()].mean() * 100), float(objects * 100)


def run(module: str, keys: int, args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(DESIGN_STREAM + args.seed)
    x_train, y_train = images(rng, args.n_train, args.size, keys, train=True)
    x_val, y_val = images(rng, args.n_val, args.size, keys, train=False)
    model = build_segmentor(segmentor_cfg("tiny-d8", module, num_classes=len(CLASSES)))
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-4)
    start, curve = time.perf_counter(), []
    for it in range(1, args.iters + 1):
        for group in opt.param_groups:
            group["lr"] = args.lr * (1 - (it - 1) / args.iters) ** 0.9
        idx = torch.randint(len(x_train), (args.batch,))
        x, y = x_train[idx], y_train[idx]
        flip = torch.rand(args.batch) < 0.5
        x[flip], y[flip] = x[flip].flip(-1), y[flip].flip(-1)
        loss = F.cross_entropy(logits(model, x), y, ignore_index=255)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if it % (args.iters // args.evals) == 0:
            miou, objects = evaluate(model, x_val, y_val)
            curve.append((it, round(miou, 1), round(objects, 1)))
    return dict(module=module, keys=keys, seed=args.seed, seconds=round(time.perf_counter() - start), curve=curve)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modules", nargs="+")
    parser.add_argument("--keys", type=int, nargs="+", default=[2])
    parser.add_argument("--seed", type=int, default=100, help="a design seed (100 and up; never 0..9)")
    parser.add_argument("--iters", type=int, default=2000)
    parser.add_argument("--evals", type=int, default=5)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--n-train", type=int, default=1000)
    parser.add_argument("--n-val", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for module in args.modules:
        for keys in args.keys:
            print(json.dumps(run(module, keys, args)), flush=True)


if __name__ == "__main__":
    main()
