"""hambench.stats: intervals over seeds, the Welch test behind the ranks, ranks with ties and the
run summary, each against numbers worked out by hand (t quantiles from a printed t table)."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from hambench.stats import format_mean_ci, format_rank, interval, rank_with_ties, significantly_better, summarize
from hambench.tasks import metric_sense

T_975_DF1 = 12.706205  # Student t, 97.5th percentile, 1 degree of freedom (t table)
T_975_DF2 = 4.302653  # ... 2 degrees of freedom

A = [10.0, 11.0, 12.0]  # mean 11, s = 1
B = [5.0, 6.0, 7.0]  # mean 6, s = 1: t = 5 / sqrt(2/3) = 6.12 on 4 df against A, p ~ 0.004
C = [10.0, 12.0, 14.0]  # mean 12, s = 2: t = 0.77 on 2.94 df against A (p ~ 0.5), 4.65 against B (p ~ 0.02)


def test_interval_of_three_seeds():
    iv = interval([1.0, 2.0, 3.0])
    half = T_975_DF2 * 1.0 / math.sqrt(3)  # 2.484138
    assert (iv.n, iv.mean, iv.std) == (3, 2.0, 1.0)
    assert iv.low == pytest.approx(2.0 - half, abs=1e-5) and iv.high == pytest.approx(2.0 + half, abs=1e-5)
    assert iv.half_width == pytest.approx(2.484138, abs=1e-5) and iv.has_interval


def test_interval_drops_missing_seeds():
    iv = interval([1.0, float("nan"), 3.0, None])  # two seeds left: mean 2, s = sqrt(2)
    assert iv.n == 2 and iv.mean == 2.0 and iv.std == pytest.approx(math.sqrt(2))
    assert iv.half_width == pytest.approx(T_975_DF1 * math.sqrt(2) / math.sqrt(2), abs=1e-5)


def test_one_seed_has_no_interval():
    iv = interval([42.0])
    assert iv.n == 1 and iv.mean == 42.0
    assert math.isnan(iv.std) and math.isnan(iv.low) and math.isnan(iv.high) and not iv.has_interval
    empty = interval([])
    assert empty.n == 0 and math.isnan(empty.mean)


def test_welch_decides_which_is_better_and_in_which_direction():
    a, b, c = interval(A), interval(B), interval(C)
    assert significantly_better(a, b, "max") and not significantly_better(b, a, "max")
    assert significantly_better(b, a, "min")  # lower is better: b wins
    assert not significantly_better(c, a, "max") and not significantly_better(a, c, "max")  # p ~ 0.5
    assert significantly_better(c, b, "max")  # p ~ 0.02 < 0.05
    assert not significantly_better(interval([99.0]), b, "max")  # one seed: nothing to test with


def test_constant_seeds_differ_exactly():
    assert significantly_better(interval([3.0, 3.0]), interval([2.0, 2.0]), "max")
    assert not significantly_better(interval([3.0, 3.0]), interval([3.0, 3.0]), "max")


def test_ranks_with_a_tie_and_an_unranked_single_seed():
    # c and a cannot be told apart (both rank 1); b is beaten by both (rank 3); one seed and no
    # value are not ranked.
    ivs = [interval(A), interval(B), interval(C), interval([42.0]), interval([])]
    assert rank_with_ties(ivs, "max") == [1, 3, 1, None, None]
    # Lower is better: b beats a and c, which tie with each other.
    assert rank_with_ties(ivs, "min") == [2, 1, 2, None, None]


def test_ranks_without_a_tie():
    assert rank_with_ties([interval(A), interval(B)], "max") == [1, 2]
    assert rank_with_ties([interval([3.0, 3.0]), interval([3.0, 3.0])], "max") == [1, 1]


def test_directions():
    assert metric_sense("mIoU") == "max" and metric_sense("aAcc") == "max"
    for metric in ("fid", "fid_surrogate", "symmetry_error", "latency_ms", "macs", "peak_mem_bytes"):
        assert metric_sense(metric) == "min", metric


def test_text():
    assert format_mean_ci(43.9652, 0.4763, 3) == "43.97 ± 0.48"
    assert format_mean_ci(17.2306, 3.7914, 2) == "17.2 ± 3.8"
    assert format_mean_ci(22.14, float("nan"), 1) == "22.14 (1 seed)"
    assert format_mean_ci(float("nan"), float("nan"), 0) == "n/a"
    assert format_rank(1, True) == "1 (tied)" and format_rank(3, False) == "3" and format_rank(pd.NA, False) == "-"


def _trial(module, seed, miou, status="ok", options=None, data="d", iters=100):
    return {
        "trial_id": f"seg-{module}-{seed}-{data}",
        "task": "seg",
        "module": module,
        "family": "other",
        "backbone": "tiny-d8",
        "head": "context",
        "data": data,
        "seed": seed,
        "options": json.dumps(options or {}),
        "iters": iters if status == "ok" else None,
        "status": status,
        "mIoU": miou,
        "aAcc": None if miou is None else 80 + miou / 10,
        "macs_fvcore": 1e6,
        "latency_ms": 0.5,
        "peak_mem_bytes": 1024,
    }


def test_summary_of_a_results_table():
    rows = [_trial("a", s, v) for s, v in enumerate(A)] + [_trial("b", s, v) for s, v in enumerate(B)]
    rows += [_trial("c", s, v) for s, v in enumerate(C)] + [_trial("c", 3, None, status="failed")]
    rows += [_trial("one", 0, 42.0), _trial("broken", 0, None, status="failed")]
    rows += [_trial("a", 0, 1.0, data="other-data")]  # another data set: ranked apart
    results = pd.DataFrame(rows)
    summary = summarize(results)
    miou = summary[(summary["metric"] == "mIoU") & (summary["data"] == "d")].set_index("module")
    assert miou["headline"].all() and not summary.loc[summary["metric"] == "aAcc", "headline"].any()
    assert miou.loc["a", "n"] == 3 and miou.loc["a", "mean"] == 11.0 and miou.loc["a", "std"] == 1.0
    assert miou.loc["a", "ci_half"] == pytest.approx(2.484138, abs=1e-5)
    assert miou.loc["a", "values"] == "0: 10; 1: 11; 2: 12"
    assert miou.loc[["c", "a", "b"], "rank"].tolist() == [1, 1, 3]
    assert miou.loc[["one", "broken"], "rank"].isna().all()  # one seed, no seed: not ranked
    assert miou.loc[["c", "a", "b"], "tied"].tolist() == [True, True, False]
    # Failed trials are counted, not averaged; a configuration whose every trial failed has n = 0.
    assert miou.loc["c", "failed"] == 1 and miou.loc["c", "n"] == 3
    assert miou.loc["broken", "n"] == 0 and miou.loc["broken", "failed"] == 1
    assert miou.loc["one", "n"] == 1 and math.isnan(miou.loc["one", "ci_half"])
    # Best first: rank, then mean; unranked configurations last.
    assert list(miou.index) == ["c", "a", "b", "one", "broken"]
    other = summary[(summary["data"] == "other-data") & (summary["metric"] == "mIoU")]
    assert len(other) == 1 and pd.isna(other["rank"].iloc[0])
    assert (miou.loc[["c", "a", "b", "one"], "macs"] == 1e6).all()  # fvcore's count where torchprofile has none


def test_summary_separates_resolved_options_and_pools_equal_ones():
    # Two spellings of one configuration are one; another value is another configuration.
    rows = [
        _trial("ham", 0, 40.0, options={"rank": 64}),
        _trial("ham", 1, 41.0, options={"rank": 64}),
        _trial("ham", 2, 30.0, options={"rank": 8}),
    ]
    summary = summarize(pd.DataFrame(rows))
    miou = summary[summary["metric"] == "mIoU"]
    assert sorted(miou["n"]) == [1, 2] and set(miou["options"]) == {'{"rank": 64}', '{"rank": 8}'}


def test_cost_summary_of_a_profile_only_run():
    results = pd.DataFrame(
        [
            {
                "trial_id": "p1",
                "task": "profile",
                "module": "a",
                "family": "other",
                "seed": 0,
                "options": "{}",
                "status": "ok",
                "params": 10,
                "macs_torchprofile": 5e6,
                "macs_fvcore": 4e6,
                "latency_ms": 1.5,
                "peak_mem_bytes": 2048,
                "profile_shape": "1x8x8x8",
                "iters": 1,
            },
            {
                "trial_id": "p2",
                "task": "profile",
                "module": "b",
                "family": "other",
                "seed": 0,
                "options": "{}",
                "status": "failed",
                "error": "boom",
            },
        ]
    )
    summary = summarize(results).set_index("module")
    assert (summary["metric"] == "").all() and summary["rank"].isna().all()
    assert summary.loc["a", "macs"] == 5e6 and summary.loc["a", "latency_ms"] == 1.5  # torchprofile first
    assert summary.loc["b", "failed"] == 1 and summary.loc["b", "n"] == 0
