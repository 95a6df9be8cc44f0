"""A suite from Python (``hambench.run_suite``): the two-line suite a person writes from memory
runs with ``smoke=True`` and ``tracker="mlflow"``; the tables come back as DataFrames, MLflow holds
one run per trial (read through MLflow's own client), every trial has TensorBoard event files, and
``--resume`` with the same tracker still works (a different one is refused in one line)."""

from __future__ import annotations

import pytest

import hambench
from hambench.cli.main import main


@pytest.fixture(scope="module")
def two_line_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("py")
    path = tmp / "two.yaml"
    path.write_text("name: two\ngrid: {modules: [ham-nmf, none]}\n")
    mp = pytest.MonkeyPatch()
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)  # the run's own store
    try:
        run = hambench.run_suite(
            path, smoke=True, out=tmp / "runs", run_id="r", num_cpus=2, report=False, progress=False, tracker="mlflow"
        )
    finally:
        mp.undo()
    return path, tmp, run


@pytest.mark.slow
def test_a_two_line_suite_runs_from_python(two_line_run) -> None:
    _, tmp, run = two_line_run
    assert run.run_dir == tmp / "runs" / "two" / "r"
    assert list(run.results["module"]) == ["ham-nmf", "none"] and run.results["status"].eq("ok").all()
    assert set(run.results["data"]) == {"synthetic-context"} and set(run.results["backbone"]) == {"tiny-d8"}
    assert run.results["mIoU"].notna().all() and run.results["started_at"].le(run.results["ended_at"]).all()
    assert set(run.summary["module"]) == {"ham-nmf", "none"}
    assert run.profile is None  # the suite profiles nothing
    assert run.history is not None and set(run.history["trial_id"]) == set(run.results["trial_id"])


@pytest.mark.slow
def test_mlflow_has_one_run_per_trial_and_tensorboard_files_exist(two_line_run) -> None:
    from mlflow.tracking import MlflowClient

    from hambench.tracking import mlflow_tracking_uri

    _, _, run = two_line_run
    client = MlflowClient(mlflow_tracking_uri(run.run_dir))
    experiment = client.get_experiment_by_name("two")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert sorted(runs) == sorted(run.results["trial_id"])
    for row in run.results.itertuples():
        tracked = runs[row.trial_id]
        assert tracked.info.status == "FINISHED"
        assert tracked.data.params["module"] == row.module and tracked.data.params["seed"] == str(row.seed)
        assert tracked.data.metrics["mIoU"] == pytest.approx(row.mIoU)
    for trial_id in run.results["trial_id"]:
        (trial_dir,) = run.run_dir.glob(f"tune-*/{trial_id}")
        assert list(trial_dir.glob("events.out.tfevents.*")), trial_dir


@pytest.mark.slow
def test_resume_keeps_the_tracker_it_started_with(two_line_run, capsys, monkeypatch) -> None:
    from mlflow.tracking import MlflowClient

    from hambench.tracking import mlflow_tracking_uri

    path, tmp, run = two_line_run
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    args = [
        "run",
        "suite",
        str(path),
        "--smoke",
        "--out",
        str(tmp / "runs"),
        "--run-id",
        "r",
        "--resume",
        "--num-cpus",
        "2",
        "--no-report",
    ]
    assert main([*args, "--tracker", "wandb"]) == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert err == "hambench: error: --resume: this run was started with --tracker mlflow; resume it with the same"
    assert main([*args, "--tracker", "mlflow"]) == 0
    assert "2 trials, 0 failed" in capsys.readouterr().out
    client = MlflowClient(mlflow_tracking_uri(run.run_dir))
    assert len(client.search_runs([client.get_experiment_by_name("two").experiment_id])) == 2  # no run twice


def test_unknown_options_name_the_valid_ones() -> None:
    with pytest.raises(TypeError, match=r"unknown option\(s\) smok; valid options: address, .*smoke.*tracker"):
        hambench.run_suite("quickstart", smok=True)
