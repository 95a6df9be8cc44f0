"""Experiment tracking (hambench.tracking): Ray Tune's own callbacks, read back through each
tool's own reader. One small local Ray (one CPU) runs a trivial trainable shaped like a suite's:
a trial dict under config["trial"], the driver's plumbing beside it, a few evaluations reported,
then a final report with the accuracy and the cost."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

from hambench.tracking import (
    TrackerError,
    check_tracker,
    default_callbacks,
    mlflow_tracking_uri,
    task_step,
    tracker_callbacks,
    trial_params,
    wandb_offline,
)

TRIALS = [
    {
        "trial_id": f"seg-ham-nmf-s{seed}",
        "task": "seg",
        "module": "ham-nmf",
        "seed": seed,
        "backbone": "tiny-d8",
        "data": "synthetic-context",
        "options": {"rank": 8 + seed},
        "task_options": {},
        "budget": {"iters": 30, "eval_interval": 10, "crop": [32, 32]},
    }
    for seed in (0, 1)
]
PLUMBING = {"plugins": [], "done_uri": "/nowhere/done"}  # what the suite driver passes every trial too


def history(seed: int) -> list[tuple[int, float]]:
    """The (iteration, mIoU) a trial reports: three evaluations and the final value."""
    return [(10, 1.0 + seed), (20, 2.0 + seed), (30, 3.0 + seed), (30, 3.0 + seed)]


def trainable_factory():
    import ray.cloudpickle
    from ray import tune

    # Ray ships the trainable by value: this test file is no module the workers can import.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

    def trainable(config):
        seed = config["trial"]["seed"]
        for step, miou in history(seed)[:-1]:
            tune.report({"iter": step, "mIoU": miou, "status": "running", "node": "here"})
        tune.report({"iters": 30, "mIoU": history(seed)[-1][1], "model_macs": 1e9 * (seed + 1), "status": "ok"})

    return trainable


@pytest.fixture(scope="module")
def local_ray():
    import ray

    ray.init(
        num_cpus=1,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="ERROR",
        _temp_dir=tempfile.mkdtemp(prefix="hb-trk-", dir="/tmp"),
    )  # short: socket paths < 108 chars
    try:
        yield
    finally:
        ray.shutdown()


def fit(run_dir: Path, callbacks: list, name: str = "tune") -> Path:
    """Run the two trials with these callbacks; return the experiment directory."""
    from ray import tune

    tuner = tune.Tuner(
        trainable_factory(),
        param_space={"trial": tune.grid_search(TRIALS), **PLUMBING},
        tune_config=tune.TuneConfig(trial_dirname_creator=lambda t: t.config["trial"]["trial_id"]),
        run_config=tune.RunConfig(name=name, storage_path=str(run_dir), verbose=0, callbacks=callbacks),
    )
    grid = tuner.fit()
    assert not grid.errors, grid.errors
    return run_dir / name


@pytest.fixture(scope="module")
def mlflow_run(local_ray, tmp_path_factory):
    saved = os.environ.pop("MLFLOW_TRACKING_URI", None)  # the run's own store
    try:
        run_dir = tmp_path_factory.mktemp("run")
        experiment = fit(run_dir, [*default_callbacks(), *tracker_callbacks("mlflow", run_dir, "quick")])
    finally:  # MLflow exports the URI it was given: put back what was there
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        if saved is not None:
            os.environ["MLFLOW_TRACKING_URI"] = saved
    return run_dir, experiment


def test_mlflow_keeps_one_run_per_trial_with_its_parameters_and_history(mlflow_run) -> None:
    from mlflow.tracking import MlflowClient

    run_dir, _ = mlflow_run
    assert (run_dir / "mlruns" / "mlflow.db").is_file()
    client = MlflowClient(mlflow_tracking_uri(run_dir))
    experiment = client.get_experiment_by_name("quick")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert sorted(runs) == [t["trial_id"] for t in TRIALS]
    for trial in TRIALS:
        run = runs[trial["trial_id"]]
        assert run.info.status == "FINISHED"
        params = run.data.params
        assert params["module"] == "ham-nmf" and params["seed"] == str(trial["seed"])
        assert params["options.rank"] == str(trial["options"]["rank"]) and params["budget.iters"] == "30"
        assert params["backbone"] == "tiny-d8" and params["data"] == "synthetic-context"
        assert not any(k.startswith(("trial/", "done_uri", "plugins")) for k in params), params  # flat, no plumbing
        assert run.data.tags["hambench.run_id"] == run_dir.name
        steps = [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "mIoU")]
        assert sorted(steps) == history(trial["seed"])  # every evaluation at its iteration, and the final
        assert run.data.metrics["model_macs"] == 1e9 * (trial["seed"] + 1)  # the cost, from the final report
        assert not any(k.startswith("config/") for k in run.data.metrics)  # the config is no metric


@pytest.mark.slow
def test_a_trial_run_again_continues_its_mlflow_run(local_ray, tmp_path, monkeypatch) -> None:
    """A resumed suite runs its unfinished trials again, with callbacks Tune restored: each
    continues the MLflow run it had, so the store keeps one run per trial."""
    from mlflow.tracking import MlflowClient

    from hambench.tracking import tracker_environment

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for name in ("first", "resumed"):
        with tracker_environment():
            fit(tmp_path, tracker_callbacks("mlflow", tmp_path, "again"), name=name)
    assert "MLFLOW_TRACKING_URI" not in os.environ  # what MLflow exported is gone again
    client = MlflowClient(mlflow_tracking_uri(tmp_path))
    runs = client.search_runs([client.get_experiment_by_name("again").experiment_id])
    assert sorted(r.info.run_name for r in runs) == [t["trial_id"] for t in TRIALS]
    for run in runs:
        seed = int(run.data.params["seed"])
        assert len(client.get_metric_history(run.info.run_id, "mIoU")) == 2 * len(history(seed))


def test_every_trial_directory_has_tensorboard_scalars(mlflow_run) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, experiment = mlflow_run
    for trial in TRIALS:
        (events,) = (experiment / trial["trial_id"]).glob("events.out.tfevents.*")
        acc = EventAccumulator(str(events))
        acc.Reload()
        values = [e.value for e in acc.Scalars("ray/tune/mIoU")]
        assert values == pytest.approx([v for _, v in history(trial["seed"])])


@pytest.mark.slow
def test_wandb_logs_offline_into_the_run_directory(local_ray, tmp_path, monkeypatch) -> None:
    for var in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_PROJECT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr("hambench.tracking.wandb_offline", lambda: True)  # whatever `wandb login` this machine has
    fit(tmp_path, tracker_callbacks("wandb", tmp_path, "quick"))
    assert os.environ["WANDB_MODE"] == "offline"
    runs = sorted((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 2  # one W&B run per trial, nothing sent anywhere
    for log in runs:  # W&B's own binary log: the metric and the trial's configuration, not the plumbing
        data = log.read_bytes()
        assert b"mIoU" in data and b"ham-nmf" in data and b"done_uri" not in data


# --- without Ray ---------------------------------------------------------------------------------


def test_trial_params_are_the_trials_fields_flat() -> None:
    params = trial_params({"trial": TRIALS[0], **PLUMBING})
    assert params["module"] == "ham-nmf" and params["options.rank"] == 8 and params["budget.crop"] == [32, 32]
    assert "task_options" not in params and "done_uri" not in params and "plugins" not in params


def test_the_step_is_the_tasks_iteration() -> None:
    assert task_step({"iter": 40, "training_iteration": 2}) == 40
    assert task_step({"iters": 300, "training_iteration": 9}) == 300  # the final report
    assert task_step({"done": True, "training_iteration": 3}) == 3  # no iteration of the task's own


def test_unknown_or_missing_tracker_is_one_line(monkeypatch) -> None:
    check_tracker(None)
    with pytest.raises(TrackerError, match=r"^--tracker 'neptune': choose one of mlflow, wandb$"):
        check_tracker("neptune")
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else find_spec(name, *a))
    with pytest.raises(
        TrackerError, match=r"^--tracker mlflow needs `pip install hambench\[track\]` \(mlflow is not installed\)$"
    ):
        check_tracker("mlflow")
    with pytest.raises(TrackerError):
        tracker_callbacks("mlflow", Path("/nowhere"), "quick")  # checked before anything is written


def test_mlflow_tracking_uri_prefers_the_environment(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert mlflow_tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlruns/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert mlflow_tracking_uri(tmp_path) == "http://mlflow.example:5000"


def test_wandb_is_offline_unless_a_key_or_mode_says_otherwise(monkeypatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "online")
    assert not wandb_offline()
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert wandb_offline()
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert not wandb_offline()


def test_trackers_import_only_when_asked(fresh_python) -> None:
    code = (
        "import sys, hambench.cli.main, hambench.tracking; "
        "print(sorted(m for m in ('mlflow', 'wandb', 'ray.air.integrations.mlflow') if m in sys.modules))"
    )
    assert fresh_python(code).stdout.strip() == "[]"
