"""Experiment tracking through Ray Tune's own logger callbacks: TensorBoard always, MLflow or
Weights & Biases on request (``hambench run suite --tracker mlflow|wandb``).

- TensorBoard: Ray Tune's ``TBXLoggerCallback`` writes ``events.out.tfevents.*`` into every
  trial's directory (``tensorboard --logdir <run dir>``). Ray adds it by itself when tensorboardX
  (a dependency of ``ray[tune]``) imports; ``default_callbacks`` names it explicitly, so that the
  event files do not depend on that (nor on ``TUNE_DISABLE_AUTO_CALLBACK_LOGGERS``).
- MLflow: ``MLflowLoggerCallback`` opens one MLflow run per trial, in the experiment named after
  the suite, at ``MLFLOW_TRACKING_URI`` or else in the run's own store, ``<run dir>/mlruns``
  (``mlflow.db``, an SQLite file, and ``artifacts/``: MLflow 3 retired its plain-file store). Its
  parameters are the trial's configuration, flat (``module``, ``seed``, ``options.rank``,
  ``budget.iters``, ...); its metrics are everything numeric the trial reports, each evaluation
  at the task's own iteration, and the final accuracy and cost.
- W&B: ``WandbLoggerCallback``, one W&B run per trial under ``<run dir>/wandb``; offline
  (``WANDB_MODE=offline``, ``wandb sync`` uploads later) unless an API key is set or
  ``WANDB_MODE`` says otherwise.

The callbacks run in the driver (W&B's in small actors on the driver's node), so the stores sit
on the machine that runs ``hambench run suite``. mlflow and wandb import only when asked for:
they are the optional extra ``hambench[track]``.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ray.tune import Callback

# --tracker NAME -> the modules it needs (MLflow's SQLite store: sqlalchemy and alembic).
TRACKERS = {"mlflow": ("mlflow", "sqlalchemy", "alembic"), "wandb": ("wandb",)}
# The key of a trial's config that holds the trial itself (hambench.trial.Trial as a dict); the
# other keys are what the suite driver passes every trial (plugins, paths), not its configuration.
TRIAL_KEY = "trial"
# Keys of Tune's results that are no measurement: the config again, the process id, the clock.
UNTRACKED = ("config", "pid", "timestamp")


class TrackerError(ValueError):
    """An unknown tracker, or one whose package is not installed; the message is one line."""


def check_tracker(name: str | None) -> None:
    """Raise ``TrackerError`` unless ``name`` is None or a tracker whose package imports here.
    Called before Ray starts, so that a missing package is said at once, in one line."""
    if name is None:
        return
    if name not in TRACKERS:
        raise TrackerError(f"--tracker {name!r}: choose one of {', '.join(TRACKERS)}")
    missing = [module for module in TRACKERS[name] if importlib.util.find_spec(module) is None]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise TrackerError(
            f"--tracker {name} needs `pip install hambench[track]` ({', '.join(missing)} {verb} not installed)"
        )


# Variables the trackers set in the driver's process while a run logs (mlflow.set_tracking_uri,
# called by Ray's MLflow callback, exports MLFLOW_TRACKING_URI; offline W&B sets WANDB_MODE).
TRACKER_VARIABLES = ("MLFLOW_TRACKING_URI", "WANDB_MODE")


@contextmanager
def tracker_environment() -> Iterator[None]:
    """Restore ``TRACKER_VARIABLES`` when the block ends: a second run in the same process (a
    notebook) must not log into the first run's store."""
    saved = {name: os.environ.get(name) for name in TRACKER_VARIABLES}
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def default_callbacks() -> list[Callback]:
    """What every run gets: TensorBoard event files in each trial's directory."""
    from ray.tune.logger import TBXLoggerCallback

    return [TBXLoggerCallback()]


def tracker_callbacks(tracker: str | None, run_dir: Path, experiment_name: str) -> list[Callback]:
    """The Ray Tune callbacks of ``--tracker`` (none for None); ``experiment_name`` names the MLflow
    experiment and the W&B project (the suite's name), the run directory groups a run's trials."""
    check_tracker(tracker)
    if tracker is None:
        return []
    run_dir = Path(run_dir).resolve()
    if tracker == "mlflow":
        if not os.environ.get("MLFLOW_TRACKING_URI"):
            _create_run_store(run_dir, experiment_name)
        return [_mlflow_callback(mlflow_tracking_uri(run_dir), experiment_name, run_dir.name)]
    return [_wandb_callback(run_dir, experiment_name)]


def mlflow_tracking_uri(run_dir: Path) -> str:
    """``MLFLOW_TRACKING_URI`` when set (a server, a database), else the run's own store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(run_dir).resolve() / 'mlruns' / 'mlflow.db'}"


def _create_run_store(run_dir: Path, experiment_name: str) -> None:
    """The run's own MLflow store with the experiment in it, its artifacts beside the database
    (by default MLflow would put them under the current directory)."""
    import logging

    from mlflow.tracking import MlflowClient

    # MLflow announces creating its tables at INFO: nothing a user of the run needs to read.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    store = run_dir / "mlruns"
    store.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(mlflow_tracking_uri(run_dir))
    if client.get_experiment_by_name(experiment_name) is None:
        client.create_experiment(experiment_name, artifact_location=(store / "artifacts").as_uri())


def trial_params(config: dict[str, Any]) -> dict[str, Any]:
    """A trial's configuration as flat, readable parameters: ``module``, ``seed``,
    ``options.rank``, ``budget.iters``, ``resources.cpu``, ... (empty mappings drop out; lists,
    such as ``budget.crop``, stay whole)."""
    from ray.tune.utils import flatten_dict

    return flatten_dict(dict(config.get(TRIAL_KEY, config)), delimiter=".")


def task_step(result: dict[str, Any]) -> int:
    """The step a report belongs to: the task's own iteration (``iter`` while it trains, ``iters``
    in the final report), else Tune's count of reports."""
    from ray.air.constants import TRAINING_ITERATION

    for key in ("iter", "iters"):
        value = result.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return int(result[TRAINING_ITERATION])


def _mlflow_callback(tracking_uri: str, experiment_name: str, run_id: str) -> Callback:
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    class TrialRuns(MLflowLoggerCallback):
        """Ray's callback with the trial's own parameters and steps: the stock one logs the whole
        nested config (the driver's plumbing too) as ``trial/...`` keys, repeats it among the
        metrics under ``config/...`` and counts steps in reports."""

        def log_trial_start(self, trial: Any) -> None:
            if trial in self._trial_runs:  # a trial restarted after a failure: same MLflow run
                return
            params = trial_params(trial.config)
            trial_id = str(params.get("trial_id", trial))
            earlier = self._earlier_run(trial_id)
            if earlier is not None:  # a resumed suite (`--resume`): the trial's run goes on
                self._trial_runs[trial] = earlier
                return
            tags = {**self.tags, "trial_name": str(trial), "hambench.trial_id": trial_id}
            run = self.mlflow_util.start_run(tags=tags, run_name=trial_id)
            self._trial_runs[trial] = run.info.run_id
            self.mlflow_util.log_params(run_id=run.info.run_id, params_to_log=params)

        def _earlier_run(self, trial_id: str) -> str | None:
            """The MLflow run this trial got before the suite was interrupted, if any."""
            from mlflow.tracking import MlflowClient

            experiment = MlflowClient(self.tracking_uri).get_experiment_by_name(self.experiment_name)
            if experiment is None:
                return None
            found = MlflowClient(self.tracking_uri).search_runs(
                [experiment.experiment_id],
                max_results=1,
                filter_string=f"tags.`hambench.trial_id` = '{trial_id}' and tags.`hambench.run_id` = '{run_id}'",
            )
            return found[0].info.run_id if found else None

        def log_trial_result(self, iteration: int, trial: Any, result: dict[str, Any]) -> None:
            metrics = {k: v for k, v in result.items() if k not in UNTRACKED}
            self.mlflow_util.log_metrics(run_id=self._trial_runs[trial], metrics_to_log=metrics, step=task_step(result))

    return TrialRuns(tracking_uri=tracking_uri, experiment_name=experiment_name, tags={"hambench.run_id": run_id})


def wandb_offline() -> bool:
    """True when W&B must log offline: ``WANDB_MODE`` unset and no API key (neither
    ``WANDB_API_KEY`` nor a ``wandb login``)."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"] in ("offline", "dryrun")
    if os.environ.get("WANDB_API_KEY"):
        return False
    try:
        import wandb

        return not wandb.api.api_key  # what `wandb login` saved (Ray checks the same)
    except Exception:
        return True


def _wandb_callback(run_dir: Path, project: str) -> Callback:
    from ray.air.integrations.wandb import WandbLoggerCallback

    run_dir.mkdir(parents=True, exist_ok=True)  # wandb.init(dir=...) writes its runs to <dir>/wandb
    extra: dict[str, Any] = {}
    if wandb_offline():
        # Ray's check for an API key, in the driver, reads the variable; the logging actors may not
        # see the driver's environment (on a cluster, `ray start` started their raylet), so
        # wandb.init is told too.
        os.environ["WANDB_MODE"] = "offline"
        extra["mode"] = "offline"

    class TrialRuns(WandbLoggerCallback):
        """Ray's callback with the trial's configuration only as the W&B run's config (the stock
        one sends the whole config, at the start and again with every result)."""

        excludes: list[str]  # the config keys Ray's callback leaves out of the run's config

        def log_trial_start(self, trial: Any) -> None:
            self.excludes = sorted(set(self.excludes) | (set(trial.config) - {TRIAL_KEY}))
            super().log_trial_start(trial)

        def log_trial_result(self, iteration: int, trial: Any, result: dict[str, Any]) -> None:
            if "config" in result:
                result = {**result, "config": {TRIAL_KEY: result["config"].get(TRIAL_KEY, {})}}
            super().log_trial_result(iteration, trial, result)

    return TrialRuns(project=os.environ.get("WANDB_PROJECT", project), group=run_dir.name, dir=str(run_dir), **extra)
