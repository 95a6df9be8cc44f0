"""``hambench train gan``: one SAGAN-style GAN run, printing progress.

``hambench train gan --context ham-nmf --data synthetic-shapes --iters 200 --json`` prints the
losses every ``--log-interval`` iterations, ``fid_surrogate`` and ``symmetry_error`` at every
evaluation, and (with ``--json``) the final metrics as one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import json
import sys


def add_subparser(train_sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from hambench.tasks.gan import DATA_NAMES
    from hambench.tasks.gan_models import RESOLUTIONS

    p = train_sub.add_parser("gan", parents=[common], help="train a class-conditional GAN with a context module",
                             formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--context", required=True,
                   help="a registered context module (`hambench modules list`); none = no context")
    p.add_argument("--context-opt", action="append", default=[], metavar="KEY=VALUE",
                   help="an option of the context module (repeatable), e.g. --context-opt train_steps=6")
    p.add_argument("--context-res", type=int, default=None,
                   help="feature resolution of the context module in G and D (None: 32 for 128 images, res/2 below)")
    p.add_argument("--data", default="synthetic-shapes", choices=DATA_NAMES)
    p.add_argument("--data-root", default=None, help="image-folder: a folder with one sub-folder of images per class")
    p.add_argument("--res", type=int, default=32, choices=RESOLUTIONS, help="image resolution")
    p.add_argument("--iters", type=int, default=200)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--ch", type=int, default=16, help="base width of G and D (BigGAN: 64)")
    p.add_argument("--ema", action="store_true", help="evaluate an exponential moving average of G's weights")
    p.add_argument("--ema-decay", type=float, default=0.999, help="EMA decay per iteration (short runs: ~0.95)")
    p.add_argument("--eval-interval", type=int, default=50, help="evaluate and checkpoint every N iterations")
    p.add_argument("--eval-samples", type=int, default=500, help="generated (and real) images per FID")
    p.add_argument("--fid-weights", default=None, metavar="FILE",
                   help="torch-fidelity's Inception-v3 weights (weights-inception-2015-12-05-6726825d.pth) for real "
                   "FID and IS; never downloaded. Without them: fid_surrogate on a fixed random network")
    p.add_argument("--work-dir", "--out-dir", dest="work_dir", default=None,
                   help="checkpoint, history and samples (None: work_dirs/gan/<run name>)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --work-dir")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--threads", type=int, default=None, help="torch threads of this run")
    p.add_argument("--log-interval", type=int, default=25)
    p.add_argument("--json", action="store_true", help="print the final metrics as one JSON line, last")
    p.set_defaults(func=run_gan_command)


def run_gan_command(args: argparse.Namespace) -> int:
    from hambench.cli.train import parse_options
    from hambench.data.datasets import DataLayoutError
    from hambench.tasks.gan import GanConfig, train_gan

    try:
        options = parse_options(args.context_opt)
    except argparse.ArgumentTypeError as exc:
        print(f"hambench: error: {exc}", file=sys.stderr)
        return 2
    name = f"{args.context}_{args.data}_r{args.res}_s{args.seed}"
    cfg = GanConfig(
        context=args.context, context_opts=options, context_res=args.context_res, data=args.data,
        data_root=args.data_root, res=args.res, iters=args.iters, batch=args.batch, ch=args.ch,
        ema=args.ema, ema_decay=args.ema_decay,
        eval_interval=args.eval_interval, eval_samples=args.eval_samples, fid_weights=args.fid_weights,
        work_dir=args.work_dir or f"work_dirs/gan/{name}", resume=args.resume, seed=args.seed,
        device=args.device, threads=args.threads, log_interval=args.log_interval, plugins=list(args.plugin),
    )
    try:
        metrics = train_gan(cfg)
    except (DataLayoutError, FileNotFoundError, ImportError, ValueError) as exc:
        print(f"hambench: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(metrics), flush=True)
    else:
        keys = ("fid", "fid_surrogate", "inception_score", "symmetry_error")
        scores = "  ".join(f"{k} {metrics[k]:.4f}" for k in keys if k in metrics)
        print(f"done: {scores}  {metrics['iters']} iters  {metrics['seconds']:.1f} s  "
              f"{metrics['images_per_s']:.1f} img/s")
    return 0
