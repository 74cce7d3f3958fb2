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
               n_resamples: int, method: str, vectorized: bool = False) -> tuple[float, float]:
    """scipy's bootstrap interval; BCa falls back to percentile where BCa is undefined."""
    methods = ("BCa", "percentile") if method == "BCa" else (method,)
    for m in methods:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy warns on degenerate BCa; we fall back
            try:
                result = stats.bootstrap(
                    data, statistic, paired=paired, vectorized=vectorized, n_resamples=n_resamples,
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
    vectorized: bool = False,
) -> Interval:
    """Bootstrap CI of ``statistic`` (BCa, falling back to percentile when BCa is undefined).

    ``samples`` is one array or a tuple of arrays; with ``paired=True`` the arrays
    are resampled with the same indices (runs paired by seed). ``statistic``
    takes the arrays and returns a scalar. With ``vectorized=True`` it also takes
    ``axis`` and reduces along it (``np.median`` does), which gives the same
    interval many times faster: calibration calls it thousands of times.
    """
    data = (samples,) if isinstance(samples, np.ndarray) else tuple(samples)
    data = tuple(np.asarray(d, dtype=float) for d in data)
    point = float(statistic(*data))
    if len(data[0]) < 2 or np.ptp(np.concatenate(data)) == 0:
        return Interval(point, point, point)  # no variability to resample
    low, high = _bootstrap(data, statistic, paired=paired, seed=seed, confidence=confidence,
                           n_resamples=n_resamples, method=method, vectorized=vectorized)
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


def bootstrap_mean_curves(
    curves: tuple[np.ndarray, ...],
    statistic: Callable[..., np.ndarray],
    *,
    seed: int = 0,
    confidence: float = 1 - ALPHA,
    n_resamples: int = N_RESAMPLES,
    method: str = "BCa",
) -> Interval:
    """Bootstrap CI of a statistic of mean curves, runs resampled together across ``curves``.

    Each array is (runs, epochs), paired by run. ``statistic(*means)`` gets each
    array's mean curve over the resampled runs, shape (..., epochs), and returns
    one value per leading index: it is vectorised, like the crossing epoch of a
    mean curve. A resample's mean curve is its run counts times the curves, so
    2,000 resamples cost two matrix products (``bootstrap_rows`` does the same
    for any statistic of rows, one resample at a time). Curves must be finite.
    """
    curves = tuple(np.asarray(c, dtype=float) for c in curves)
    n = len(curves[0])
    point = float(statistic(*(c.mean(axis=0) for c in curves)))
    if n < 2:
        return Interval(point, point, point)

    def on_index(index: np.ndarray, axis: int = -1) -> np.ndarray:
        rows = index.astype(np.intp).reshape(-1, index.shape[-1])  # (resamples, runs drawn)
        offsets = np.arange(len(rows))[:, None] * n
        counts = np.bincount((rows + offsets).ravel(), minlength=len(rows) * n).reshape(len(rows), n).astype(float)
        means = ((counts @ c) / rows.shape[1] for c in curves)  # (resamples, epochs) each
        return np.asarray(statistic(*means)).reshape(index.shape[:-1])

    low, high = _bootstrap((np.arange(n, dtype=float),), on_index, paired=False, seed=seed, confidence=confidence,
                           n_resamples=n_resamples, method=method, vectorized=True)
    return Interval(point, low, high)


def mean_t_interval(x: np.ndarray, *, confidence: float = 1 - ALPHA) -> Interval:
    """Mean with Student's t interval (``scipy.stats.ttest_1samp(...).confidence_interval``).

    For a handful of runs: with 5 seeds a bootstrap interval of the mean is too
    narrow (it cannot see beyond the 5 values), and calibration shows it.
    Constant data give the degenerate interval (mean, mean).
    """
    x = np.asarray(x, dtype=float)
    mean = float(np.mean(x))
    if len(x) < 2 or np.ptp(x) == 0:
        return Interval(mean, mean, mean)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # near-constant data: scipy warns about precision
        low, high = stats.ttest_1samp(x, 0.0).confidence_interval(confidence)
    return Interval(mean, float(low), float(high))


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


def paired_exchange_test(
    a: np.ndarray,
    b: np.ndarray,
    statistic: Callable[..., np.ndarray],
    *,
    alternative: str = "greater",
    seed: int = 0,
    n_resamples: int = N_RESAMPLES,
) -> float:
    """p-value of ``statistic(a, b)`` against exchanging the two members of each pair at random.

    Under the null that each run's two conditions are exchangeable, every swap
    is as likely as the data, so the p-value is exact (up to Monte Carlo error)
    for any distribution, heavy tails included. A swap flips the sign of the
    pair's difference and keeps its sum, so the swapped data are drawn as sign
    flips with ``scipy.stats.monte_carlo_test`` (the same test as
    ``permutation_test(..., permutation_type="samples")``, three times faster).
    ``statistic(a, b, axis=-1)`` is vectorised. Returns 1.0 when every pair is
    equal (nothing to exchange) or the statistic of the data is NaN (no evidence either way).
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    total, difference = a + b, a - b
    with np.errstate(all="ignore"):
        undefined = np.isnan(statistic(a, b, axis=-1))
    if not difference.any() or undefined:
        return 1.0
    rng = np.random.default_rng(seed)
    flipped = lambda size: difference * rng.choice((-1.0, 1.0), size=size)  # noqa: E731
    swapped = lambda d, axis=-1: statistic((total + d) / 2, (total - d) / 2, axis=axis)  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a statistic of constant data is nan in some resamples
        result = stats.monte_carlo_test(difference, flipped, swapped, vectorized=True, n_resamples=n_resamples,
                                        alternative=alternative, axis=-1)
    return float(result.pvalue)


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
    out[first == 0] = 0.0
    runs = np.flatnonzero(first > 0)
    e = first[runs]
    y0, y1 = y[runs, e - 1], y[runs, e]
    out[runs] = (e - 1) + (y0 - threshold) / (y0 - y1)
    return out if np.ndim(curves) > 1 else out[:1]


def mean_curve_crossing(curves: np.ndarray, threshold: float) -> float:
    """Crossing epoch of the mean curve over runs, as a source's plot shows it."""
    return float(crossing_epochs(np.nanmean(np.atleast_2d(curves), axis=0), threshold)[0])
