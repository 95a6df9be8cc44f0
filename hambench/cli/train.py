"""``hambench train seg|gan``: one training run, printing progress.

``hambench train seg --context ham-nmf --data synthetic-context --iters 300 --json`` prints one
line per ``--log-interval`` iterations, one per evaluation, and (with ``--json``) the final
metrics as one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import yaml

from hambench.cli.train_gan import add_subparser as add_gan_parser


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """``["train_steps=6", "rank=64", "spatial=true"]`` -> ``{"train_steps": 6, "rank": 64, "spatial": True}``
    (values are read as YAML scalars: ints, floats, booleans, null, strings)."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"--context-opt expects KEY=VALUE, got {pair!r}")
        options[key.strip()] = yaml.safe_load(value)
    return options


def parse_crop(text: str) -> tuple[int, int]:
    """``"512x512"`` or ``"512"`` -> ``(512, 512)`` (height x width)."""
    parts = text.lower().split("x")
    try:
        h, w = (int(parts[0]), int(parts[-1])) if len(parts) <= 2 else (0, 0)
    except ValueError:
        h = w = 0
    if h <= 0 or w <= 0:
        raise argparse.ArgumentTypeError(f"--crop expects HxW with positive integers, e.g. 96x96; got {text!r}")
    return h, w


def add_seg_parser(train_sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from hambench.data import DATA_NAMES

    p = train_sub.add_parser("seg", parents=[common], help="train a segmentation model with a context module",
                             formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--context", required=True, help="a registered context module (`hambench modules list`), "
                   "or mmseg:<HeadType> (e.g. mmseg:DAHead) for one of mmseg's own decode heads")
    p.add_argument("--context-opt", action="append", default=[], metavar="KEY=VALUE",
                   help="an option of the context module (repeatable), e.g. --context-opt train_steps=6")
    p.add_argument("--backbone", default="tiny-d8", help="r18-d8, r50-d8, r101-d8, van-tiny, van-small, "
                   "van-base, timm:<model>, or the CPU presets tiny-d8, r18-narrow-d8")
    p.add_argument("--data", default="synthetic-context", choices=DATA_NAMES)
    p.add_argument("--data-root", default=None, help="data root (synthetic-context: a cache folder by default)")
    p.add_argument("--iters", type=int, default=300)
    p.add_argument("--batch", type=int, default=8, help="images per iteration per worker")
    p.add_argument("--crop", type=parse_crop, default=None, metavar="HxW", help="training crop (default: per data set)")
    p.add_argument("--work-dir", default=None, help="checkpoints and logs (default: work_dirs/seg/<run name>)")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --work-dir")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-interval", type=int, default=100, help="evaluate and checkpoint every N iterations")
    p.add_argument("--lr", type=float, default=None,
                   help="initial learning rate (default: 0.1 on synthetic-context, trained from scratch; "
                   "the paper's 0.009-0.01 on the real sets)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None, help="mixed precision (default: on with CUDA)")
    p.add_argument("--workers", type=int, default=1, help="data-parallel Ray Train workers (1: no DDP)")
    p.add_argument("--pretrained", default=None, metavar="PATH", help="local backbone weights (never downloaded)")
    p.add_argument("--head", default="context", choices=("context", "single", "light"))
    p.add_argument("--aux-head", action="store_true", help="add the FCN auxiliary head (loss weight 0.4)")
    p.add_argument("--threads", type=int, default=None, help="torch threads of this run")
    p.add_argument("--log-interval", type=int, default=25)
    p.add_argument("--json", action="store_true", help="print the final metrics as one JSON line, last")
    p.set_defaults(func=run_seg_command)


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("train", help="one training run (segmentation or GAN)")
    train_sub = p.add_subparsers(dest="train_command", required=True)
    add_seg_parser(train_sub, common)
    add_gan_parser(train_sub, common)


def run_seg_command(args: argparse.Namespace) -> int:
    from hambench.data import DataLayoutError
    from hambench.tasks.seg import SegConfig, train_seg

    try:
        options = parse_options(args.context_opt)
    except argparse.ArgumentTypeError as exc:
        print(f"hambench: error: {exc}", file=sys.stderr)
        return 2
    name = f"{args.context.replace(':', '-')}_{args.backbone.replace(':', '-')}_{args.data}_s{args.seed}"
    cfg = SegConfig(
        context=args.context, context_opts=options, backbone=args.backbone, data=args.data,
        data_root=args.data_root, iters=args.iters, batch=args.batch, crop=args.crop,
        work_dir=args.work_dir or f"work_dirs/seg/{name}", resume=args.resume, seed=args.seed,
        eval_interval=args.eval_interval, lr=args.lr, device=args.device, amp=args.amp,
        workers=args.workers, pretrained=args.pretrained, head=args.head, aux_head=args.aux_head,
        threads=args.threads, log_interval=args.log_interval, plugins=list(args.plugin),
    )
    try:
        metrics = train_seg(cfg)
    except (DataLayoutError, FileNotFoundError, ValueError) as exc:
        print(f"hambench: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(metrics), flush=True)
    else:
        print(f"done: mIoU {metrics['mIoU']:.2f}  aAcc {metrics['aAcc']:.2f}  {metrics['iters']} iters  "
              f"{metrics['seconds']:.1f} s  {metrics['images_per_s']} img/s")
    return 0
