"""The `Score` record every metric returns, and seeded bootstrap confidence intervals.

Intervals are percentile bootstrap intervals from `scipy.stats.bootstrap` (the method MUSE's
own logger uses), drawn from `numpy.random.default_rng(seed)` so a rerun gives the same bounds.
Means resample the per-example values; two-sample statistics (AUC, PrivLeak) resample each
group (members, non-members) independently, keeping the group sizes.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

CONFIDENCE = 0.95
N_RESAMPLES = 9999  # scipy's default; a vectorised mean over 10^4 resamples takes milliseconds


@dataclass(frozen=True)
class Score:
    """One metric's result for one model."""

    value: float | None  # the headline number (e.g. mean ROUGE-L × 100); None if undefined
    ci_low: float | None = None  # lower bound of the bootstrap interval (same scale as value)
    ci_high: float | None = None  # upper bound
    per_example: Any = field(default_factory=list)  # list of floats, or {group: [floats]}
    meta: dict = field(default_factory=dict)  # everything else worth keeping (n, outputs, ...)

    def to_dict(self) -> dict:
        return asdict(self)


def _bootstrap(samples: Sequence[np.ndarray], statistic: Callable, *, confidence: float,
               n_resamples: int, seed: int) -> tuple[float, float]:
    from scipy.stats import bootstrap

    with warnings.catch_warnings():
        # constant data makes a degenerate (zero-width) interval; that is the right answer
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            from scipy.stats import DegenerateDataWarning

            warnings.simplefilter("ignore", DegenerateDataWarning)
        except ImportError:  # pragma: no cover - older scipy
            pass
        res = bootstrap(tuple(samples), statistic, n_resamples=n_resamples, vectorized=True,
                        paired=False, axis=-1, confidence_level=confidence, method="percentile",
                        batch=1000, rng=np.random.default_rng(seed))
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if np.isnan(low) or np.isnan(high):
        # Some resamples make the statistic undefined (e.g. a ratio whose resampled
        # denominator is 0); take the percentiles over the resamples where it is defined.
        dist = np.asarray(res.bootstrap_distribution, dtype=np.float64)
        dist = dist[np.isfinite(dist)]
        if dist.size == 0:
            return float("nan"), float("nan")
        alpha = (1 - confidence) / 2
        low, high = np.percentile(dist, [100 * alpha, 100 * (1 - alpha)])
    return float(low), float(high)


def bootstrap_mean_ci(values: Sequence[float], *, confidence: float = CONFIDENCE,
                      n_resamples: int = N_RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values`."""
    x = np.asarray(values, dtype=np.float64)
    if len(x) < 2 or np.all(x == x[0]):
        m = float(x.mean()) if len(x) else float("nan")
        return m, m
    return _bootstrap([x], lambda a, axis=-1: np.mean(a, axis=axis), confidence=confidence,
                      n_resamples=n_resamples, seed=seed)


def bootstrap_two_sample_ci(a: Sequence[float], b: Sequence[float], statistic: Callable, *,
                            confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES,
                            seed: int = 0) -> tuple[float, float]:
    """Interval of `statistic(a_resampled, b_resampled)`, resampling each group on its own.

    `statistic(ia, ib)` receives *index* arrays of shape (..., len(a)) and (..., len(b)) and must
    return one value per leading index (vectorised); indexing lets callers resample several
    aligned arrays at once (e.g. a model's and its retrain's scores of the same texts).
    """
    ia, ib = np.arange(len(a)), np.arange(len(b))
    if len(ia) < 2 or len(ib) < 2:
        v = float(np.asarray(statistic(ia, ib)))
        return v, v

    def stat(x, y, axis=-1):
        return statistic(x.astype(np.intp), y.astype(np.intp))

    return _bootstrap([ia, ib], stat, confidence=confidence, n_resamples=n_resamples, seed=seed)


def mean_score(values: Sequence[float], *, scale: float = 1.0, confidence: float = CONFIDENCE,
               n_resamples: int = N_RESAMPLES, seed: int = 0, meta: dict | None = None) -> Score:
    """A `Score` whose value is mean(values) × scale, with its bootstrap interval."""
    x = np.asarray(values, dtype=np.float64) * scale
    lo, hi = bootstrap_mean_ci(x, confidence=confidence, n_resamples=n_resamples, seed=seed)
    info = {"n": int(len(x)), "confidence": confidence, "n_resamples": n_resamples, "seed": seed}
    info.update(meta or {})
    return Score(value=float(x.mean()) if len(x) else None, ci_low=lo, ci_high=hi,
                 per_example=x.tolist(), meta=info)


def bootstrap_rows_ci(n: int, statistic: Callable, *, confidence: float = CONFIDENCE,
                      n_resamples: int = N_RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """Interval of `statistic(idx)` when n aligned rows are resampled together (paired).

    `statistic(idx)` receives an index array of shape (..., n) and returns one value per
    leading index (vectorised); resampling row indices keeps every model's score of the same
    row together (e.g. a recovery ratio of three models' means over the same questions).
    Resamples where the statistic is undefined (NaN) are left out of the percentiles.
    """
    idx = np.arange(n)
    if n < 2:
        v = float(np.asarray(statistic(idx)))
        return v, v

    def stat(x, axis=-1):
        return statistic(x.astype(np.intp))

    return _bootstrap([idx], stat, confidence=confidence, n_resamples=n_resamples, seed=seed)
