"""What makes a seg trial lean, each checked to change nothing the user reads: the decoded images
kept in memory (``LoadOnce``), the training step without mmseg's unread ``acc_seg``, and the
channels_last memory format."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mmengine.dataset import Compose
from mmseg.registry import MODELS

from hambench.data import prepare_data
from hambench.models.registration import register_all
from hambench.models.segmentor import segmentor_cfg
from hambench.tasks.seg.config import SegConfig
from hambench.tasks.seg.data import dataloaders
from hambench.tasks.seg.loop import ChannelsLastHook

register_all()
from hambench.tasks.seg.transforms import LoadOnce  # noqa: E402

LOADS = [dict(type="LoadImageFromFile"), dict(type="LoadAnnotations")]


@pytest.fixture(scope="module")
def generated_root():
    return prepare_data("synthetic-context", None, seed=0)


def _sample(root, stem: str) -> dict:
    return dict(
        img_path=str(root / "images" / "training" / f"{stem}.jpg"),
        seg_map_path=str(root / "annotations" / "training" / f"{stem}.png"),
        reduce_zero_label=True,
        seg_fields=[],
    )


def _stems(root, count: int) -> list[str]:
    return sorted(p.stem for p in (root / "images" / "training").glob("*.jpg"))[:count]


def test_load_once_gives_what_loading_gives_and_guards_its_copy(generated_root):
    once, plain = LoadOnce(LOADS), Compose(LOADS)
    for stem in _stems(generated_root, 3):
        expected = plain(_sample(generated_root, stem))
        first, second = once(_sample(generated_root, stem)), once(_sample(generated_root, stem))
        for got in (first, second):
            np.testing.assert_array_equal(got["img"], expected["img"])
            np.testing.assert_array_equal(got["gt_seg_map"], expected["gt_seg_map"])
            assert got["seg_fields"] == expected["seg_fields"] == ["gt_seg_map"]
        first["img"][:] = 0  # a later transform writing in place
        first["seg_fields"].append("other")
        third = once(_sample(generated_root, stem))
        np.testing.assert_array_equal(third["img"], expected["img"])
        assert third["seg_fields"] == ["gt_seg_map"]
    assert len(once.cache) == 3


def test_load_once_keeps_no_more_than_its_budget(generated_root):
    stems = _stems(generated_root, 4)
    one_image = sum(
        v.nbytes for v in Compose(LOADS)(_sample(generated_root, stems[0])).values() if hasattr(v, "nbytes")
    )
    once = LoadOnce(LOADS, max_bytes=2 * one_image)
    for stem in stems:
        once(_sample(generated_root, stem))
    assert len(once.cache) == 2 and once.cached_bytes <= 2 * one_image
    np.testing.assert_array_equal(  # past the budget: decoded again, the same pixels
        once(_sample(generated_root, stems[3]))["img"], Compose(LOADS)(_sample(generated_root, stems[3]))["img"]
    )


def test_generated_sets_load_once_and_real_sets_as_mmseg(generated_root, tmp_path):
    train, val = dataloaders(SegConfig(data="synthetic-context"), generated_root)
    assert train["dataset"]["pipeline"][0]["type"] == val["dataset"]["pipeline"][0]["type"] == "LoadOnce"
    assert train["dataset"]["serialize_data"] is False  # no loader processes: nothing to share
    train, _ = dataloaders(SegConfig(data="synthetic-context", loader_workers=2), generated_root)
    assert train["dataset"]["serialize_data"] is True


def _head_losses(train_accuracy: bool) -> dict:
    torch.manual_seed(0)
    cfg = segmentor_cfg("tiny-d8", "ham-nmf", num_classes=3)
    cfg["decode_head"]["train_accuracy"] = train_accuracy
    model = MODELS.build(cfg).train()
    head = model.decode_head
    torch.manual_seed(1)
    logits = torch.randn(2, 3, 12, 12, requires_grad=True)
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    samples = []
    for _ in range(2):
        sample = SegDataSample()
        labels = torch.randint(0, 3, (1, 48, 48))
        labels[:, :4] = 255  # ignored pixels
        sample.gt_sem_seg = PixelData(data=labels)
        samples.append(sample)
    return head.loss_by_feat(logits, samples)


def test_the_training_loss_is_mmsegs_without_acc_seg():
    ours, mmseg = _head_losses(train_accuracy=False), _head_losses(train_accuracy=True)
    assert set(mmseg) - set(ours) == {"acc_seg"}
    assert set(ours) == set(mmseg) - {"acc_seg"}
    for name, value in ours.items():
        torch.testing.assert_close(value, mmseg[name], rtol=0, atol=0)


def test_channels_last_keeps_the_parameters_and_skips_data_parallel_models():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.Conv2d(8, 4, 1))
    params = list(model.parameters())
    values = [p.detach().clone() for p in params]

    class Runner:  # what the hook reads of mmengine's Runner
        pass

    runner = Runner()
    runner.model = model
    ChannelsLastHook().before_train(runner)
    assert all(a is b for a, b in zip(model.parameters(), params))  # an optimizer built on them still holds them
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    for p, v in zip(model.parameters(), values):
        torch.testing.assert_close(p, v, rtol=0, atol=0)

    wrapped = Runner()
    wrapped.model = torch.nn.Module()
    wrapped.model.module = torch.nn.Conv2d(3, 8, 3)  # a data-parallel wrapper's shape
    ChannelsLastHook().before_train(wrapped)
    assert wrapped.model.module.weight.is_contiguous()  # DDP's buckets are laid out: left alone
