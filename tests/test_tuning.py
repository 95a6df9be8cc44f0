"""The tuning protocol (a suite's ``tune:``): the same samples and schedule for every module,
selection on validation only, the retrain with the chosen configuration and the grid's seeds."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from ray.tune.experiment import Trial as TuneTrial
from ray.tune.schedulers import TrialScheduler

from hambench.results import by_arm
from hambench.suite import SuiteError, grid_points, load_suite, parse_suite, smoke
from hambench.tuning.plan import expand
from hambench.tuning.search import (
    PointScheduler,
    choose,
    default_values,
    draw_samples,
    retrain_trials,
    search_scheduler,
    search_trials,
)
from hambench.tuning.trainable import read_done

TUNED = {
    "name": "tiny-tuned",
    "task": "seg",
    "grid": {"modules": ["ham-nmf", "none"], "seeds": 2},
    "budget": {"iters": 40, "eval_interval": 10, "batch": 2, "lr": 0.1},
    "tune": {
        "space": {"lr": {"loguniform": [0.01, 0.5]}, "weight_decay": {"loguniform": [1e-5, 1e-3]}},
        "modules": {"ham-nmf": {"train_steps": {"randint": [3, 9]}}},
        "samples": 4,
        "grace": 10,
        "seed": 100,
    },
}


def tuned(**tune: Any) -> Any:
    return parse_suite({**TUNED, "tune": {**TUNED["tune"], **tune}})


def miou_rows_of_both_arms(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary's mIoU rows, checked to be one per module (ham-nmf, none) and arm (default, tuned)."""
    head = summary[summary["metric"] == "mIoU"]
    assert sorted(zip(head["module"], head["arm"])) == [
        ("ham-nmf", "default"),
        ("ham-nmf", "tuned"),
        ("none", "default"),
        ("none", "tuned"),
    ]
    return head


# --- the schema ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, message",
    [
        ({"space": {"lr": {"gaussian": [0, 1]}}}, "tune.space.lr: expected a mapping of one distribution"),
        ({"space": {"lr": {"loguniform": [0, 1]}}}, "loguniform takes 0 < low < high"),
        ({"space": {"lr": {"uniform": [2, 1]}}}, "uniform takes [low, high]"),
        (
            {"space": {"momentum_typo": {"uniform": [0, 1]}}},
            "tune.space.momentum_typo: not a field the search can set for task seg; "
            "valid: batch, lr, momentum, weight_decay",
        ),
        ({"space": {"seed": {"randint": [0, 9]}}}, "tune.space.seed: not a field the search can set"),
        ({"modules": {"danet": {"reduction": {"choice": [4, 8]}}}}, "tune.modules.danet: not a module of the grid"),
        ({"metric": "fid"}, "tune.metric: 'fid' is not a metric of task seg; valid: mIoU, mIoU_auc, aAcc"),
        ({"grace": 15}, "tune.grace: 15 must be a multiple of budget.eval_interval (10)"),
        ({"grace": 40}, "tune.grace: 40 must be below the budget's iters (40)"),
        ({"seed": 0}, "the search's training seeds 0..3 include the grid's seed(s) 0, 1"),
        ({"samples": 0}, "tune.samples"),
        ({"space": {}, "modules": {}}, "tune: nothing to search"),
    ],
)
def test_a_bad_tune_section_fails_naming_the_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(SuiteError) as err:
        tuned(**change)
    assert message in str(err.value)


def test_an_unknown_module_option_in_a_module_space_fails_before_anything_runs() -> None:
    with pytest.raises(SuiteError, match=r"tune\.modules\.ham-nmf\.no_such_option: .*no_such_option"):
        tuned(modules={"ham-nmf": {"no_such_option": {"randint": [1, 3]}}})


def test_a_task_without_splits_cannot_be_tuned() -> None:
    data = {
        "name": "g",
        "task": "gan",
        "grid": {"modules": ["none"]},
        "tune": {"space": {"lr": {"loguniform": [1e-4, 1e-3]}}},
    }
    with pytest.raises(SuiteError, match="tune: task gan has no validation and test splits to tune on"):
        parse_suite(data)


def test_the_shipped_tuned_suite_loads() -> None:
    suite = load_suite("synthetic-tuned")
    assert suite.tune is not None and suite.tune.samples == 8 and suite.tune.scheduler == "asha"
    trials = expand(suite)
    assert len(trials) == 8 * 8 and {t.phase for t in trials} == {"search"}


# --- the search: equal for every module ------------------------------------------------------------


def test_every_module_gets_the_same_samples_shared_values_and_schedule() -> None:
    suite = tuned()
    trials = expand(suite)
    by_module: dict[str, list[Any]] = {}
    for t in trials:
        by_module.setdefault(t.module, []).append(t)
    assert {m: len(ts) for m, ts in by_module.items()} == {"ham-nmf": 4, "none": 4}  # equal samples
    for ts in by_module.values():
        assert [t.sample for t in ts] == [0, 1, 2, 3]
        assert [t.seed for t in ts] == [100, 101, 102, 103]  # the search's own seeds, never the grid's 0, 1
        assert {t.split for t in ts} == {"val"} and {t.budget.iters for t in ts} == {40}  # same cap
    nmf, none = by_module["ham-nmf"], by_module["none"]
    for a, b in zip(nmf, none):  # common random numbers: the shared space's values are the same draws
        assert a.budget.lr == b.budget.lr and a.task_options.get("weight_decay") == b.task_options.get("weight_decay")
    # sample 0: the defaults, recorded with their values; the drawn ones set the budget and the config
    assert nmf[0].budget.lr == 0.1 and nmf[0].task_options == {} and nmf[0].options == {}
    assert nmf[0].tuned["lr"] == 0.1 and nmf[0].tuned["weight_decay"] == 1e-4 and nmf[0].tuned["train_steps"] == 6
    assert len({t.budget.lr for t in nmf}) == 4 and all(0.01 <= t.budget.lr <= 0.5 for t in nmf)
    # the module's own space reaches its options only
    assert all(3 <= t.options["train_steps"] < 9 for t in nmf[1:]) and all("train_steps" not in t.options for t in none)
    assert all(
        t.tuned
        == {"lr": t.budget.lr, "weight_decay": t.task_options["weight_decay"], "train_steps": t.options["train_steps"]}
        for t in nmf[1:]
    )
    # sample-major: every module's sample i before any sample i + 1
    assert [t.sample for t in trials] == [0, 0, 1, 1, 2, 2, 3, 3]


def test_the_draws_depend_on_the_search_seed_only() -> None:
    assert draw_samples(tuned(), "none") == draw_samples(tuned(), "none")
    assert draw_samples(tuned(seed=200), "none") != draw_samples(tuned(), "none")
    assert draw_samples(tuned(defaults_first=False), "none")[0] is not None


def test_smoke_keeps_two_samples_cut_at_the_first_evaluation() -> None:
    suite = smoke(tuned())
    assert suite.tune.samples == 2 and suite.tune.grace == suite.budget.eval_interval
    assert len(expand(suite, smoke_run=True)) == 2 * 2


# --- one ASHA per grid point ------------------------------------------------------------------------


def _tune_trial(t: Any, done_uri: str) -> TuneTrial:
    """Tune's own trial of hambench trial t, as a scheduler receives it (a stub: nothing runs it)."""
    return TuneTrial(
        "hambench", config={"trial": t.model_dump(mode="json"), "done_uri": done_uri}, trial_id=t.trial_id, stub=True
    )


def test_asha_compares_a_sample_with_its_own_modules_samples_only(tmp_path: Path) -> None:
    suite = tuned(samples=3, reduction=2)
    trials = expand(suite)
    scheduler = search_scheduler(suite)
    assert isinstance(scheduler, PointScheduler)
    done_uri = str(tmp_path / "done")
    tune_trials = {t.trial_id: _tune_trial(t, done_uri) for t in trials}
    for f in tune_trials.values():
        scheduler.on_trial_add(None, f)

    def report(module: str, sample: int, score: float) -> str:
        trial = next(
            f
            for f in tune_trials.values()
            if f.config["trial"]["module"] == module and f.config["trial"]["sample"] == sample
        )
        return scheduler.on_trial_result(None, trial, {"iter": 10, "mIoU": score, "time_total_s": 3.0})

    # none's samples score far below ham-nmf's: compared with ham-nmf they would all be cut
    assert report("ham-nmf", 0, 80.0) == TrialScheduler.CONTINUE
    assert report("none", 0, 20.0) == TrialScheduler.CONTINUE  # the first of its own rung
    assert report("ham-nmf", 1, 70.0) == TrialScheduler.STOP  # below ham-nmf's own median
    assert report("none", 1, 30.0) == TrialScheduler.CONTINUE  # above none's own
    stopped = next(t for t in trials if t.module == "ham-nmf" and t.sample == 1)
    record = read_done(done_uri, stopped.trial_id)
    assert record is not None and record["status"] == "stopped" and record["iters"] == 10 and record["mIoU"] == 70.0
    assert read_done(done_uri, next(t for t in trials if t.module == "none" and t.sample == 1).trial_id) is None
    # a final report (the trial's own end, or a done record re-reported on resume) is never cut
    final = next(
        f for f in tune_trials.values() if f.config["trial"]["module"] == "none" and f.config["trial"]["sample"] == 2
    )
    assert (
        scheduler.on_trial_result(None, final, {"mIoU": 0.0, "status": "ok", "done": True}) == TrialScheduler.CONTINUE
    )


def test_fifo_runs_every_sample_to_the_end() -> None:
    assert search_scheduler(tuned(scheduler="fifo")) is None


# --- selection on validation, the retrain --------------------------------------------------------


def test_the_choice_follows_validation_never_test() -> None:
    suite = tuned()
    points = grid_points(suite)
    trials = search_trials(suite, points)
    # validation favours sample 2 for ham-nmf, test would favour sample 1: the records hold val scores
    # (what a search trial measures); a test figure in them must not decide
    val = {0: 60.0, 1: 55.0, 2: 81.0, 3: 81.0}
    test = {0: 60.0, 1: 90.0, 2: 50.0, 3: 50.0}
    records = {}
    for t in trials:
        status = "stopped" if (t.module, t.sample) == ("none", 3) else "ok"
        score = val[t.sample] if t.module == "ham-nmf" else {0: 40.0, 1: 45.0, 2: 30.0, 3: 99.0}[t.sample]
        records[t.trial_id] = {"status": status, "mIoU": score, "test_mIoU": test[t.sample]}
    choices = {c.point.module: c for c in choose(suite, points, trials, records)}
    assert choices["ham-nmf"].sample == 2 and choices["ham-nmf"].score == 81.0  # a tie goes to the lower index
    assert choices["none"].sample == 1  # sample 3 scored 99 on val at a rung, but was stopped: not a candidate
    assert choices["ham-nmf"].completed == 4 and choices["none"].completed == 3

    retrain = retrain_trials(suite, list(choices.values()))
    chosen = next(t for t in trials if t.module == "ham-nmf" and t.sample == 2)
    tuned_arm = [t for t in retrain if t.module == "ham-nmf" and t.arm == "tuned"]
    assert [t.seed for t in tuned_arm] == [0, 1]  # the grid's seeds
    for t in tuned_arm:  # the chosen configuration, scored on test
        assert t.split == "test" and t.phase == "retrain" and t.sample == 2 and t.tuned == chosen.tuned
        assert t.budget.lr == chosen.budget.lr and t.task_options == chosen.task_options and t.options == chosen.options
    defaults = [t for t in retrain if t.module == "ham-nmf" and t.arm == "default"]
    assert [t.seed for t in defaults] == [0, 1] and all(t.budget.lr == 0.1 and t.options == {} for t in defaults)
    assert defaults[0].tuned == default_values(suite, points[0])
    assert len({t.trial_id for t in retrain}) == len(retrain) == 2 * 2 * 2


def test_a_point_without_a_completed_sample_is_not_retrained() -> None:
    suite = tuned(compare_defaults=False)
    points = grid_points(suite)
    trials = search_trials(suite, points)
    records = {t.trial_id: {"status": "failed" if t.module == "none" else "ok", "mIoU": 50.0} for t in trials}
    choices = choose(suite, points, trials, records)
    assert [c.sample for c in choices] == [0, None]
    assert {t.module for t in retrain_trials(suite, choices)} == {"ham-nmf"}


# --- a tuned suite, end to end ---------------------------------------------------------------------


@pytest.mark.slow
def test_a_tuned_suite_runs_searches_retrains_and_resumes(tmp_path: Path) -> None:
    from hambench.cli.main import main

    suite = tmp_path / "tiny-tuned.yaml"
    suite.write_text(
        textwrap.dedent("""
        name: tiny-tuned
        grid: {modules: [ham-nmf, none], seeds: 2}
        budget: {iters: 6, eval_interval: 2, batch: 2, crop: [48, 48]}
        tune:
          space: {lr: {loguniform: [0.01, 0.3]}}
          samples: 3
          scheduler: fifo
          seed: 50
        max_concurrent: 2
    """)
    )
    out = str(tmp_path / "runs")
    args = ["run", "suite", str(suite), "--run-id", "r1", "--out", out, "--num-cpus", "2", "--no-report"]
    assert main(args) == 0
    run_dir = tmp_path / "runs" / "tiny-tuned" / "r1"
    results = pd.read_parquet(run_dir / "results.parquet")
    search = results[results["phase"] == "search"]
    # equal samples and, with fifo, equal iterations per module
    assert search.groupby("module").size().to_dict() == {"ham-nmf": 3, "none": 3}
    assert search.groupby("module")["iters"].sum().to_dict() == {"ham-nmf": 18, "none": 18}
    assert search["split"].eq("val").all() and search["mIoU"].isna().all() and search["val_mIoU"].notna().all()
    retrain = results[results["phase"] == "retrain"]
    assert retrain["split"].eq("test").all() and retrain["mIoU"].notna().all()
    assert retrain["trial_id"].is_unique and len(retrain) <= 2 * 2 * 2  # arm "both": the defaults chosen, run once
    assert by_arm(retrain).groupby(["module", "arm"])["seed"].apply(sorted).to_dict() == {
        (m, a): [0, 1] for m in ("ham-nmf", "none") for a in ("default", "tuned")
    }
    meta = json.loads((run_dir / "meta.json").read_text())
    for choice in meta["tuning"]:  # the chosen sample: the best completed val score of its module
        mine = search[search["module"] == choice["module"]]
        assert choice["val_score"] == mine["val_mIoU"].max()
        chosen = by_arm(retrain)
        chosen = chosen[(chosen["module"] == choice["module"]) & (chosen["arm"] == "tuned")]
        assert chosen["tuned"].map(json.loads).eq(choice["tuned"]).all() and chosen["sample"].eq(choice["sample"]).all()
    head = miou_rows_of_both_arms(pd.read_csv(run_dir / "summary.csv"))
    assert head["n"].eq(2).all()

    # --resume of the finished run: every trial's record as it was, nothing trained again
    before = results.set_index("trial_id")["started_at"]
    assert main([*args, "--resume"]) == 0
    after = pd.read_parquet(run_dir / "results.parquet").set_index("trial_id")["started_at"]
    pd.testing.assert_series_equal(before.sort_index(), after.sort_index())


def test_when_the_defaults_are_chosen_one_set_of_runs_is_both_arms() -> None:
    from hambench.results import by_arm
    from hambench.stats import summarize

    suite = tuned()
    points = grid_points(suite)
    trials = search_trials(suite, points)
    records = {t.trial_id: {"status": "ok", "mIoU": 90.0 if t.sample == 0 else 50.0} for t in trials}
    retrain = retrain_trials(suite, choose(suite, points, trials, records))
    assert {t.arm for t in retrain} == {"both"} and len(retrain) == 2 * 2  # not trained twice
    rows = pd.DataFrame(
        [
            {
                "trial_id": t.trial_id,
                "task": "seg",
                "module": t.module,
                "family": t.family,
                "status": "ok",
                "data": t.data,
                "backbone": t.backbone,
                "seed": t.seed,
                "options": "{}",
                "iters": 40,
                "phase": "retrain",
                "split": "test",
                "arm": t.arm,
                "tuned": json.dumps(t.tuned),
                "mIoU": 60.0 + t.seed,
            }
            for t in retrain
        ]
    )
    assert sorted(by_arm(rows)["arm"]) == ["default"] * 4 + ["tuned"] * 4
    head = miou_rows_of_both_arms(summarize(rows))
    assert head["mean"].eq(60.5).all() and head["n"].eq(2).all()


@pytest.mark.slow
def test_the_shipped_tuned_suite_smoke_runs_asha_and_reports_the_tuning(tmp_path: Path) -> None:
    from hambench.cli.main import main

    out = tmp_path / "runs"
    assert (
        main(
            [
                "run",
                "suite",
                "synthetic-tuned",
                "--smoke",
                "--only",
                "ham-nmf",
                "none",
                "--run-id",
                "r1",
                "--out",
                str(out),
                "--num-cpus",
                "2",
            ]
        )
        == 0
    )
    run_dir = out / "synthetic-tuned" / "r1"
    results = pd.read_parquet(run_dir / "results.parquet")
    search = results[results["phase"] == "search"]
    assert search.groupby("module").size().to_dict() == {"ham-nmf": 2, "none": 2}  # equal samples
    # one ASHA per module: a sample ran the whole budget, or was stopped at the rung (the first evaluation)
    assert set(search["status"]) <= {"ok", "stopped"} and set(search["iters"]) <= {2, 4}
    assert (search["iters"] == 2).eq(search["status"] == "stopped").all()  # a stopped sample stopped at the rung
    assert (search.groupby("module")["status"].apply(lambda s: (s == "ok").sum()) >= 1).all()
    retrain = results[results["phase"] == "retrain"]
    assert set(retrain["split"]) == {"test"} and set(retrain["seed"]) == {0, 1}
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    assert '<section id="tuning">' in page and "chosen on validation" in page


def test_a_stopped_sample_is_tabled_from_its_record_not_from_tunes_last_step(tune_results) -> None:
    from hambench.tuning.tables import collect_tables

    suite = tuned()
    trial = search_trials(suite, grid_points(suite))[2]
    # Tune's last result of a trial that ended after a training step: the step, which Tune marks done
    step = {"iter": 10, "mIoU": 41.0, "aAcc": 90.0, "status": "running"}
    (result,) = tune_results([trial.model_dump(mode="json")], {trial.trial_id: [step]})
    assert result.metrics["done"] and result.metrics["status"] == "running"
    record = {**step, "done": True, "status": "stopped", "iters": 10, "error": ""}
    table, _, history = collect_tables(suite, "r1", [result], {trial.trial_id: record})
    row = table.iloc[0]
    assert row["status"] == "stopped" and row["iters"] == 10 and row["phase"] == "search" and row["split"] == "val"
    assert row["val_mIoU"] == 41.0 and pd.isna(row.get("mIoU")) and row["sample"] == trial.sample
    assert json.loads(row["tuned"]) == trial.tuned
    assert history[["trial_id", "iter", "mIoU"]].values.tolist() == [[trial.trial_id, 10, 41.0]]  # Tune's step
    table, _, _ = collect_tables(suite, "r1", [result])  # without its record: a step is not an end
    assert table.iloc[0]["status"] == "failed"
