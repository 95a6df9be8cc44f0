"""The driver (``run_suite``): expand the suite, check the tracker and the run folder
(``rundir.py``: which folder, room on its disk, a resume's grid), prepare its data once, start
Ray (embedded, or join ``--address``), pick how profiling trials hold their node (trainable.py's
docstring), run a ``Tuner`` (or ``Tuner.restore`` on ``--resume``), write the run directory. A
suite with ``tune:`` runs two Tuners, the search and the retrain (``search.py``)."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import itertools
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
from ray import tune

from hambench.io import atomic_write_json, atomic_write_text, fault_line
from hambench.nodes import alive_nodes, local_versions
from hambench.registry import load_plugins
from hambench.suite import Suite, grid_points, load_suite, references_path, resolve_suite_path, smoke, suite_to_yaml
from hambench.tasks import DataRequest, get_task
from hambench.tracking import check_tracker, default_callbacks, tracker_callbacks, tracker_environment
from hambench.trial import Trial, data_label
from hambench.tuning.plan import expand
from hambench.tuning.progress import Progress
from hambench.tuning.rundir import (
    RunOptions,
    SuiteRunError,
    check_room,
    check_same_grid,
    resume_command,
    run_folder,
    set_aside_if_damaged,
)
from hambench.tuning.search import choose, retrain_trials, search_scheduler
from hambench.tuning.tables import collect_tables, write_parquet, write_summary
from hambench.tuning.trainable import (
    DEVICE_RESOURCE,
    PROFILE_CPUS,
    DiskWatch,
    done_ids,
    read_done,
    run_trial,
    trial_resources,
)


def _prepare_data(trials: list[Trial], opts: RunOptions, run_dir: Path) -> dict[str, str]:
    """A ready data root per data set, made (or checked) once on the driver by the task that
    reads it (``Task.prepare_data``); trials read it."""
    wanted = {
        data_label(t.data, t.data_options): (t.data, t.data_options, get_task(t.task))
        for t in trials
        if get_task(t.task).prepare_data is not None
    }
    roots = {}
    for label, (name, options, task) in sorted(wanted.items()):
        fixture = run_dir / "data" / label.replace(" ", "_")
        request = DataRequest(smoke=opts.smoke, data_root=opts.data_root, fixture_dir=fixture, options=options)
        try:
            root = task.prepare_data(name, request)  # type: ignore[misc]
        except (ValueError, FileNotFoundError) as exc:  # a missing or malformed data root: the user's to fix
            raise SuiteRunError(str(exc)) from None
        if root is not None:
            roots[label] = str(root)
    return roots


def _check_task_options(trials: list[Trial]) -> None:
    """Unknown ``task_options`` fail before anything runs, with the valid field names."""
    for name in {t.task for t in trials if t.task_options}:
        cls = get_task(name).config
        fields = {f.name for f in dataclasses.fields(cls)} if cls is not None else set()
        for t in trials:
            unknown = sorted(set(t.task_options) - fields) if t.task == name else []
            if unknown:
                owner = cls.__name__ if cls is not None else f"task {name}"
                raise SuiteRunError(
                    f"task_options {', '.join(unknown)}: not fields of {owner} ({', '.join(sorted(fields)) or 'none'})"
                )


# Ray's loggers whose notices concern the cluster's set-up or Tune's bookkeeping, not the user's
# run (its authentication default, a worker's traceback, a storage sync retried each second): to
# the run's ray.log. Progress says in one line when a trial's worker failed; a disk fault stops the
# run in one line (DiskWatch).
RAY_NOTICE_LOGGERS = ("ray._private.authentication", "ray.tune", "ray.train", "ray.air")
# ... except Tune's warning that no trial can start (it asked for more than any node has): the
# user's to act on, so it stays on the terminal.
RAY_KEPT_LOGGERS = ("ray.tune.execution.insufficient_resources_manager",)


class _LogFile(logging.FileHandler):
    """ray.log: a line it cannot write (the disk under the run is full) is dropped, not printed
    with a traceback: the run says that fault itself."""

    def handleError(self, record: logging.LogRecord) -> None:
        pass


@contextlib.contextmanager
def _ray_notices_to(log: Path | None) -> Iterator[None]:
    """Ray's notices (RAY_NOTICE_LOGGERS) go to ``log`` instead of the terminal (None: to the
    terminal, ``--verbose``) while the run lasts; the loggers are as they were after it."""
    loggers = [logging.getLogger(name) for name in (*RAY_NOTICE_LOGGERS, *RAY_KEPT_LOGGERS)]
    saved = [(lg.handlers, lg.propagate, lg.level) for lg in loggers]
    handler = None
    if log is not None:
        handler = _LogFile(log, delay=True)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
        for lg in loggers:
            if lg.name in RAY_KEPT_LOGGERS:  # shown whatever level an earlier ray.init gave "ray"
                lg.handlers, lg.propagate, lg.level = [logging.StreamHandler(sys.stderr)], False, logging.WARNING
            else:
                lg.handlers, lg.propagate = [handler], False
    try:
        yield
    finally:
        for lg, (handlers, propagate, level) in zip(loggers, saved):
            lg.handlers, lg.propagate, lg.level = handlers, propagate, level
        if handler is not None:
            handler.close()


def _init_ray(opts: RunOptions, ray_tmp: str) -> None:
    if opts.address:
        ray.init(address=opts.address, log_to_driver=False)
        return
    ray.init(
        num_cpus=opts.num_cpus or os.cpu_count(),
        resources={DEVICE_RESOURCE: 1},
        object_store_memory=200 * 1024**2,
        include_dashboard=False,
        _temp_dir=ray_tmp,
        log_to_driver=False,
        configure_logging=False,
    )


def profile_cpus(nodes: list[dict[str, Any]], trials: list[Trial]) -> float | None:
    """How profiling trials hold their node on this cluster (``ray.nodes()``): None when every
    node with CPUs has a ``hambench_device`` unit; otherwise (whole-node mode) the CPUs a
    profiling trial asks for: all of the largest node that can run it (one with a GPU when the
    suite profiles on cuda)."""
    cpu_nodes = [n for n in nodes if n.get("Alive", True) and n["Resources"].get("CPU", 0) > 0]
    if not cpu_nodes:
        raise SuiteRunError("no node of the Ray cluster has CPUs to run a trial on")
    if all(n["Resources"].get(DEVICE_RESOURCE, 0) >= 1 for n in cpu_nodes):
        return None
    profiling = [t for t in trials if get_task(t.task).alone_on_device and t.profile is not None]
    cuda = any(t.profile.device.startswith("cuda") for t in profiling)  # type: ignore[union-attr]
    candidates = [n for n in cpu_nodes if n["Resources"].get("GPU", 0) >= 1] if cuda else cpu_nodes
    if profiling and not candidates:
        raise SuiteRunError("profile.device is cuda but no node of the Ray cluster has a GPU")
    return max(n["Resources"]["CPU"] for n in candidates or cpu_nodes)


def run_suite(name_or_path: str | Path, opts: RunOptions | None = None) -> Path:
    """Run (or resume) a suite and return its run directory. A disk that fills up (or turns
    read-only) under the run stops it in one line that says how to resume it; what finished stays."""
    opts = opts or RunOptions()
    check_tracker(opts.tracker)  # a missing package is said now, not after Ray started
    load_plugins(
        opts.plugins
    )  # here for the expansion's name checks; each trial's process loads them too (once per process)
    source = str(resolve_suite_path(name_or_path))
    suite = load_suite(name_or_path)
    resolved = smoke(suite) if opts.smoke else suite  # the suite as it runs: what the run folder keeps
    trials = expand(resolved, only=opts.only, source=source)
    _check_task_options(trials)
    run_dir, resuming = run_folder(suite, opts)
    if opts.resume:
        check_same_grid(run_dir, trials, opts)
        print(resuming, flush=True)
    check_room(run_dir, trials)
    data_roots = _prepare_data(trials, opts, run_dir)  # a bad data root fails before the run directory exists
    try:
        return _run(name_or_path, opts, suite, resolved, source, trials, run_dir, data_roots)
    except Exception as exc:
        line = fault_line(exc, writing=run_dir)
        if line is None:
            raise
        raise SuiteRunError(f"{line}; free space and run `{resume_command(name_or_path, opts, run_dir)}`") from None


def _run(
    name_or_path: str | Path,
    opts: RunOptions,
    suite: Suite,
    resolved: Suite,
    source: str,
    trials: list[Trial],
    run_dir: Path,
    data_roots: dict[str, str],
) -> Path:
    """``run_suite`` once its checks passed: the run folder, Ray, the Tuner(s), the tables, the report."""
    run_dir.mkdir(parents=True, exist_ok=True)
    meta_path = run_dir / "meta.json"
    meta = json.loads(meta_path.read_text()) if opts.resume else {}
    tracker = _tracker(opts, meta)
    storage = (opts.storage or str(run_dir)).rstrip("/")
    experiment = meta.get("experiment") or f"{storage}/tune-{suite.name}-{run_dir.name}"  # a path or a URI
    if not opts.resume:
        atomic_write_text(run_dir / "suite.yaml", suite_to_yaml(_keep_references(resolved, source, run_dir)))

    ray_tmp = tempfile.mkdtemp(prefix="hb-ray-")  # short: Ray's socket paths must stay < 108 chars
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")  # snapshot experiment state often (cheap)
    if not opts.verbose:  # ... which Tune then warns is often: hambench asked for it
        os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0: no tables, Progress prints instead
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")  # a done record re-reported has no `iter`
    with tracker_environment(), _ray_notices_to(None if opts.verbose else run_dir / "ray.log"):
        try:
            _init_ray(opts, ray_tmp)
            whole_node = profile_cpus(ray.nodes(), trials)
            placement = "device unit" if whole_node is None else f"whole node ({whole_node:g} CPUs)"
            meta.setdefault("placement", placement)  # a restored run keeps its trials' first placement
            meta.update(
                tracker=tracker,
                suite=suite.name,
                run_id=run_dir.name,
                date=meta.get("date") or dt.datetime.now().isoformat(timespec="seconds"),
                source=source,
                smoke=opts.smoke,
                only=opts.only,
                experiment=experiment,
                versions=local_versions(),
                nodes=alive_nodes(),
                trials=len(trials),
                resumed=opts.resume,
                command=" ".join(sys.argv),
            )
            atomic_write_json(meta_path, meta)
            phase = _Phase(
                name_or_path,
                suite,
                opts,
                tracker,
                run_dir,
                {
                    "plugins": [str(Path(p).resolve()) for p in opts.plugins],
                    "data_roots": data_roots,
                    PROFILE_CPUS: whole_node,
                },
            )
            if resolved.tune is None:
                grids = [phase.run(experiment, trials)]
            else:  # the tuning protocol (hambench.tuning.search): search on val, then retrain on test
                searched = phase.run(
                    f"{experiment}-search", trials, scheduler=search_scheduler(resolved), label="search (val)"
                )
                points = grid_points(resolved, only=opts.only, source=source)
                choices = choose(resolved, points, trials, phase.records)
                meta["tuning"] = _choices_meta(choices)
                atomic_write_json(meta_path, meta)
                retrain = retrain_trials(resolved, choices)
                meta["trials"] = len(trials) + len(retrain)
                grids = [searched, phase.run(f"{experiment}-retrain", retrain, label="retrain (test)")]
            table, prof, hist = collect_tables(resolved, run_dir.name, itertools.chain(*grids), phase.records)
            meta["nodes"] = alive_nodes()
        finally:
            ray.shutdown()
            shutil.rmtree(ray_tmp, ignore_errors=True)

    write_parquet(run_dir / "results.parquet", table)
    if not prof.empty:
        write_parquet(run_dir / "profile.parquet", prof)
    write_parquet(run_dir / "history.parquet", hist)
    write_summary(run_dir, table)
    meta.update(
        finished=dt.datetime.now().isoformat(timespec="seconds"), status_counts=table["status"].value_counts().to_dict()
    )
    atomic_write_json(meta_path, meta)
    if opts.report:
        _render_report(run_dir)
    return run_dir


def _tracker(opts: RunOptions, meta: dict[str, Any]) -> str | None:
    """The run's tracker: a resumed run keeps the one it started with (Tune restores its callbacks)."""
    if opts.resume and "tracker" in meta:
        if opts.tracker is not None and opts.tracker != meta["tracker"]:
            started = f"--tracker {meta['tracker']}" if meta["tracker"] else "no --tracker"
            raise SuiteRunError(f"--resume: this run was started with {started}; resume it with the same")
        return meta["tracker"]
    return opts.tracker


def _keep_references(suite: Suite, source: str, run_dir: Path) -> Suite:
    """The suite's ``references:`` file copied into the run directory, and the suite pointing at the
    copy: the report reads the published points the run was made with, wherever the suite file went."""
    path = references_path(suite, source)  # checked by load_suite already
    if path is None:
        return suite
    shutil.copyfile(path, run_dir / path.name)
    return suite.model_copy(update={"references": path.name})


def _choices_meta(choices: list[Any]) -> list[dict[str, Any]]:
    """What the search chose per grid point, for meta.json (the tables have it per row too)."""
    return [
        {
            "module": c.point.module,
            "options": c.point.options,
            "backbone": c.point.backbone,
            "data": c.point.data,
            "data_options": c.point.data_options,
            "sample": c.sample,
            "tuned": c.tuned,
            "val_score": c.score,
            "completed": c.completed,
        }
        for c in choices
    ]


@dataclass
class _Phase:
    """Runs one Tune experiment of the suite (a plain grid, or the tuning protocol's search or
    retrain) and keeps the done records of the trials it ran (``records``)."""

    name_or_path: str | Path
    suite: Suite
    opts: RunOptions
    tracker: str | None
    run_dir: Path
    shared: dict[str, Any]  # config every trial gets (its TrialContext and placement)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)  # trial id -> done record

    def run(self, experiment: str, trials: list[Trial], scheduler: Any = None, label: str = "") -> Any:
        done_uri = f"{experiment}/done"
        progress = Progress(trials, self.suite.metrics, done_uri, enabled=self.opts.progress, label=label)
        trackers = tracker_callbacks(self.tracker, self.run_dir, self.suite.name)
        callbacks = [DiskWatch(), progress, *default_callbacks(), *trackers]  # DiskWatch first: it stops the run
        tuner = _tuner(
            experiment, self.suite, trials, self.opts, callbacks, {**self.shared, "done_uri": done_uri}, scheduler
        )
        progress.setup()  # count what an earlier start finished: a resumed phase may have nothing left to run
        progress.show()
        grid = tuner.fit()
        finished = done_ids(done_uri)
        self.records.update({t: r for t in finished if (r := read_done(done_uri, t)) is not None})
        unfinished = [r for r in grid if r.error is None and r.config["trial"]["trial_id"] not in finished]
        if unfinished:  # Ctrl-C: Tune stopped and saved its state; the table waits for the rest
            raise SuiteRunError(
                f"interrupted with {len(unfinished)} of {len(trials)} trial(s) unfinished; continue with "
                f"`{resume_command(self.name_or_path, self.opts, self.run_dir)}`"
            )
        return grid


def _tuner(
    experiment: str,
    suite: Suite,
    trials: list[Trial],
    opts: RunOptions,
    callbacks: list[Any],
    shared: dict[str, Any],
    scheduler: Any = None,
) -> tune.Tuner:
    """A new Tuner over the trials (``shared``: config every trial gets: its TrialContext and
    placement; ``scheduler``: the search's, None for FIFO), or the interrupted one."""
    trainable = tune.with_resources(run_trial, trial_resources)
    if opts.resume and tune.Tuner.can_restore(experiment) and not set_aside_if_damaged(experiment):
        # The interrupted experiment with its trials, config and callbacks, as it started (Ray keeps
        # them in its tuner.pkl and takes none anew: Progress.setup resets, the MLflow callback finds
        # each trial's earlier run, the placement stays the one the first start chose).
        return tune.Tuner.restore(experiment, trainable, resume_unfinished=True, resume_errored=True)
    storage_path, name = experiment.rsplit("/", 1)
    return tune.Tuner(
        trainable,
        param_space={"trial": tune.grid_search([t.model_dump(mode="json") for t in trials]), **shared},
        tune_config=tune.TuneConfig(
            max_concurrent_trials=opts.max_concurrent or suite.max_concurrent,
            reuse_actors=True,  # one process runs trial after trial: no start-up and imports per trial
            trial_dirname_creator=lambda t: t.config["trial"]["trial_id"][:120],
            scheduler=scheduler,
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=storage_path,
            verbose=0,
            callbacks=callbacks,
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
        print(
            f"hambench: report.html not rendered ({type(exc).__name__}: {exc}); the tables are in {run_dir}; "
            f"retry with `hambench report {run_dir}`",
            file=sys.stderr,
        )
        return None
