"""Seeded bootstrap intervals (eval/stats.py)."""

import numpy as np
import pytest

from eval.attacks.mia import auc_vectorized, mia_auc
from eval.stats import bootstrap_mean_ci, bootstrap_two_sample_ci, mean_score

VALUES = np.random.default_rng(1).normal(50.0, 10.0, size=40)


def test_interval_contains_the_mean_and_has_sensible_width():
    lo, hi = bootstrap_mean_ci(VALUES, n_resamples=2000, seed=0)
    mean = VALUES.mean()
    assert lo < mean < hi
    se = VALUES.std(ddof=1) / np.sqrt(len(VALUES))
    assert 2.5 * se < hi - lo < 5.5 * se  # ~2 × 1.96 standard errors


def test_interval_is_seeded():
    a = bootstrap_mean_ci(VALUES, n_resamples=500, seed=7)
    assert bootstrap_mean_ci(VALUES, n_resamples=500, seed=7) == a
    assert bootstrap_mean_ci(VALUES, n_resamples=500, seed=8) != a


def test_degenerate_inputs():
    assert bootstrap_mean_ci([3.0, 3.0, 3.0]) == (3.0, 3.0)
    assert bootstrap_mean_ci([4.0]) == (4.0, 4.0)


def test_mean_score_scales_values_and_interval():
    s = mean_score([0.2, 0.4, 0.6, 0.8], scale=100, n_resamples=500, seed=0)
    assert s.value == pytest.approx(50.0)
    assert s.per_example == pytest.approx([20.0, 40.0, 60.0, 80.0])
    assert 20.0 <= s.ci_low < 50.0 < s.ci_high <= 80.0
    assert s.meta["n"] == 4 and s.meta["seed"] == 0


def test_two_sample_interval_of_an_auc():
    rng = np.random.default_rng(2)
    m, n = rng.normal(0, 1, 30), rng.normal(1, 1, 30)
    auc = mia_auc(m, n)
    lo, hi = bootstrap_two_sample_ci(m, n, lambda i, j: auc_vectorized(m[i], n[j]),
                                     n_resamples=1000, seed=0)
    assert lo < auc < hi and 0.0 <= lo and hi <= 1.0
