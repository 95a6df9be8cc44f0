"""The Tune trainable (``run_trial``): one trial of a suite, in a Ray worker.

1. load the plugins and set torch's threads to the trial's CPUs;
2. if an earlier execution of this trial finished (a *done record* in the experiment directory),
   report its result again and stop: a resumed suite never runs a finished trial twice, even when
   Tune's own snapshot predates the driver being killed;
3. run the trial's task (``hambench.tasks``), every step reported through ``tune.report`` with a
   Tune checkpoint, restarting from ``tune.get_checkpoint()`` after a node died; a training task
   then measures the model it trained (``model_*`` columns);
4. an exception in the task marks the trial ``failed`` with its error; it is not retried (a bad
   option fails again). Retries (``FailureConfig``) are for dead nodes and workers;
5. a write that fails on a full, over-quota or read-only disk (the task's, its checkpoint's, the
   done record's) is no failure of the trial: it reports the fault (``DISK_FAULT``) and the
   driver's ``DiskWatch`` stops the run, the trial unfinished and resumable.

Latency is measured alone, in one of two ways the driver picks from the cluster's nodes:

- *device unit*: every node with CPUs carries one unit of the custom resource ``hambench_device``
  (the embedded Ray sets it; ``ray start --resources='{"hambench_device": 1}'`` on a cluster). A
  task that measures latency (``Task.alone_on_device``: profiling) takes the whole unit, a training
  trial a sliver, so a profiling trial never shares its node (and its device) with another trial.
- *whole node* (a cluster started without that resource): a profiling trial asks for every CPU of
  the largest node that can run it (``profile_cpus`` in the trial's config; and a GPU when it
  profiles on cuda). Only an idle node of that size can host it, and since every trial asks for
  CPUs, no other trial fits beside it while it measures.

Either way the trial's torch threads are its own ``resources.cpu``, so its numbers do not depend
on the mode. Each trial records when its task began and ended (``started_at``, ``ended_at``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.fs
import ray
from ray import tune

from hambench.device import resolve_device
from hambench.io import DiskFault, fault_line, full_disk, fullest
from hambench.nodes import node_label
from hambench.registry import load_plugins
from hambench.schema import MODEL_COST_COLUMNS
from hambench.tasks import Callback, Task, get_task, resolved_options
from hambench.trial import Trial, options_json

if TYPE_CHECKING:
    import torch

DEVICE_RESOURCE = "hambench_device"  # one unit per node; see the module docstring
TRAIN_SHARE = 0.01  # of DEVICE_RESOURCE held by a training trial (up to 100 per node)
PROFILE_CPUS = "profile_cpus"  # config key: whole-node mode's CPUs per profiling trial (None: device unit)
DISK_FAULT = "disk_fault"  # result key: the one line of a disk fault that stops the run (DiskWatch)


# --- done records: a finished trial's final result, kept in the experiment directory -----------


def write_done(done_uri: str, trial_id: str, result: dict[str, Any]) -> None:
    fs, root = pyarrow.fs.FileSystem.from_uri(done_uri)
    fs.create_dir(root, recursive=True)
    tmp = f"{root}/.{trial_id}.json.tmp"
    with fs.open_output_stream(tmp) as f:
        f.write(json.dumps(result, default=str).encode())
    fs.move(tmp, f"{root}/{trial_id}.json")  # atomic on a local or shared file system


def read_done(done_uri: str, trial_id: str) -> dict[str, Any] | None:
    fs, root = pyarrow.fs.FileSystem.from_uri(done_uri)
    path = f"{root}/{trial_id}.json"
    if fs.get_file_info(path).type != pyarrow.fs.FileType.File:
        return None
    with fs.open_input_stream(path) as f:
        return json.loads(f.read())


def local_folder(uri: str) -> Path | None:
    """The local folder a storage path or ``file://`` URI names; None for remote storage (s3://,
    gs://), decided from the scheme alone (opening an S3 file system may ask the network)."""
    if uri.startswith("file://"):
        return Path(uri.removeprefix("file://"))
    return None if "://" in uri else Path(uri)


def done_ids(done_uri: str) -> set[str]:
    """The trials with a done record."""
    fs, root = pyarrow.fs.FileSystem.from_uri(done_uri)
    if fs.get_file_info(root).type != pyarrow.fs.FileType.Directory:
        return set()
    infos = fs.get_file_info(pyarrow.fs.FileSelector(root))
    return {
        i.base_name.removesuffix(".json")
        for i in infos
        if i.base_name.endswith(".json") and not i.base_name.startswith(".")
    }


# --- what a trial's task gets ------------------------------------------------------------------


@dataclass
class TuneContext:
    """``hambench.tasks.TrialContext`` over Ray Tune: what the driver gives every trial, plus
    where it runs; a task reports and checkpoints through it (it never imports Tune)."""

    plugins: list[str]  # the driver's --plugin files, absolute
    done_uri: str  # where done records go (the experiment's ``done/``)
    data_roots: dict[str, str]  # data set -> the root the driver made ready
    where: dict[str, str] = field(default_factory=dict)  # node, device, device_name of this trial
    threads: int = 1  # torch threads: the trial's CPUs

    @property
    def device(self) -> str:
        return self.where["device"]

    def work_dir(self) -> Path:
        """The trial's own folder for its task's files, local to the node running it."""
        return Path(tune.get_context().get_trial_dir()) / "work"

    def report(self, metrics: dict[str, Any], state: dict[str, Any]) -> None:
        """``tune.report`` of a step (with the node and device running it) and a Tune checkpoint
        holding ``state`` as JSON plus the files it names (hard links where possible)."""
        with tempfile.TemporaryDirectory(prefix="hb-ckpt-") as tmp:
            Path(tmp, "state.json").write_text(json.dumps(state, default=str))
            for name, src in state.get("files", {}).items():  # e.g. the seg checkpoint itself
                os.link(src, Path(tmp, name)) if _same_fs(src, tmp) else shutil.copy(src, Path(tmp, name))
            tune.report({**metrics, **self.where, "status": "running"}, checkpoint=tune.Checkpoint.from_directory(tmp))

    def restore(self, into: Path | None = None) -> dict[str, Any] | None:
        """The state saved with the trial's last Tune checkpoint (files copied ``into``), or None."""
        checkpoint = tune.get_checkpoint()
        if checkpoint is None:
            return None
        with checkpoint.as_directory() as d:
            state = json.loads(Path(d, "state.json").read_text())
            if into is not None:
                into.mkdir(parents=True, exist_ok=True)
                for name in state.get("files", {}):
                    shutil.copy(Path(d, name), into / name)
                    state["files"][name] = str(into / name)
        return state

    def callback(self) -> Callback:
        """A training task's callback: every evaluation becomes a Tune report with the task's
        checkpoint file and its ``artifacts`` (files the report shows, e.g. a GAN's sample grid):
        Tune keeps a checkpoint in the run's storage, where a trial's work folder may not be."""

        def callback(metrics: dict[str, Any], checkpoint_path: str | None, artifacts: Sequence[str] = ()) -> None:
            flat = _scalars(metrics)
            state: dict[str, Any] = {"metrics": flat}
            files = {Path(p).name: str(p) for p in artifacts if Path(p).is_file()}
            if checkpoint_path:
                files[Path(checkpoint_path).name] = str(checkpoint_path)
                state["checkpoint"] = Path(checkpoint_path).name
            if files:
                state["files"] = files
            self.report(flat, state)

        return callback


def _same_fs(a: str, b: str) -> bool:
    return os.stat(a).st_dev == os.stat(b).st_dev


def _scalars(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool)) or v is None}


def _node_name() -> str:
    """hostname plus Ray's node id: nodes of one machine (tests, ``Cluster``) stay distinct."""
    import socket

    return node_label(socket.gethostname(), ray.get_runtime_context().get_node_id())


def _train_device(trial: Trial) -> torch.device:
    """The device a training trial holds: the GPU Ray gave it, else the CPU."""
    return resolve_device("cuda" if trial.resources.gpu > 0 else "cpu")


# --- a training task: config, train, then the trained model's own cost ------------------------


def _train(task: Task, trial: Trial, ctx: TuneContext) -> dict[str, Any]:
    config_for, train, model = task.config_for, task.train, task.model
    assert config_for is not None and train is not None and model is not None  # a training task (Task checks)
    cfg = config_for(trial, ctx)
    final = train(cfg, callback=ctx.callback())
    final.update(_model_cost(trial, lambda device: model(cfg, device)))
    return _scalars(final)


# Measured here, after training, on the trial's device and threads, with the profiler's conventions
# (hambench.profiling.model_cost): the x of the report's accuracy fronts. The architecture the trial
# trained is rebuilt from its config (``Task.model``): weights change no count, no allocation and no
# op the latency depends on, and rebuilding keeps the task's training loop free of measurement code.


def _model_cost(trial: Trial, build: Callable[[Any], tuple[Any, Any, int | None, str | None]]) -> dict[str, Any]:
    """The ``model_*`` columns of a training trial, and what measuring them took. A failure leaves
    them empty with its reason in ``model_cost_error``: the accuracy the trial paid for still counts."""
    import torch

    from hambench.profiling import model_cost

    start = time.perf_counter()
    torch.set_num_threads(max(1, int(trial.resources.cpu)))  # the trial's threads (the task may have set others)
    device = _train_device(trial)
    try:
        model, x, params, shape = build(device)
        cols = {**model_cost(model, x, device=device, params=params, shape=shape), "model_cost_error": ""}
    except Exception as exc:
        cols = {c: None for c in MODEL_COST_COLUMNS} | {"model_cost_error": f"{type(exc).__name__}: {exc}"}
    cols["model_cost_seconds"] = round(time.perf_counter() - start, 3)
    return cols


# --- the trainable ------------------------------------------------------------------------------


def run_trial(config: dict[str, Any]) -> None:
    """The Tune trainable: one trial of a suite (see the module docstring for the steps)."""
    import torch

    from hambench.profiling import device_name

    trial = Trial.model_validate(config["trial"])
    if trial.resources.gpu == 0:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # a CPU trial must not touch a GPU another trial holds
    load_plugins(config["plugins"])  # the driver's --plugin files: their modules (and tasks) exist here too
    torch.set_num_threads(max(1, int(trial.resources.cpu)))

    done = read_done(config["done_uri"], trial.trial_id)
    if done is not None:  # this trial finished before the driver was interrupted
        tune.report(done)
        return

    start, started_at = time.perf_counter(), time.time()
    device = resolve_device(trial.profile.device) if trial.profile is not None else _train_device(trial)
    where = {"node": _node_name(), "device": str(device), "device_name": device_name(device)}
    ctx = TuneContext(
        plugins=list(config["plugins"]),
        done_uri=config["done_uri"],
        data_roots=dict(config["data_roots"]),
        where=where,
        threads=max(1, int(trial.resources.cpu)),
    )
    try:
        resolved = {"resolved_options": options_json(resolved_options(trial))}
    except Exception:  # a bad option: the task raises on it below and records why
        resolved = {}
    try:
        task = get_task(trial.task)
        result = task.run(trial, ctx) if task.run is not None else _train(task, trial, ctx)
        final = {**where, **resolved, **result, "status": "ok", "error": ""}
    except Exception as exc:  # the trial failed on its own (bad option, OOM, NaN): record, go on
        _stop_on_disk_fault(exc, ctx)
        tb = "".join(traceback.format_exception(exc)[-6:])
        final = {**where, **resolved, "status": "failed", "error": f"{type(exc).__name__}: {exc}\n{tb}"}
    final["seconds"] = time.perf_counter() - start
    final["started_at"], final["ended_at"] = started_at, time.time()
    final["done"] = True
    try:
        write_done(config["done_uri"], trial.trial_id, final)
    except Exception as exc:
        _stop_on_disk_fault(exc, ctx, writing=f"{config['done_uri']}/{trial.trial_id}.json")
        raise
    tune.report(final)


def _stop_on_disk_fault(exc: Exception, ctx: TuneContext, writing: str | None = None) -> None:
    """Return if ``exc`` is not a disk's fault; else report the fault's line (``DiskWatch`` stops
    the run on it) and raise it: the trial writes no done record and stays unfinished. ``writing``:
    the file the trial was writing, if known; else the fullest of its work folder and the
    experiment folder its checkpoints go to. A failure without an errno counts when one of those
    has no space left."""
    storage = local_folder(ctx.done_uri)
    folders = [ctx.work_dir(), *([storage.parent] if storage is not None else [])]
    line = fault_line(exc, writing or fullest(folders)) or full_disk(folders)
    if line is None:
        return
    tune.report({**ctx.where, DISK_FAULT: line, "status": "running"})
    raise DiskFault(line) from exc


class DiskWatch(tune.Callback):
    """On the driver: a trial's disk fault (``DISK_FAULT``) stops the run. Raising here ends
    Tune's loop at once; the trials running then resume from their last checkpoint, every
    finished one is in its done record, and the driver says the fault in one line."""

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        if result.get(DISK_FAULT):
            raise DiskFault(result[DISK_FAULT])


def trial_resources(config: dict[str, Any]) -> dict[str, float]:
    """Ray resources of one trial: its CPUs/GPUs and its share of the node's device unit, or (in
    whole-node mode, ``config["profile_cpus"]`` set) a profiling trial's whole node."""
    trial = Trial.model_validate(config["trial"])
    alone = get_task(trial.task).alone_on_device
    resources = {"CPU": trial.resources.cpu, "GPU": trial.resources.gpu}
    whole_node = config.get(PROFILE_CPUS)
    if whole_node is None:
        return {**resources, DEVICE_RESOURCE: 1.0 if alone else TRAIN_SHARE}
    if alone:
        resources["CPU"] = max(float(whole_node), trial.resources.cpu)
        if trial.profile is not None and trial.profile.device.startswith("cuda"):
            resources["GPU"] = max(1.0, trial.resources.gpu)  # the node's GPU it measures on
    return resources
