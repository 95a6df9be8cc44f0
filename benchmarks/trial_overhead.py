"""What a hambench trial costs beyond its training: a plain PyTorch loop and ``train_seg`` side by
side in one process, on one thread, for the same model (``tiny-d8`` with one context module, built
by hambench), the same images (``synthetic-context`` seed 0, decoded once into memory for the plain
loop) and the same steps (SGD, momentum 0.9, weight decay 1e-4, poly learning rate, batch 4,
random flips).

    python benchmarks/trial_overhead.py                          # ham-nmf and none, 300 steps each
    python benchmarks/trial_overhead.py --modules ham-nmf --iters 1200 --evals 4
    python benchmarks/trial_overhead.py --modules none --iters 200 --profile 25   # where the trial's time goes

Prints per module: the plain loop's ms per step; the trial's ms per training step (``train_seconds``
/ iterations: mmengine's step and its hooks), the rest of its time (loading each batch through the
data pipeline, evaluations, set-up), and its whole time; and the ratios trial / plain, per step
and whole. ``--profile N`` runs the trial under cProfile and prints its N most expensive
functions (cumulative time).
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


def training_images(root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The training split as a normalised (N, 3, H, W) batch and (N, H, W) labels (reduce-zero-label)."""
    stems = sorted(p.stem for p in (root / "images" / "training").glob("*.jpg"))
    x = np.stack([np.asarray(Image.open(root / "images" / "training" / f"{s}.jpg"), np.float32) for s in stems])
    y = np.stack([np.asarray(Image.open(root / "annotations" / "training" / f"{s}.png")) for s in stems])
    labels = torch.from_numpy(y.astype(np.int64)) - 1
    labels[labels < 0] = 255
    images = (torch.from_numpy(x) - torch.tensor(MEAN)) / torch.tensor(STD)
    return images.permute(0, 3, 1, 2).contiguous(), labels


def plain_loop(module: str, x: torch.Tensor, y: torch.Tensor, iters: int, batch: int, lr: float) -> float:
    """Seconds of ``iters`` plain training steps of the same model on the in-memory images."""
    torch.manual_seed(0)
    model = build_segmentor(segmentor_cfg("tiny-d8", module, num_classes=dataset_spec("synthetic-context").num_classes))
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    metas = [dict(img_shape=tuple(x.shape[2:]))] * batch
    start = time.perf_counter()
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
    return time.perf_counter() - start


def trial(module: str, iters: int, batch: int, lr: float, evals: int, work: Path) -> dict:
    """``train_seg`` as a suite's trial runs it (one thread, an evaluation every iters // evals)."""
    cfg = SegConfig(
        context=module,
        iters=iters,
        batch=batch,
        lr=lr,
        eval_interval=max(1, iters // evals),
        threads=1,
        work_dir=str(work / module),
        log_interval=10**9,  # no progress lines: printing is not what is measured
    )
    return train_seg(cfg)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modules", nargs="+", default=["ham-nmf", "none"])
    parser.add_argument("--iters", type=int, default=300)
    parser.add_argument("--evals", type=int, default=1, help="evaluations in the trial (the plain loop has none)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="profile the trial: its N top functions")
    args = parser.parse_args()
    torch.set_num_threads(1)
    x, y = training_images(prepare_data("synthetic-context", None, seed=0))
    print(f"tiny-d8 on synthetic-context, batch {args.batch}, {args.iters} steps, 1 thread")
    print("module | plain ms/step | trial ms/step | step ratio | trial rest s | trial s | plain s | whole ratio")
    with tempfile.TemporaryDirectory(prefix="hb-overhead-") as tmp:
        for module in args.modules:
            plain = plain_loop(module, x, y, args.iters, args.batch, args.lr)
            profiler = cProfile.Profile() if args.profile else None
            if profiler is not None:
                profiler.enable()
            final = trial(module, args.iters, args.batch, args.lr, args.evals, Path(tmp))
            if profiler is not None:
                profiler.disable()
            step_plain, step_trial = plain / args.iters * 1e3, final["train_seconds"] / args.iters * 1e3
            rest = final["seconds"] - final["train_seconds"]
            print(
                f"{module} | {step_plain:.1f} | {step_trial:.1f} | {step_trial / step_plain:.2f} | {rest:.1f} | "
                f"{final['seconds']:.1f} | {plain:.1f} | {final['seconds'] / plain:.2f}",
                flush=True,
            )
            if profiler is not None:
                pstats.Stats(profiler).sort_stats("cumulative").print_stats(args.profile)


if __name__ == "__main__":
    main()
