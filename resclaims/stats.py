"""Statistics for claims: pure functions over arrays of runs.

The data contract follows rliable: scores are arrays with one entry per run
(paired arrays share the run index). Every estimator returns a point estimate
and an interval. Tests and intervals come from ``scipy.stats``; nothing here
re-implements them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats

ALPHA = 0.05  # the suite's significance level; intervals are (1 - ALPHA) two-sided
N_RESAMPLES = 2000  # bootstrap resamples


@dataclass(frozen=True)
class Interval:
    """A point estimate with a (1 - ALPHA) confidence interval."""

    estimate: float
    low: float
    high: float

    @property
    def ci(self) -> tuple[float, float]:
        return (self.low, self.high)


def _bootstrap(data: tuple[np.ndarray, ...], statistic, *, paired: bool, seed: int, confidence: float,
               n_resamples: int, method: str) -> tuple[float, float]:
    """scipy's bootstrap interval; BCa falls back to percentile where BCa is undefined."""
    methods = ("BCa", "percentile") if method == "BCa" else (method,)
    for m in methods:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy warns on degenerate BCa; we fall back
            try:
                result = stats.bootstrap(
                    data, statistic, paired=paired, vectorized=False, n_resamples=n_resamples,
                    confidence_level=confidence, method=m, rng=np.random.default_rng(seed),
                )
            except ValueError:
                if m == methods[-1]:
                    raise
                continue
        low, high = (float(v) for v in result.confidence_interval)
        if not np.isnan(low) and not np.isnan(high):
            break
    return low, high


def bootstrap_ci(
    samples: tuple[np.ndarray, ...] | np.ndarray,
    statistic: Callable[..., float],
    *,
    paired: bool = False,
    seed: int = 0,
    confidence: float = 1 - ALPHA,
    n_resamples: int = N_RESAMPLES,
    method: str = "BCa",
) -> Interval:
    """Bootstrap CI of ``statistic`` (BCa, falling back to percentile when BCa is undefined).

    ``samples`` is one array or a tuple of arrays; with ``paired=True`` the arrays
    are resampled with the same indices (runs paired by seed). ``statistic``
    takes the arrays and returns a scalar; it need not be vectorised.
    """
    data = (samples,) if isinstance(samples, np.ndarray) else tuple(samples)
    data = tuple(np.asarray(d, dtype=float) for d in data)
    point = float(statistic(*data))
    if len(data[0]) < 2 or np.ptp(np.concatenate(data)) == 0:
        return Interval(point, point, point)  # no variability to resample
    low, high = _bootstrap(data, statistic, paired=paired, seed=seed, confidence=confidence,
                           n_resamples=n_resamples, method=method)
    return Interval(point, low, high)


def bootstrap_rows(
    arrays: tuple[np.ndarray, ...],
    statistic: Callable[..., float],
    *,
    seed: int = 0,
    confidence: float = 1 - ALPHA,
    n_resamples: int = N_RESAMPLES,
    method: str = "BCa",
) -> Interval:
    """Bootstrap CI of a statistic of whole rows (runs), resampled together across ``arrays``.

    Each array has one row per run (e.g. a learning curve per seed), and the
    arrays are paired by row. ``statistic(*arrays)`` sees resampled rows; use it
    for statistics of mean curves, such as a crossing epoch, that are not a
    function of one number per run. ``scipy.stats.bootstrap`` resamples the row
    indices.
    """
    arrays = tuple(np.asarray(a, dtype=float) for a in arrays)
    point = float(statistic(*arrays))
    if len(arrays[0]) < 2:
        return Interval(point, point, point)
    index = np.arange(len(arrays[0]), dtype=float)
    on_rows = lambda i: statistic(*(a[i.astype(int)] for a in arrays))  # noqa: E731
    low, high = _bootstrap((index,), on_rows, paired=False, seed=seed, confidence=confidence,
                           n_resamples=n_resamples, method=method)
    return Interval(point, low, high)


def mean_ci(x: np.ndarray, *, seed: int = 0) -> Interval:
    """Mean with a bootstrap CI."""
    return bootstrap_ci(np.asarray(x, dtype=float), np.mean, seed=seed)


def paired_signed_rank(a: np.ndarray, b: np.ndarray, alternative: str = "two-sided") -> float:
    """p-value of the Wilcoxon signed-rank test of ``a - b`` (paired by run).

    ``alternative="greater"`` tests whether ``a`` tends to exceed ``b``.
    Returns 1.0 when every difference is zero (no evidence either way).
    """
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if np.all(d == 0):
        return 1.0
    return float(stats.wilcoxon(d, alternative=alternative, zero_method="pratt").pvalue)


def paired_variance_test(a: np.ndarray, b: np.ndarray, alternative: str = "two-sided") -> float:
    """Pitman-Morgan test that ``var(a) == var(b)`` for paired samples.

    ``cov(a + b, a - b) = var(a) - var(b)``, so the test is Pearson's correlation
    test between the sums and the differences. ``alternative="greater"`` tests
    ``var(a) > var(b)``.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    s, d = a + b, a - b
    if np.ptp(s) == 0 or np.ptp(d) == 0:
        return 1.0
    return float(stats.pearsonr(s, d, alternative=alternative).pvalue)


def variance_test(a: np.ndarray, b: np.ndarray) -> float:
    """Brown-Forsythe test (Levene, median-centred) of equal variances, independent samples."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if np.ptp(np.concatenate([a, b])) == 0:
        return 1.0
    return float(stats.levene(a, b, center="median").pvalue)


def crossing_epochs(curves: np.ndarray, threshold: float) -> np.ndarray:
    """First time each curve falls below ``threshold``, interpolated within an epoch.

    ``curves`` has shape (runs, epochs) or (epochs,); epoch ``e`` is at x = e, as
    the sources plot it (the first recorded epoch is x = 0). Between the last
    point above and the first point below the threshold the curve is taken as
    linear. A curve that starts below the threshold crosses at 0; one that never
    gets below it gives ``inf`` (censored at the budget).
    """
    y = np.atleast_2d(np.asarray(curves, dtype=float))
    below = y < threshold
    first = np.where(below.any(axis=1), below.argmax(axis=1), -1)
    out = np.full(y.shape[0], np.inf)
    for run, e in enumerate(first):
        if e == 0:
            out[run] = 0.0
        elif e > 0:
            y0, y1 = y[run, e - 1], y[run, e]
            out[run] = (e - 1) + (y0 - threshold) / (y0 - y1)
    return out if np.ndim(curves) > 1 else out[:1]


def mean_curve_crossing(curves: np.ndarray, threshold: float) -> float:
    """Crossing epoch of the mean curve over runs, as a source's plot shows it."""
    return float(crossing_epochs(np.nanmean(np.atleast_2d(curves), axis=0), threshold)[0])
