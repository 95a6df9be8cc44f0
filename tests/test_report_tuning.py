"""The report's Tuning section, from a generated tuned run directory (hambench.reports.fixture):
every number it shows is recomputed here from the fixture's rows."""

from __future__ import annotations

import json
import math
import struct

import pandas as pd
import pytest

from hambench.reports import build_figures, load_runs, render_report
from hambench.reports.artifacts import PNG_SIGNATURE, copy_path, find_images
from hambench.reports.fixture import (
    FAILED_SAMPLE,
    HOSTILE,
    KEPT_DEFAULTS,
    TUNE_SEED,
    TUNED_SEEDS,
    make_fixture_run,
    make_tuned_fixture_run,
)
from hambench.reports.points import aggregate_seeds
from hambench.reports.tuning import best_so_far_figure, sensitivity_figure, tuning_points, tuning_section
from hambench.results import by_arm, result_columns
from hambench.schema import VAL_PREFIX
from hambench.stats import format_mean_ci, interval
from test_report import TableCells, section_figures  # the one parser of a report's tables


def table_of(html: str) -> list[dict[str, str]]:
    cells = TableCells()
    cells.feed(html)
    header, *rows = cells.rows
    return [dict(zip(header, r)) for r in rows]


def tuning_html(text: str) -> str:
    start = text.index('<section id="tuning">')
    return text[start : text.index("</section>", start)]


@pytest.fixture(scope="module")
def tuned_run(tmp_path_factory):
    return make_tuned_fixture_run(tmp_path_factory.mktemp("tuned"), hostile=True)


@pytest.fixture(scope="module")
def rows(tuned_run) -> pd.DataFrame:
    return pd.read_parquet(tuned_run / "results.parquet")


@pytest.fixture(scope="module")
def page(tuned_run) -> str:
    return render_report([tuned_run]).read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def table(page) -> dict[str, dict[str, str]]:
    """The section's table, by module."""
    return {r["module"]: r for r in table_of(tuning_html(page))}


def search_of(rows: pd.DataFrame, module: str) -> pd.DataFrame:
    mine = rows[(rows["phase"] == "search") & (rows["module"] == module)]
    return mine.sort_values("sample")


def arm_of(rows: pd.DataFrame, module: str, arm: str) -> pd.DataFrame:
    rows = by_arm(rows)  # an arm "both" (the defaults were chosen) is each arm
    return rows[(rows["phase"] == "retrain") & (rows["module"] == module) & (rows["arm"] == arm)]


def trained_modules(rows: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(rows.loc[rows["phase"] == "search", "module"]))


# --- the fixture: the results schema of a tuned run ---------------------------------------------------


def test_the_fixture_writes_the_results_schema_of_a_tuned_run(tuned_run, rows):
    assert set(rows.columns) <= set(result_columns()) | {VAL_PREFIX + "mIoU", VAL_PREFIX + "aAcc"}
    search, retrain = rows[rows["phase"] == "search"], rows[rows["phase"] == "retrain"]
    assert set(rows["phase"]) == {"grid", "search", "retrain"}
    assert (rows.loc[rows["phase"] == "grid", "task"] == "profile").all()
    # Search rows: scored on val under val_<metric>, the metric columns empty; the sample's own seed.
    assert (search["split"] == "val").all() and search[["mIoU", "aAcc"]].isna().all().all()
    assert set(search["status"]) == {"ok", "stopped", "failed"}
    assert search.loc[search["status"] != "failed", "val_mIoU"].notna().all()
    assert search.loc[search["status"] == "failed", "val_mIoU"].isna().all()
    assert (search["seed"] == TUNE_SEED + search["sample"]).all()
    full = search.loc[search["status"] == "ok", "iters"].max()
    assert (search.loc[search["status"] == "stopped", "iters"] < full).all()
    # Retrain rows: on test, both arms with the suite's seeds; the tuned arm names its sample.
    assert (retrain["split"] == "test").all() and retrain[["val_mIoU"]].isna().all().all()
    assert set(retrain["arm"]) == {"tuned", "default", "both"} and set(retrain["seed"]) == set(TUNED_SEEDS)
    assert set(retrain.loc[retrain["arm"] == "both", "module"]) == {
        KEPT_DEFAULTS
    }  # the defaults chosen: one set of runs
    assert retrain.loc[retrain["arm"] != "default", "sample"].notna().all()
    assert retrain.loc[retrain["arm"] == "default", "sample"].isna().all()
    assert all(set(json.loads(t)) == {"lr", "weight_decay"} for t in pd.concat([search, retrain])["tuned"])
    # Nothing in it passes for a measurement.
    meta = json.loads((tuned_run / "meta.json").read_text())
    assert set(rows["suite"]) == {"fixture"} and "not a measurement" in meta["note"]


def test_the_fixture_retrains_the_best_completed_sample(rows):
    for module in trained_modules(rows):
        search = search_of(rows, module)
        done = search[search["status"] == "ok"]
        best = done.loc[done["val_mIoU"] == done["val_mIoU"].max(), "sample"].min()
        tuned = arm_of(rows, module, "tuned")
        assert set(tuned["sample"]) == {best}
        assert set(tuned["tuned"]) == set(search.loc[search["sample"] == best, "tuned"])
    assert set(arm_of(rows, KEPT_DEFAULTS, "tuned")["sample"]) == {0}


# --- the section --------------------------------------------------------------------------------------


def test_tuning_section_follows_the_ranking_and_lists_every_module(page, table, rows):
    assert page.index('<section id="ranking">') < page.index('<section id="tuning">') < page.index("Accuracy vs cost")
    assert list(table) == trained_modules(rows)
    assert HOSTILE in table  # the parser reads the escaped name back as text ...
    assert HOSTILE not in tuning_html(page)  # ... because it never reaches the page raw
    section = tuning_html(page)
    assert "validation split" in section and "test split" in section and "ASHA" in section


def test_both_arms_are_the_intervals_of_the_retrain_rows(table, rows):
    for module, row in table.items():
        default = interval(arm_of(rows, module, "default")["mIoU"])
        tuned = interval(arm_of(rows, module, "tuned")["mIoU"])
        for arm, iv in (("default", default), ("tuned", tuned)):
            assert (
                row[f"{arm}: test mIoU (mean ± 95% CI)"] == f"{format_mean_ci(iv.mean, iv.half_width, iv.n)} n={iv.n}"
            )
        assert default.n == tuned.n == len(TUNED_SEEDS)
        assert row["tuned − default"] == f"{tuned.mean - default.mean:+.3g}"
        assert row["tuned vs default (Welch, 5%)"] in ("tuned better", "defaults better", "no significant difference")


def test_the_chosen_configuration_and_the_search_per_module(table, rows):
    for module, row in table.items():
        search = search_of(rows, module)
        done = search[search["status"] == "ok"]
        (sample,) = set(arm_of(rows, module, "tuned")["sample"])
        if module == KEPT_DEFAULTS:
            assert row["chosen on validation"] == "defaults (sample 0)"
        else:
            values = json.loads(arm_of(rows, module, "tuned")["tuned"].iloc[0])
            assert sample != 0
            label = f"lr={values['lr']:.3g} weight_decay={values['weight_decay']:.3g}"
            assert row["chosen on validation"] == f"sample {sample}: {label}"
        failed = int((search["status"] == "failed").sum())
        assert row["samples"] == str(len(search)) + (f" ({failed} failed)" if failed else "")
        assert row["ran the whole budget"] == str(len(done))
        spent, full = search["iters"].sum(), len(search) * done["iters"].max()
        assert row["iterations spent"] == f"{spent:,.0f} of {full:,.0f}" and spent < full  # ASHA stopped some
        assert row["best val mIoU"] == f"{done['val_mIoU'].max():.4g}"
    assert table[FAILED_SAMPLE]["samples"].endswith("(1 failed)")


def test_both_figures_are_in_the_section(tuned_run, page):
    section = tuning_html(page)
    assert section.count('class="plotly-graph-div"') == 2
    runs = load_runs([tuned_run])
    others = build_figures(runs.results, runs.profile)
    assert page.count('class="plotly-graph-div"') == len(others) + 2 + section_figures(page)
    assert "Validation mIoU of every sample" in section and "Best validation mIoU so far" in section


def drawn(fig, symbol: str) -> list:
    """The traces with data (not the legend-only entries) drawn with ``symbol``."""
    return [tr for tr in fig.data if tr.marker.symbol == symbol and tr.x is not None and tr.x[0] is not None]


def test_sensitivity_figure_marks_completed_stopped_and_chosen(tuned_run, rows):
    points = tuning_points(load_runs([tuned_run]).results)
    fig = sensitivity_figure(points, "t")
    search = rows[rows["phase"] == "search"]
    completed = [y for tr in drawn(fig, "circle") for y in tr.y]
    stopped = [y for tr in drawn(fig, "circle-open") for y in tr.y]
    assert sorted(completed) == sorted(search.loc[search["status"] == "ok", "val_mIoU"])
    assert sorted(stopped) == sorted(search.loc[search["status"] == "stopped", "val_mIoU"])  # failed: not drawn
    hovers = [h for tr in drawn(fig, "circle-open") for h in tr.hovertext]
    for iters in search.loc[search["status"] == "stopped", "iters"]:
        assert any(f"stopped by ASHA at iteration {iters:.0f} of 200" in h for h in hovers)
    stars = drawn(fig, "star")
    assert len(stars) == len(points)
    for module, tr in zip(trained_modules(rows), stars):
        (sample,) = set(arm_of(rows, module, "tuned")["sample"])
        s = search_of(rows, module)
        assert list(tr.y) == list(s.loc[s["sample"] == sample, "val_mIoU"])
    escaped = [m.replace("<", "&lt;").replace(">", "&gt;") for m in trained_modules(rows)]
    assert list(fig.layout.xaxis.ticktext) == escaped


def test_best_so_far_is_the_running_best_of_the_completed_samples(tuned_run, rows):
    points = tuning_points(load_runs([tuned_run]).results)
    fig = best_so_far_figure(points, "t")
    assert len(fig.data) == len(trained_modules(rows))
    for module, tr in zip(trained_modules(rows), fig.data):
        s = search_of(rows, module)
        expected, best = [], None
        for status, score in zip(s["status"], s["val_mIoU"]):
            if status == "ok" and (best is None or score > best):
                best = score
            expected.append(best)
        assert list(tr.x) == list(range(1, len(s) + 1))
        assert [None if math.isnan(y) else y for y in tr.y] == expected
    # A stopped sample changes nothing: a flat line after the last completed one, never a gap.
    assert not any(math.isnan(y) for tr in fig.data for y in tr.y[1:])  # sample 0 ran the whole budget


def test_a_module_whose_samples_were_all_stopped_has_no_choice(tuned_run):
    runs = load_runs([tuned_run])
    res = runs.results
    mine = (res["module"] == FAILED_SAMPLE) & (res["phase"] == "search") & (res["status"] == "ok")
    res.loc[mine, "status"] = "stopped"
    runs.results = res[~((res["module"] == FAILED_SAMPLE) & (res["arm"] == "tuned"))]
    row = {r["module"]: r for r in table_of(tuning_section(runs))}[FAILED_SAMPLE]
    assert row["chosen on validation"] == "none: no sample ran the whole budget"
    assert row["tuned: test mIoU (mean ± 95% CI)"] == "n/a" and row["tuned − default"] == "n/a"
    assert row["ran the whole budget"] == "0" and row["best val mIoU"] == "n/a"
    assert row["default: test mIoU (mean ± 95% CI)"] != "n/a"


def test_an_untuned_report_has_no_tuning_section(tmp_path):
    text = render_report([make_fixture_run(tmp_path)]).read_text(encoding="utf-8")
    assert 'id="tuning"' not in text and "Tuning:" not in text


# --- the other sections read no search row -------------------------------------------------------------


def test_fronts_and_failed_trials_leave_the_search_out(tuned_run, page, rows):
    points = aggregate_seeds(load_runs([tuned_run]).results)
    seg = points[points["task"] == "seg"]
    assert sorted(seg["arm"]) == sorted(["default", "tuned"] * (len(trained_modules(rows)) - 1) + ["both"])
    assert seg["mIoU"].notna().all() and (seg["n_seeds"] == len(TUNED_SEEDS)).all()
    # A sample ASHA stopped ended by design: counted apart, not listed with the failed trials.
    runs = page[page.index("<h2>Runs</h2>") :]
    n_stopped = int((rows["status"] == "stopped").sum())
    assert f"{n_stopped} search samples stopped early, 1 failed." in runs
    failed = table_of(runs[runs.index("<h3>Failed trials</h3>") :])
    assert [r["trial"] for r in failed] == rows.loc[rows["status"] == "failed", "trial_id"].tolist()


def tiny_png(path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(PNG_SIGNATURE + struct.pack(">I4sII", 13, b"IHDR", 4, 4) + b"\x08\x02\x00\x00\x00")


def test_no_image_for_a_search_sample(tmp_path):
    base = {
        "task": "gan",
        "module": "ham-nmf",
        "family": "hamburger",
        "backbone": "sngan-32",
        "data": "synthetic-shapes",
        "options": "{}",
        "iters": 500,
        "status": "ok",
        "run_dir": str(tmp_path),
    }
    table = pd.DataFrame(
        [
            {
                **base,
                "trial_id": "search0",
                "seed": TUNE_SEED,
                "phase": "search",
                "split": "val",
                "sample": 0,
                "tuned": '{"lr": 0.0002}',
                "val_fid": 40.0,
            },
            {
                **base,
                "trial_id": "default-s0",
                "seed": 0,
                "phase": "retrain",
                "split": "test",
                "arm": "default",
                "tuned": '{"lr": 0.0002}',
                "fid": 41.0,
            },
        ]
    )
    for trial in table["trial_id"]:
        tiny_png(copy_path(tmp_path, trial, "samples.png"))  # the gan task's sample grid
    images = find_images(table, [{"run_dir": str(tmp_path)}])
    assert [i.trial_id for i in images] == ["default-s0"]
