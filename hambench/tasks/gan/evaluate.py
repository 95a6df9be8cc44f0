"""How good a generator is: FID (or its surrogate), the Inception score, ``symmetry_error`` on
synthetic-shapes, and the sample grid, always on the same noise, labels and real images.

FID is torchmetrics' ``FrechetInceptionDistance``. With ``fid_weights`` (torch-fidelity's Inception-v3
state dict, loaded from that file only, never downloaded) it is the real FID, reported as ``fid``,
with the Inception score. Without them the same Fréchet distance is computed on a fixed, seeded,
untrained conv net and reported as ``fid_surrogate``: comparable between runs of this code, not with
published FIDs.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from torchvision.utils import make_grid, save_image

from hambench.data.synthetic_shapes import symmetry_error
from hambench.io import atomic_write
from hambench.tasks.gan.config import GanConfig
from hambench.tasks.gan.data import size, to_float, to_uint8

EVAL_SEED = 1234  # fixed noise and labels for every evaluation: curves compare like with like
REAL_SUBSET_SEED = 0  # which real images give the FID reference statistics: the same for every run
SURROGATE_SEED = 0  # the surrogate feature network's weights: the same for every run
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"  # torch-fidelity's Inception-v3 (FID's reference net)
SAMPLES_FILE = "samples.png"  # the sample grid of the last evaluation, in the run's folder (the task's Artifact)


class SurrogateFeatures(nn.Module):
    """A fixed, seeded, untrained conv net standing in for Inception when its weights are not given.

    uint8 images (B, 3, H, W) -> (B, 480): resize to 64x64, four stride-2 4x4 convs with leaky ReLU
    (He-initialised from a fixed seed); the features are every layer's global average, concatenated
    (the early layers keep edges and sharpness, which the last layer's average alone blurs out)."""

    num_features = 32 + 64 + 128 + 256  # read by torchmetrics

    def __init__(self, seed: int = SURROGATE_SEED) -> None:
        super().__init__()
        widths = [3, 32, 64, 128, 256]
        convs = [nn.Conv2d(a, b, 4, stride=2, padding=1) for a, b in zip(widths[:-1], widths[1:])]
        self.convs = nn.ModuleList(convs)
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for conv in convs:
                fan_in = conv.weight[0].numel()
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * math.sqrt(2 / fan_in))
                assert conv.bias is not None  # nn.Conv2d's default: a bias
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
        from torchmetrics.image.fid import (
            FrechetInceptionDistance,  # heavy: only when evaluating
        )

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
        n = min(cfg.eval_samples, size(real))
        subset = torch.randperm(size(real), generator=torch.Generator().manual_seed(REAL_SUBSET_SEED))[:n].tolist()
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
        parametrizations = cast(nn.ModuleDict, module.parametrizations)
        weight = cast(parametrize.ParametrizationList, parametrizations["weight"])
        for p in weight:
            if isinstance(p, _SpectralNorm) and weight.original.ndim > 1:
                p._u.copy_(F.normalize(p._u, dim=0, eps=p.eps))
                p._v.copy_(F.normalize(p._v, dim=0, eps=p.eps))
                p._power_method(p._reshape_weight_to_matrix(weight.original), iters)


def save_samples(images: torch.Tensor, path: Path, nrow: int) -> None:
    """A grid of generated images (uint8), for a look at what G draws."""
    grid = make_grid(images.float() / 255, nrow=nrow, padding=1)
    atomic_write(path, lambda tmp: save_image(grid, tmp, format="png"))
