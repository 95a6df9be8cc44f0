"""``hambench train gan``: one SAGAN-style GAN run, printing progress.

``hambench train gan --context ham-nmf --data synthetic-shapes --iters 200 --json`` prints the
losses every ``--log-interval`` iterations, ``fid_surrogate`` and ``symmetry_error`` at every
evaluation, and (with ``--json``) the final metrics as one JSON object on the last line. The flags
are ``GanConfig``'s fields (``hambench.cli.config_args``): an option added there is a flag here.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace

from hambench.cli.config_args import add_config_arguments, add_lazy_parser, given_fields


def _gan_arguments(p: argparse.ArgumentParser) -> None:
    from hambench.device import DEVICES
    from hambench.tasks.gan import DATA_NAMES, INCEPTION_FILE, GanConfig
    from hambench.tasks.gan_models import RESOLUTIONS

    add_config_arguments(
        p, GanConfig, skip=("plugins",), required=("context",),
        aliases={"context_opts": ["--context-opt"], "work_dir": ["--out-dir"]},
        choices={"data": DATA_NAMES, "res": RESOLUTIONS, "device": DEVICES},
        help={
            "context": "a registered context module (`hambench modules list`); none = no context",
            "context_opts": "an option of the context module, e.g. --context-opt rank=16",
            "data_root": "image-folder: a folder with one sub-folder of images per class",
            "fid_weights": f"torch-fidelity's Inception-v3 weights ({INCEPTION_FILE}) for the real FID and IS; "
                           "never downloaded. Without them: fid_surrogate on a fixed random network",
            "work_dir": "checkpoint, history and samples (default: work_dirs/gan/<run name>)",
        },
    )
    p.add_argument("--json", action="store_true", help="print the final metrics as one JSON line, last")


def add_subparser(train_sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = add_lazy_parser(train_sub, "gan", _gan_arguments, parents=[common],
                        help="train a class-conditional GAN with a context module")
    p.set_defaults(func=run_gan_command)


def run_gan_command(args: argparse.Namespace) -> int:
    from hambench.data.datasets import DataLayoutError
    from hambench.tasks.gan import GanConfig, train_gan

    try:
        cfg = GanConfig(**given_fields(GanConfig, args), plugins=list(args.plugin))
        if "work_dir" not in given_fields(GanConfig, args):
            cfg = replace(cfg, work_dir=f"work_dirs/gan/{cfg.context}_{cfg.data}_r{cfg.res}_s{cfg.seed}")
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
