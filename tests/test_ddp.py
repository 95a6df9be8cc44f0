"""Data-parallel segmentation: two Ray Train workers on CPU (gloo) train one model together."""

from __future__ import annotations

import json

import pytest

from hambench.data import make_ade20k_fixture
from hambench.tasks.seg import SegConfig, train_seg
from test_seg import TINY_RUN


@pytest.mark.slow  # starts a Ray instance and two training processes (about a minute)
def test_two_gloo_workers_both_contribute(tmp_path) -> None:
    ray = pytest.importorskip("ray")
    root = make_ade20k_fixture(
        tmp_path / "ADEChallengeData2016", n_train=16, n_val=2, size=32
    )  # 4 iters x 2 x 2 = one epoch
    cfg = SegConfig(**TINY_RUN, data_root=str(root), work_dir=str(tmp_path / "ddp"), workers=2, device="cpu")
    evaluations = []
    try:
        ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False)
        metrics = train_seg(cfg, callback=lambda m, ckpt, files: evaluations.append((m["iter"], ckpt)))
    finally:
        ray.shutdown()

    assert metrics["world_size"] == 2 and metrics["iters"] == 4 and 0 <= metrics["mIoU"] <= 100
    assert [it for it, _ in evaluations] == [2, 4] and all(ckpt for _, ckpt in evaluations)
    workers = [json.loads((tmp_path / "ddp" / f"worker{rank}.json").read_text()) for rank in (0, 1)]
    for rank, w in enumerate(workers):
        assert w["rank"] == rank and w["world_size"] == 2 and w["iters_run"] == 4 and w["distinct_images"]
    # each worker read its own shard of the training set ...
    assert not set(workers[0]["distinct_images"]) & set(workers[1]["distinct_images"])
    # ... and all-reduced gradients kept the two replicas identical
    assert workers[0]["param_checksum"] == pytest.approx(workers[1]["param_checksum"], rel=1e-9)
