"""A run's folder: the options of ``hambench run suite`` (``RunOptions``), the error it ends in
(``SuiteRunError``), and what the driver checks before Ray starts — which folder a run or a
``--resume`` writes (``run_folder``), that the disk has room for the trials left (``check_room``),
that a resumed suite still expands to the trials it started with (``check_same_grid``) — and, on
resume, Tune's state cut short by a full disk set aside (``set_aside_if_damaged``).
``resume_command`` is the command every stopped run names to go on."""

from __future__ import annotations

import datetime as dt
import json
import os
import pickle
import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hambench.suite import Suite, load_suite
from hambench.tasks import get_task
from hambench.trial import Trial
from hambench.tuning.plan import expand
from hambench.tuning.trainable import done_ids, local_folder


class SuiteRunError(RuntimeError):
    """The suite cannot run as asked (no Ray cluster, nothing to resume, missing resource or data)."""


@dataclass
class RunOptions:
    """``hambench run suite`` options (see ``hambench run suite --help``)."""

    address: str | None = None  # None: start Ray here; "auto" or HOST:PORT: join that cluster
    storage: str | None = None  # Tune's storage (DIR or s3://...); default: the run directory
    out: Path = Path("runs")
    resume: bool = False
    resume_dir: Path | None = None  # the run folder --resume continues (default: the suite's latest in out)
    run_id: str | None = None  # default: a new timestamp, or the newest run when resuming
    smoke: bool = False
    max_concurrent: int | None = None
    only: list[str] | None = None
    data_root: str | None = None
    plugins: list[str] = field(default_factory=list)
    num_cpus: int | None = None  # CPUs of the embedded Ray (default: all of this machine)
    report: bool = True
    progress: bool = True
    tracker: str | None = None  # "mlflow" or "wandb" besides TensorBoard (hambench.tracking)
    verbose: bool = False  # Ray's notices and the libraries' warnings in the terminal too


def run_folder(suite: Suite, opts: RunOptions) -> tuple[Path, str]:
    """The run folder, and for a resumed run the line that says which one and why."""
    base = Path(opts.out).resolve() / suite.name
    if opts.resume:
        runs = sorted(p for p in base.glob("*") if (p / "meta.json").is_file()) if base.is_dir() else []
        if opts.resume_dir is not None:
            run_dir, why = Path(opts.resume_dir).resolve(), "the run folder given"
        elif opts.run_id:
            run_dir, why = base / opts.run_id, "--run-id"
        elif runs:
            run_dir, why = runs[-1], f"the latest of {len(runs)} run(s) of suite {suite.name!r} in {opts.out}"
        else:
            raise SuiteRunError(f"--resume: no earlier run of suite {suite.name!r} under {base}")
        if not (run_dir / "meta.json").is_file():
            raise SuiteRunError(f"--resume: {run_dir} is not a run directory (no meta.json)")
        started = json.loads((run_dir / "meta.json").read_text())
        if started.get("suite") not in (None, suite.name):
            raise SuiteRunError(f"--resume: {run_dir} is a run of suite {started.get('suite')!r}, not {suite.name!r}")
        return run_dir, f"resuming {run_dir} ({why}; started {started.get('date', 'at an unknown time')})"
    run_id = opts.run_id or dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = base / run_id
    if (run_dir / "meta.json").exists():
        raise SuiteRunError(f"{run_dir} exists; pass --resume to continue it or choose another --run-id")
    return run_dir, ""


# The room a run needs at least, checked before Ray starts: a floor, measured on the quickstart's
# tiny-d8 models (2.6 MB per training trial: checkpoints, the TensorBoard log; 70 KB per profiling
# trial). A trial keeps at most five checkpoints (mmengine's three, Tune's two) of its weights and
# optimizer state: a ResNet-50 segmentor's are 0.4-0.5 GB each, so such runs need far more.
TRAIN_TRIAL_FLOOR = 8_000_000
PROFILE_TRIAL_FLOOR = 1_000_000
RUN_FLOOR = 16_000_000  # the tables, the report (about 5 MB), Ray's session logs


def check_room(run_dir: Path, trials: list[Trial]) -> None:
    """``--out`` must be writable and hold the run's floor (above) for the trials not finished yet
    (a resumed run's finished ones have their files); else one line naming the folder, the space
    free and the space needed."""
    from hambench.units import si

    finished = finished_ids(run_dir)
    trials = [t for t in trials if t.trial_id not in finished]
    anchor = run_dir
    while not anchor.exists():
        anchor = anchor.parent
    if not os.access(anchor, os.W_OK):
        raise SuiteRunError(f"cannot write to {anchor} (read-only or not yours); choose another --out")
    training = sum(get_task(t.task).trains for t in trials)
    need = RUN_FLOOR + training * TRAIN_TRIAL_FLOOR + (len(trials) - training) * PROFILE_TRIAL_FLOOR
    free = shutil.disk_usage(anchor).free
    if free < need:
        raise SuiteRunError(
            f"{anchor} has {si(free, 'B')} free; this run needs at least {si(need, 'B')} ({training} training "
            f"trials at {si(TRAIN_TRIAL_FLOOR, 'B')}, {len(trials) - training} profiling at "
            f"{si(PROFILE_TRIAL_FLOOR, 'B')}, {si(RUN_FLOOR, 'B')} for its tables and report); "
            "free space or choose another --out"
        )


def finished_ids(run_dir: Path) -> set[str]:
    """The trials of a started run that have a done record (any of its experiments: a tuned
    suite's search and retrain too); none for a new run."""
    meta = run_dir / "meta.json"
    experiment = json.loads(meta.read_text()).get("experiment") if meta.is_file() else None
    if not experiment:
        return set()
    return set().union(*(done_ids(f"{experiment}{part}/done") for part in ("", "-search", "-retrain")))


def resume_command(name_or_path: str | Path, opts: RunOptions, run_dir: Path) -> str:
    """The command that continues this run with the options that shape its grid and placement."""
    words = ["hambench", "run", "suite", str(name_or_path), "--resume", str(run_dir)]
    words += ["--smoke"] if opts.smoke else []
    words += ["--only", *opts.only] if opts.only else []
    for flag, value in (
        ("--address", opts.address),
        ("--storage", opts.storage),
        ("--data-root", opts.data_root),
        ("--max-concurrent", opts.max_concurrent),
        ("--num-cpus", opts.num_cpus),
    ):
        words += [flag, str(value)] if value is not None else []
    for plugin in opts.plugins:
        words += ["--plugin", str(plugin)]
    return " ".join(shlex.quote(w) for w in words)


def check_same_grid(run_dir: Path, trials: list[Trial], opts: RunOptions) -> None:
    """A resumed run's suite file must expand to the trials it started with (``suite.yaml`` in the
    run folder, the suite as it ran); a changed grid is refused, naming the trials added and removed."""
    saved = run_dir / "suite.yaml"
    if not saved.is_file():
        return  # a run folder from before the suite was kept: nothing to compare with
    then = {t.trial_id for t in expand(load_suite(saved), only=opts.only, source=str(saved))}
    now = {t.trial_id for t in trials}
    if then == now:
        return

    def listed(ids: set[str]) -> str:
        names = sorted(ids)
        return ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")

    changes = [f"{len(now - then)} trial(s) added ({listed(now - then)})"] if now - then else []
    changes += [f"{len(then - now)} removed ({listed(then - now)})"] if then - now else []
    raise SuiteRunError(
        f"--resume: the suite's grid changed since {run_dir} started: {'; '.join(changes)}; "
        "restore the suite file, or start a new run without --resume"
    )


# Tune's state files, each rewritten in place while the run lasts (not atomically: a full disk
# leaves them cut short): the experiment's trials (JSON) and its search algorithm's (a pickle).
TUNE_STATE_FILES: dict[str, Callable[[bytes], Any]] = {
    "experiment_state-*.json": json.loads,
    "basic-variant-state-*.json": pickle.loads,
}


def set_aside_if_damaged(experiment: str) -> bool:
    """True when Tune's state of ``experiment`` (a local folder) cannot be read: its files are
    renamed ``*.damaged`` and the phase starts a new Tuner over the same trials in the same folder,
    saying so in one line. Nothing finished reruns (the trials' done records); the unfinished
    trials start from their first step, their Tune checkpoints being listed in the lost state."""
    folder = local_folder(experiment)
    if folder is None:
        return False  # remote storage: Tune's own restore decides
    damaged = []
    for pattern, parse in TUNE_STATE_FILES.items():
        newest = max(folder.glob(pattern), default=None)  # the names end in the start's timestamp
        if newest is None:
            continue
        try:
            parse(newest.read_bytes())
        except Exception as exc:
            damaged.append(f"{newest.name}: {type(exc).__name__}")
    if not damaged:
        return False
    for pattern in TUNE_STATE_FILES:
        for path in folder.glob(pattern):
            path.rename(path.with_name(path.name + ".damaged"))
    print(
        f"Tune's state in {folder} is damaged ({'; '.join(damaged)}; kept as *.damaged): its unfinished trials "
        "start again from their first step, its finished ones are kept",
        flush=True,
    )
    return True
