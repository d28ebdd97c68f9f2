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
