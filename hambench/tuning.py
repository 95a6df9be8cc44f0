"""Run a suite on Ray Tune: one Tune trial per expanded grid point.

The driver (``run_suite``) expands the suite, prepares the data once, starts Ray (embedded, or
joins ``--address``), runs a ``Tuner`` (or ``Tuner.restore`` on ``--resume``) and finally writes the
run directory ``<out>/<suite>/<run-id>/``: ``results.parquet`` (one row per trial),
``summary.csv`` (n, mean, 95 % interval and rank per configuration: ``hambench.stats.summarize``),
``profile.parquet``, ``history.parquet``, ``suite.yaml``, ``meta.json`` and ``report.html``.

Inside a trial (``run_trial``):

1. load the plugins and set torch's threads to the trial's CPUs;
2. if an earlier execution of this trial finished (a *done record* in the experiment directory),
   report its result again and stop: a resumed suite never runs a finished trial twice, even when
   Tune's own snapshot predates the driver being killed;
3. run the task (profile / seg / gan), reporting every step through ``tune.report`` with a Tune
   checkpoint, and restarting from ``tune.get_checkpoint()`` after a node died;
4. an exception in the task marks the trial ``failed`` with its error; it is not retried (a bad
   option fails again). Retries (``FailureConfig``) are for dead nodes and workers.

Latency is measured alone: every node carries one unit of the custom resource ``hambench_device``;
a profiling trial takes the whole unit, a training trial a sliver, so a profiling trial never
shares its node (and its device) with another trial.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
import shutil
import socket
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import pyarrow.fs
import ray
from ray import tune

from hambench.axes import MODEL_COST_COLUMNS
from hambench.io import atomic_write, atomic_write_json, atomic_write_text
from hambench.registry import load_plugin
from hambench.stats import ACCURACY_METRICS, MAXIMIZE, summarize
from hambench.suite import (
    Suite, Trial, expand, load_suite, references_path, resolve_suite_path, smoke, suite_to_yaml,
)

DEVICE_RESOURCE = "hambench_device"  # one unit per node; see the module docstring
TRAIN_SHARE = 0.01  # of DEVICE_RESOURCE held by a training trial (up to 100 per node)
COST_COLUMNS = [
    "params", "macs_fvcore", "macs_torchprofile", "flops_torch", "latency_ms", "latency_iqr_ms",
    "peak_mem_bytes", "profile_shape",
]
# The accuracy columns each task writes; which way is better (MAXIMIZE) lives in hambench.stats too.
ACCURACY_COLUMNS = {task: list(metrics) for task, metrics in ACCURACY_METRICS.items()}


class SuiteRunError(RuntimeError):
    """The suite cannot run as asked (no Ray cluster, nothing to resume, missing resource)."""


@dataclass
class RunOptions:
    """``hambench run suite`` options (see ``hambench run suite --help``)."""

    address: str | None = None  # None: start Ray here; "auto" or HOST:PORT: join that cluster
    storage: str | None = None  # Tune's storage (DIR or s3://...); default: the run directory
    out: Path = Path("runs")
    resume: bool = False
    run_id: str | None = None  # default: a new timestamp, or the newest run when resuming
    smoke: bool = False
    max_concurrent: int | None = None
    only: list[str] | None = None
    data_root: str | None = None
    plugins: list[str] = field(default_factory=list)
    num_cpus: int | None = None  # CPUs of the embedded Ray (default: all of this machine)
    report: bool = True
    progress: bool = True


# --- small helpers ----------------------------------------------------------------------------


def _write_parquet(path: Path, df: pd.DataFrame) -> None:
    atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))


def write_summary(run_dir: Path, results: pd.DataFrame) -> Path:
    """``summary.csv``: ``hambench.stats.summarize`` of the results table (n, mean, 95 % interval,
    rank with ties, costs per configuration), written atomically; the report computes the same."""
    summary = summarize(results)
    return atomic_write(run_dir / "summary.csv", lambda tmp: summary.to_csv(tmp, index=False))


def _node_name() -> str:
    """hostname plus Ray's node id: nodes of one machine (tests, ``Cluster``) stay distinct."""
    return f"{socket.gethostname()}:{ray.get_runtime_context().get_node_id()[:8]}"


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


def done_ids(done_uri: str) -> set[str]:
    """The trials with a done record."""
    fs, root = pyarrow.fs.FileSystem.from_uri(done_uri)
    if fs.get_file_info(root).type != pyarrow.fs.FileType.Directory:
        return set()
    infos = fs.get_file_info(pyarrow.fs.FileSelector(root))
    return {i.base_name.removesuffix(".json") for i in infos if i.base_name.endswith(".json") and not i.base_name.startswith(".")}


# --- the trainable -----------------------------------------------------------------------------


def _report(metrics: dict[str, Any], state: dict[str, Any], where: dict[str, str]) -> None:
    """``tune.report`` of a step (with the node and device running it) and a Tune checkpoint
    holding ``state`` as JSON plus the files it names (hard links where possible)."""
    with tempfile.TemporaryDirectory(prefix="hb-ckpt-") as tmp:
        Path(tmp, "state.json").write_text(json.dumps(state, default=str))
        for name, src in state.get("files", {}).items():  # e.g. the seg checkpoint itself
            os.link(src, Path(tmp, name)) if _same_fs(src, tmp) else shutil.copy(src, Path(tmp, name))
        tune.report({**metrics, **where, "status": "running"}, checkpoint=tune.Checkpoint.from_directory(tmp))


def _same_fs(a: str, b: str) -> bool:
    return os.stat(a).st_dev == os.stat(b).st_dev


def _restore(into: Path | None = None) -> dict[str, Any] | None:
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


def _profile_row_columns(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: row.get(k) for k in COST_COLUMNS if k != "profile_shape"}
    out["profile_shape"] = row.get("shape")
    return out


def _run_profile(trial: Trial, ctx: dict[str, Any]) -> dict[str, Any]:
    """Module cost at the suite's shape, then one step per n-sweep size (as ``profile_sweep`` does,
    but a Tune checkpoint after each step, so a retried trial skips the sizes it has measured)."""
    from hambench.profiling import profile_module
    from hambench.scaling import fit_columns, fit_sweep

    spec = trial.profile
    assert spec is not None
    b, c, h, w = spec.shape
    shapes = [(b, c, h, w)] + [(b, c, s, s) for s in spec.sweep]
    state = _restore() or {"rows": []}
    rows: list[dict[str, Any]] = state["rows"]
    for step in range(len(rows), len(shapes)):
        row = profile_module(
            trial.module, shape=shapes[step], device=spec.device, dtype=spec.dtype, mode=spec.mode,
            options=dict(trial.options), max_time=spec.max_time, sdpa_backend=spec.sdpa_backend,
        )
        row["sweep_size"] = None if step == 0 else spec.sweep[step - 1]
        rows.append(row)
        _report({"iter": step + 1, **_profile_row_columns(row)}, {"rows": rows}, ctx["where"])
    sweep = rows[1:]
    if len({r["sweep_size"] for r in sweep}) >= 2:
        exponents = fit_columns(fit_sweep({**r, "n": r["sweep_size"] ** 2} for r in sweep))  # as profile_sweep
        for r in sweep:
            r.update(exponents)
    main = rows[0]
    return {
        "iter": len(rows), **_profile_row_columns(main), "device": main["device"],
        "device_name": main["device_name"], "profile_rows": json.dumps(rows, default=str),
    }


def _train_device(trial: Trial) -> str:
    return "cuda" if trial.resources.gpu > 0 else "cpu"


def _checkpoint_callback(where: dict[str, str]) -> Callable[[dict[str, Any], str | None], None]:
    """The task callback: every evaluation becomes a Tune report with the task's checkpoint file."""

    def callback(metrics: dict[str, Any], checkpoint_path: str | None) -> None:
        flat = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool)) or v is None}
        state: dict[str, Any] = {"metrics": flat}
        if checkpoint_path:
            state["files"] = {Path(checkpoint_path).name: str(checkpoint_path)}
            state["checkpoint"] = Path(checkpoint_path).name
        _report(flat, state, where)

    return callback


def _task_config(cls: type, values: dict[str, Any]) -> Any:
    """The task's config dataclass; a value of None keeps the task's default (e.g. its lr)."""
    return cls(**{k: v for k, v in values.items() if v is not None})


def _run_seg(trial: Trial, ctx: dict[str, Any]) -> dict[str, Any]:
    from hambench.tasks.seg import SegConfig, train_seg

    budget = trial.budget
    assert budget is not None
    work_dir = Path(tune.get_context().get_trial_dir()) / "work"  # local to the node running it
    state = _restore(into=work_dir)
    if state is not None and "checkpoint" in state:  # mmengine resumes from work_dir/last_checkpoint
        (work_dir / "last_checkpoint").write_text(state["files"][state["checkpoint"]])
    cfg = _task_config(SegConfig, dict(
        context=trial.module, context_opts=dict(trial.options), backbone=trial.backbone, head=trial.head,
        data=trial.data, data_root=ctx["data_roots"].get(trial.data), iters=budget.iters, batch=budget.batch,
        crop=tuple(budget.crop), work_dir=str(work_dir), resume=state is not None, seed=trial.seed,
        eval_interval=budget.eval_interval, lr=budget.lr, device=_train_device(trial), workers=1,
        pretrained=trial.pretrained, threads=max(1, int(trial.resources.cpu)), plugins=list(ctx["plugins"]),
    ) | trial.task_options)
    final = train_seg(cfg, callback=_checkpoint_callback(ctx["where"]))
    final.update(_model_cost(trial, lambda device: _seg_model(cfg, device)))
    return {k: v for k, v in final.items() if isinstance(v, (int, float, str, bool)) or v is None}


def _run_gan(trial: Trial, ctx: dict[str, Any]) -> dict[str, Any]:
    from hambench.tasks.gan import GanConfig, train_gan

    budget = trial.budget
    assert budget is not None
    work_dir = Path(tune.get_context().get_trial_dir()) / "work"  # local to the node running it
    state = _restore(into=work_dir)
    cfg = _task_config(GanConfig, dict(
        context=trial.module, context_opts=dict(trial.options), data=trial.data,
        data_root=ctx["data_roots"].get(trial.data), res=budget.res, iters=budget.iters, batch=budget.batch,
        eval_interval=budget.eval_interval, work_dir=str(work_dir), resume=state is not None, seed=trial.seed,
        device=_train_device(trial),
    ) | trial.task_options)
    final = train_gan(cfg, callback=_checkpoint_callback(ctx["where"]))
    final.update(_model_cost(trial, lambda device: _generator(cfg, device)))
    return {k: v for k, v in final.items() if isinstance(v, (int, float, str, bool)) or v is None}


# --- the trained model's own cost --------------------------------------------------------------
# Measured here, after training, on the trial's device and threads, with the profiler's conventions
# (hambench.profiling.model_cost): the x of the report's accuracy fronts. The architecture the trial
# trained is rebuilt from its config: weights change no count, no allocation and no op the latency
# depends on, and rebuilding keeps the task's training loop free of measurement code.


def _model_cost(trial: Trial, build: Callable[[Any], tuple[Any, Any, int | None, str | None]]) -> dict[str, Any]:
    """The ``model_*`` columns of a training trial, and what measuring them took. A failure leaves
    them empty with its reason in ``model_cost_error``: the accuracy the trial paid for still counts."""
    import torch

    from hambench.profiling import model_cost

    start = time.perf_counter()
    torch.set_num_threads(max(1, int(trial.resources.cpu)))  # the trial's threads (the task may have set others)
    device = torch.device(_train_device(trial))
    try:
        model, x, params, shape = build(device)
        cols = {**model_cost(model, x, device=device, params=params, shape=shape), "model_cost_error": ""}
    except Exception as exc:
        cols = {c: None for c in MODEL_COST_COLUMNS} | {"model_cost_error": f"{type(exc).__name__}: {exc}"}
    cols["model_cost_seconds"] = round(time.perf_counter() - start, 3)
    return cols


def _seg_model(cfg: Any, device: Any) -> tuple[Any, Any, int, str | None]:
    """The trial's segmentor on its inference path (backbone, decode head, logits resized to the
    input) and one image at the training crop; params count the auxiliary head, as published tables do."""
    import torch

    from hambench.data import dataset_spec
    from hambench.models.presets import InferencePath
    from hambench.models.segmentor import build_segmentor
    from hambench.profiling import count_params

    norm = "BN" if cfg.norm in (None, "SyncBN") else cfg.norm  # SyncBN needs a process group; same cost as BN
    segmentor = build_segmentor(cfg.backbone, cfg.context, context_cfg=cfg.context_opts,
                                num_classes=dataset_spec(cfg.data).num_classes, head=cfg.head,
                                aux_head=cfg.aux_head, norm=norm)
    params = count_params(segmentor)
    x = torch.randn(1, 3, *cfg.resolved_crop(), generator=torch.Generator().manual_seed(0))
    return InferencePath(segmentor).to(device), x.to(device), params, None


def _generator(cfg: Any, device: Any) -> tuple[Any, Any, None, str]:
    """The trial's generator from one noise vector and a fixed class to one image at its output size."""
    import torch

    from hambench.profiling import WithFixedInputs
    from hambench.tasks.gan_models import Generator, default_context_res

    G = Generator(cfg.res, _gan_classes(cfg), z_dim=cfg.z_dim, ch=cfg.ch, context=cfg.context,
                  context_res=cfg.context_res or default_context_res(cfg.res), context_opts=cfg.context_opts)
    z = torch.randn(1, cfg.z_dim, generator=torch.Generator().manual_seed(0))
    label = torch.zeros(1, dtype=torch.long)  # the class only picks rows of the embeddings: any costs the same
    return WithFixedInputs(G, label).to(device), z.to(device), None, f"1x3x{cfg.res}x{cfg.res}"


def _gan_classes(cfg: Any) -> int:
    """Classes of the trial's data set, as train_gan's data set has them (without reading its images)."""
    if cfg.data == "synthetic-shapes":
        from hambench.data.synthetic_shapes import SyntheticShapes

        return len(SyntheticShapes.classes)
    from torchvision.datasets.folder import find_classes  # what ImageFolder lists: the class folders

    return len(find_classes(cfg.data_root)[0])


TASKS: dict[str, Callable[[Trial, dict[str, Any]], dict[str, Any]]] = {
    "profile": _run_profile,
    "seg": _run_seg,
    "gan": _run_gan,
}


def module_width(trial: Trial) -> int | None:
    """The width (channels) the trial builds its context module at: the profile shape's C, or the
    seg backbone's head width. None for a GAN, which builds it twice (in G and in D, two widths)."""
    if trial.task == "profile":
        assert trial.profile is not None
        return trial.profile.shape[1]
    if trial.task == "seg":
        from hambench.models.segmentor import get_backbone

        return get_backbone(trial.backbone).head_channels
    return None


def resolved_options(trial: Trial) -> dict[str, Any]:
    """The options the module is really built with (defaults filled in, widths derived from the
    module's width), as ``hambench.registry.resolve_options`` computes them; the given options
    where the width is not one number (gan)."""
    from hambench.registry import resolve_options

    width = module_width(trial)
    return dict(trial.options) if width is None else resolve_options(trial.module, width, **trial.options)


def _options_json(options: dict[str, Any]) -> str:
    return json.dumps(options, sort_keys=True, default=str)


def run_trial(config: dict[str, Any]) -> None:
    """The Tune trainable: one trial of a suite (see the module docstring for the steps)."""
    import torch

    from hambench.profiling import device_name

    trial = Trial.model_validate(config["trial"])
    if trial.resources.gpu == 0:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # a CPU trial must not touch a GPU another trial holds
    for plugin in config["plugins"]:
        load_plugin(plugin)  # the driver's --plugin files, so the trial process knows their modules
    torch.set_num_threads(max(1, int(trial.resources.cpu)))

    done = read_done(config["done_uri"], trial.trial_id)
    if done is not None:  # this trial finished before the driver was interrupted
        tune.report(done)
        return

    start = time.perf_counter()
    device = trial.profile.device if trial.profile is not None else _train_device(trial)
    where = {"node": _node_name(), "device": device, "device_name": device_name(torch.device(device))}
    try:
        resolved = {"resolved_options": _options_json(resolved_options(trial))}
    except Exception:  # a bad option: the task raises on it below and records why
        resolved = {}
    try:
        final = {**where, **resolved, **TASKS[trial.task](trial, {**config, "where": where}), "status": "ok", "error": ""}
    except Exception as exc:  # the trial failed on its own (bad option, OOM, NaN): record, go on
        tb = "".join(traceback.format_exception(exc)[-6:])
        final = {**where, **resolved, "status": "failed", "error": f"{type(exc).__name__}: {exc}\n{tb}"}
    final["seconds"] = time.perf_counter() - start
    final["done"] = True
    write_done(config["done_uri"], trial.trial_id, final)
    tune.report(final)


def trial_resources(config: dict[str, Any]) -> dict[str, float]:
    """Ray resources of one trial: its CPUs/GPUs and its share of the node's device lock."""
    trial = Trial.model_validate(config["trial"])
    share = 1.0 if trial.task == "profile" else TRAIN_SHARE
    return {"CPU": trial.resources.cpu, "GPU": trial.resources.gpu, DEVICE_RESOURCE: share}


# --- live progress -----------------------------------------------------------------------------


class Progress(tune.Callback):
    """Live progress on the driver: trials done / running / pending / failed, the best value per
    metric, elapsed and estimated remaining time. One line per change."""

    def __init__(self, trials: list[Trial], metrics: list[str], done_uri: str, enabled: bool = True) -> None:
        self.metrics, self.done_uri, self.enabled = metrics, done_uri, enabled
        self.task_of = {t.trial_id: t.task for t in trials}
        self.finished: set[str] = set()  # our trial ids
        self.failed = 0
        self.running: dict[str, tuple[str, float]] = {}  # Tune trial id -> (task, start time)
        self.durations: dict[str, list[float]] = {"profile": [], "seg": [], "gan": []}
        self.slots = 1  # most trials seen running at once
        self.best: dict[str, tuple[float, str]] = {}
        self.start = time.time()
        self.last_line = ""

    def setup(self, **info: Any) -> None:
        """At the start of a run or of a resumed one (Tune restores this callback from its pickle)."""
        self.start = time.time()
        self.finished = done_ids(self.done_uri) & set(self.task_of)
        self.running.clear()

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.running[trial.trial_id] = (trial.config["trial"]["task"], time.time())
        self.slots = max(self.slots, len(self.running))
        self.show()

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self.observe(result, trial.config["trial"]["module"], trial.config["trial"]["family"])

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.finish(trial, failed=(trial.last_result or {}).get("status") == "failed")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.finish(trial, failed=True)

    def observe(self, result: dict[str, Any], module: str, family: str) -> None:
        if result.get("sweep_size") is not None:
            return  # an n-sweep step: its costs are at another size than the suite's shape
        for m in self.metrics:
            value = result.get(m)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                continue
            if family == "none" and m not in MAXIMIZE:
                continue  # the no-context baseline is always cheapest: not news
            best = self.best.get(m, (None,))[0]
            if best is None or (value > best if m in MAXIMIZE else value < best):
                self.best[m] = (float(value), module)

    def finish(self, trial: Any, failed: bool) -> None:
        task, started = self.running.pop(trial.trial_id, (None, None))
        if started is not None:
            self.durations[task].append(time.time() - started)
        self.finished.add(trial.config["trial"]["trial_id"])
        self.failed += failed
        self.show()

    def eta(self) -> float | None:
        """Remaining trials x the mean duration of their task, spread over the parallel slots."""
        now, work = time.time(), 0.0
        for task in self.durations:
            left = sum(t == task and i not in self.finished for i, t in self.task_of.items())
            if not left:
                continue
            seen = self.durations[task] or [now - s for t, s in self.running.values() if t == task]
            if not seen:
                return None
            work += left * sum(seen) / len(seen)
        return work / self.slots

    def line(self) -> str:
        elapsed, total, done = time.time() - self.start, len(self.task_of), len(self.finished)
        pending = max(0, total - done - len(self.running))
        eta = self.eta()
        best = ", ".join(f"{m} {v:.4g} ({mod})" for m, (v, mod) in self.best.items())
        return (
            f"[{elapsed:6.0f}s] done {done}/{total} (failed {self.failed}) | running {len(self.running)}"
            f" | pending {pending} | eta {'?' if eta is None else f'{eta:.0f}s'}" + (f" | best: {best}" if best else "")
        )

    def show(self) -> None:
        line = self.line()
        if self.enabled and line != self.last_line:
            print(line, file=sys.stderr, flush=True)
            self.last_line = line


# --- results tables ----------------------------------------------------------------------------


def _trial_row(suite: Suite, run_id: str, trial: Trial, metrics: dict[str, Any], error: Any) -> dict[str, Any]:
    status = metrics.get("status")
    if error is not None or status != "ok":
        status = "failed"
    err = metrics.get("error") or ""
    if error is not None:  # Tune-level failure: the trial's process or node died beyond its retries
        err = f"{type(error).__name__}: {error}"
    given = _options_json(trial.options)
    row = {
        "suite": suite.name, "run_id": run_id, "trial_id": trial.trial_id, "task": trial.task,
        "module": trial.module, "family": trial.family, "backbone": trial.backbone, "head": trial.head,
        "data": trial.data, "seed": trial.seed,
        # What the module was built with (a done record from before resolved options: as given).
        "options": metrics.get("resolved_options") or given, "options_given": given,
        "iters": metrics.get("iters", metrics.get("iter")), "status": status, "error": err,
        "node": metrics.get("node"), "device": metrics.get("device"), "device_name": metrics.get("device_name"),
        "seconds": metrics.get("seconds"),
    }
    for col in COST_COLUMNS:
        row[col] = metrics.get(col)
    for col in ACCURACY_COLUMNS[trial.task]:
        row[col] = metrics.get(col)
    if trial.task != "profile":  # the trained model's own cost, measured in the trial (_model_cost)
        for col in MODEL_COST_COLUMNS:
            row[col] = metrics.get(col)
    return row


def _profile_rows(trial: Trial, metrics: dict[str, Any]) -> list[dict[str, Any]]:
    rows = json.loads(metrics.get("profile_rows") or "[]")
    given = _options_json(trial.options)
    for r in rows:
        r.update(trial_id=trial.trial_id, node=metrics.get("node"), options=metrics.get("resolved_options") or given,
                 options_given=given)
        r["uncounted_ops"] = json.dumps(r.get("uncounted_ops") or [])
    return rows


def _history_rows(trial: Trial, df: pd.DataFrame | None) -> pd.DataFrame:
    if df is None or df.empty or "iter" not in df.columns:
        return pd.DataFrame()
    keep = [c for c in df.columns if c == "iter" or (pd.api.types.is_numeric_dtype(df[c]) and c not in _TUNE_COLUMNS)]
    out = df[keep].dropna(subset=["iter"]).copy()
    out.insert(0, "trial_id", trial.trial_id)
    # After a retry from a checkpoint the steps since that checkpoint are reported again: keep the last.
    return out.drop_duplicates(subset=["trial_id", "iter"], keep="last")


_TUNE_COLUMNS = {
    "timestamp", "time_this_iter_s", "time_total_s", "pid", "training_iteration", "time_since_restore",
    "iterations_since_restore", "checkpoint_dir_name", "done",
}


def collect_tables(suite: Suite, run_id: str, results: Any) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """results, profile and history tables from a Tune ``ResultGrid``; each trial appears once."""
    rows, profile, history = {}, [], []
    for result in results:
        trial = Trial.model_validate(result.config["trial"])
        metrics = result.metrics or {}
        rows[trial.trial_id] = _trial_row(suite, run_id, trial, metrics, result.error)
        if trial.task == "profile":
            profile.extend(_profile_rows(trial, metrics))
        history.append(_history_rows(trial, result.metrics_dataframe))
    table = pd.DataFrame(list(rows.values()))
    prof = pd.DataFrame(profile)
    # Training rows carry their module's cost, measured by the profiling trial of the same options
    # as the suite gave them: the resolved ones differ (a seg head is wider than the profile shape).
    if not table.empty and (table["task"] == "profile").any():
        cost = table[table["task"] == "profile"].set_index(["module", "options_given"])[COST_COLUMNS]
        train = table["task"] != "profile"
        for i in table.index[train]:
            key = (table.at[i, "module"], table.at[i, "options_given"])
            if key in cost.index:
                for col in COST_COLUMNS:
                    table.at[i, col] = cost.at[key, col]
    table = table.sort_values(["task", "trial_id"], key=lambda s: s.map(_task_order) if s.name == "task" else s)
    hist = pd.concat([h for h in history if not h.empty], ignore_index=True) if any(not h.empty for h in history) else pd.DataFrame(columns=["trial_id", "iter"])
    return table.reset_index(drop=True), prof, hist


def _task_order(task: str) -> int:
    return ["profile", "seg", "gan"].index(task)


# --- the driver --------------------------------------------------------------------------------


def _versions() -> dict[str, str]:
    import torch

    import hambench

    return {"hambench": getattr(hambench, "__version__", "?"), "torch": torch.__version__, "ray": ray.__version__,
            "python": platform.python_version()}


def _nodes() -> list[dict[str, Any]]:
    return [
        {"node": f"{n['NodeManagerHostname']}:{n['NodeID'][:8]}", "hostname": n["NodeManagerHostname"],
         "cpus": n["Resources"].get("CPU", 0), "gpus": n["Resources"].get("GPU", 0)}
        for n in ray.nodes() if n.get("Alive")
    ]


def _run_dir(suite: Suite, opts: RunOptions) -> Path:
    base = Path(opts.out).resolve() / suite.name
    if opts.resume:
        if opts.run_id:
            run_dir = base / opts.run_id
        else:
            runs = sorted(p for p in base.glob("*") if (p / "meta.json").is_file()) if base.is_dir() else []
            if not runs:
                raise SuiteRunError(f"--resume: no earlier run of suite {suite.name!r} under {base}")
            run_dir = runs[-1]
        if not (run_dir / "meta.json").is_file():
            raise SuiteRunError(f"--resume: {run_dir} is not a run directory (no meta.json)")
        return run_dir
    run_id = opts.run_id or dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = base / run_id
    if (run_dir / "meta.json").exists():
        raise SuiteRunError(f"{run_dir} exists; pass --resume to continue it or choose another --run-id")
    return run_dir


def _prepare_data(trials: list[Trial], opts: RunOptions, run_dir: Path) -> dict[str, str]:
    """A ready data root per data set, made (or checked) once on the driver; trials read it."""
    tasks = {t.data: t.task for t in trials if t.task != "profile"}
    roots = {name: _data_root(name, task, opts, run_dir / "data" / name) for name, task in sorted(tasks.items())}
    return {name: str(root) for name, root in roots.items() if root is not None}


def _data_root(name: str, task: str, opts: RunOptions, fixture_dir: Path) -> Path | None:
    if task == "gan":
        if name == "synthetic-shapes":
            return None  # rendered in memory
        if opts.smoke:
            from hambench.data.image_folder import make_image_folder_fixture

            return make_image_folder_fixture(fixture_dir)
        if opts.data_root is None:
            raise SuiteRunError(f"data {name!r} needs --data-root DIR (one folder of images per class)")
        return Path(opts.data_root)
    from hambench.data import make_fixture, prepare_data

    if opts.smoke and name != "synthetic-context":
        # A tiny generated set in the real set's layout: the whole path runs without the data set.
        return make_fixture(name, fixture_dir, n_train=4, n_val=2, size=64, seed=0)
    return prepare_data(name, None if name == "synthetic-context" else opts.data_root, seed=0)


def _check_task_options(trials: list[Trial]) -> None:
    """Unknown ``task_options`` fail before anything runs, with the valid field names."""
    import dataclasses

    for task in {t.task for t in trials if t.task_options}:
        if task == "seg":
            from hambench.tasks.seg import SegConfig as cls
        else:
            from hambench.tasks.gan import GanConfig as cls
        fields = {f.name for f in dataclasses.fields(cls)}
        for t in trials:
            unknown = sorted(set(t.task_options) - fields) if t.task == task else []
            if unknown:
                raise SuiteRunError(f"task_options {', '.join(unknown)}: not fields of {cls.__name__} ({', '.join(sorted(fields))})")


def _init_ray(opts: RunOptions, ray_tmp: str) -> None:
    if opts.address:
        ray.init(address=opts.address, log_to_driver=False)
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        lacking = [n for n in nodes if n["Resources"].get("CPU", 0) > 0 and n["Resources"].get(DEVICE_RESOURCE, 0) < 1]
        hint = f"start each node with `ray start ... --resources='{{\"{DEVICE_RESOURCE}\": 1}}'`"
        if len(lacking) == len([n for n in nodes if n["Resources"].get("CPU", 0) > 0]):
            raise SuiteRunError(f"no node of the cluster has the {DEVICE_RESOURCE!r} resource that keeps profiling trials alone on their device; {hint}")
        for n in lacking:
            print(f"hambench: node {n['NodeManagerHostname']}:{n['NodeID'][:8]} lacks {DEVICE_RESOURCE!r} and will run no trial; {hint}", file=sys.stderr)
        return
    ray.init(
        num_cpus=opts.num_cpus or os.cpu_count(), resources={DEVICE_RESOURCE: 1},
        object_store_memory=200 * 1024**2, include_dashboard=False, _temp_dir=ray_tmp,
        log_to_driver=False, configure_logging=False,
    )


def run_suite(name_or_path: str | Path, opts: RunOptions | None = None) -> Path:
    """Run (or resume) a suite and return its run directory."""
    opts = opts or RunOptions()
    for plugin in opts.plugins:
        load_plugin(plugin)  # here for the expansion's name checks; each trial loads them again
    source = str(resolve_suite_path(name_or_path))
    suite = load_suite(name_or_path)
    trials = expand(suite, smoke_run=opts.smoke, only=opts.only, source=source)
    resolved = smoke(suite) if opts.smoke else suite
    _check_task_options(trials)
    run_dir = _run_dir(suite, opts)
    run_dir.mkdir(parents=True, exist_ok=True)
    meta_path = run_dir / "meta.json"
    meta = json.loads(meta_path.read_text()) if opts.resume else {}
    storage = (opts.storage or str(run_dir)).rstrip("/")
    experiment = meta.get("experiment") or f"{storage}/tune-{suite.name}-{run_dir.name}"  # a path or a URI
    if not opts.resume:
        atomic_write_text(run_dir / "suite.yaml", suite_to_yaml(_keep_references(resolved, source, run_dir)))
    data_roots = {} if suite.task == "profile" else _prepare_data(trials, opts, run_dir)

    ray_tmp = tempfile.mkdtemp(prefix="hb-ray-")  # short: Ray's socket paths must stay < 108 chars
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")  # snapshot experiment state often (cheap)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0: no tables, Progress prints instead
    try:
        _init_ray(opts, ray_tmp)
        meta.update(
            suite=suite.name, run_id=run_dir.name, date=meta.get("date") or dt.datetime.now().isoformat(timespec="seconds"),
            source=source, smoke=opts.smoke, only=opts.only, experiment=experiment, versions=_versions(),
            nodes=_nodes(), trials=len(trials), resumed=opts.resume, command=" ".join(sys.argv),
        )
        atomic_write_json(meta_path, meta)
        done_uri = f"{experiment}/done"
        progress = Progress(trials, resolved.metrics, done_uri, enabled=opts.progress)
        tuner = _tuner(experiment, suite, trials, opts, progress, {
            "plugins": [str(Path(p).resolve()) for p in opts.plugins], "done_uri": done_uri, "data_roots": data_roots,
        })
        progress.show()
        grid = tuner.fit()
        unfinished = [r for r in grid if r.error is None and not (r.metrics or {}).get("done")]
        if unfinished:  # Ctrl-C: Tune stopped and saved its state; the table waits for the rest
            raise SuiteRunError(
                f"interrupted with {len(unfinished)} of {len(trials)} trial(s) unfinished; continue with "
                f"`hambench run suite {name_or_path} --resume --out {opts.out}`"
            )
        table, prof, hist = collect_tables(resolved, run_dir.name, grid)
        meta["nodes"] = _nodes()
    finally:
        ray.shutdown()
        shutil.rmtree(ray_tmp, ignore_errors=True)

    _write_parquet(run_dir / "results.parquet", table)
    if not prof.empty:
        _write_parquet(run_dir / "profile.parquet", prof)
    _write_parquet(run_dir / "history.parquet", hist)
    write_summary(run_dir, table)
    meta.update(finished=dt.datetime.now().isoformat(timespec="seconds"), status_counts=table["status"].value_counts().to_dict())
    atomic_write_json(meta_path, meta)
    if opts.report:
        _render_report(run_dir)
    return run_dir


def _keep_references(suite: Suite, source: str, run_dir: Path) -> Suite:
    """The suite's ``references:`` file copied into the run directory, and the suite pointing at the
    copy: the report reads the published points the run was made with, wherever the suite file went."""
    path = references_path(suite, source)  # checked by load_suite already
    if path is None:
        return suite
    shutil.copyfile(path, run_dir / path.name)
    return suite.model_copy(update={"references": path.name})


def _tuner(experiment: str, suite: Suite, trials: list[Trial], opts: RunOptions, progress: Progress,
           shared: dict[str, Any]) -> tune.Tuner:
    """A new Tuner over the trials (``shared``: config every trial gets), or the interrupted one."""
    trainable = tune.with_resources(run_trial, trial_resources)
    if opts.resume and tune.Tuner.can_restore(experiment):
        # The interrupted experiment with its trials, config and callbacks (Progress.setup resets).
        return tune.Tuner.restore(experiment, trainable, resume_unfinished=True, resume_errored=True)
    storage_path, name = experiment.rsplit("/", 1)
    return tune.Tuner(
        trainable,
        param_space={"trial": tune.grid_search([t.model_dump(mode="json") for t in trials]), **shared},
        tune_config=tune.TuneConfig(
            max_concurrent_trials=opts.max_concurrent or suite.max_concurrent,
            reuse_actors=True,  # one process runs trial after trial: no start-up and imports per trial
            trial_dirname_creator=lambda t: t.config["trial"]["trial_id"][:120],
        ),
        run_config=tune.RunConfig(
            name=name, storage_path=storage_path, verbose=0, callbacks=[progress],
            failure_config=tune.FailureConfig(max_failures=suite.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        ),
    )


def _render_report(run_dir: Path) -> Path | None:
    """The Pareto report; a failure here leaves the tables in place and says so."""
    from hambench.reports import render_report

    try:
        return render_report([run_dir], out=run_dir / "report.html")
    except Exception as exc:
        print(f"hambench: report.html not rendered ({type(exc).__name__}: {exc}); the tables are in {run_dir}; "
              f"retry with `hambench report {run_dir}`", file=sys.stderr)
        return None
