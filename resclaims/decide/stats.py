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


@dataclass(frozen=True)
class Replicates:
    """A BCa bootstrap (Efron 1987): the estimate, its replicates, the bias and
    acceleration corrections, and the one-sided tests at any boundary.

    The p-value at a boundary b is the level at which the BCa interval's end
    reaches b (Efron and Tibshirani 1993, ch. 14): with q the share of
    replicates beyond b, w = Phi^-1(q) - z0 and p = Phi(w / (1 + a w) - z0).
    With z0 = a = 0 it is the percentile bootstrap's p, the share of replicates
    beyond b. The interval clears b exactly when the p on that side is below alpha.
    """

    estimate: float
    replicates: np.ndarray
    bias: float = 0.0  # z0: Phi^-1 of the share of replicates below the estimate
    acceleration: float = 0.0  # a: the jackknife skewness of the statistic / 6

    def _level(self, share: float) -> float:
        """The nominal one-sided level whose BCa bound sits at the replicates' ``share`` quantile."""
        b = len(self.replicates)
        w = stats.norm.ppf(np.clip(share, 0.5 / b, 1 - 0.5 / b)) - self.bias
        denominator = 1 + self.acceleration * w
        if denominator <= 0:  # beyond the range the correction maps: the boundary is out of reach
            return 0.0 if w < 0 else 1.0
        return float(stats.norm.cdf(w / denominator - self.bias))

    def _quantile(self, level: float) -> float:
        z = self.bias + stats.norm.ppf(level)
        return float(np.quantile(self.replicates, stats.norm.cdf(self.bias + z / (1 - self.acceleration * z))))

    def at(self, boundary: float, *, alpha: float = ALPHA) -> Tested:
        """The (alpha, 1 - alpha) BCa interval and the p-values at ``boundary``: ``p_above`` tests "at or below
        the boundary", ``p_below`` "at or above it"."""
        return Tested(self.estimate, self._quantile(alpha), self._quantile(1 - alpha),
                      self._level(float(np.mean(self.replicates <= boundary))),
                      1 - self._level(float(np.mean(self.replicates < boundary))))


TIE = 1e-12  # replicates within this relative distance of the estimate are ties (rounding, not resampling)


def _bca(estimate: float, replicates: np.ndarray, jackknife: np.ndarray) -> Replicates:
    """The BCa corrections from the replicates and the jackknife. z0 counts a replicate within ``TIE`` (relative)
    of the estimate as a tie, half below: the estimate (from the runs' mean) and a replicate that resamples the same
    runs (counts / n times the runs) differ in the last bits, and a strict ``<`` put a whole atom of such replicates
    on one side (z0 = +-3.48 and every p flipped between 0.00025 and 0.99975). Jackknife values that differ only
    by rounding likewise give no acceleration (their cubed noise over its own scale is any number)."""
    finite = replicates[np.isfinite(replicates)]
    tie = np.abs(finite - estimate) <= TIE * max(abs(estimate), np.finfo(float).tiny)
    share = (np.sum((finite < estimate) & ~tie) + 0.5 * np.sum(tie)) / max(len(finite), 1)
    bias = float(stats.norm.ppf(np.clip(share, 0.5 / len(replicates), 1 - 0.5 / len(replicates))))
    d = np.mean(jackknife) - jackknife
    if np.all(np.abs(d) <= TIE * max(abs(float(np.mean(jackknife))), np.finfo(float).tiny)):
        d = np.zeros_like(d)  # jackknife values apart by rounding only: no skewness to correct for
    spread = np.sum(d**2)
    acceleration = float(np.sum(d**3) / (6 * spread**1.5)) if spread > 0 and np.isfinite(spread) else 0.0
    return Replicates(estimate, replicates, bias, acceleration)


def bootstrap_replicates(data: tuple[np.ndarray, ...], statistic: Callable[..., np.ndarray], *, rows: bool = False,
                         seed: int = 0, n_resamples: int = N_RESAMPLES) -> Replicates:
    """The BCa bootstrap of ``statistic``, runs resampled together across ``data`` (paired by run).

    For the Z family's 400 and 2,000 experiments (the validation suite checks
    both errors at those sizes). With ``rows`` the arrays are (runs, epochs)
    curves and ``statistic`` takes their mean curves, vectorised over leading
    axes (a resample's mean curve is its run counts times the curves: one matrix
    product; a jackknife mean curve is the total less one run); else it takes
    the arrays and ``axis``.
    """
    data = tuple(np.asarray(d, dtype=float) for d in data)
    n = len(data[0])
    index = np.random.default_rng(seed).integers(0, n, (n_resamples, n))
    if rows:
        estimate = float(statistic(*(d.mean(axis=0) for d in data)))
        offsets = np.arange(n_resamples)[:, None] * n
        counts = np.bincount((index + offsets).ravel(), minlength=n_resamples * n).reshape(n_resamples, n) / n
        replicates = statistic(*(counts @ d for d in data))
        jackknife = statistic(*((d.sum(axis=0) - d) / (n - 1) for d in data))
    else:
        estimate = float(statistic(*data, axis=-1))
        replicates = statistic(*(d[index] for d in data), axis=-1)
        leave_out = np.array([np.delete(np.arange(n), i) for i in range(n)])
        jackknife = statistic(*(d[leave_out] for d in data), axis=-1)
    return _bca(estimate, np.asarray(replicates, dtype=float), np.asarray(jackknife, dtype=float))


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


# -- exact, distribution-free tests: the median by the sign test, a share by the binomial --------------
@dataclass(frozen=True)
class Tested:
    """An estimate, its interval and the two one-sided p-values of one quantity (arrays when vectorised).

    ``p_above`` tests "the quantity is at most the boundary" (small: evidence it lies
    above), ``p_below`` "it is at least the boundary". The interval's ends are the
    boundaries at which each one-sided test has p = alpha: a (1 - 2 alpha) two-sided
    interval, so "the interval lies above b" is "p_above(b) <= alpha".
    """

    estimate: np.ndarray | float
    low: np.ndarray | float
    high: np.ndarray | float
    p_above: np.ndarray | float
    p_below: np.ndarray | float

    @property
    def ci(self) -> tuple[float, float]:
        return (float(self.low), float(self.high))


def sign_test(x: np.ndarray, boundary: float | np.ndarray = 0.0, *, alpha: float = ALPHA) -> Tested:
    """The median of ``x`` (last axis: runs), its order-statistic interval and the exact sign tests at ``boundary``.

    Valid for any distribution, skewed, heavy-tailed or censored (+inf is a run that
    never got there) alike: only the signs of x - boundary count. A run equal to
    the boundary counts against both sides, so ties and zeros make the tests
    conservative, never liberal. With k the largest count such that
    P(Binomial(n, 1/2) <= k - 1) <= alpha, the interval is [x_(k), x_(n-k+1)]
    (infinite where n is too small for any k: 5 runs at alpha = 0.05 give k = 1);
    x_(k) > b exactly when p_above(b) <= alpha, so interval and tests agree.
    Vectorised over leading axes (simulated data sets).
    """
    x = np.asarray(x, dtype=float)
    n = x.shape[-1]
    ordered = np.sort(x, axis=-1)
    k = int(stats.binom.ppf(alpha, n, 0.5))  # P(X <= k) >= alpha: the largest usable k has P(X <= k-1) <= alpha
    k = k + 1 if stats.binom.cdf(k, n, 0.5) <= alpha else k
    if k >= 1:
        low, high = ordered[..., k - 1], ordered[..., n - k]
    else:
        low, high = np.full(x.shape[:-1], -np.inf), np.full(x.shape[:-1], np.inf)
    boundary = np.asarray(boundary, dtype=float)
    above = (x > boundary[..., None] if boundary.ndim else x > boundary).sum(axis=-1)
    below = (x < boundary[..., None] if boundary.ndim else x < boundary).sum(axis=-1)
    with np.errstate(invalid="ignore"):
        estimate = np.median(x, axis=-1)
    return Tested(estimate, low, high, stats.binom.sf(above - 1, n, 0.5), stats.binom.sf(below - 1, n, 0.5))


def share_test(hits: np.ndarray, n: int, share: float, *, alpha: float = ALPHA) -> Tested:
    """A share ``hits / n`` with its exact (Clopper-Pearson) interval and the binomial tests at ``share``.

    ``p_above`` tests "the true share is at most ``share``", ``p_below`` "at least".
    The interval's ends are the one-sided (1 - alpha) Clopper-Pearson bounds, which
    clear ``share`` exactly when the matching exact binomial test has p <= alpha.
    Vectorised over ``hits``.
    """
    hits = np.asarray(hits)
    beta = stats.beta
    with np.errstate(invalid="ignore"):
        low = np.where(hits > 0, beta.ppf(alpha, hits, n - hits + 1), 0.0)
        high = np.where(hits < n, beta.ppf(1 - alpha, hits + 1, n - hits), 1.0)
    return Tested(hits / n, low, high, stats.binom.sf(hits - 1, n, share), stats.binom.cdf(hits, n, share))


def share_critical_count(n: int, share: float, level: float) -> int:
    """The fewest of ``n`` runs in the band at which the exact binomial test of "the true share is at most
    ``share``" rejects at ``level`` (n + 1: none does)."""
    k = int(stats.binom.ppf(1 - level, n, share)) + 1  # P(X >= k) = 1 - cdf(k - 1) <= level
    while k > 0 and stats.binom.sf(k - 2, n, share) <= level:  # ppf's float edges: the fewest, exactly
        k -= 1
    while k <= n and stats.binom.sf(k - 1, n, share) > level:
        k += 1
    return k


def share_seeds_for_power(share: float, stated: float, level: float, power: float = 0.8, most: int = 100_000) -> int:
    """The fewest runs of a binomial design (each run in the band or not) at which the exact one-sided test of
    "the share is at most ``share``" rejects at ``level`` with probability at least ``power`` when the true share
    is ``stated``: exact, from the binomial distribution (no simulation). The first such n: the exact test's
    power is not monotone in n (its critical count steps), so a few larger n may fall short again."""
    for n in range(1, most + 1):
        k = share_critical_count(n, share, level)
        if k <= n and stats.binom.sf(k - 1, n, stated) >= power:
            return n
    raise ValueError(f"no n up to {most} reaches power {power:g} at share {stated:g} against {share:g}")


def holm(p_values: dict[str, float]) -> dict[str, float]:
    """Holm's step-down adjusted p-values (``statsmodels``), valid under any dependence between the tests."""
    from statsmodels.stats.multitest import multipletests

    if not p_values:
        return {}
    names = list(p_values)
    adjusted = multipletests([p_values[k] for k in names], method="holm")[1]
    return {k: float(p) for k, p in zip(names, adjusted)}
