"""The GAN task: SAGAN-style G and D, synthetic-shapes, FID (surrogate and real), resume, CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn
from torch.nn.utils import parametrize
from torchmetrics.image.fid import FrechetInceptionDistance

from hambench import build_module, module_names
from hambench.cli.main import main
from hambench.data.datasets import DataLayoutError
from hambench.data.image_folder import image_folder
from hambench.data.synthetic_shapes import SyntheticShapes, symmetry_error
from hambench.profiling import count_params
from hambench.tasks.gan import GanConfig, train_gan
from hambench.tasks.gan.data import SeededBatches, build_dataset
from hambench.tasks.gan.evaluate import (
    Evaluator,
    SurrogateFeatures,
    check_inception_weights,
    refresh_spectral_norms,
)
from hambench.tasks.gan.loop import CHECKPOINT
from hambench.tasks.gan.models import (
    ConditionalBatchNorm2d,
    Discriminator,
    Generator,
    context_block,
    context_resolutions,
)

torch.set_num_threads(1)


def tiny_cfg(tmp_path: Path, **overrides) -> GanConfig:
    """A run that takes about a second: 4-wide networks, 4 images a batch, 24 images per FID."""
    cfg = dict(
        context="none",
        res=32,
        ch=4,
        batch=4,
        iters=4,
        eval_interval=2,
        eval_samples=24,
        work_dir=str(tmp_path / "run"),
        device="cpu",
        log_interval=0,
    )
    cfg.update(overrides)
    return GanConfig(**cfg)


# ----------------------------------------------------------------------------- models


@pytest.mark.parametrize("res", [32, 64, 128])
def test_generator_and_discriminator_shapes(res: int) -> None:
    context_res = context_resolutions(res)[-1]
    G = Generator(res, num_classes=3, ch=2, context="none", context_res=context_res)
    D = Discriminator(res, num_classes=3, ch=2, context="none", context_res=context_res)
    seen = {}

    def record(net: str):
        def hook(module, inputs, output) -> None:
            seen[net] = tuple(output.shape[-2:])

        return hook

    G.context.register_forward_hook(record("G"))
    D.context.register_forward_hook(record("D"))
    z, y = torch.randn(2, G.z_dim), torch.tensor([0, 2])
    images = G(z, y)
    assert images.shape == (2, 3, res, res)
    assert images.abs().max() <= 1
    assert D(images, y).shape == (2,)
    assert seen == {"G": (context_res, context_res), "D": (context_res, context_res)}


def test_default_context_resolution_is_the_papers() -> None:
    assert Generator(128, 2, ch=1).context_res == 32  # 32x32 for 128x128 images, as in the paper
    assert Generator(32, 2, ch=1).context_res == 16


def test_unavailable_context_resolution_is_refused() -> None:
    with pytest.raises(ValueError, match="context resolution 32 not available.*8, 16"):
        Generator(32, 2, ch=1, context_res=32)
    with pytest.raises(ValueError, match="resolution 48 not supported"):
        Discriminator(48, 2, ch=1)


def test_spectral_norm_on_every_layer_of_both_networks() -> None:
    G = Generator(32, 3, ch=4, context="ham-nmf")
    D = Discriminator(32, 3, ch=4, context="ham-nmf")
    for net in (G, D):
        layers = [(n, m) for n, m in net.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        assert any(n.startswith("context.") for n, _ in layers)  # the context module's convs too
        missing = [n for n, m in layers if not parametrize.is_parametrized(m, "weight")]
        assert not missing, f"{type(net).__name__}: no spectral norm on {missing}"
    assert parametrize.is_parametrized(D.embed, "weight")  # the projection


def test_hamburger_gets_hamgans_rank_unless_given() -> None:
    assert context_block("ham-nmf", 64, None).ham.rank == 8  # d = 8r, as in the paper's GAN
    assert context_block("ham-nmf", 64, {"rank": 4}).ham.rank == 4
    # other families: built with their own defaults, no rank added (they have no such option)
    plain = context_block("nonlocal", 64, None)
    assert count_params(plain) == count_params(build_module("nonlocal", 64))


def test_conditional_batch_norm_uses_the_class() -> None:
    cbn = ConditionalBatchNorm2d(4, num_classes=3)
    with torch.no_grad():
        cbn.gamma.weight.normal_()
        cbn.beta.weight.normal_()
    x = torch.randn(1, 4, 5, 5).repeat(2, 1, 1, 1)  # the same features ...
    out = cbn(x, torch.tensor([0, 1]))  # ... for two classes
    assert not torch.allclose(out[0], out[1])
    out.sum().backward()
    assert cbn.gamma.weight.grad[2].abs().sum() == 0  # class 2 took no part
    assert cbn.gamma.weight.grad[:2].abs().sum() > 0


def test_projection_discriminator_uses_the_class() -> None:
    D = Discriminator(32, 3, ch=2)
    x = torch.randn(1, 3, 32, 32).repeat(2, 1, 1, 1)
    logits = D(x, torch.tensor([0, 1]))
    assert logits[0] != logits[1]


# ----------------------------------------------------------------------------- data


def test_synthetic_shapes_deterministic_per_seed() -> None:
    a, b, c = SyntheticShapes(12, 32, seed=0), SyntheticShapes(12, 32, seed=0), SyntheticShapes(12, 32, seed=1)
    assert all(torch.equal(a[i][0], b[i][0]) for i in range(12))
    assert not torch.equal(a[0][0], c[0][0])
    assert [a[i][1] for i in range(12)] == [i % 6 for i in range(12)]
    image, _ = a[3]
    assert image.dtype == torch.uint8 and image.shape == (3, 32, 32)
    with pytest.raises(IndexError):
        a[12]


def test_synthetic_shapes_are_mirror_symmetric_and_noise_is_not() -> None:
    real = torch.stack([SyntheticShapes(24, 64)[i][0] for i in range(24)])
    assert symmetry_error(real) == 0.0
    assert real.float().std() > 20  # not a blank image, which would be trivially symmetric
    noise = torch.randint(0, 256, real.shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    assert symmetry_error(noise) == pytest.approx(1 / 3, abs=0.01)
    # Real left halves beside other images' right halves: the twins no longer agree.
    swapped = real.clone()
    swapped[..., 32:] = real.roll(1, dims=0)[..., 32:]
    assert 0.12 < symmetry_error(swapped) < 0.25
    with pytest.raises(ValueError, match="uint8"):
        symmetry_error(real.float())


def test_image_folder(tmp_path: Path) -> None:
    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.new("RGB", (40, 50), (i * 40, 100, 200)).save(tmp_path / cls / f"{i}.png")
    ds, num_classes = build_dataset(GanConfig(data="image-folder", data_root=str(tmp_path), res=32))
    image, label = ds[4]
    assert num_classes == 2 and len(ds) == 6 and label == 1
    assert image.dtype == torch.uint8 and image.shape == (3, 32, 32)
    with pytest.raises(DataLayoutError, match="does not exist"):
        image_folder(tmp_path / "nope", 32)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataLayoutError, match="one folder per class"):
        image_folder(tmp_path / "empty", 32)
    with pytest.raises(ValueError, match="needs a data root"):
        build_dataset(GanConfig(data="image-folder"))


def test_batches_depend_only_on_the_iteration() -> None:
    full = list(SeededBatches(n=10, batch=3, seed=0, start=0, stop=7))
    assert list(SeededBatches(n=10, batch=3, seed=0, start=4, stop=7)) == full[4:]  # what a resumed run reads
    assert len(set(sum(full[:3], []))) == 9  # an epoch (3 batches of 3) draws without replacement
    assert list(SeededBatches(n=10, batch=3, seed=1, start=0, stop=7)) != full
    with pytest.raises(ValueError, match="fewer than one batch"):
        SeededBatches(n=2, batch=3, seed=0, start=0, stop=1)


# ----------------------------------------------------------------------------- FID


def surrogate_fid(real: torch.Tensor, fake: torch.Tensor) -> float:
    fid = FrechetInceptionDistance(feature=SurrogateFeatures())
    fid.update(real, real=True)
    fid.update(fake, real=False)
    return fid.compute().item()


def test_surrogate_fid_of_a_set_with_itself_is_zero_and_with_noise_large() -> None:
    ds = SyntheticShapes(200, 32)
    real = torch.stack([ds[i][0] for i in range(100)])
    other = torch.stack([ds[i][0] for i in range(100, 200)])
    noise = torch.randint(0, 256, real.shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    same, sampled, far = surrogate_fid(real, real), surrogate_fid(real, other), surrogate_fid(real, noise)
    assert abs(same) < 1e-4
    assert far > 20 * sampled > 0  # noise is far; a second sample of the same data is near


def test_surrogate_network_is_fixed() -> None:
    a, b = SurrogateFeatures(), SurrogateFeatures()
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert not any(p.requires_grad for p in a.parameters())


class NoiseGenerator(nn.Module):
    """Stands in for G: noise images, mirror-symmetrised or not."""

    def __init__(self, mirror: bool) -> None:
        super().__init__()
        self.mirror = mirror

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = torch.rand(z.shape[0], 3, 32, 32) * 2 - 1
        return (x + x.flip(-1)) / 2 if self.mirror else x


def test_evaluator_scores_symmetry_and_surrogate_fid(tmp_path: Path) -> None:
    cfg = tiny_cfg(tmp_path, eval_samples=60)
    evaluator = Evaluator(SyntheticShapes(100, 32), cfg, num_classes=6)
    mirrored, grid = evaluator(NoiseGenerator(mirror=True))
    noisy, _ = evaluator(NoiseGenerator(mirror=False))
    assert mirrored["symmetry_error"] == 0.0
    assert noisy["symmetry_error"] == pytest.approx(1 / 3, abs=0.02)
    assert set(noisy) == {"fid_surrogate", "symmetry_error"}
    assert grid.shape == (48, 3, 32, 32) and grid.dtype == torch.uint8  # 8 rows of the 6 classes
    again, _ = evaluator(NoiseGenerator(mirror=False))
    assert again == noisy  # the same noise every evaluation


def test_missing_or_malformed_fid_weights_fail_clearly(tmp_path: Path) -> None:
    missing = tmp_path / "inception.pth"
    with pytest.raises(FileNotFoundError, match=r"inception\.pth: no such file.*weights-inception-2015-12-05"):
        check_inception_weights(missing)
    junk = tmp_path / "junk.pth"
    junk.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="cannot be read as a PyTorch state dict"):
        check_inception_weights(junk)
    wrong = tmp_path / "wrong.pth"
    torch.save({"fc.weight": torch.zeros(10, 20)}, wrong)
    with pytest.raises(ValueError, match=r"not the Inception-v3 state dict.*\(1008, 2048\)"):
        check_inception_weights(wrong)
    # train_gan checks before it trains: nothing is written
    with pytest.raises(FileNotFoundError, match="no such file"):
        train_gan(tiny_cfg(tmp_path, fid_weights=str(missing)))
    assert not (tmp_path / "run" / CHECKPOINT).exists()


# ----------------------------------------------------------------------------- training, resume, CLI


class Interrupted(Exception):
    pass


def test_train_reports_surrogate_fid_and_symmetry_at_each_evaluation(tmp_path: Path) -> None:
    seen = []
    final = train_gan(tiny_cfg(tmp_path), callback=lambda m, path, artifacts: seen.append((m, path, artifacts)))
    assert [m["iter"] for m, _, _ in seen] == [2, 4]
    for metrics, path, artifacts in seen:
        assert artifacts == [str(tmp_path / "run" / "samples.png")]  # the grid the report shows
        assert "fid_surrogate" in metrics and "fid" not in metrics and "inception_score" not in metrics
        assert 0 <= metrics["symmetry_error"] <= 1
        assert Path(path).is_file()
    assert final["iters"] == 4 and final["seconds"] > 0 and final["images_per_s"] > 0
    assert final["fid_surrogate"] == seen[-1][0]["fid_surrogate"]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["iters"] == 4
    assert (tmp_path / "run" / "samples.png").is_file()


def test_resume_after_interruption_continues_from_the_checkpoint(tmp_path: Path, capsys) -> None:
    # The uninterrupted reference run.
    reference = train_gan(tiny_cfg(tmp_path / "ref", context="ham-nmf", ema=True))
    ref_ckpt = torch.load(tmp_path / "ref" / "run" / CHECKPOINT, weights_only=True)

    # The same run, killed right after its first checkpoint (iteration 2) ...
    def crash(metrics: dict, path: str | None, artifacts: list[str]) -> None:
        raise Interrupted(metrics["iter"])

    cfg = tiny_cfg(tmp_path, context="ham-nmf", ema=True)
    with pytest.raises(Interrupted):
        train_gan(cfg, callback=crash)
    assert torch.load(tmp_path / "run" / CHECKPOINT, weights_only=True)["iter"] == 2

    # ... then resumed: it trains iterations 3-4 only, and ends where the reference ended.
    seen = []
    capsys.readouterr()
    resumed = tiny_cfg(tmp_path, context="ham-nmf", ema=True, resume=True)
    final = train_gan(resumed, callback=lambda m, p, artifacts: seen.append(m["iter"]))
    assert "resumed from" in capsys.readouterr().out
    assert seen == [4]
    assert final["iters"] == 4
    assert [h["iter"] for h in json.loads((tmp_path / "run" / "history.json").read_text())] == [2, 4]
    ckpt = torch.load(tmp_path / "run" / CHECKPOINT, weights_only=True)
    for key in ("G", "D", "G_ema"):
        for name, value in ref_ckpt[key].items():
            torch.testing.assert_close(ckpt[key][name], value, msg=f"{key}.{name} differs after resume")
    assert final["fid_surrogate"] == pytest.approx(reference["fid_surrogate"], rel=1e-5)


@pytest.mark.parametrize("name", module_names())
def test_every_module_gives_the_same_output_in_either_layout(name: str) -> None:
    """The GAN trains channels-last: each registered module must compute the same function on an
    NHWC tensor as on an NCHW one. Weights are redrawn first, so no module is the identity its
    zero-initialised output layer makes it at the start."""
    gen = torch.Generator().manual_seed(0)
    module = build_module(name, 32).eval()
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    x = torch.randn(2, 32, 12, 12, generator=gen)
    torch.manual_seed(1)  # modules that draw random numbers (NMF's bases) draw the same ones
    nchw = module(x)
    torch.manual_seed(1)
    nhwc = module(x.contiguous(memory_format=torch.channels_last))
    assert nhwc.shape == x.shape
    if name != "none":
        assert (nchw - x).abs().mean() > 1e-3  # a function of the input, not the identity
    assert (nchw - nhwc).abs().mean() <= 1e-4 * nchw.abs().mean(), name


def test_the_ema_generator_keeps_unit_spectral_norms() -> None:
    """An EMA averages the power method's u, v with the weights; without re-estimating them the
    averaged generator's layers come out with norms above 1 (1.06-1.37 here), compounding over
    the layers. After refresh_spectral_norms every layer's largest singular value is 1."""
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    torch.manual_seed(0)
    G = Generator(32, 6, ch=4).train()
    ema = AveragedModel(G, multi_avg_fn=get_ema_multi_avg_fn(0.9), use_buffers=True)
    opt = torch.optim.Adam(G.parameters(), 1e-2)
    for _ in range(20):  # weights that move a lot, as early in training
        G(torch.randn(4, 128), torch.randint(6, (4,))).mean().backward()
        opt.step()
        opt.zero_grad()
        ema.update_parameters(G)

    def norms() -> list[float]:
        ema.module.eval()
        layers = [m for m in ema.module.modules() if parametrize.is_parametrized(m, "weight") and m.weight.ndim > 1]
        return [torch.linalg.matrix_norm(m.weight.detach().flatten(1), 2).item() for m in layers]

    assert max(norms()) > 1.02  # the failure this guards against
    refresh_spectral_norms(ema.module)
    assert norms() == pytest.approx([1.0] * len(norms()), abs=1e-3)


def test_channels_last_and_contiguous_runs_agree(tmp_path: Path) -> None:
    """The layout changes the speed, not the training: one iteration in NCHW computes the losses
    NHWC computes, and its Adam step (at most lr per weight) lands within float noise of it."""
    runs = {}
    for name, layout in (("nhwc", True), ("nchw", False)):
        cfg = tiny_cfg(tmp_path / name, context="ham-nmf", iters=1, eval_interval=1, channels_last=layout)
        runs[name] = (train_gan(cfg), torch.load(tmp_path / name / "run" / CHECKPOINT, weights_only=True))
    (a, ckpt_a), (b, ckpt_b) = runs["nhwc"], runs["nchw"]
    assert b["loss_d"] == pytest.approx(a["loss_d"], rel=1e-5)  # D's loss on the initial weights
    assert b["loss_g"] == pytest.approx(a["loss_g"], rel=1e-3)
    for net in ("G", "D"):
        for key, value in ckpt_a[net].items():
            if value.is_floating_point():
                torch.testing.assert_close(ckpt_b[net][key], value, rtol=0, atol=2 * GanConfig.lr_d, msg=f"{net}.{key}")


def test_bad_settings_fail_before_training(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="eval_interval must be at least 1, got 0"):
        train_gan(tiny_cfg(tmp_path, eval_interval=0))
    with pytest.raises(ValueError, match="unknown GAN data set 'cifar'"):
        train_gan(tiny_cfg(tmp_path, data="cifar"))
    with pytest.raises(ValueError, match="device must be auto, cpu or cuda"):
        train_gan(tiny_cfg(tmp_path, device="tpu"))


def test_resume_refuses_a_changed_run(tmp_path: Path) -> None:
    train_gan(tiny_cfg(tmp_path, iters=2))
    with pytest.raises(ValueError, match="cannot resume.*ch: 4 in the checkpoint, 8 now"):
        train_gan(tiny_cfg(tmp_path, iters=4, ch=8, resume=True))


def test_cli_prints_final_metrics_as_json_last(tmp_path: Path, capsys) -> None:
    assert (
        main(
            [
                "train",
                "gan",
                "--context",
                "none",
                "--iters",
                "2",
                "--eval-interval",
                "1",
                "--batch",
                "4",
                "--ch",
                "4",
                "--eval-samples",
                "12",
                "--device",
                "cpu",
                "--work-dir",
                str(tmp_path),
                "--json",
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert sum(line.startswith("eval iter") for line in lines) == 2  # reported at each evaluation
    final = json.loads(lines[-1])
    assert final["iters"] == 2 and final["seconds"] > 0
    assert {"fid_surrogate", "symmetry_error"} <= set(final) and "fid" not in final


def test_cli_missing_fid_weights_is_a_clear_error(tmp_path: Path, capsys) -> None:
    assert (
        main(
            ["train", "gan", "--context", "none", "--fid-weights", str(tmp_path / "x.pth"), "--work-dir", str(tmp_path)]
        )
        == 2
    )
    assert "x.pth: no such file" in capsys.readouterr().err


# ----------------------------------------------------------------------------- slow


def random_inception_weights(path: Path) -> None:
    """A file in the layout of torch-fidelity's Inception-v3 weights, with random values (the real
    ones cannot be downloaded here): the loading and scoring code runs as with the real file."""
    from torch_fidelity import feature_extractor_inceptionv3 as fe

    class Unloaded(fe.FeatureExtractorInceptionV3):
        def load_state_dict(self, *args, **kwargs):  # skip the download-or-load step
            return None

    original = fe.load_state_dict_from_url
    fe.load_state_dict_from_url = lambda *a, **k: {}
    try:
        net = Unloaded("inception-v3-compat", ["2048"])
    finally:
        fe.load_state_dict_from_url = original
    torch.save(net.state_dict(), path)


@pytest.mark.slow
@pytest.mark.parametrize("name", module_names())
def test_every_registered_module_plugs_into_both_networks(name: str) -> None:
    G, D = Generator(32, 6, ch=8, context=name), Discriminator(32, 6, ch=8, context=name)
    z, y = torch.randn(4, G.z_dim), torch.arange(4) % 6
    loss = D(G(z, y), y).mean()
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in G.parameters() if p.grad is not None)


@pytest.mark.slow
def test_real_fid_weights_give_fid_and_inception_score_columns(tmp_path: Path) -> None:
    pytest.importorskip("torch_fidelity")
    weights = tmp_path / "weights-inception-2015-12-05-6726825d.pth"
    random_inception_weights(weights)
    cfg = tiny_cfg(tmp_path, fid_weights=str(weights), eval_samples=10)
    evaluator = Evaluator(SyntheticShapes(20, 32), cfg, num_classes=6)
    metrics, fakes = evaluator(Generator(32, 6, ch=4))
    assert {"fid", "inception_score", "symmetry_error"} <= set(metrics) and "fid_surrogate" not in metrics
    assert fakes.shape == (10, 3, 32, 32)


@pytest.mark.slow
def test_cli_resume_after_kill(tmp_path: Path) -> None:
    """The issue's done-when: `hambench train gan --context ham-nmf --data synthetic-shapes --iters 200`,
    killed (SIGKILL) after its first checkpoint, then resumed from it."""
    cmd = [
        sys.executable,
        "-m",
        "hambench",
        "train",
        "gan",
        "--context",
        "ham-nmf",
        "--data",
        "synthetic-shapes",
        "--iters",
        "200",
        "--eval-interval",
        "50",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--work-dir",
        str(tmp_path),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ckpt = tmp_path / CHECKPOINT
    deadline = time.monotonic() + 400
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    os.kill(proc.pid, signal.SIGKILL)
    output = proc.communicate()[0]
    assert ckpt.exists(), output
    saved = torch.load(ckpt, weights_only=True)["iter"]
    assert 0 < saved < 200

    done = subprocess.run(cmd + ["--resume", "--json"], capture_output=True, text=True, timeout=500)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert f"at iteration {saved}" in lines[0]
    evals = [line for line in lines if line.startswith("eval iter")]
    assert evals[0].startswith(f"eval iter {saved + 50}/200")  # not from 0
    final = json.loads(lines[-1])
    assert final["iters"] == 200 and {"fid_surrogate", "symmetry_error"} <= set(final)
