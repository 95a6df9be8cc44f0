"""Data-parallel segmentation training across Ray Train workers (``SegConfig.workers > 1``).

Ray Train's ``TorchTrainer`` starts ``workers`` processes and sets up the torch process group
(NCCL on GPUs, gloo on CPU); each worker then runs the ordinary single-run code, ``run_seg``,
whose mmengine ``Runner`` sees the group, wraps the model in DistributedDataParallel, shards
the data with its samplers and uses SyncBN. Inside a Ray Tune trial the trainer runs on the
trial's cluster, so one trial can own 4 or 8 GPUs.

Each worker writes ``<work_dir>/worker<rank>.json`` (images it trained on, a checksum of its
final weights), which shows that every worker contributed and that they stayed in sync.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hambench.tasks import Callback
from hambench.tasks.seg.config import SegConfig
from hambench.tasks.seg.loop import run_seg


def _worker_loop(config: dict[str, Any]) -> None:
    """What every Ray Train worker runs."""
    import ray.train

    cfg = SegConfig(**config)
    history: list[dict[str, Any]] = []
    final = run_seg(cfg, lambda metrics, _checkpoint, _files: history.append(metrics), distributed=True)
    # Ray Train keeps reported metrics only together with a checkpoint: rank 0 reports its
    # results as a small checkpoint folder (the model checkpoints stay in the work dir);
    # every worker calls report, as Ray Train expects.
    if ray.train.get_context().get_world_rank() != 0:
        ray.train.report({"rank": ray.train.get_context().get_world_rank()})
        return
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "results.json").write_text(json.dumps({"final": final, "history": history}))
        ray.train.report({"mIoU": final["mIoU"]}, checkpoint=ray.train.Checkpoint.from_directory(folder))


def train_seg_ddp(cfg: SegConfig, callback: Callback | None = None) -> dict[str, Any]:
    """Train ``cfg`` on ``cfg.workers`` Ray Train workers and return rank 0's final metrics.

    ``callback`` is replayed on the driver after training, once per evaluation in order, with
    the checkpoint of that iteration when it is still on disk.
    """
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    use_gpu = cfg.resolved_device().type == "cuda"
    work_dir = Path(cfg.work_dir).resolve()
    started_ray = not ray.is_initialized()  # a Tune trial already runs inside Ray; the CLI starts a local one
    if started_ray:
        ray.init(num_cpus=cfg.workers + 1, include_dashboard=False, log_to_driver=True)
    worker_cfg = {**asdict(cfg), "work_dir": str(work_dir), "workers": 1, "crop": cfg.resolved_crop()}
    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config=worker_cfg,
        scaling_config=ScalingConfig(
            num_workers=cfg.workers,
            use_gpu=use_gpu,
            resources_per_worker={"GPU": 1, "CPU": 1} if use_gpu else {"CPU": 1},
        ),
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        run_config=RunConfig(storage_path=str(work_dir / "ray"), name="ddp"),
    )
    try:
        result = trainer.fit()  # raises ray.train.TrainingFailedError if a worker fails
        with result.checkpoint.as_directory() as folder:
            results = json.loads((Path(folder) / "results.json").read_text())
    finally:
        if started_ray:
            ray.shutdown()
    final = results["final"]
    for row in results["history"]:
        if callback is not None:
            checkpoint = work_dir / f"iter_{row['iter']}.pth"
            callback(row, str(checkpoint) if checkpoint.is_file() else None, ())
    final["world_size"] = cfg.workers
    return final
