"""The gan-synthetic suite: its trials at the shipped budget and in --smoke form, the seeds'
intervals and ranks of its metrics (hambench.stats, as for segmentation), and the sample grids the
report embeds."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pandas as pd
import pytest
import torch

from hambench.reports import render_report
from hambench.reports.artifacts import find_images, image_file
from hambench.reports.fixture import make_fixture_run
from hambench.stats import interval, rank_with_ties, summarize
from hambench.suite import SMOKE_BUDGET, SMOKE_SEEDS, load_suite
from hambench.tasks.gan import GanConfig
from hambench.tasks.gan.evaluate import SAMPLES_FILE
from hambench.tuning.plan import expand

COMPARED = {"ham-nmf", "nonlocal", "nonlocal-sdpa", "none"}  # the modules whose symmetry the suite compares


def test_suite_trials_at_the_shipped_budget() -> None:
    suite = load_suite("gan-synthetic")
    trials = [t for t in expand(suite) if t.task == "gan"]
    modules = {t.module for t in trials}
    assert COMPARED <= modules
    for module in modules:
        seeds = sorted(t.seed for t in trials if t.module == module)
        assert len(seeds) >= 3, f"{module}: {seeds}: an interval needs three seeds or more"
    for t in trials:
        assert t.budget.iters >= 2 * t.budget.eval_interval  # a learning curve, not one point
        GanConfig(**t.task_options)  # every task option is a GanConfig field


def test_smoke_trials_are_the_same_grid_at_the_tiny_budget() -> None:
    suite = load_suite("gan-synthetic")
    full = [t for t in expand(suite) if t.task == "gan"]
    smoke = [t for t in expand(suite, smoke_run=True) if t.task == "gan"]
    assert {t.module for t in smoke} == {t.module for t in full}
    assert {(t.module, t.seed) for t in smoke} <= {(t.module, t.seed) for t in full}
    assert max(len([t for t in smoke if t.module == m]) for m in {t.module for t in smoke}) == SMOKE_SEEDS
    for t in smoke:
        assert t.budget.iters == SMOKE_BUDGET["iters"] and t.budget.batch == SMOKE_BUDGET["batch"]
        assert t.task_options == {}  # the task's CPU-sized defaults


def test_gan_metrics_get_the_shared_interval_and_rank(tmp_path: Path) -> None:
    """summary.csv's rows for fid_surrogate and symmetry_error are hambench.stats' interval and
    rank of the seeds' values, lower being better, as mIoU's are (higher better)."""
    run_dir = make_fixture_run(tmp_path)
    results = pd.read_parquet(run_dir / "results.parquet")
    summary = summarize(results)
    gan = results[results["task"] == "gan"]
    for metric in ("fid_surrogate", "symmetry_error"):
        rows = summary[(summary["task"] == "gan") & (summary["metric"] == metric)]
        assert len(rows) == gan["module"].nunique() and (rows["sense"] == "min").all()
        expected = {m: interval(g[metric]) for m, g in gan.groupby("module")}
        for _, r in rows.iterrows():
            iv = expected[r["module"]]
            assert (r["n"], r["mean"], r["ci_low"], r["ci_high"]) == pytest.approx((iv.n, iv.mean, iv.low, iv.high))
        ranks = rank_with_ties([expected[m] for m in rows["module"]], "min")
        assert rows["rank"].tolist() == ranks


def _write_grid(path: Path, value: int) -> bytes:
    from torchvision.utils import save_image

    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(torch.full((3, 20, 30), value / 255), path, format="png")
    return path.read_bytes()


def test_report_embeds_each_configurations_grid(tmp_path: Path) -> None:
    """The lowest seed with a samples.png in its Tune folder gives the configuration's grid; a
    configuration without one shows none, and the page says nothing false about it."""
    run_dir = make_fixture_run(tmp_path)
    results = pd.read_parquet(run_dir / "results.parquet")
    gan = results[results["task"] == "gan"].sort_values("seed")
    with_grid, without = gan["module"].unique()[:-1], gan["module"].unique()[-1]
    written = {}
    for module in with_grid:
        rows = gan[gan["module"] == module]
        for seed in (1, 0):  # both seeds have one: seed 0's is shown
            trial_id = rows.loc[rows["seed"] == seed, "trial_id"].iloc[0]
            data = _write_grid(run_dir / "tune-fixture-fixture-run" / trial_id / "work" / SAMPLES_FILE, 10 + seed)
            written.setdefault(module, {})[seed] = data
    grids = {g.module: g for g in find_images(results.assign(run_dir=str(run_dir)), [{"run_dir": str(run_dir)}])}
    assert set(grids) == set(with_grid)
    assert all(g.seed == 0 and g.png == written[m][0] and g.size == (30, 20) for m, g in grids.items())

    page = render_report([run_dir]).read_text()
    embedded = [base64.b64decode(s) for s in re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)]
    assert sorted(embedded) == sorted(written[m][0] for m in with_grid)
    assert f"alt='samples of {without}'" not in page


def test_where_a_trials_grid_is_found(tmp_path: Path) -> None:
    copy = tmp_path / "samples" / "gan-1.png"
    _write_grid(copy, 1)
    _write_grid(tmp_path / "tune-x" / "gan-1" / "work" / SAMPLES_FILE, 2)
    assert image_file(tmp_path, "gan-1", SAMPLES_FILE) == copy
    assert image_file(tmp_path, "gan-2", SAMPLES_FILE) is None
    for n in (1, 2):  # a trial whose grid reached the run directory only in its Tune checkpoints: the newest
        _write_grid(tmp_path / "tune-x" / "gan-2" / f"checkpoint_00000{n}" / SAMPLES_FILE, n)
    assert (
        image_file(tmp_path, "gan-2", SAMPLES_FILE)
        == tmp_path / "tune-x" / "gan-2" / "checkpoint_000002" / SAMPLES_FILE
    )


@pytest.mark.slow
def test_smoke_run_summary_and_report_with_sample_grids(tmp_path: Path) -> None:
    """The suite's whole path at the smoke budget: every trial ok, summary.csv with n, interval and
    rank for both metrics of every module, and the report embedding one grid per module."""
    from hambench.tuning import RunOptions, run_suite

    run_dir = run_suite("gan-synthetic", RunOptions(out=tmp_path / "runs", smoke=True, num_cpus=2, progress=False))
    results = pd.read_parquet(run_dir / "results.parquet")
    assert results["status"].eq("ok").all(), results[["trial_id", "error"]].to_string()
    modules = set(results.loc[results["task"] == "gan", "module"])
    summary = pd.read_csv(run_dir / "summary.csv")
    for metric in ("fid_surrogate", "symmetry_error"):
        rows = summary[summary["metric"] == metric]
        assert set(rows["module"]) == modules
        assert (rows["n"] == SMOKE_SEEDS).all() and rows["ci_low"].notna().all() and rows["rank"].notna().all()
    page = (run_dir / "report.html").read_text()
    shown = set(re.findall(r"alt='samples of ([^']+)'", page))
    assert shown == modules  # every module's grid, carried into the run's storage by its checkpoint


def test_terminal_summary_and_report_rank_every_gan_metric(tmp_path: Path, capsys) -> None:
    """fid_surrogate and symmetry_error each get their own ranking, in the terminal and the report:
    the two can disagree, and the headline alone would hide the symmetry verdict."""
    from hambench.cli.run import print_summary

    run_dir = make_fixture_run(tmp_path)
    results = pd.read_parquet(run_dir / "results.parquet")
    print_summary(summarize(results))
    printed = capsys.readouterr().out
    page = render_report([run_dir]).read_text()
    ranking = page[page.index('<section id="ranking">') :]
    ranking = ranking[: ranking.index("</section>")]
    for metric in ("fid_surrogate", "symmetry_error"):
        assert f"gan on synthetic-shapes: {metric} (lower is better)" in printed
        assert f"{metric} (lower is better)" in ranking
