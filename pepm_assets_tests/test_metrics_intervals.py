"""The percentile bootstrap's own arithmetic (core/metrics.py): which percentiles make a 95 %
interval, and the documented default number of replicates."""

from __future__ import annotations

import numpy as np
import pytest

from pepm_assets.core import metrics


@pytest.mark.parametrize(("level", "expected"), [(0.95, [2.5, 97.5]), (0.9, [5.0, 95.0]), (0.5, [25.0, 75.0])])
def test_a_level_interval_cuts_half_the_rest_on_each_side(level: float, expected: list[float]) -> None:
    """On the values 0..100 the p-th percentile is p itself: a 95 % interval is [2.5, 97.5]."""
    assert metrics._percentile_interval(np.arange(101.0), level) == pytest.approx(expected, abs=1e-9)


def test_intervals_use_1000_replicates_unless_told() -> None:
    gold = ["a", "b"] * 20
    pred = ["a", "a"] * 20
    ci = metrics.bootstrap_intervals(gold, pred, ["a", "b"], seed=0)
    assert ci["n_boot"] == 1000 and ci["level"] == 0.95 and ci["seed"] == 0
    assert ci == metrics.bootstrap_intervals(gold, pred, ["a", "b"], seed=0, n_boot=1000)
    assert ci != metrics.bootstrap_intervals(gold, pred, ["a", "b"], seed=0, n_boot=999)


def test_replicates_default_to_1000_and_no_class_scores_zero() -> None:
    reps = metrics.bootstrap_replicates(["a", "b"] * 10, ["a"] * 20, ["a", "b"], seed=0)
    assert len(reps["accuracy"]) == len(reps["macro_f1"]) == 1000
    empty = np.zeros((1, 2, 3))  # no document at all: macro-F1 0, not NaN
    assert metrics._macro_f1(empty).tolist() == [0.0]


def test_repeated_scores_split_the_variance_into_its_two_parts() -> None:
    """Within: the mean of each split's sample variance of replicates (ddof 1); between: the sample
    variance of the split scores; sd: their sample standard deviation."""
    splits = [
        {"accuracy": 0.7, "macro_f1": 0.6, "replicates": {"accuracy": [0.6, 0.7, 0.8], "macro_f1": [0.5, 0.6, 0.7]}},
        {"accuracy": 0.8, "macro_f1": 0.7, "replicates": {"accuracy": [0.7, 0.8, 0.9, 0.8], "macro_f1": [0.6, 0.7, 0.8, 0.7]}},
    ]
    out = metrics.repeated_scores(splits)
    within = (np.var([0.6, 0.7, 0.8], ddof=1) + np.var([0.7, 0.8, 0.9, 0.8], ddof=1)) / 2
    assert out["variance"]["accuracy"]["within_split"] == pytest.approx(within)
    assert out["variance"]["accuracy"]["between_split"] == pytest.approx(np.var([0.7, 0.8], ddof=1))
    assert out["sd"]["accuracy"] == pytest.approx(np.std([0.7, 0.8], ddof=1))
    one = metrics.repeated_scores(splits[:1])
    assert (one["sd"]["accuracy"], one["variance"]["accuracy"]["between_split"]) == (0.0, 0.0)


def test_a_paired_comparison_on_one_split_has_no_spread_between_splits() -> None:
    gold = ["a", "b"] * 15
    split = {"gold": gold, "pred_a": gold, "pred_b": ["a"] * 30, "seed": 0, "clusters": None}
    one = metrics.paired_comparison([split], ["a", "b"], n_boot=200)
    assert one["delta_sd"] == 0.0 and one["delta_macro_f1"] > 0
    worse = {**split, "pred_a": ["b"] * 10 + gold[10:]}
    two = metrics.paired_comparison([split, worse], ["a", "b"], n_boot=200)
    assert two["delta_sd"] == pytest.approx(np.std(two["per_split"], ddof=1))
