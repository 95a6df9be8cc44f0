"""``hambench run suite``: a suite runs on an embedded Ray, writes its run directory, and a trial
that raises is recorded as failed while the others go on."""

from __future__ import annotations

import errno
import json
import shutil
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from hambench.cli.main import main
from hambench.schema import COST_COLUMNS, TRIAL_COLUMNS
from hambench.tuning import RunOptions, run_suite

# A plugin module for the runner's tests. `fail` raises in the constructor (a bad option);
# `marker` appends the constructing process id to a file (to count a trial's executions);
# `delay` sleeps in forward (to make a trial last long enough to interrupt).
PLUGIN = """
import os, time
from torch import nn
from hambench.registry import register_module


@register_module("test-probe", family="other", complexity="O(n)")
class Probe(nn.Module):
    def __init__(self, channels, delay: float = 0.0, fail: bool = False, marker: str = ""):
        super().__init__()
        if fail:
            raise ValueError("test-probe was asked to fail")
        if marker:
            with open(marker, "a") as f:
                f.write(f"{os.getpid()}\\n")
        self.delay = delay
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        if self.delay:
            time.sleep(self.delay)
        return x + self.proj(x)
"""

RESULT_COLUMNS = set(TRIAL_COLUMNS + COST_COLUMNS)  # a profiling row: what every trial is, and the module's cost


def write_plugin(tmp_path: Path) -> Path:
    path = tmp_path / "probe_plugin.py"
    path.write_text(PLUGIN)
    return path


def profile_suite(tmp_path: Path, modules_yaml: str, *, name: str = "tiny-profile", sweep: str = "[]") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        textwrap.dedent(f"""
        name: {name}
        description: a tiny profiling suite for the runner's tests
        task: profile
        grid:
          modules: {modules_yaml}
        profile: {{shape: [1, 8, 8, 8], sweep: {sweep}, max_time: 0.5}}
        metrics: [latency_ms, macs_fvcore]
        max_concurrent: 2
        max_failures: 1
    """)
    )
    return path


def test_run_suite_writes_the_run_directory_and_records_failures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from hambench.io import mount_point
    from hambench.tuning import driver

    plugin = write_plugin(tmp_path)
    marker = tmp_path / "marker.txt"
    suite = profile_suite(
        tmp_path,
        f"""
            - none
            - {{name: test-probe, options: {{marker: ["{marker}"]}}}}
            - {{name: test-probe, options: {{fail: [true]}}}}""",
        sweep="[4, 8]",
    )
    args = ["run", "suite", str(suite), "--plugin", str(plugin), "--only", "test-probe"]
    args += ["--run-id", "r1", "--out", str(tmp_path / "runs"), "--num-cpus", "2"]
    code = main(args)
    out = capsys.readouterr().out
    assert code == 1, out  # a trial failed
    assert (
        "2 trials, 1 failed" in out
        and "FAILED profile-test-probe-fail=True: ValueError: test-probe was asked to fail" in out
    )

    run_dir = tmp_path / "runs" / "tiny-profile" / "r1"
    for name in ("results.parquet", "profile.parquet", "history.parquet", "suite.yaml", "meta.json", "report.html"):
        assert (run_dir / name).is_file(), name
    results = pd.read_parquet(run_dir / "results.parquet")
    assert RESULT_COLUMNS <= set(results.columns)
    assert len(results) == 2 and results["trial_id"].is_unique and set(results["module"]) == {"test-probe"}
    failed = results[results["status"] == "failed"]
    assert len(failed) == 1 and "test-probe was asked to fail" in failed["error"].iloc[0]
    ok = results[results["status"] == "ok"].iloc[0]
    assert ok["error"] == "" and ok["params"] == 8 * 8 + 8 and ok["latency_ms"] > 0 and ok["profile_shape"] == "1x8x8x8"
    assert ":" in ok["node"] and ok["device"] == "cpu" and ok["device_name"]
    # `options`: what the module was built with (every option, defaults filled in); `options_given`: the suite's.
    assert json.loads(ok["options"]) == {"delay": 0.0, "fail": False, "marker": str(marker)}
    assert json.loads(ok["options_given"]) == {"marker": str(marker)}

    profile = pd.read_parquet(run_dir / "profile.parquet")
    assert list(profile["sweep_size"].fillna(0)) == [0, 4, 8]  # the main shape, then the n-sweep
    assert profile["exponent_macs"].dropna().round(2).tolist() == [1.0, 1.0]  # a 1x1 conv: MACs ~ n
    assert profile["node"].eq(ok["node"]).all()

    history = pd.read_parquet(run_dir / "history.parquet")
    assert history["trial_id"].eq(ok["trial_id"]).all() and sorted(history["iter"]) == [1, 2, 3]

    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["suite"] == "tiny-profile" and meta["run_id"] == "r1" and meta["nodes"]
    assert {"hambench", "torch", "ray"} <= set(meta["versions"])
    assert len(set(marker.read_text().split())) == 1  # the probe's trial ran once

    # A profile-only suite ends with a cost summary, printed and in summary.csv.
    assert "module cost (profile trials)" in out and "1x8x8x8" in out
    summary = pd.read_csv(run_dir / "summary.csv").set_index("options")
    assert len(summary) == 2 and set(summary["module"]) == {"test-probe"}
    built = summary.loc[ok["options"]]
    assert built["n"] == 1 and built["failed"] == 0 and built["params"] == 8 * 8 + 8 and built["latency_ms"] > 0
    assert summary.loc[failed["options"].iloc[0], "failed"] == 1  # a trial that raised: counted, n = 0

    # --resume of the finished run rewrites the tables and the summary without running a trial again,
    # and says first which run it continues (the folder given here). First on a disk that is full
    # when the summary is written: one line, exit status 2, the command that finishes the run.
    (run_dir / "summary.csv").unlink()
    resume = [*args[:-6], "--out", str(tmp_path / "runs"), "--num-cpus", "2", "--resume", str(run_dir)]

    def full(run_dir: Path, table: pd.DataFrame) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(run_dir / "summary.csv"))

    with monkeypatch.context() as m:
        m.setattr(driver, "write_summary", full)
        assert main([*resume, "--no-report"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress lines
    assert err == (
        f"hambench: error: no space left on {mount_point(run_dir)} writing {run_dir / 'summary.csv'}; free space "
        f"and run `hambench run suite {suite} --resume {run_dir} --only test-probe --num-cpus 2 --plugin {plugin}`"
    )
    assert not (run_dir / "summary.csv").exists()
    assert main([*resume, "--no-report"]) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith(f"resuming {run_dir} (the run folder given; started 20")
    assert (run_dir / "summary.csv").is_file() and "module cost (profile trials)" in out
    assert len(set(marker.read_text().split())) == 1

    # A damaged results table: the report rebuilds every derived table from Tune's state, in one line.
    before = pd.read_parquet(run_dir / "results.parquet").set_index("trial_id").sort_index()
    (run_dir / "results.parquet").write_bytes((run_dir / "results.parquet").read_bytes()[:100])
    (run_dir / "history.parquet").write_bytes(b"PAR1 not a table")
    assert main(["report", str(run_dir), "--out", str(tmp_path / "report.html")]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert line == (
        f"results.parquet, history.parquet missing or damaged in {run_dir}: rebuilt results.parquet, "
        "history.parquet, profile.parquet, summary.csv from the Tune experiment"
    )
    after = pd.read_parquet(run_dir / "results.parquet").set_index("trial_id").sort_index()
    assert list(after.index) == list(before.index) and after["started_at"].equals(before["started_at"])
    # ... and where that state is gone too, it says so in one line, exit status 2.
    (run_dir / "results.parquet").unlink()
    shutil.rmtree(json.loads((run_dir / "meta.json").read_text())["experiment"])
    assert main(["report", str(run_dir), "--out", str(tmp_path / "report.html")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"hambench: error: {run_dir / 'results.parquet'} is missing or damaged and cannot be rebuilt")
    assert len(err.splitlines()) == 1


def test_training_rows_join_their_cost_on_the_given_options(tmp_path: Path, tune_results) -> None:
    """The profiling trial builds the module at the profile width, the seg trial at the head's: their
    resolved options differ, and the seg row must still get the cost its profiling trial measured."""
    from hambench.suite import load_suite
    from hambench.tuning import collect_tables
    from hambench.tuning.plan import expand

    path = tmp_path / "join.yaml"
    path.write_text(
        textwrap.dedent("""
        name: join
        description: cost join
        task: seg
        grid:
          modules: [{name: ham-nmf, options: {rank: 8}}]
          backbones: [tiny-d8]
          data: [synthetic-context]
          seeds: [0, 1]
        budget: {iters: 4, eval_interval: 2}
        profile: {shape: [1, 32, 16, 16]}
    """)
    )
    suite = load_suite(path)
    trials = expand(suite)
    at = {"profile": '{"rank": 8, "width": 32}', "seg": '{"rank": 8, "width": 64}'}  # as the trials would report them
    reports = {
        t.trial_id: [
            {
                "status": "ok",
                "resolved_options": at[t.task],
                "iters": 4,
                "seed": t.seed,
                **({"params": 1234, "latency_ms": 0.5} if t.task == "profile" else {"mIoU": 40.0 + t.seed}),
            }
        ]
        for t in trials
    }
    grid = tune_results([t.model_dump(mode="json") for t in trials], reports)
    table, _, _ = collect_tables(suite, "r", grid)
    seg = table[table["task"] == "seg"]
    assert len(seg) == 2 and (seg["params"] == 1234).all() and (seg["latency_ms"] == 0.5).all()
    assert set(seg["options"]) == {at["seg"]} and set(table.loc[table["task"] == "profile", "options"]) == {
        at["profile"]
    }
    assert set(table["options_given"]) == {'{"rank": 8}'}


def test_module_width_is_where_the_module_is_built() -> None:
    from hambench.registry import resolve_options
    from hambench.tasks import module_width, resolved_options
    from hambench.trial import Budget, ProfileSpec, Resources, Trial

    common = dict(
        module="ham-nmf",
        family="hamburger",
        options={"rank": 16},
        head="context",
        data="synthetic-context",
        seed=0,
        resources=Resources(),
        budget=Budget(iters=4, eval_interval=2),
    )
    seg = Trial(trial_id="s", task="seg", backbone="r50-d8", **common)
    tiny = Trial(trial_id="t", task="seg", backbone="tiny-d8", **common)
    prof = Trial(trial_id="p", task="profile", backbone="none", profile=ProfileSpec(shape=(1, 48, 8, 8)), **common)
    gan = Trial(trial_id="g", task="gan", backbone="none", **common)
    assert [module_width(t) for t in (seg, tiny, prof, gan)] == [512, 64, 48, None]  # r50-d8's head is 512 wide
    assert resolved_options(seg) == resolve_options("ham-nmf", 512, rank=16)
    assert resolved_options(gan) == {"rank": 16}  # G and D build it at two widths: as given


def test_run_errors_are_clear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = profile_suite(tmp_path, "[none]", name="never-ran")
    assert main(["run", "suite", str(suite), "--resume", "--out", str(tmp_path / "runs")]) == 2
    assert "--resume: no earlier run of suite 'never-ran'" in capsys.readouterr().err
    assert main(["run", "suite", "no-such-suite"]) == 2
    assert "unknown suite 'no-such-suite'" in capsys.readouterr().err


@pytest.mark.slow
def test_ade20k_pareto_smoke(tmp_path: Path) -> None:
    """The ADE20K suite's whole path (R101-D8 and VAN Light-Ham, fixture data in the
    ADEChallengeData2016 layout, profiling, report) with tiny budgets."""
    run_dir = run_suite("ade20k-pareto", RunOptions(out=tmp_path / "runs", smoke=True, num_cpus=2, progress=False))
    results = pd.read_parquet(run_dir / "results.parquet")
    assert results["status"].eq("ok").all(), results[["trial_id", "error"]].to_string()
    seg = results[results["task"] == "seg"]
    assert len(seg) == 9 and seg["mIoU"].notna().all()
    assert set(seg["backbone"]) == {"r101-d8", "van-tiny", "van-small", "van-base"}
    assert seg["macs_fvcore"].notna().all()  # each training row carries its module's measured cost
    assert (run_dir / "report.html").stat().st_size > 10_000


def test_progress_counts_best_and_eta(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ray.tune.experiment import Trial as TuneTrial

    from hambench.suite import load_suite
    from hambench.tuning import Progress, write_done
    from hambench.tuning.plan import expand

    trials = expand(load_suite("quickstart"))  # 8 profiling + 24 seg trials (3 seeds)
    done_dir = tmp_path / "done"
    write_done(str(done_dir), trials[0].trial_id, {"status": "ok"})  # finished before a resume
    progress = Progress(trials, ["mIoU", "latency_ms"], str(done_dir))
    progress.setup()

    def tune_trial(i: int, result: dict | None = None) -> TuneTrial:
        """Tune's own trial of hambench trial i, as the callbacks receive it (a stub: nothing runs it)."""
        trial = TuneTrial("hambench", config={"trial": trials[i].model_dump()}, trial_id=f"tune{i}", stub=True)
        if result is not None:
            trial.update_last_result(result)  # what Tune does with each result a trial reports
        return trial

    for i in (1, 2):
        progress.on_trial_start(0, [], tune_trial(i))
    assert "done 1/32 (failed 0) | running 2 | pending 29" in progress.line()
    progress.running = {k: (task, start - 10) for k, (task, start) in progress.running.items()}  # 10 s ago
    progress.on_trial_result(0, [], tune_trial(1), {"latency_ms": 3.0})
    progress.on_trial_result(0, [], tune_trial(2), {"latency_ms": 2.0})
    progress.on_trial_complete(0, [], tune_trial(1, {"status": "ok"}))
    progress.on_trial_complete(0, [], tune_trial(2, {"status": "failed"}))
    line = progress.line()
    assert "done 3/32 (failed 1) | running 0 | pending 29" in line
    assert f"latency_ms 2 ({trials[2].module})" in line
    assert "eta ?" in line  # no seg trial has run yet: its length is unknown
    seg = next(i for i, t in enumerate(trials) if t.task == "seg")
    progress.on_trial_start(0, [], tune_trial(seg))
    progress.running[f"tune{seg}"] = ("seg", progress.running[f"tune{seg}"][1] - 100)
    progress.on_trial_result(0, [], tune_trial(seg), {"mIoU": 40.0})
    # 5 profiling trials x 10 s + 24 seg trials x >= 100 s, over the 2 slots seen so far
    assert 1200 <= progress.eta() <= 1290 and "mIoU 40" in progress.line()

    # A worker that died: one line per retry and when no retry is left (Tune's traceback: ray.log).
    failing = tune_trial(seg + 1, {})
    failing.max_failures = 2
    failing.run_metadata.num_failures = 1
    progress.on_trial_recover(0, [], failing)
    failing.run_metadata.num_failures = 3
    progress.on_trial_error(0, [], failing)
    said = capsys.readouterr().err.splitlines()
    worker = [line for line in said if line.startswith(trials[seg + 1].trial_id)]
    assert worker == [
        f"{trials[seg + 1].trial_id}: its worker failed; retry 1 of 2",
        f"{trials[seg + 1].trial_id}: its worker failed 3 time(s); counted failed",
    ]
    assert "(failed 2)" in progress.line()


def test_resume_names_its_run_and_refuses_a_changed_grid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Which run --resume continues, and a suite edited since: decided before Ray starts, in one line."""
    suite = profile_suite(tmp_path, "[none]")
    base = tmp_path / "runs" / "tiny-profile"
    for run_id in ("20261201-100000", "20261201-100001"):  # two runs a second apart
        (base / run_id).mkdir(parents=True)
        (base / run_id / "meta.json").write_text(json.dumps({"suite": "tiny-profile", "date": f"{run_id}"}))
        shutil.copy(suite, base / run_id / "suite.yaml")
    profile_suite(tmp_path, "[none, se]")  # the grid grew since
    args = ["run", "suite", str(suite), "--out", str(tmp_path / "runs"), "--resume"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"hambench: error: --resume: the suite's grid changed since {base / '20261201-100001'} started: 1 trial(s) "
        "added (profile-se); restore the suite file, or start a new run without --resume"
    )
    other = profile_suite(tmp_path, "[none]", name="other")
    assert main(["run", "suite", str(other), "--resume", str(base / "20261201-100000")]) == 2
    assert "is a run of suite 'tiny-profile', not 'other'" in capsys.readouterr().err


def test_an_out_without_room_or_write_access_is_refused_before_ray(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The floor of a run's disk use and a writable --out are checked before Ray starts; nothing is
    created. (A 3 MB tmpfs and a read-only mount give the same lines: docs/suites.md.)"""
    import collections

    from hambench.tuning import rundir

    suite = profile_suite(tmp_path, "[none, se]")
    out = tmp_path / "runs"
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(rundir.shutil, "disk_usage", lambda path: usage(3_145_728, 0, 3_145_728))
    assert main(["run", "suite", str(suite), "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"hambench: error: {tmp_path} has 3.15 MB free; this run needs at least 18 MB (0 training trials at 8 MB, "
        "2 profiling at 1 MB, 16 MB for its tables and report); free space or choose another --out"
    )
    monkeypatch.setattr(rundir.os, "access", lambda path, mode: False)
    assert main(["run", "suite", str(suite), "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"hambench: error: cannot write to {tmp_path} (read-only or not yours); choose another --out"
    )
    assert not out.exists()


def test_tune_state_cut_short_is_set_aside_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A full disk can cut Tune's state files short (Tune rewrites them in place): --resume then
    keeps them as *.damaged and starts the phase's Tuner afresh, saying so; whole files are left be."""
    import pickle

    from hambench.tuning.rundir import set_aside_if_damaged

    experiment = tmp_path / "tune-quickstart-r"
    experiment.mkdir()
    state = experiment / "experiment_state-2026-12-05_22-04-47.json"
    search = experiment / "basic-variant-state-2026-12-05_22-04-47.json"
    state.write_text(json.dumps({"trial_data": [], "runner_data": {}}))
    search.write_bytes(pickle.dumps({"iterators": []}))
    assert not set_aside_if_damaged(str(experiment)) and capsys.readouterr().out == ""
    search.write_bytes(search.read_bytes()[:10])  # cut short mid-write
    assert set_aside_if_damaged(str(experiment))
    assert capsys.readouterr().out.strip() == (
        f"Tune's state in {experiment} is damaged (basic-variant-state-2026-12-05_22-04-47.json: UnpicklingError; "
        "kept as *.damaged): its unfinished trials start again from their first step, its finished ones are kept"
    )
    assert sorted(p.name for p in experiment.iterdir()) == [search.name + ".damaged", state.name + ".damaged"]


def test_ray_notices_go_to_ray_log_but_a_trial_that_cannot_start_is_said(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Quiet mode: Tune's tracebacks and storage-sync retries to the run's ray.log; its warning that
    no trial can start (more asked than any node has) on the terminal; the loggers as before after."""
    import logging

    from hambench.tuning.driver import _ray_notices_to

    monkeypatch.setattr(logging.getLogger("ray"), "level", logging.NOTSET)  # as in a run (configure_logging=False)
    before = [(lg.handlers[:], lg.propagate) for lg in map(logging.getLogger, ("ray.tune", "ray.train"))]
    with _ray_notices_to(tmp_path / "ray.log"):
        logging.getLogger("ray.tune.execution.insufficient_resources_manager").warning("asked for 1 GPU, have 0")
        logging.getLogger("ray.tune.execution.tune_controller").error("Trial task failed for trial t1")
        logging.getLogger("ray.train._internal.syncer").warning("Last sync command failed")
    err = capsys.readouterr().err
    assert "asked for 1 GPU, have 0" in err and "Trial task failed" not in err and "sync" not in err
    log = (tmp_path / "ray.log").read_text()
    assert "Trial task failed for trial t1" in log and "Last sync command failed" in log and "GPU" not in log
    assert [(lg.handlers, lg.propagate) for lg in map(logging.getLogger, ("ray.tune", "ray.train"))] == before


def test_local_folder_reads_the_scheme_only() -> None:
    from hambench.tuning.trainable import local_folder

    assert local_folder("/runs/q/r/tune-q-r/done") == Path("/runs/q/r/tune-q-r/done")
    assert local_folder("file:///runs/q/r/tune-q-r") == Path("/runs/q/r/tune-q-r")
    assert local_folder("s3://bucket/runs/tune-q-r") is None and local_folder("gs://b/x") is None
