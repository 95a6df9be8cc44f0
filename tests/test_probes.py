"""The probes: synthetic-recall's rule, data-set options from the suite to the summary, the
learning-speed metric and the report's score-against-difficulty section."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from hambench.data import check_layout, data_option_errors
from hambench.data.synthetic_recall import MIN_KEY_DISTANCE, make_sample, make_synthetic_recall
from hambench.reports.levels import capacity, level_sweeps, levels_section
from hambench.stats import curve_area, summarize
from hambench.suite import SuiteError, grid_points, load_suite
from hambench.tuning.tables import with_curve_areas

# --- the data set ---------------------------------------------------------------------------------


def _components(mask: np.ndarray) -> list[np.ndarray]:
    labels, n = ndimage.label(mask)
    return [labels == i for i in range(1, n + 1)]


def _crop(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


@pytest.mark.parametrize("keys", [1, 2, 3, 4])
def test_every_object_takes_the_colour_of_the_key_of_its_shape(keys: int) -> None:
    """Read back from the pixels: each grey object's shape equals the shape of exactly one key, and
    its label is that key's colour class; keys differ in shape and colour."""
    rng = np.random.default_rng(keys)
    for _ in range(20):
        image, label = make_sample(rng, 96, keys, score_keys=True)
        grey = (image.astype(int).min(axis=2) > 170) & (np.ptp(image.astype(int), axis=2) < 40)
        coloured = np.ptp(image.astype(int), axis=2) > 90  # the keys: saturated colours (two may touch)
        key_parts = [part for c in range(2, 6) for part in _components(coloured & (label == c))]
        assert len(key_parts) == keys
        key_shapes = [_crop(k) for k in key_parts]
        key_class = [int(np.bincount(label[k]).argmax()) for k in key_parts]
        assert len(set(key_class)) == keys and all(c >= 2 for c in key_class)
        for i in range(keys):
            assert sum(s.shape == key_shapes[i].shape and (s == key_shapes[i]).all() for s in key_shapes) == 1
        objects = _components(grey & (label >= 2))
        assert objects
        for obj in objects:
            shape = _crop(obj)
            match = [i for i, s in enumerate(key_shapes) if s.shape == shape.shape and (s == shape).all()]
            assert len(match) == 1
            assert set(np.unique(label[obj])) == {key_class[match[0]]}


def test_objects_lie_beyond_reach_of_every_key_and_keys_are_not_scored() -> None:
    rng = np.random.default_rng(0)
    for keys in (1, 3):
        for _ in range(10):
            _, label = make_sample(rng, 96, keys)  # an evaluation split's annotation
            key_pixels, object_pixels = np.argwhere(label == 0), np.argwhere(label >= 2)
            assert len(key_pixels) and len(object_pixels)
            gaps = np.sqrt(((key_pixels[:, None, :] - object_pixels[None, :, :]) ** 2).sum(-1))
            assert gaps.min() >= MIN_KEY_DISTANCE * 96


def test_a_level_is_its_own_cached_data_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAMBENCH_CACHE", str(tmp_path))
    one = make_synthetic_recall(seed=0, keys=1, n_train=4, n_val=2, n_test=3)
    two = make_synthetic_recall(seed=0, keys=2, n_train=4, n_val=2, n_test=3)
    assert one != two and one.parent == two.parent == tmp_path / "synthetic-recall"
    assert json.loads((two / "meta.json").read_text())["keys"] == 2
    assert len(list((two / "images" / "test").glob("*.jpg"))) == 3
    assert check_layout("ade20k", two) == two.resolve()
    assert make_synthetic_recall(seed=0, keys=2, n_train=4, n_val=2, n_test=3) == two  # generated once


def test_data_options_are_checked_by_name_and_range() -> None:
    assert data_option_errors("synthetic-recall", {"keys": 3, "size": 128}) == []
    assert data_option_errors("synthetic-recall", {"keys": 9}) == [
        "data set synthetic-recall: option keys must be an integer in 1..4, got 9"
    ]
    assert data_option_errors("ade20k", {"keys": 1}) == ["data set ade20k has no option 'keys'; its options: none"]


# --- from the suite to the summary ------------------------------------------------------------------

PROBE = """\
name: probe
grid:
  modules: [nonlocal-sdpa, none]
  data:
    - {{name: synthetic-recall, options: {options}}}
  seeds: 2
budget: {{iters: 8}}
"""


def test_each_level_is_a_grid_point_with_its_own_trial_ids(tmp_path: Path) -> None:
    path = tmp_path / "probe.yaml"
    path.write_text(PROBE.format(options="{keys: [1, 2]}"))
    points = grid_points(load_suite(path))
    assert [(p.module, p.data_options) for p in points] == [
        ("nonlocal-sdpa", {"keys": 1}),
        ("nonlocal-sdpa", {"keys": 2}),
        ("none", {"keys": 1}),
        ("none", {"keys": 2}),
    ]
    assert points[1].trial_id("seg", "s0") == "seg-nonlocal-sdpa-tiny-d8-synthetic-recall-keys=2-s0"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            "{keys: [1, 9]}",
            "grid[0].data[0].options: data set synthetic-recall: option keys must be an integer in 1..4, got 9",
        ),
        ("{k: 2}", "grid[0].data[0].options: data set synthetic-recall has no option 'k'; its options: keys, size"),
    ],
)
def test_a_bad_level_fails_before_anything_runs_naming_the_field(tmp_path: Path, options: str, message: str) -> None:
    path = tmp_path / "probe.yaml"
    path.write_text(PROBE.format(options=options))
    with pytest.raises(SuiteError) as exc:
        grid_points(load_suite(path))
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_a_gan_data_set_takes_no_options(tmp_path: Path) -> None:
    path = tmp_path / "g.yaml"
    path.write_text(
        "name: g\ntask: gan\ngrid:\n  modules: [none]\n  data: [{name: synthetic-shapes, options: {keys: 2}}]\n"
    )
    with pytest.raises(SuiteError, match=r"grid\[0\]\.data\[0\]\.options: task gan's data sets take no options"):
        grid_points(load_suite(path))


def test_train_refuses_a_bad_data_option_in_one_line() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hambench",
            "train",
            "seg",
            "--context",
            "none",
            "--data",
            "synthetic-recall",
            "--data-option",
            "keys=7",
            "--iters",
            "1",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    assert (
        proc.stderr.strip()
        == "hambench: error: data set synthetic-recall: option keys must be an integer in 1..4, got 7"
    )


def _results(levels: dict[int, dict[str, list[float]]]) -> pd.DataFrame:
    """A results table: per level (keys) and module, one ok row per seed with that mIoU."""
    rows = []
    for keys, modules in levels.items():
        for module, values in modules.items():
            for seed, v in enumerate(values):
                rows.append(
                    dict(
                        suite="probe",
                        run_id="r",
                        trial_id=f"{module}-k{keys}-s{seed}",
                        task="seg",
                        module=module,
                        family="none" if module == "none" else "attention",
                        backbone="tiny-d8",
                        head="context",
                        data="synthetic-recall",
                        data_options=json.dumps({"keys": keys}),
                        seed=seed,
                        options="{}",
                        iters=2000,
                        status="ok",
                        mIoU=v,
                        mIoU_auc=v - 5,
                        phase="grid",
                        split="standard",
                    )
                )
    return pd.DataFrame(rows)


def test_the_summary_ranks_each_level_on_its_own() -> None:
    results = _results({1: {"a": [80, 81, 82], "none": [30, 31, 29]}, 2: {"a": [30, 31, 29], "none": [80, 81, 82]}})
    summary = summarize(results)
    miou = summary[summary["metric"] == "mIoU"]
    ranks = {(json.loads(r.data_options)["keys"], r.module): int(r.rank) for r in miou.itertuples()}
    assert ranks == {(1, "a"): 1, (1, "none"): 2, (2, "a"): 2, (2, "none"): 1}  # pooled, they would tie
    assert set(summary["metric"]) == {"mIoU", "mIoU_auc"}


# --- learning speed ------------------------------------------------------------------------------------


def test_the_curve_area_rewards_learning_early() -> None:
    assert curve_area([400, 800, 1200, 1600, 2000], [80] * 5) == 80
    early, late = curve_area([1, 2, 3, 4], [80, 80, 80, 80]), curve_area([1, 2, 3, 4], [20, 20, 20, 80])
    assert early == 80 and late == pytest.approx((20 + 20 + 50) / 3)
    assert math.isnan(curve_area([2000], [80]))  # one evaluation: no curve
    assert curve_area([1, 2, 2, 3], [0, 5, 10, 10]) == pytest.approx((5 + 10) / 2)  # the last report of a step counts


def test_the_runner_adds_each_trials_area_from_its_history() -> None:
    table = pd.DataFrame(
        [
            dict(task="seg", trial_id="t1", phase="grid"),
            dict(task="seg", trial_id="t2", phase="search"),
            dict(task="profile", trial_id="p", phase="grid"),
        ]
    )
    hist = pd.DataFrame(
        dict(
            trial_id=["t1"] * 3 + ["t2"] * 2 + ["t1"],
            iter=[10, 20, 30, 10, 20, 25],
            mIoU=[10.0, 20.0, 30.0, 50.0, 70.0, np.nan],
            loss=[1, 1, 1, 1, 1, 0.5],
        )
    )
    out = with_curve_areas(table, hist)
    assert out.loc[0, "mIoU_auc"] == pytest.approx(20.0)
    assert out.loc[1, "val_mIoU_auc"] == pytest.approx(60.0) and pd.isna(out.loc[1].get("mIoU_auc"))
    assert pd.isna(out.loc[2].get("mIoU_auc"))


# --- the report -----------------------------------------------------------------------------------------


def test_capacity_counts_the_gain_over_none_kept_at_every_level() -> None:
    results = _results(
        {
            1: {"att": [80, 81, 82], "pool": [80, 79, 81], "dud": [30, 31, 32], "none": [30, 31, 29]},
            2: {"att": [75, 76, 77], "pool": [30, 31, 29], "dud": [30, 31, 32], "none": [30, 31, 29]},
            3: {"att": [50, 52, 51], "pool": [80, 80, 81], "dud": [30, 31, 32], "none": [30, 31, 29]},
        }
    )
    ((task, data, key, sweep),) = level_sweeps(summarize(results))
    assert (task, data, key) == ("seg", "synthetic-recall", "keys")
    rows = sweep[sweep["metric"] == "mIoU"]
    base = rows[rows["module"] == "none"]
    cap = {m: capacity(rows[rows["module"] == m], base) for m in ("att", "pool", "dud")}
    # att keeps (76 - 30) / (81 - 30) = 90.2 % at 2, not at 3; pool loses it at 2 (a later recovery
    # does not count); dud never beat none.
    assert cap == {"att": 2, "pool": 1, "dud": None}
    html = levels_section(summarize(results))
    assert "Score against difficulty" in html and "capacity (keys)" in html and "none learnt" in html


def test_no_section_without_levels() -> None:
    results = _results({1: {"a": [80, 81, 82], "none": [30, 31, 29]}})
    assert levels_section(summarize(results)) == ""


# --- the shipped suites --------------------------------------------------------------------------------


def test_every_shipped_suite_on_a_generated_set_draws_a_learning_curve() -> None:
    """Learning speed needs a curve: every seg suite on an embedded set evaluates at least 4 times."""
    from hambench.data import EMBEDDED
    from hambench.suite import shipped_suites

    for name in shipped_suites():
        suite = load_suite(name)
        embedded = any(d.name in EMBEDDED for g in suite.grid for d in g.data)
        if suite.task == "seg" and embedded:
            assert suite.budget is not None and suite.budget.iters // suite.budget.eval_interval >= 4, name


def test_the_crop_follows_a_generated_sets_size() -> None:
    from hambench.tasks.seg import SegConfig

    assert SegConfig(data="synthetic-context", data_options={"size": 128}).resolved_crop() == (128, 128)
    assert SegConfig(data="synthetic-recall").resolved_crop() == (96, 96)
    assert SegConfig(data="synthetic-recall", data_options={"size": 128}, crop=(64, 64)).resolved_crop() == (64, 64)
    with pytest.raises(ValueError, match="option keys must be an integer in 1..4"):
        SegConfig(data="synthetic-recall", data_options={"keys": 0})


@pytest.mark.slow
def test_the_probe_suite_smoke_runs_every_level_and_reports_capacity(tmp_path: Path) -> None:
    from hambench.cli.main import main

    out = tmp_path / "runs"
    argv = ["run", "suite", "context-probes", "--smoke", "--only", "nonlocal-sdpa", "none"]
    assert main([*argv, "--run-id", "r1", "--out", str(out), "--num-cpus", "2"]) == 0
    run_dir = out / "context-probes" / "r1"
    results = pd.read_parquet(run_dir / "results.parquet")
    seg = results[results["task"] == "seg"]
    assert sorted(seg["data_options"].unique()) == ['{"keys": 1}', '{"keys": 2}', '{"keys": 3}']
    assert len(seg) == 2 * 3 * 2 and (seg["status"] == "ok").all()
    assert seg["mIoU_auc"].notna().all()  # two evaluations in a smoke run: a curve
    summary = pd.read_csv(run_dir / "summary.csv")
    headline = summary[summary["metric"] == "mIoU"]
    assert headline.groupby("data_options").size().to_dict() == {'{"keys": 1}': 2, '{"keys": 2}': 2, '{"keys": 3}': 2}
    assert set(summary["metric"]) == {"mIoU", "mIoU_auc", "aAcc"}
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    assert '<section id="levels">' in page and "capacity (keys)" in page


def test_a_table_from_before_data_options_pools_with_a_new_one() -> None:
    new = _results({1: {"a": [80.0, 81.0]}}).assign(data="synthetic-context", data_options="{}")
    old = _results({1: {"a": [82.0]}}).assign(data="synthetic-context", seed=2).drop(columns=["data_options"])
    summary = summarize(pd.concat([new, old], ignore_index=True))
    row = summary[summary["metric"] == "mIoU"]
    assert len(row) == 1 and int(row["n"].iloc[0]) == 3 and row["data_options"].iloc[0] == "{}"


def test_the_capacity_table_shows_what_each_level_keeps() -> None:
    from hambench.reports.levels import kept_fractions

    results = _results({1: {"att": [80, 81, 82], "none": [30, 31, 29]}, 2: {"att": [75, 76, 77], "none": [30, 31, 29]}})
    ((_, _, _, sweep),) = level_sweeps(summarize(results))
    rows = sweep[sweep["metric"] == "mIoU"]
    kept = kept_fractions(rows[rows["module"] == "att"], rows[rows["module"] == "none"])
    assert kept == pytest.approx({1: 1.0, 2: 46 / 51})
    no_none = kept_fractions(rows[rows["module"] == "att"], None)  # without none: the raw score
    assert no_none == pytest.approx({1: 1.0, 2: 76 / 81})
    assert "keeps 90.2%" in levels_section(summarize(results))


def test_generated_sets_evaluate_eight_images_at_a_time_and_real_sets_one(tmp_path: Path) -> None:
    """A generated set's images share one size: evaluating them in batches of 8 gives each image
    its own prediction (eval-mode BN); a real set's images vary in size and go one at a time."""
    from hambench.data import make_fixture
    from hambench.tasks.seg import SegConfig
    from hambench.tasks.seg.data import dataloaders

    root = make_synthetic_recall(tmp_path / "recall", seed=0, keys=1, n_train=2, n_val=2, n_test=2)
    _, val = dataloaders(SegConfig(data="synthetic-recall"), root)
    assert val["batch_size"] == 8
    ade = make_fixture("ade20k", tmp_path / "ade")
    _, val = dataloaders(SegConfig(data="ade20k", data_root=str(ade)), ade)
    assert val["batch_size"] == 1
