"""The training step in NCHW against channels_last, per module, side by side in one process: the
figures behind the seg task's default layout (``SegConfig.channels_last``).

    python benchmarks/train_layout.py                                # the quickstart's eight modules
    python benchmarks/train_layout.py --modules ham-nmf none --batch 8 --size 128

Each module's ``tiny-d8`` segmentor (built by hambench, seed 0) takes ``--steps`` SGD steps of a
random batch after ``--warmup`` untimed ones, once per layout, on one thread; prints ms per step in
each layout and the speed-up.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from hambench.models.segmentor import build_segmentor, segmentor_cfg

QUICKSTART = ["ham-nmf", "ham-cd", "ham-vq", "nonlocal", "danet", "ocr", "dnl", "none"]


def step_ms(module: str, layout: torch.memory_format, batch: int, size: int, steps: int, warmup: int) -> float:
    """Mean ms per training step (forward, cross-entropy, backward, SGD) of one layout."""
    torch.manual_seed(0)
    model = build_segmentor(segmentor_cfg("tiny-d8", module, num_classes=3)).train()
    model.to(memory_format=layout)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = torch.randn(batch, 3, size, size), torch.randint(0, 3, (batch, size, size))
    metas = [dict(img_shape=(size, size))] * batch
    for i in range(warmup + steps):
        if i == warmup:
            start = time.perf_counter()
        loss = F.cross_entropy(model.encode_decode(x, metas), y)  # type: ignore[operator]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (time.perf_counter() - start) / steps * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modules", nargs="+", default=QUICKSTART)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"tiny-d8, batch {args.batch} at {args.size}x{args.size}, {args.steps} steps after {args.warmup}, 1 thread")
    print("module | NCHW ms/step | channels_last ms/step | speed-up")
    for module in args.modules:
        nchw = step_ms(module, torch.contiguous_format, args.batch, args.size, args.steps, args.warmup)
        last = step_ms(module, torch.channels_last, args.batch, args.size, args.steps, args.warmup)
        print(f"{module} | {nchw:.1f} | {last:.1f} | {nchw / last:.2f}", flush=True)


if __name__ == "__main__":
    main()
