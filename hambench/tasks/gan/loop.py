"""One GAN run, read top to bottom in ``train_gan``: per iteration a discriminator step and a
generator step with the hinge loss, Adam with TTUR (G 1e-4, D 4e-4, betas (0, 0.9)), an optional EMA
of the generator; every ``eval_interval`` iterations an evaluation (``hambench.tasks.gan.evaluate``),
a checkpoint, and ``callback(metrics, checkpoint_path, artifacts)`` (artifacts: the sample grid
``samples.png``). ``cfg.resume`` continues from ``work_dir/checkpoint.pt``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader

from hambench.io import atomic_write, atomic_write_json
from hambench.profiling import count_params
from hambench.registry import load_plugins
from hambench.tasks import Callback
from hambench.tasks.gan.config import GanConfig
from hambench.tasks.gan.data import SeededBatches, build_dataset, size, to_float
from hambench.tasks.gan.evaluate import (
    SAMPLES_FILE,
    Evaluator,
    check_inception_weights,
    refresh_spectral_norms,
    save_samples,
)
from hambench.tasks.gan.models import Discriminator, Generator, check_resolutions, default_context_res

CHECKPOINT = "checkpoint.pt"
# Fields that must match to resume from a checkpoint (the rest, e.g. iters, may change).
RESUME_KEYS = ("context", "options", "context_res", "data", "res", "ch", "z_dim", "ema", "batch", "seed")


def hinge_loss_d(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def hinge_loss_g(fake_logits: torch.Tensor) -> torch.Tensor:
    return -fake_logits.mean()


def train_gan(cfg: GanConfig, callback: Callback | None = None) -> dict[str, Any]:
    """Train a SAGAN-style GAN and return the final metrics: ``fid`` or ``fid_surrogate``,
    ``symmetry_error`` (synthetic-shapes), ``inception_score`` (real weights), ``iters``, ``seconds``,
    ``images_per_s``, ``params_g``, ``params_d``, the last losses."""
    load_plugins(cfg.plugins)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    check_resolutions(cfg.res, cfg.context_res)
    minimum = {"iters": 1, "batch": 1, "eval_interval": 1, "eval_samples": 2}  # FID needs two samples a side
    for name, low in minimum.items():
        if getattr(cfg, name) < low:
            raise ValueError(f"{name} must be at least {low}, got {getattr(cfg, name)}")
    cfg = replace(cfg, context_res=cfg.context_res or default_context_res(cfg.res))
    if cfg.fid_weights:
        check_inception_weights(cfg.fid_weights)  # before any training time is spent
    device = cfg.resolved_device()
    work_dir = Path(cfg.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = work_dir / CHECKPOINT
    torch.manual_seed(cfg.seed)

    # 1. Data, models, optimisers (TTUR), the optional EMA of G.
    data, num_classes = build_dataset(cfg)
    model_kw: dict[str, Any] = dict(ch=cfg.ch, context=cfg.context, context_res=cfg.context_res, options=cfg.options)
    layout = torch.channels_last if cfg.channels_last else torch.contiguous_format
    # torch's type stubs lack Module.to(device, memory_format=), which it takes
    G = Generator(cfg.res, num_classes, z_dim=cfg.z_dim, **model_kw).to(device, memory_format=layout)  # type: ignore[call-overload]
    D = Discriminator(cfg.res, num_classes, **model_kw).to(device, memory_format=layout)  # type: ignore[call-overload]
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=cfg.betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=cfg.betas)
    G_ema = AveragedModel(G, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True) if cfg.ema else None

    # Built before resuming: building it draws from the global RNG, which resuming then restores.
    evaluator = Evaluator(data, cfg, num_classes)

    # 2. Resume: weights, optimiser moments, RNG state and history from the last checkpoint.
    start, seconds, history = 0, 0.0, []
    if cfg.resume and ckpt_path.is_file():
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=True)
        _check_resumable(ckpt["config"], cfg, ckpt_path)
        G.load_state_dict(ckpt["G"])
        D.load_state_dict(ckpt["D"])
        opt_g.load_state_dict(ckpt["opt_g"])
        opt_d.load_state_dict(ckpt["opt_d"])
        if G_ema is not None:
            G_ema.load_state_dict(ckpt["G_ema"])
        torch.set_rng_state(ckpt["rng"])
        if device.type == "cuda":
            torch.cuda.set_rng_state(ckpt["cuda_rng"], device)
        start, seconds, history = ckpt["iter"], ckpt["seconds"], ckpt["history"]
        print(f"resumed from {ckpt_path} at iteration {start}", flush=True)
    elif cfg.resume:
        print(f"no checkpoint at {ckpt_path}: starting from iteration 0", flush=True)

    loader = DataLoader(
        data,
        batch_sampler=SeededBatches(size(data), cfg.batch, cfg.seed, start, cfg.iters),
        num_workers=cfg.loader_workers,
        generator=torch.Generator(),  # own generator: the global RNG stays untouched
    )

    def checkpoint(it: int) -> None:
        state = {
            "iter": it,
            "seconds": seconds,
            "history": history,
            "config": asdict(cfg),
            "G": G.state_dict(),
            "D": D.state_dict(),
            "opt_g": opt_g.state_dict(),
            "opt_d": opt_d.state_dict(),
            "G_ema": G_ema.state_dict() if G_ema is not None else None,
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        }
        atomic_write(ckpt_path, lambda tmp: torch.save(state, tmp))

    # 3. The loop: D step, G step, EMA; evaluate + checkpoint + report every eval_interval.
    t0, images_seen, resumed_seconds = time.perf_counter(), 0, seconds
    for it, (real, y_real) in enumerate(loader, start=start + 1):
        real, y_real = to_float(real.to(device)).contiguous(memory_format=layout), y_real.to(device)
        B = real.shape[0]

        # Discriminator: hinge loss, real vs. fakes of random classes. Two calls, as SAGAN: a context
        # module with batch norm then normalises fakes alone here as in the generator's step below
        # (one call on both batches made D overpower G for ham-nmf and nonlocal in a trial run).
        z, y_fake = torch.randn(B, cfg.z_dim, device=device), torch.randint(num_classes, (B,), device=device)
        with torch.no_grad():
            fake = G(z, y_fake)
        loss_d = hinge_loss_d(D(real, y_real), D(fake, y_fake))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()

        # Generator: fool D (D's weights frozen for this step; its gradient is not needed).
        z, y_fake = torch.randn(B, cfg.z_dim, device=device), torch.randint(num_classes, (B,), device=device)
        D.requires_grad_(False)
        loss_g = hinge_loss_g(D(G(z, y_fake), y_fake))
        D.requires_grad_(True)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()

        if G_ema is not None:
            G_ema.update_parameters(G)
        images_seen += B
        if cfg.log_interval and it % cfg.log_interval == 0:
            rate = images_seen / (seconds - resumed_seconds + time.perf_counter() - t0)
            losses = f"loss_d {loss_d.item():.3f}  loss_g {loss_g.item():.3f}"
            print(f"iter {it}/{cfg.iters}  {losses}  {rate:.1f} img/s", flush=True)

        if it % cfg.eval_interval == 0 or it == cfg.iters:
            seconds += time.perf_counter() - t0  # training time only: evaluation is not counted
            if G_ema is not None:
                refresh_spectral_norms(G_ema.module)
            metrics, samples = evaluator(G_ema.module if G_ema is not None else G)
            metrics.update(iter=it, loss_d=loss_d.item(), loss_g=loss_g.item(), seconds=seconds)
            history.append(metrics)
            scores = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k not in ("iter", "seconds"))
            print(f"eval iter {it}/{cfg.iters}  {scores}", flush=True)
            checkpoint(it)
            atomic_write_json(work_dir / "history.json", history)
            save_samples(samples, work_dir / SAMPLES_FILE, nrow=evaluator.grid_columns)
            if callback is not None:
                callback(dict(metrics), str(ckpt_path), [str(work_dir / SAMPLES_FILE)])
            t0 = time.perf_counter()

    session_seconds = seconds - resumed_seconds
    final = dict(history[-1])
    final.update(
        iters=history[-1]["iter"],
        seconds=seconds,
        images_per_s=images_seen / session_seconds if images_seen and session_seconds > 0 else float("nan"),
        params_g=count_params(G),
        params_d=count_params(D),
    )
    atomic_write_json(work_dir / "metrics.json", final)
    return final


def _check_resumable(saved: dict, cfg: GanConfig, path: Path) -> None:
    now = asdict(cfg)
    diff = {k: (saved.get(k), now[k]) for k in RESUME_KEYS if saved.get(k) != now[k]}
    if diff:
        changes = "; ".join(f"{k}: {a!r} in the checkpoint, {b!r} now" for k, (a, b) in diff.items())
        raise ValueError(f"cannot resume from {path}: the run's settings changed ({changes})")
