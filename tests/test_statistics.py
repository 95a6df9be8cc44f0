"""The statistics beyond ranks: the probability of improvement (against scipy's Mann-Whitney U and
by hand), its bootstrap interval, ``pairs.csv``, and ``hambench compare`` on a planted regression
and on two runs of the same seeds."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats as sps

from hambench.cli.main import main
from hambench.stats import compare_runs, improvement_interval, improvements, probability_of_improvement


def results(scores: dict[str, list[float]], run: str = "r") -> pd.DataFrame:
    """A results table: per module, one ok seg row per seed with that mIoU (aAcc = mIoU + 40)."""
    return pd.DataFrame(
        [
            dict(
                suite="s",
                run_id=run,
                trial_id=f"{module}-s{seed}",
                task="seg",
                module=module,
                family="none" if module == "none" else "attention",
                backbone="tiny-d8",
                head="context",
                data="synthetic-context",
                data_options="{}",
                seed=seed,
                options="{}",
                iters=1200,
                status="ok",
                mIoU=v,
                aAcc=v + 40,
                phase="grid",
                split="standard",
            )
            for module, values in scores.items()
            for seed, v in enumerate(values)
        ]
    )


def test_probability_of_improvement_is_mann_whitney_over_pairs():
    a, b = [3.0, 5.0, 5.0], [1.0, 5.0, 4.0]
    # pairs a > b: 3>1, 5>1, 5>4, 5>1, 5>4 = 5; ties: (5,5) twice = 2 -> (5 + 1) / 9
    assert probability_of_improvement(a, b, "max") == pytest.approx(6 / 9)
    u = sps.mannwhitneyu(a, b).statistic
    assert probability_of_improvement(a, b, "max") == pytest.approx(u / 9)
    assert probability_of_improvement(a, b, "min") == pytest.approx(1 - 6 / 9)  # lower is better
    assert probability_of_improvement(a, a, "max") == 0.5 and math.isnan(probability_of_improvement([], b, "max"))


def test_the_interval_holds_the_estimate_and_narrows_with_seeds():
    low, high = improvement_interval([10.0, 11.0, 12.0], [5.0, 6.0, 7.0], "max")
    assert (low, high) == (1.0, 1.0)  # every resample: A's seeds all above B's
    few = improvement_interval([1.0, 3.0, 5.0], [2.0, 4.0, 6.0], "max")
    many = improvement_interval([1.0, 3.0, 5.0] * 5, [2.0, 4.0, 6.0] * 5, "max")
    p = probability_of_improvement([1.0, 3.0, 5.0], [2.0, 4.0, 6.0], "max")
    assert few[0] <= p <= few[1] and many[0] <= p <= many[1]
    assert many[1] - many[0] < few[1] - few[0]
    assert improvement_interval([1.0, 3.0], [2.0, 4.0], "max") == improvement_interval([1.0, 3.0], [2.0, 4.0], "max")
    assert all(math.isnan(v) for v in improvement_interval([1.0], [2.0, 4.0], "max"))  # one seed: no interval


def test_pairs_cover_every_ordered_pair_of_a_comparison():
    pairs = improvements(
        results({"dnl": [88.0, 88.5, 87.9], "ham-nmf": [86.0, 87.3, 86.4], "none": [50.5, 54.6, 52.6]})
    )
    miou = pairs[pairs["metric"] == "mIoU"].set_index(["a", "b"])
    assert len(miou) == 6 and set(pairs["metric"]) == {"mIoU", "aAcc"} and miou["headline"].all()
    assert miou.loc[("dnl", "ham-nmf"), "p_improvement"] == 1.0 and miou.loc[("none", "dnl"), "p_improvement"] == 0.0
    for (a, b), row in miou.iterrows():  # P(A > B) + P(B > A) = 1
        assert row["p_improvement"] + miou.loc[(b, a), "p_improvement"] == pytest.approx(1.0)


def test_compare_finds_a_planted_regression_and_passes_the_same_seeds():
    before = {"dnl": [88.2, 88.6, 87.6], "ham-nmf": [87.2, 87.4, 86.2], "none": [50.7, 54.1, 53.0]}
    same = compare_runs(results(before), results(before, run="again"))
    assert set(same["verdict"]) == {"same"} and (same["change"] == 0).all()
    worse = compare_runs(results(before), results(before | {"ham-nmf": [80.1, 81.0, 79.7]}, run="new"))
    verdicts = worse[worse["headline"]].set_index("module")["verdict"]
    assert verdicts.to_dict() == {"dnl": "same", "ham-nmf": "worse", "none": "same"}
    row = worse[(worse["module"] == "ham-nmf") & worse["headline"]].iloc[0]
    assert row["change"] == pytest.approx(-6.667, abs=1e-3) and row["p_b_better"] == 0.0 and row["p_value"] < 0.01
    gone = compare_runs(results(before), results({"dnl": before["dnl"]}, run="part"))
    assert set(gone.loc[gone["module"] != "dnl", "verdict"]) == {"only in A"}


def _run(tmp_path: Path, name: str, scores: dict[str, list[float]]) -> Path:
    run = tmp_path / name
    run.mkdir()
    results(scores, run=name).to_parquet(run / "results.parquet")
    return run


def test_compare_exits_1_on_a_regression_only(tmp_path: Path, capsys):
    before = {"dnl": [88.2, 88.6, 87.6], "ham-nmf": [87.2, 87.4, 86.2]}
    a, b = _run(tmp_path, "a", before), _run(tmp_path, "b", before)
    assert main(["compare", str(a), str(b)]) == 0
    assert "2 configurations on their headline metric (*): 2 same; no regression" in capsys.readouterr().out
    c = _run(tmp_path, "c", before | {"ham-nmf": [80.1, 81.0, 79.7]})
    out_csv, page = tmp_path / "cmp.csv", tmp_path / "cmp.html"
    assert main(["compare", str(a), str(c), "--out", str(out_csv), "--html", str(page)]) == 1
    printed = capsys.readouterr().out
    assert "ham-nmf" in printed and "worse" in printed and "1 regression(s): exit status 1" in printed
    assert set(pd.read_csv(out_csv)["verdict"]) >= {"worse", "same"}
    html = page.read_text()
    assert "2 configurations on their headline metric: 1 same, 1 worse." in html or (
        "2 configurations on their headline metric: 1 worse, 1 same." in html
    )
    assert "1 regression(s)." in html and "<span class='bad'>worse</span>" in html
    assert main(["compare", str(a), str(tmp_path / "nope")]) == 2
    assert "no results.parquet" in capsys.readouterr().err


def test_pairs_csv_is_written_beside_the_summary(tmp_path: Path):
    from hambench.tuning.tables import write_summary

    write_summary(tmp_path, results({"dnl": [88.0, 88.5], "none": [50.0, 51.0]}))
    pairs = pd.read_csv(tmp_path / "pairs.csv")
    assert len(pairs) == 4 and json.loads(pairs["options_a"].iloc[0]) == {}


def levels(scores: dict[int, dict[str, list[float]]]) -> pd.DataFrame:
    """A probe's results table: per level (keys) a comparison of its own."""
    return pd.concat(
        [
            results(modules).assign(data="synthetic-recall", data_options=json.dumps({"keys": k}))
            for k, modules in scores.items()
        ],
        ignore_index=True,
    ).assign(trial_id=lambda d: d["trial_id"] + "-k" + d["data_options"].str[-2])


def test_aggregates_normalise_each_comparison_then_take_the_iqm():
    from hambench.stats import aggregates, interquartile_mean, normalised_scores, performance_profile

    table = levels(
        {
            1: {"dnl": [90.0, 90.0, 90.0], "ham-nmf": [70.0, 80.0, 90.0], "none": [50.0, 50.0, 50.0]},
            2: {"dnl": [80.0, 80.0, 80.0], "ham-nmf": [50.0, 60.0, 70.0], "none": [50.0, 50.0, 50.0]},
        }
    )
    scores = normalised_scores(table)
    ham = scores[scores["module"] == "ham-nmf"].sort_values(["comparison", "seed"])["score"].tolist()
    assert ham == pytest.approx([0.5, 0.75, 1.0, 0.0, 1 / 3, 2 / 3])  # (v - none) / (best - none) per level
    agg = aggregates(table).set_index("module")
    assert agg.loc["dnl", "iqm"] == 1.0 and agg.loc["none", "iqm"] == 0.0
    assert agg.loc["ham-nmf", "iqm"] == pytest.approx(float(interquartile_mean(ham)))
    assert agg.loc["ham-nmf", "ci_low"] <= agg.loc["ham-nmf", "iqm"] <= agg.loc["ham-nmf", "ci_high"]
    assert agg.loc["ham-nmf", "comparisons"] == 2 and agg.loc["ham-nmf", "runs"] == 6
    profile = performance_profile(table, taus=[-0.1, 0.4, 0.9])
    fractions = profile[profile["module"] == "ham-nmf"]["fraction"].tolist()
    assert fractions == pytest.approx([1.0, 4 / 6, 1 / 6])  # non-increasing in tau
    assert aggregates(results({"dnl": [1.0, 2.0], "none": [0.0, 0.5]})).empty  # one comparison: nothing to aggregate


def test_the_report_shows_the_matrix_and_the_aggregate(tmp_path: Path):
    from hambench.reports.aggregate import aggregate_section
    from hambench.reports.improvement import improvement_section
    from hambench.stats import summarize

    table = levels({1: {"dnl": [90.0, 89.0], "none": [50.0, 51.0]}, 2: {"dnl": [80.0, 81.0], "none": [50.0, 49.0]}})
    html = improvement_section(improvements(table), summarize(table))
    assert html.count("<h3>") == 2 and "P(row better than column)" in html  # one matrix per level
    assert "IQM of normalised mIoU" in aggregate_section(table)
    assert aggregate_section(results({"dnl": [1.0, 2.0], "none": [0.0, 0.5]})) == ""
