"""The Pareto computation behind the report's fronts."""

import numpy as np
import pytest

from hambench.reports.pareto import front_order, pareto_mask

NAN = float("nan")


def test_mixed_senses_cost_min_accuracy_max():
    # (MACs, mIoU): cheaper and better wins; (3, 40) is beaten by (2, 41).
    pts = [(1, 38), (2, 41), (3, 40), (4, 45), (5, 44)]
    assert pareto_mask(pts, ["min", "max"]).tolist() == [True, True, False, True, False]


def test_both_minimised_like_fid():
    # (params, FID): both lower is better.
    pts = [(1, 30), (2, 20), (3, 25), (4, 10)]
    assert pareto_mask(pts, ["min", "min"]).tolist() == [True, True, False, True]


def test_maximise_flips_the_front():
    pts = [(1, 1), (2, 2)]
    assert pareto_mask(pts, ["min", "min"]).tolist() == [True, False]
    assert pareto_mask(pts, ["max", "max"]).tolist() == [False, True]


def test_exact_ties_stay_on_the_front_together():
    pts = [(1, 40), (1, 40), (2, 39)]
    assert pareto_mask(pts, ["min", "max"]).tolist() == [True, True, False]


def test_tie_on_one_objective_is_decided_by_the_other():
    # Same cost, lower accuracy: dominated. Same accuracy, higher cost: dominated.
    pts = [(1, 40), (1, 39), (2, 40)]
    assert pareto_mask(pts, ["min", "max"]).tolist() == [True, False, False]


def test_nan_is_never_on_the_front_and_dominates_nothing():
    # The NaN-cost point has the best accuracy; an unknown cost must not knock out the others.
    pts = [(NAN, 99), (1, 40), (2, 45), (3, NAN)]
    assert pareto_mask(pts, ["min", "max"]).tolist() == [False, True, True, False]


def test_all_missing_gives_an_empty_front():
    assert not pareto_mask([(NAN, NAN), (NAN, 1)], ["min", "max"]).any()


def test_one_point_is_the_front():
    assert pareto_mask([(5, 5)], ["min", "max"]).tolist() == [True]


def test_no_points():
    assert pareto_mask(np.empty((0, 2)), ["min", "max"]).tolist() == []


def test_all_points_on_the_front():
    # Each step up in accuracy costs more: nothing is dominated.
    pts = [(i, 30 + i) for i in range(6)]
    assert pareto_mask(pts, ["min", "max"]).all()


def test_three_objectives():
    # (MACs, latency, mIoU): the third point trades latency for accuracy, the second is beaten.
    pts = [(1, 1, 40), (2, 2, 39), (1, 3, 42)]
    assert pareto_mask(pts, ["min", "min", "max"]).tolist() == [True, False, True]


def test_properties_on_random_points():
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(200, 2))
    pts[rng.random(200) < 0.1, 0] = NAN
    senses = ["min", "max"]
    mask = pareto_mask(pts, senses)
    costs = pts * np.array([1, -1])  # both minimised

    def dominates(a, b):
        return bool((a <= b).all() and (a < b).any())

    valid = ~np.isnan(costs).any(axis=1)
    for i in np.flatnonzero(mask):  # nothing dominates a front point
        assert not any(dominates(costs[j], costs[i]) for j in np.flatnonzero(valid))
    for i in np.flatnonzero(valid & ~mask):  # every valid off-front point has a dominator on the front
        assert any(dominates(costs[j], costs[i]) for j in np.flatnonzero(mask))


def test_front_order_sorts_by_cost():
    x = np.array([3.0, 1.0, 2.0, 5.0])
    y = np.array([45.0, 40.0, 42.0, 30.0])
    mask = np.array([True, True, True, False])
    assert front_order(x, y, mask).tolist() == [1, 2, 0]


@pytest.mark.parametrize(
    "values, senses, message",
    [
        ([(1, 2)], ["min"], "1 senses for 2 objectives"),
        ([(1, 2)], ["min", "best"], "must be one of"),
        (np.zeros((2, 2, 2)), ["min", "max"], "2-D array"),
    ],
)
def test_bad_input_names_the_problem(values, senses, message):
    with pytest.raises(ValueError, match=message):
        pareto_mask(values, senses)
