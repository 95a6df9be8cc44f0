"""What a hambench trial costs beyond its work: a plain PyTorch loop and ``train_seg`` side by
side in one process, on one thread, for the same model (``tiny-d8`` with one context module, built
by hambench, in the same memory format), the same images (``synthetic-context`` seed 0; the plain
loop reads them from disk into memory once, and that reading and its model building are timed with
it), the same steps (SGD, momentum 0.9, weight decay 1e-4, poly learning rate, batch 4, random
flips) and the same evaluations (``--evals`` of them, evenly spaced and one at the end as the
trial does: the test split's 200 images, 8 at a time, mIoU from a confusion matrix).

    python benchmarks/trial_overhead.py                          # ham-nmf and none, 300 steps each
    python benchmarks/trial_overhead.py --modules none ham-nmf --iters 1200 --evals 4
    python benchmarks/trial_overhead.py --modules none --iters 200 --profile 25   # where the trial's time goes

Prints per module: the plain loop's ms per training step and the seconds of its set-up and
evaluations; the trial's ms per training step (``train_seconds`` / iterations: mmengine's step and
its hooks) and the rest of its time (set-up, loading each batch through the data pipeline,
evaluations); both whole times; and the ratios trial / plain, per step and whole (the whole ratio
compares the same work; the last column divides by the plain training steps alone). ``--profile N`` runs the trial
under cProfile and prints its N most expensive functions (cumulative time).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from hambench.data import dataset_spec, prepare_data
from hambench.models.segmentor import MEAN, STD, build_segmentor, segmentor_cfg
from hambench.tasks.seg import SegConfig, train_seg


def split_images(root: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A split as a normalised (N, 3, H, W) batch and (N, H, W) labels (reduce-zero-label)."""
    stems = sorted(p.stem for p in (root / "images" / split).glob("*.jpg"))
    x = np.stack([np.asarray(Image.open(root / "images" / split / f"{s}.jpg"), np.float32) for s in stems])
    y = np.stack([np.asarray(Image.open(root / "annotations" / split / f"{s}.png")) for s in stems])
    labels = torch.from_numpy(y.astype(np.int64)) - 1
    labels[labels < 0] = 255
    images = (torch.from_numpy(x) - torch.tensor(MEAN)) / torch.tensor(STD)
    return images.permute(0, 3, 1, 2).contiguous(), labels


@torch.no_grad()
def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, num_classes: int) -> float:
    """mIoU (%) of the model on the images, 8 at a time, from one confusion matrix."""
    model.eval()
    confusion = torch.zeros(num_classes * num_classes, dtype=torch.int64)
    for start in range(0, len(x), 8):
        xb, yb = x[start : start + 8], y[start : start + 8]
        pred = model.encode_decode(xb, [dict(img_shape=tuple(x.shape[2:]))] * len(xb)).argmax(1)  # type: ignore[operator]
        keep = yb != 255
        confusion += torch.bincount(yb[keep] * num_classes + pred[keep], minlength=num_classes**2)
    model.train()
    matrix = confusion.view(num_classes, num_classes).double()
    iou = matrix.diag() / (matrix.sum(0) + matrix.sum(1) - matrix.diag())
    return float(iou.nanmean() * 100)


def plain_loop(
    module: str, root: Path, iters: int, batch: int, lr: float, evals: int, channels_last: bool
) -> dict[str, float]:
    """Seconds of a plain run from the files on disk, by part: ``setup`` (the training and test
    images read into memory, the model built), ``train`` (``iters`` training steps) and ``evals``
    (an evaluation every ``iters // evals`` steps and at the end).
    ``channels_last``: the model's weights in that memory format, as the trial's."""
    start = time.perf_counter()
    (x, y), test = split_images(root, "training"), split_images(root, "test")
    num_classes = dataset_spec("synthetic-context").num_classes
    torch.manual_seed(0)
    model = build_segmentor(segmentor_cfg("tiny-d8", module, num_classes=num_classes))
    model.train()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    metas = [dict(img_shape=tuple(x.shape[2:]))] * batch
    interval, eval_seconds = max(1, iters // evals), 0.0
    setup = time.perf_counter() - start
    for it in range(iters):
        for group in opt.param_groups:
            group["lr"] = (lr - 1e-4) * (1 - it / iters) ** 0.9 + 1e-4
        idx = torch.randint(len(x), (batch,))
        xb, yb = x[idx], y[idx]
        flip = torch.rand(batch) < 0.5
        xb[flip], yb[flip] = xb[flip].flip(-1), yb[flip].flip(-1)
        loss = F.cross_entropy(model.encode_decode(xb, metas), yb, ignore_index=255)  # type: ignore[operator]
        opt.zero_grad()
        loss.backward()
        opt.step()
        if evals and ((it + 1) % interval == 0 or it + 1 == iters):
            eval_start = time.perf_counter()
            evaluate(model, *test, num_classes)
            eval_seconds += time.perf_counter() - eval_start
    total = time.perf_counter() - start
    return dict(setup=setup, train=total - setup - eval_seconds, evals=eval_seconds, total=total)


def trial(module: str, iters: int, batch: int, lr: float, evals: int, channels_last: bool, work: Path) -> dict:
    """``train_seg`` as a suite's trial runs it (one thread, an evaluation every iters // evals)."""
    cfg = SegConfig(
        context=module,
        iters=iters,
        batch=batch,
        lr=lr,
        eval_interval=max(1, iters // evals),
        threads=1,
        channels_last=channels_last,
        work_dir=str(work / module),
        log_interval=10**9,  # no progress lines: printing is not what is measured
    )
    return train_seg(cfg)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modules", nargs="+", default=["ham-nmf", "none"])
    parser.add_argument("--iters", type=int, default=300)
    parser.add_argument("--evals", type=int, default=1, help="evaluations, in the trial and in the plain loop")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=SegConfig.channels_last,
        help="both models' memory format (default: the trial's default)",
    )
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="profile the trial: its N top functions")
    args = parser.parse_args()
    torch.set_num_threads(1)
    root = prepare_data("synthetic-context", None, seed=0)
    layout = "channels_last" if args.channels_last else "NCHW"
    print(
        f"tiny-d8 on synthetic-context, batch {args.batch}, {args.iters} steps, "
        f"{args.evals} evaluations, {layout}, 1 thread"
    )
    print(
        "module | plain ms/step | trial ms/step | step ratio | plain set-up + evaluations s | trial rest s "
        "| plain s | trial s | whole ratio | ratio to the plain steps alone"
    )
    with tempfile.TemporaryDirectory(prefix="hb-overhead-") as tmp:
        # both paths once, untimed: the first of each would otherwise pay the imports
        plain_loop("none", root, 2, args.batch, args.lr, 1, args.channels_last)
        trial("none", 2, args.batch, args.lr, 1, args.channels_last, Path(tmp) / "warm-up")
        for module in args.modules:
            plain = plain_loop(module, root, args.iters, args.batch, args.lr, args.evals, args.channels_last)
            profiler = cProfile.Profile() if args.profile else None
            if profiler is not None:
                profiler.enable()
            final = trial(module, args.iters, args.batch, args.lr, args.evals, args.channels_last, Path(tmp))
            if profiler is not None:
                profiler.disable()
            step_plain, step_trial = plain["train"] / args.iters * 1e3, final["train_seconds"] / args.iters * 1e3
            rest = final["seconds"] - final["train_seconds"]
            print(
                f"{module} | {step_plain:.1f} | {step_trial:.1f} | {step_trial / step_plain:.2f} | "
                f"{plain['setup'] + plain['evals']:.1f} | {rest:.1f} | {plain['total']:.1f} | {final['seconds']:.1f} | "
                f"{final['seconds'] / plain['total']:.2f} | {final['seconds'] / plain['train']:.2f}",
                flush=True,
            )
            if profiler is not None:
                pstats.Stats(profiler).sort_stats("cumulative").print_stats(args.profile)


if __name__ == "__main__":
    main()
