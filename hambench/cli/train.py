"""``hambench train seg|gan``: one training run, printing progress.

``hambench train seg --context ham-nmf --data synthetic-context --iters 300 --json`` prints one
line per ``--log-interval`` iterations, one per evaluation, and (with ``--json``) the final
metrics as one JSON object on the last line. The flags are ``SegConfig``'s fields
(``hambench.cli.config_args``): an option added there is a flag here.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace

from hambench.cli.config_args import add_config_arguments, add_lazy_parser, given_fields, parse_options  # noqa: F401
from hambench.cli.train_gan import add_subparser as add_gan_parser


def parse_crop(text: str) -> tuple[int, int]:
    """``"512x512"`` or ``"512"`` -> ``(512, 512)`` (height x width): hambench.profiling.parse_size."""
    from hambench.profiling import parse_size

    return parse_size(text)


def _seg_arguments(p: argparse.ArgumentParser) -> None:
    from hambench.data import DATA_NAMES
    from hambench.device import DEVICES
    from hambench.models.segmentor import HEADS, backbone_names
    from hambench.tasks.seg import DEFAULT_CROP, DEFAULT_LR, SegConfig

    per_data = lambda table: ", ".join(f"{k} {v if not isinstance(v, tuple) else 'x'.join(map(str, v))}"  # noqa: E731
                                       for k, v in table.items())
    add_config_arguments(
        p, SegConfig, skip=("plugins",), required=("context",),
        aliases={"context_opts": ["--context-opt"]},
        choices={"data": DATA_NAMES, "device": DEVICES, "head": HEADS},
        help={
            "context": "a registered context module (`hambench modules list`), or mmseg:<HeadType> "
                       "(e.g. mmseg:DAHead) for one of mmseg's own decode heads",
            "context_opts": "an option of the context module, e.g. --context-opt reduction=4",
            "backbone": f"one of {', '.join(backbone_names())} (default: tiny-d8)",
            "crop": f"training crop (default per data set: {per_data(DEFAULT_CROP)})",
            "lr": f"initial learning rate (default per data set: {per_data(DEFAULT_LR)})",
            "work_dir": "checkpoints and logs (default: work_dirs/seg/<run name>)",
            "aux_head": "add the FCN auxiliary head (loss weight 0.4)",
        },
    )
    p.add_argument("--json", action="store_true", help="print the final metrics as one JSON line, last")


def add_seg_parser(train_sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = add_lazy_parser(train_sub, "seg", _seg_arguments, parents=[common],
                        help="train a segmentation model with a context module")
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
        cfg = SegConfig(**given_fields(SegConfig, args), plugins=list(args.plugin))
        if "work_dir" not in given_fields(SegConfig, args):
            name = f"{cfg.context.replace(':', '-')}_{cfg.backbone.replace(':', '-')}_{cfg.data}_s{cfg.seed}"
            cfg = replace(cfg, work_dir=f"work_dirs/seg/{name}")
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
