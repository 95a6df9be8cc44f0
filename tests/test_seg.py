"""Segmentation: segmentor configs, data-root checks, training on the ADE20K-layout fixture
(the real ADE20K loader, transforms and IoUMetric), resume after a stop, and the CLI."""

from __future__ import annotations

import json

import pytest
import torch

from hambench.cli.main import main
from hambench.data import DATASETS, DataLayoutError, make_ade20k_fixture, make_fixture, prepare_data
from hambench.models.segmentor import build_segmentor, segmentor_cfg
from hambench.shapes import parse_size
from hambench.tasks.seg import SegConfig, train_seg


@pytest.fixture(scope="module")
def ade_root(tmp_path_factory):
    return make_ade20k_fixture(tmp_path_factory.mktemp("data") / "ADEChallengeData2016", n_train=4, n_val=2, size=32)


# A run of seconds on the 32x32 ADE20K fixture: no context, the tiny backbone, 4 steps of 2 images.
TINY_RUN = dict(context="none", backbone="tiny-d8", data="ade20k", iters=4, batch=2, crop=(32, 32), eval_interval=2)


def tiny_cfg(ade_root, work_dir, **kw) -> SegConfig:
    base = dict(TINY_RUN, data_root=str(ade_root), work_dir=str(work_dir), threads=1, log_interval=2)
    return SegConfig(**{**base, **kw})


# --------------------------------------------------------------------------- models


@pytest.mark.parametrize(
    "backbone, head_type, in_channels",
    [
        ("r18-d8", "ContextHead", 512),
        ("r50-d8", "ContextHead", 2048),
        ("r101-d8", "ContextHead", 2048),
        ("van-tiny", "LightContextHead", [64, 160, 256]),
        ("tiny-d8", "ContextHead", 32),
    ],
)
def test_segmentor_cfg_presets(backbone, head_type, in_channels) -> None:
    cfg = segmentor_cfg(backbone, "ham-nmf", options={"rank": 32}, num_classes=150, aux_head=True)
    assert cfg["type"] == "EncoderDecoder"
    assert cfg["decode_head"]["type"] == head_type and cfg["decode_head"]["in_channels"] == in_channels
    assert cfg["decode_head"]["options"] == {"rank": 32}
    assert cfg["auxiliary_head"]["loss_decode"]["loss_weight"] == 0.4
    if backbone.startswith("r"):  # output stride 8: stages 3 and 4 dilated
        assert cfg["backbone"]["strides"] == (1, 2, 1, 1) and cfg["backbone"]["dilations"] == (1, 1, 2, 4)


def test_timm_backbone_and_mmseg_head_build_and_run() -> None:
    model = build_segmentor(segmentor_cfg("timm:resnet18", "mmseg:NLHead", num_classes=5))
    assert type(model.backbone).__name__ == "TIMMBackbone" and type(model.decode_head).__name__ == "NLHead"
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64), mode="tensor").shape == (1, 5, 2, 2)  # stride 32


def test_tiny_preset_with_a_zoo_module_keeps_stride_8() -> None:
    model = build_segmentor(segmentor_cfg("tiny-d8", "ham-nmf", num_classes=3)).eval()
    assert type(model.decode_head).__name__ == "ContextHead"
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 64), mode="tensor").shape == (2, 3, 8, 8)


def test_pretrained_loads_from_a_local_file_only(tmp_path) -> None:
    source = build_segmentor(segmentor_cfg("tiny-d8", "none", num_classes=3))
    path = tmp_path / "backbone.pth"
    torch.save(source.backbone.state_dict(), path)
    model = build_segmentor(segmentor_cfg("tiny-d8", "none", num_classes=3, pretrained=str(path)))
    for (name, a), b in zip(source.backbone.state_dict().items(), model.backbone.state_dict().values()):
        assert torch.equal(a, b), name
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        segmentor_cfg("r50-d8", "none", num_classes=3, pretrained=str(tmp_path / "missing.pth"))


def test_unknown_backbone_is_named() -> None:
    with pytest.raises(ValueError, match="unknown backbone 'r34-d8'"):
        segmentor_cfg("r34-d8", "none", num_classes=3)


# --------------------------------------------------------------------------- data roots


def test_missing_data_root_names_path_and_layout(tmp_path) -> None:
    with pytest.raises(DataLayoutError, match=r"(?s)nowhere.*does not exist.*images/training"):
        prepare_data("ade20k", tmp_path / "nowhere", 0)
    with pytest.raises(DataLayoutError, match="--data-root"):
        prepare_data("voc-aug", None, 0)


def test_malformed_data_root_names_the_missing_path(tmp_path, ade_root) -> None:
    broken = make_ade20k_fixture(tmp_path / "broken", n_train=2, n_val=2, size=32)
    next((broken / "annotations" / "validation").glob("*.png")).unlink()
    with pytest.raises(DataLayoutError, match=r"annotations/validation/ADE_valid_00000000.png is missing"):
        prepare_data("ade20k", broken, 0)
    (tmp_path / "voc" / "JPEGImages").mkdir(parents=True)
    with pytest.raises(DataLayoutError, match=r"voc/SegmentationClass is missing"):
        prepare_data("voc-aug", tmp_path / "voc", 0)


@pytest.mark.parametrize("name", ["voc-aug", "pascal-context"])
def test_fixture_has_the_real_layout_and_trains(name, tmp_path) -> None:
    root = make_fixture(name, tmp_path / name, n_train=2, n_val=2, size=32)
    assert prepare_data(name, root, 0) == root
    spec = DATASETS[name]
    for split in ("train", "val"):  # every stem of a split file has its image and its label
        prefix = getattr(spec, split)["data_prefix"]
        stems = (root / getattr(spec, split)["ann_file"]).read_text().split()
        assert len(stems) == 2
        assert all((root / prefix["img_path"] / f"{s}.jpg").is_file() for s in stems)
        assert all((root / prefix["seg_map_path"] / f"{s}.png").is_file() for s in stems)
    metrics = train_seg(tiny_cfg(root, tmp_path / "run", data=name, iters=2, eval_interval=2))
    assert metrics["iters"] == 2 and 0 <= metrics["mIoU"] <= 100
    class_names = [k[len("IoU.") :] for k in metrics if k.startswith("IoU.")]
    assert len(class_names) == spec.num_classes  # read with the real class list (21 for VOC, 59 for Context)


# --------------------------------------------------------------------------- training


def test_smoke_run_on_the_ade20k_fixture(ade_root, tmp_path) -> None:
    calls = []
    metrics = train_seg(
        tiny_cfg(ade_root, tmp_path / "run"), callback=lambda m, ckpt, files: calls.append((m, ckpt, files))
    )
    assert [m["iter"] for m, _, _ in calls] == [2, 4]
    assert all(ckpt is not None and ckpt.endswith(f"iter_{m['iter']}.pth") for m, ckpt, _ in calls)
    assert all(files == () for _, _, files in calls)  # seg keeps no files beside its checkpoint
    assert metrics["iters"] == 4 and metrics["iters_run"] == 4
    assert 0 <= metrics["mIoU"] <= 100 and 0 <= metrics["aAcc"] <= 100
    assert "IoU.wall" in metrics and metrics["images_per_s"] > 0 and metrics["seconds"] > 0


def test_resume_continues_from_the_checkpoint(ade_root, tmp_path) -> None:
    class Stop(Exception):
        pass

    def stop_after_first_checkpoint(metrics, checkpoint, files):
        assert checkpoint is not None
        raise Stop  # as if the run were killed right after iteration 3's checkpoint

    work_dir = tmp_path / "resume"
    with pytest.raises(Stop):
        train_seg(tiny_cfg(ade_root, work_dir, iters=6, eval_interval=3), callback=stop_after_first_checkpoint)
    assert (work_dir / "iter_3.pth").is_file() and not (work_dir / "iter_6.pth").exists()

    seen = []
    metrics = train_seg(
        tiny_cfg(ade_root, work_dir, iters=6, eval_interval=3, resume=True),
        callback=lambda m, ckpt, files: seen.append(m["iter"]),
    )
    assert seen == [6]  # continued at 3: no second evaluation at 3
    assert metrics["iters"] == 6 and metrics["iters_run"] == 3  # trained 4..6, not 1..6


def test_data_error_fails_before_training(tmp_path) -> None:
    cfg = SegConfig(context="none", data="ade20k", data_root=str(tmp_path / "nope"), work_dir=str(tmp_path / "w"))
    with pytest.raises(DataLayoutError, match="nope"):
        train_seg(cfg)
    assert not (tmp_path / "w").exists()


# --------------------------------------------------------------------------- CLI


def test_cli_json_last_line(ade_root, tmp_path, capsys) -> None:
    argv = ["train", "seg", "--context", "none", "--backbone", "tiny-d8", "--data", "ade20k"]
    argv += ["--data-root", str(ade_root), "--iters", "2", "--batch", "2", "--crop", "32x32", "--eval-interval", "2"]
    rc = main([*argv, "--work-dir", str(tmp_path / "cli"), "--threads", "1", "--json"])
    assert rc == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert any(line.startswith("iter") for line in lines[:-1])  # progress was printed
    assert "NaN" not in lines[-1]  # standard JSON: absent classes are null
    final = json.loads(lines[-1])
    assert {"mIoU", "aAcc", "iters", "seconds"} <= set(final) and final["iters"] == 2


def test_cli_bad_data_root(tmp_path, capsys) -> None:
    rc = main(["train", "seg", "--context", "none", "--data", "ade20k", "--data-root", str(tmp_path / "absent")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "absent" in err and "ADEChallengeData2016" in err


def test_crop_parsing() -> None:
    assert parse_size("96x64") == (96, 64) and parse_size("128") == (128, 128) and parse_size("96X64") == (96, 64)
    for bad in ("axb", "0x96", "1x2x3", ""):
        with pytest.raises(ValueError, match="HxW"):
            parse_size(bad)


def test_mmseg_imports_without_its_noise(fresh_python) -> None:
    """mmseg's data sets print "Could not import OneDL" (twice) and mmcv-lite warns about a CUDA op
    when first imported; hambench's import point drops exactly those."""
    code = "from hambench.models.registration import register_all; register_all(); print('registered')"
    out = fresh_python(code)
    assert out.stdout == "registered\n"
    assert "MultiScaleDeformableAttention" not in out.stderr and "OneDL" not in out.stderr
