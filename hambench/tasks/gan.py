"""Class-conditional image generation (SAGAN-style) with a context module in G and D.

``train_gan(cfg, callback)`` is one loop you can read top to bottom: per iteration a discriminator
step and a generator step with the hinge loss, Adam with TTUR (G 1e-4, D 4e-4, betas (0, 0.9)),
an optional EMA of the generator; every ``eval_interval`` iterations an evaluation (FID or its
surrogate, and ``symmetry_error`` on ``synthetic-shapes``), a checkpoint, and ``callback(metrics,
checkpoint_path, artifacts)`` (artifacts: the sample grid ``samples.png``). ``cfg.resume``
continues from ``work_dir/checkpoint.pt``.

FID is torchmetrics' ``FrechetInceptionDistance``. With ``fid_weights`` (torch-fidelity's Inception-v3
state dict, loaded from that file only, never downloaded) it is the real FID, reported as ``fid``,
with the Inception score. Without them the same Fréchet distance is computed on a fixed, seeded,
untrained conv net and reported as ``fid_surrogate``: comparable between runs of this code, not with
published FIDs.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, Dataset, Sampler, Subset
from torchvision.utils import make_grid, save_image

from hambench.data.synthetic_shapes import SyntheticShapes, symmetry_error
from hambench.io import atomic_write, atomic_write_json
from hambench.device import resolve_device
from hambench.registry import load_plugins
from hambench.tasks.gan_models import Discriminator, Generator, check_resolutions, default_context_res

DATA_NAMES = ("synthetic-shapes", "image-folder")
CHECKPOINT = "checkpoint.pt"
EVAL_SEED = 1234  # fixed noise and labels for every evaluation: curves compare like with like
REAL_SUBSET_SEED = 0  # which real images give the FID reference statistics: the same for every run
SURROGATE_SEED = 0  # the surrogate feature network's weights: the same for every run
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"  # torch-fidelity's Inception-v3 (FID's reference net)
# Fields that must match to resume from a checkpoint (the rest, e.g. iters, may change).
RESUME_KEYS = ("context", "context_opts", "context_res", "data", "res", "ch", "z_dim", "ema", "batch", "seed")


@dataclass
class GanConfig:
    context: str = "none"  # any registered context module
    context_opts: dict = field(default_factory=dict)
    context_res: int | None = None  # feature resolution of the context module; None: 32 for 128 images, res/2 below
    data: str = "synthetic-shapes"  # synthetic-shapes, or image-folder (with data_root)
    data_root: str | None = None
    res: int = 32  # 32 | 64 | 128
    iters: int = 200
    batch: int = 16
    ch: int = 16  # base width (BigGAN uses 64)
    z_dim: int = 128
    lr_g: float = 1e-4  # generator learning rate (TTUR: lr_d is 4x larger)
    lr_d: float = 4e-4  # discriminator learning rate
    betas: tuple[float, float] = (0.0, 0.9)
    channels_last: bool = True  # NHWC activations and conv weights: about 15% faster per iteration on a CPU
    ema: bool = False  # evaluate an exponential moving average of G's weights
    ema_decay: float = 0.999  # 0.999^200 = 0.82: for a few hundred iterations take ~0.95
    eval_interval: int = 50
    eval_samples: int = 500  # generated (and real) images per FID
    fid_weights: str | None = None  # Inception-v3 weights file -> `fid`; None -> `fid_surrogate`
    work_dir: str = "work_dirs/gan"
    resume: bool = False
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    threads: int | None = None  # torch intra-op threads of this run (None: torch's default)
    loader_workers: int = 0  # DataLoader worker processes
    log_interval: int = 25  # print the losses every N iterations (0: never)
    plugins: list[str] = field(default_factory=list)  # plugin files (re-loaded in Ray workers)

    def resolved_device(self) -> torch.device:
        return resolve_device(self.device)


# ----------------------------------------------------------------------------- data


def build_dataset(cfg: GanConfig) -> tuple[Dataset, int]:
    """The training images (uint8 (3, res, res), class) and the number of classes."""
    if cfg.data == "synthetic-shapes":
        return SyntheticShapes(res=cfg.res), len(SyntheticShapes.classes)
    if cfg.data == "image-folder":
        from hambench.data.image_folder import image_folder

        if cfg.data_root is None:
            raise ValueError("data 'image-folder' needs a data root (data_root: a folder of images, one folder per class)")
        ds = image_folder(cfg.data_root, cfg.res)
        return ds, len(ds.classes)
    raise ValueError(f"unknown GAN data set {cfg.data!r}; choose one of {', '.join(DATA_NAMES)}")


class SeededBatches(Sampler[list[int]]):
    """Batches for iterations ``start+1 .. stop``: epoch e is a permutation drawn from (seed, e), so
    iteration i's batch depends only on i and a resumed run reads exactly what it would have read."""

    def __init__(self, n: int, batch: int, seed: int, start: int, stop: int) -> None:
        if n < batch:
            raise ValueError(f"the data set has {n} images, fewer than one batch of {batch}")
        self.n, self.batch, self.seed, self.start, self.stop = n, batch, seed, start, stop

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __iter__(self) -> Iterator[list[int]]:
        per_epoch, epoch, perm = self.n // self.batch, None, None
        for it in range(self.start, self.stop):
            if it // per_epoch != epoch:
                epoch = it // per_epoch
                perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 1_000_003 + epoch))
            step = it % per_epoch
            yield perm[step * self.batch : (step + 1) * self.batch].tolist()


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats -> uint8 [0, 255]."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> [-1, 1] floats."""
    return images.float() / 127.5 - 1


# ----------------------------------------------------------------------------- evaluation


class SurrogateFeatures(nn.Module):
    """A fixed, seeded, untrained conv net standing in for Inception when its weights are not given.

    uint8 images (B, 3, H, W) -> (B, 480): resize to 64x64, four stride-2 4x4 convs with leaky ReLU
    (He-initialised from a fixed seed); the features are every layer's global average, concatenated
    (the early layers keep edges and sharpness, which the last layer's average alone blurs out)."""

    num_features = 32 + 64 + 128 + 256  # read by torchmetrics

    def __init__(self, seed: int = SURROGATE_SEED) -> None:
        super().__init__()
        widths = [3, 32, 64, 128, 256]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 4, stride=2, padding=1) for a, b in zip(widths[:-1], widths[1:]))
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for conv in self.convs:
                fan_in = conv.weight[0].numel()
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * math.sqrt(2 / fan_in))
                conv.bias.zero_()
        self.requires_grad_(False)
        self.eval()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(to_float(images), size=(64, 64), mode="bilinear", antialias=True, align_corners=False)
        features = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.2)
            features.append(x.mean(dim=(2, 3)))
        return torch.cat(features, dim=1)  # (B, 480)


def check_inception_weights(path: str | Path) -> Path:
    """Fail clearly, before training, unless ``path`` holds torch-fidelity's Inception-v3 state dict."""
    path = Path(path)
    expected = (
        f"expected torch-fidelity's Inception-v3 FID weights ({INCEPTION_FILE}): a PyTorch state dict "
        "of torch_fidelity.feature_extractor_inceptionv3.FeatureExtractorInceptionV3 (fc.weight of shape (1008, 2048))"
    )
    if not path.is_file():
        raise FileNotFoundError(f"FID weights {path}: no such file; {expected}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"FID weights {path}: cannot be read as a PyTorch state dict ({exc}); {expected}") from exc
    fc = state.get("fc.weight") if isinstance(state, dict) else None
    if fc is None or tuple(fc.shape) != (1008, 2048) or "Conv2d_1a_3x3.conv.weight" not in state:
        raise ValueError(f"FID weights {path}: not the Inception-v3 state dict; {expected}")
    try:
        import torch_fidelity  # noqa: F401  (torchmetrics builds its Inception from it)
    except ImportError as exc:
        raise ImportError("FID weights need the torch-fidelity package: pip install torch-fidelity") from exc
    return path


class Evaluator:
    """Scores a generator on fixed noise and class-balanced labels against fixed real images."""

    def __init__(self, real: Dataset, cfg: GanConfig, num_classes: int) -> None:
        from torchmetrics.image.fid import FrechetInceptionDistance  # heavy: only when evaluating

        self.device = cfg.resolved_device()
        self.batch = max(cfg.batch, 50)
        self.symmetric = cfg.data == "synthetic-shapes"
        if cfg.fid_weights:
            from torchmetrics.image.fid import NoTrainInceptionV3
            from torchmetrics.image.inception import InceptionScore

            weights = str(check_inception_weights(cfg.fid_weights))
            self.fid_name = "fid"
            self.fid = FrechetInceptionDistance(
                feature=2048, feature_extractor_weights_path=weights, reset_real_features=False
            )
            logits = NoTrainInceptionV3(
                "inception-v3-compat", ["logits_unbiased"], feature_extractor_weights_path=weights
            )
            self.inception_score = InceptionScore(feature=logits).to(self.device)
        else:
            self.fid_name = "fid_surrogate"
            self.fid = FrechetInceptionDistance(feature=SurrogateFeatures(), reset_real_features=False)
            self.inception_score = None
        self.fid = self.fid.to(self.device)

        # Reference statistics, once: a fixed subset of the real images.
        n = min(cfg.eval_samples, len(real))
        subset = torch.randperm(len(real), generator=torch.Generator().manual_seed(REAL_SUBSET_SEED))[:n].tolist()
        for images, _ in DataLoader(Subset(real, subset), batch_size=self.batch, num_workers=cfg.loader_workers):
            self.fid.update(images.to(self.device), real=True)

        gen = torch.Generator().manual_seed(EVAL_SEED)
        self.z = torch.randn(cfg.eval_samples, cfg.z_dim, generator=gen)
        self.y = torch.arange(cfg.eval_samples) % num_classes  # class-balanced
        self.grid_columns = min(num_classes, 10)  # the sample grid: one column per class (up to 10)

    @torch.no_grad()
    def __call__(self, generator: nn.Module) -> tuple[dict[str, float], torch.Tensor]:
        """Metrics, and the first generated images (uint8, on the CPU) for the sample grid."""
        was_training = generator.training
        generator.eval()
        self.fid.reset()  # keeps the real statistics (reset_real_features=False)
        grid, asymmetry = [], 0.0
        # A forked RNG: modules that draw random numbers (e.g. NMF's random bases) neither change
        # the training run's random stream nor make two evaluations of the same G differ.
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(EVAL_SEED)
            for start in range(0, len(self.z), self.batch):
                z = self.z[start : start + self.batch].to(self.device)
                y = self.y[start : start + self.batch].to(self.device)
                images = to_uint8(generator(z, y))
                self.fid.update(images, real=False)
                if self.inception_score is not None:
                    self.inception_score.update(images)
                if self.symmetric:
                    asymmetry += symmetry_error(images) * len(images)
                if start < self.grid_columns * 8:
                    grid.append(images.cpu())
        generator.train(was_training)
        metrics = {self.fid_name: self.fid.compute().item()}
        if self.inception_score is not None:
            metrics["inception_score"] = self.inception_score.compute()[0].item()
            self.inception_score.reset()
        if self.symmetric:
            metrics["symmetry_error"] = asymmetry / len(self.z)
        return metrics, torch.cat(grid)[: self.grid_columns * 8]


@torch.no_grad()
def refresh_spectral_norms(model: nn.Module, iters: int = 20) -> None:
    """Re-estimate each spectral norm of ``model`` by power iteration on its own weights.

    An EMA of G averages the weights and also the power method's vectors u, v. An average of unit
    vectors that have turned is neither a unit vector nor a singular vector of the averaged
    weights, so u^T W v under-estimates sigma and the EMA generator's layers come out too large.
    The EMA copy's u, v are therefore renormalised and iterated on its weights before evaluation."""
    from torch.nn.utils import parametrize
    from torch.nn.utils.parametrizations import _SpectralNorm  # torch's own: its _u, _v, power method

    for module in model.modules():
        if not parametrize.is_parametrized(module, "weight"):
            continue
        weight = module.parametrizations.weight
        for p in weight:
            if isinstance(p, _SpectralNorm) and weight.original.ndim > 1:
                p._u.copy_(F.normalize(p._u, dim=0, eps=p.eps))
                p._v.copy_(F.normalize(p._v, dim=0, eps=p.eps))
                p._power_method(p._reshape_weight_to_matrix(weight.original), iters)


# ----------------------------------------------------------------------------- checkpoints


def save_samples(images: torch.Tensor, path: Path, nrow: int) -> None:
    """A grid of generated images (uint8), for a look at what G draws."""
    grid = make_grid(images.float() / 255, nrow=nrow, padding=1)
    atomic_write(path, lambda tmp: save_image(grid, tmp, format="png"))


def _check_resumable(saved: dict, cfg: GanConfig, path: Path) -> None:
    now = asdict(cfg)
    diff = {k: (saved.get(k), now[k]) for k in RESUME_KEYS if saved.get(k) != now[k]}
    if diff:
        changes = "; ".join(f"{k}: {a!r} in the checkpoint, {b!r} now" for k, (a, b) in diff.items())
        raise ValueError(f"cannot resume from {path}: the run's settings changed ({changes})")


# ----------------------------------------------------------------------------- training


def hinge_loss_d(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def hinge_loss_g(fake_logits: torch.Tensor) -> torch.Tensor:
    return -fake_logits.mean()


def train_gan(cfg: GanConfig, callback: Callable[[dict, str | None], None] | None = None) -> dict:
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
    model_kw = dict(ch=cfg.ch, context=cfg.context, context_res=cfg.context_res, context_opts=cfg.context_opts)
    layout = torch.channels_last if cfg.channels_last else torch.contiguous_format
    G = Generator(cfg.res, num_classes, z_dim=cfg.z_dim, **model_kw).to(device, memory_format=layout)
    D = Discriminator(cfg.res, num_classes, **model_kw).to(device, memory_format=layout)
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
        data, batch_sampler=SeededBatches(len(data), cfg.batch, cfg.seed, start, cfg.iters),
        num_workers=cfg.loader_workers, generator=torch.Generator(),  # own generator: the global RNG stays untouched
    )

    def checkpoint(it: int) -> None:
        state = {
            "iter": it, "seconds": seconds, "history": history, "config": asdict(cfg),
            "G": G.state_dict(), "D": D.state_dict(), "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
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
            save_samples(samples, work_dir / "samples.png", nrow=evaluator.grid_columns)
            if callback is not None:
                callback(dict(metrics), str(ckpt_path), [str(work_dir / "samples.png")])
            t0 = time.perf_counter()

    session_seconds = seconds - resumed_seconds
    final = dict(history[-1])
    final.update(
        iters=history[-1]["iter"], seconds=seconds,
        images_per_s=images_seen / session_seconds if images_seen and session_seconds > 0 else float("nan"),
        params_g=sum(p.numel() for p in G.parameters()), params_d=sum(p.numel() for p in D.parameters()),
    )
    atomic_write_json(work_dir / "metrics.json", final)
    return final


# ----------------------------------------------------------------------------- the gan task
# A suite's gan trial (hambench.tasks): its budget mapped onto a GanConfig, its image folder made
# ready once on the driver, and the trained generator rebuilt for the whole-model cost.

from typing import TYPE_CHECKING, Any  # noqa: E402

from hambench.tasks import DataRequest, Metric, Task, build_config, register_task  # noqa: E402

if TYPE_CHECKING:
    from hambench.suite import Trial
    from hambench.tuning.trainable import TrialContext


def suite_config(trial: Trial, ctx: TrialContext) -> GanConfig:
    """The trial's GanConfig: its grid point, its budget and its task_options; it resumes from the
    trial's last checkpoint, if any. The budget's ``lr`` is G's learning rate and D's keeps its
    TTUR multiple of it (4x by default); task_options ``lr_g``/``lr_d`` set either alone."""
    budget = trial.budget
    assert budget is not None
    work_dir = ctx.work_dir()  # local to the node running it
    state = ctx.restore(into=work_dir)
    lr_d = budget.lr * GanConfig.lr_d / GanConfig.lr_g if budget.lr is not None else None
    return build_config(GanConfig, dict(
        context=trial.module, context_opts=dict(trial.options), data=trial.data,
        data_root=ctx.data_roots.get(trial.data), res=budget.res, iters=budget.iters, batch=budget.batch,
        eval_interval=budget.eval_interval, lr_g=budget.lr, lr_d=lr_d, work_dir=str(work_dir),
        resume=state is not None, seed=trial.seed, device=ctx.device,
    ) | trial.task_options)


def suite_data(name: str, request: DataRequest) -> Path | None:
    """synthetic-shapes is rendered in memory (no root); an image folder is generated for a smoke
    run, else it is the given root."""
    if name == "synthetic-shapes":
        return None
    if request.smoke:
        from hambench.data.image_folder import make_image_folder_fixture

        return make_image_folder_fixture(request.fixture_dir)
    if request.data_root is None:
        raise ValueError(f"data {name!r} needs a data root: a folder with one folder of images per class")
    return Path(request.data_root)


def trained_model(cfg: GanConfig, device: torch.device) -> tuple[Any, torch.Tensor, None, str]:
    """The trial's generator from one noise vector and a fixed class to one image at its output size."""
    from hambench.profiling import WithFixedInputs

    G = Generator(cfg.res, _classes(cfg), z_dim=cfg.z_dim, ch=cfg.ch, context=cfg.context,
                  context_res=cfg.context_res or default_context_res(cfg.res), context_opts=cfg.context_opts)
    z = torch.randn(1, cfg.z_dim, generator=torch.Generator().manual_seed(0))
    label = torch.zeros(1, dtype=torch.long)  # the class only picks rows of the embeddings: any costs the same
    return WithFixedInputs(G, label).to(device), z.to(device), None, f"1x3x{cfg.res}x{cfg.res}"


def _classes(cfg: GanConfig) -> int:
    """Classes of the trial's data set, as build_dataset has them (without reading its images)."""
    if cfg.data == "synthetic-shapes":
        return len(SyntheticShapes.classes)
    from torchvision.datasets.folder import find_classes  # what ImageFolder lists: the class folders

    return len(find_classes(cfg.data_root)[0])


def grid_choices() -> dict[str, list[str]]:
    """The data sets a gan grid may name (it has no backbone)."""
    return {"data": list(DATA_NAMES)}


register_task(Task(
    name="gan", order=2,
    # No FID weights, no fid: the headline is then fid_surrogate (hambench.stats.reported_metrics).
    metrics=(Metric("fid", "min", front=True), Metric("fid_surrogate", "min", front=True),
             Metric("symmetry_error", "min")),
    budget_fields=("iters", "eval_interval", "batch", "res", "lr"),
    # gan-synthetic's budget (what fits its 20 minutes on a 2-core CPU); res unset: 32.
    default_budget={"iters": 1800, "batch": 8}, grid_defaults={"data": ["synthetic-shapes"]},
    grid_choices=grid_choices,
    config=GanConfig, config_for=suite_config, train=train_gan, model=trained_model, prepare_data=suite_data,
))
