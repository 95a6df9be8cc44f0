"""Run a suite on Ray Tune: one Tune trial per expanded grid point.

The driver (``run_suite``, ``driver.py``) expands the suite, prepares the data once, starts Ray
(embedded, or joins ``--address``), runs a ``Tuner`` (or ``Tuner.restore`` on ``--resume``) and
finally writes the run directory ``<out>/<suite>/<run-id>/``: ``results.parquet`` (one row per
trial, ``tables.py``), ``summary.csv`` (n, mean, 95 % interval and rank per configuration:
``hambench.stats.summarize``), ``profile.parquet``, ``history.parquet``, ``suite.yaml``,
``meta.json`` and ``report.html``. ``trainable.py`` is what runs inside a trial (its task, from
``hambench.tasks``, with a ``TrialContext``), ``progress.py`` the line the driver prints,
``api.py`` the Python entry point (``hambench.run_suite``: the run's tables as DataFrames),
``rundir.py`` the run folder's checks before Ray starts (room, a resume's run and grid), and
``search.py`` the tuning protocol of a suite with ``tune:`` (the same search for every module,
selection on validation, the retrain scored on test).
"""

from hambench.tuning.driver import profile_cpus, run_suite
from hambench.tuning.plan import expand
from hambench.tuning.progress import Progress
from hambench.tuning.rundir import RunOptions, SuiteRunError
from hambench.tuning.tables import collect_tables, write_summary
from hambench.tuning.trainable import (
    DEVICE_RESOURCE,
    PROFILE_CPUS,
    TRAIN_SHARE,
    TuneContext,
    done_ids,
    read_done,
    run_trial,
    trial_resources,
    write_done,
)

__all__ = [
    "DEVICE_RESOURCE",
    "PROFILE_CPUS",
    "TRAIN_SHARE",
    "Progress",
    "RunOptions",
    "SuiteRunError",
    "TuneContext",
    "collect_tables",
    "expand",
    "done_ids",
    "profile_cpus",
    "read_done",
    "run_suite",
    "run_trial",
    "trial_resources",
    "write_done",
    "write_summary",
]
