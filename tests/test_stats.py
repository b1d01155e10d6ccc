"""Intervals and paired tests (dri_hep2.experiment.stats) against values worked out by hand or in
the literature."""
from __future__ import annotations

import math

import numpy as np
import pytest

from dri_hep2.experiment import stats


def test_wilson_matches_published_values():
    # Newcombe (1998), Table I: 81/263 -> 0.2553-0.3662; 0/10 -> 0-0.2775; 10/10 -> 0.7225-1.
    assert stats.wilson(81, 263) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    assert stats.wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert stats.wilson(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert stats.wilson(0, 0) is None


def test_exact_mcnemar_by_hand():
    # A right on 9 cells B gets wrong, B right on 1 A gets wrong: 2 * (1 + 10) / 2^10.
    a = [True] * 9 + [False] + [True] * 50
    b = [False] * 9 + [True] + [True] * 50
    assert stats.mcnemar(a, b) == {"a_only": 9, "b_only": 1, "p": pytest.approx(22 / 1024)}
    # 5 to 0: 2 / 32; identical classifiers: p = 1.
    assert stats.mcnemar([True] * 5, [False] * 5)["p"] == pytest.approx(0.0625)
    assert stats.mcnemar([True, False], [True, False])["p"] == 1.0
    with pytest.raises(ValueError):
        stats.mcnemar([True], [True, False])


def test_bootstrap_covers_the_estimate_and_narrows_with_more_cells():
    rng = np.random.default_rng(0)

    def interval(n):
        labels = np.repeat(np.arange(6), n)
        correct = rng.random(6 * n) < 0.9
        mca = np.mean([correct[labels == c].mean() for c in range(6)])
        lo, hi = stats.bootstrap_mca(labels, correct, resamples=1000)
        return lo, mca, hi

    lo, mca, hi = interval(40)
    assert lo < mca < hi
    lo2, mca2, hi2 = interval(1000)
    assert lo2 < mca2 < hi2 and (hi2 - lo2) < (hi - lo) / 3
    # Seeded, and blind to the order of the cells: the same cells give the same interval.
    labels, correct = np.repeat(np.arange(6), 20), np.tile([True, False, True, True], 30)
    order = np.random.default_rng(5).permutation(len(labels))
    assert stats.bootstrap_mca(labels, correct) == stats.bootstrap_mca(labels[order],
                                                                        correct[order])


def test_bootstrap_by_specimen_is_wider_when_specimens_differ():
    """Two specimens per class, one read perfectly and one at 50 %: resampling specimens
    sees that spread; resampling cells as if independent hides most of it."""
    labels = np.repeat(np.arange(6), 40)
    specimens = [f"{c}-{k // 20}" for c in range(6) for k in range(40)]
    correct = np.array([k < 20 or k % 2 == 0 for c in range(6) for k in range(40)])
    cells = stats.bootstrap_mca(labels, correct, resamples=2000)
    by_specimen = stats.bootstrap_mca(labels, correct, specimens, resamples=2000)
    assert (by_specimen[1] - by_specimen[0]) > 2 * (cells[1] - cells[0])
    # One specimen per class: every resample is the data itself.
    one = [str(c) for c in labels]
    assert stats.bootstrap_mca(labels, correct, one) == pytest.approx((0.75, 0.75))


def test_spread_of_a_series():
    s = stats.spread([0.9, 0.95, 1.0])
    assert (s["n"], s["mean"], s["min"], s["max"]) == (3, pytest.approx(0.95), 0.9, 1.0)
    assert s["sd"] == pytest.approx(math.sqrt(((0.05 ** 2) * 2) / 2))
