"""Tests of a mean, and of what mean curves say: the epoch at which a mean curve crosses a threshold, and the ratio
of two such epochs.

A mean curve's crossing is a statement about means. With the curves taken as linear between epochs, the mean curve
m(x) is the mean of the runs' interpolated values y_i(x), and for a mean curve that decreases through the threshold
"it crosses before b" is "m(b) < threshold": a one-sample test of a mean of per-run values at b. So a band claim on
a crossing epoch, [a, b], is decided by tests of the mean loss at its two edges (:func:`crossing_tests`), and a
crossing censored at the budget needs no special case: an edge's test says what the runs show there.

The mean is tested with Hall's (1992) skew-corrected studentized mean (:func:`hall_tests`): with theta = (mean -
boundary) / SD and gamma the sample skewness, T = sqrt(n) (theta + gamma theta^2 / 3 + gamma^2 theta^3 / 27 +
gamma / (6 n)), referred to Student's t with n - 1 degrees of freedom. The quadratic term removes the t statistic's
first-order skewness error (Johnson 1978), the cubic makes T monotone in the boundary (so it inverts to an interval in
closed form), and no resampling is needed, so the validation suite runs it on thousands of simulated data sets.

It replaced a BCa bootstrap of the crossing, which said "supported" in 8.5% of 1,500 simulated nulls of
Z1.zero_epochs and whose both errors reached 0.065-0.068 on lognormal runs at n = 400 (issue 25). What the
validation suite measures (:mod:`resclaims.report.validation_means`, committed by
:mod:`resclaims.report.validation_sweep`) is in the README: both errors within alpha + 1 point at the Z family's n
(2,000 in both tiers) on normal, t3, skewed, lognormal and censored worlds. At n = 400 they hold there too, except on
lognormal runs (0.064-0.072, the test of "the mean is below") and t3 at its lower edge (0.0625 in the sweep, 0.054
and 0.057 in two more seeds), which is why Z's quick tier has 2,000 experiments too.
What no test of a mean can do: hold its error where the mean is carried by a few rare runs (2% of runs holding half
the mass: at n = 400 most data sets hold 8 of them or fewer) or at small n under strong skew (n = 16, lognormal:
false "refuted" 0.12): the mean of an unbounded, heavy-tailed variable is not estimable to a stated error from few
runs by any procedure, and these procedures say so in their labels.

The ratio of two crossings, T_I / T_Z, is above c when for some t the identity mean curve is shown above the
threshold until c t and the zero one below it at t, each at alpha / 2 (:func:`ratio_tests`): if both one-sided
bounds cover, T_I > c t > c T_Z, and they cover together with probability 1 - alpha whatever t the data choose
(Bonferroni), so the ratio's test is valid wherever the crossings' are, with no linearisation. A delta-method test
of m_I(c T_Z) (the zero crossing estimated) was tried first and failed the validation suite: at a crossing on an
epoch (a kink of the piecewise-linear mean curve) it said "supported" in 7.4-8.0% of every written world at n = 400.
The price is power (two bounds at alpha / 2 each, where a joint test would use one). Past the last recorded epoch
nothing is shown above the threshold, so a censored identity curve can show the ratio above a c, never below it.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from resclaims.decide.stats import ALPHA, Tested


# -- the mean ---------------------------------------------------------------------------------------------------
def _moments(x: np.ndarray, axis: int = -1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, SD (n - 1) and skewness (third central moment over SD^3) along ``axis``."""
    mean = x.mean(axis=axis)
    d = x - np.expand_dims(mean, axis)
    sd = np.sqrt((d**2).sum(axis=axis) / max(x.shape[axis] - 1, 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        skew = np.where(sd > 0, (d**3).mean(axis=axis) / sd**3, 0.0)
    return mean, sd, skew


# The fewest runs at which a test of a mean is defined: an SD needs n - 1 >= 1 (with 2 runs the skewness is 0 and
# Hall's statistic is Student's t on 1 degree of freedom, unbounded, so any p is attainable: ``hall_best_p``). One run
# has no spread to refer its distance from the boundary to: no test (p = 1 both ways), however far it lies.
MIN_RUNS = 2


def hall_best_p(n: int) -> tuple[float, float]:
    """The smallest p each one-sided test of a mean (:func:`hall_p`) can attain with n runs: 0 from ``MIN_RUNS`` on
    (T grows without bound as the runs move away from the boundary, and runs on one side with no spread give 0
    exactly), 1 below it (no test)."""
    return (0.0, 0.0) if n >= MIN_RUNS else (1.0, 1.0)


def hall_p(difference: np.ndarray, sd: np.ndarray, skew: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The two one-sided p-values of Hall's statistic for an estimate ``difference`` from its boundary, with per-run
    influence SD ``sd`` and skewness ``skew``: (p of "at most the boundary", p of "at least"). Zero spread: 0 or 1.
    Fewer than ``MIN_RUNS`` runs: 1 and 1 (no test)."""
    difference, sd, skew = (np.asarray(v, dtype=float) for v in (difference, sd, skew))
    if n < MIN_RUNS:
        ones = np.ones(np.broadcast(difference, sd, skew).shape)
        return ones, ones.copy()
    with np.errstate(invalid="ignore", divide="ignore"):
        theta = np.where(sd > 0, difference / np.where(sd > 0, sd, 1.0), 0.0)
    t = np.sqrt(n) * (theta + skew * theta**2 / 3 + skew**2 * theta**3 / 27 + skew / (6 * n))
    df = max(n - 1, 1)
    p_above, p_below = stats.t.sf(t, df), stats.t.cdf(t, df)
    flat = sd <= 0  # no spread: the estimate is all there is
    p_above = np.where(flat, np.where(difference > 0, 0.0, 1.0), p_above)
    p_below = np.where(flat, np.where(difference < 0, 0.0, 1.0), p_below)
    return p_above, p_below


def hall_bound(mean: float, sd: float, skew: float, n: int, level: float) -> float:
    """The boundary at which Hall's one-sided p (of "at most the boundary") equals ``level``: the lower confidence
    bound for ``level`` < 1/2, the upper one for ``level`` > 1/2 (at 1 - level)."""
    if n < MIN_RUNS:  # no test: nothing is bounded
        return float(-np.inf if level < 0.5 else np.inf)
    if sd <= 0:
        return float(mean)
    u = stats.t.isf(level, max(n - 1, 1)) / np.sqrt(n) - skew / (6 * n)  # g(theta) = u, g(theta) = ((1 + k theta)^3 - 1) / (3 k)
    theta = u if skew == 0 else 3 / skew * (np.cbrt(1 + skew * u) - 1)
    return float(mean - sd * theta)


def hall_tests(x: np.ndarray, boundary: float | np.ndarray = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The mean of ``x`` (last axis: runs) against ``boundary``: (p of "at most the boundary", p of "at least"),
    vectorised over leading axes."""
    x = np.asarray(x, dtype=float)
    mean, sd, skew = _moments(x)
    return hall_p(mean - np.asarray(boundary, dtype=float), sd, skew, x.shape[-1])


def mean_test(x: np.ndarray, boundary: float = 0.0, *, alpha: float = ALPHA) -> Tested:
    """The mean of ``x`` with its skew-corrected interval (each end a one-sided (1 - alpha) bound) and the two
    one-sided tests at ``boundary``; the interval clears the boundary exactly when the matching p is at most alpha."""
    x = np.asarray(x, dtype=float)
    mean, sd, skew = (float(v) for v in _moments(x))
    p_above, p_below = hall_tests(x, boundary)
    n = len(x)
    return Tested(mean, hall_bound(mean, sd, skew, n, alpha), hall_bound(mean, sd, skew, n, 1 - alpha),
                  float(p_above), float(p_below))


# -- mean curves: the runs' values at a point, and the mean curve's crossing -------------------------------------
def values_at(curves: np.ndarray, x: np.ndarray | float) -> np.ndarray:
    """Each run's curve at ``x`` (epoch e at x = e, linear between epochs): curves (..., runs, epochs), ``x`` a number
    or one per leading index; (..., runs). Points beyond the last epoch are NaN."""
    curves = np.asarray(curves, dtype=float)
    last = curves.shape[-1] - 1
    x = np.broadcast_to(np.asarray(x, dtype=float), curves.shape[:-2])
    inside = np.isfinite(x) & (x >= 0) & (x <= last)
    e = np.clip(np.floor(np.where(inside, x, 0.0)), 0, max(last - 1, 0)).astype(np.intp)
    f = np.where(inside, x, 0.0) - e
    pick = lambda k: np.take_along_axis(curves, np.broadcast_to(k[..., None, None], (*curves.shape[:-1], 1)),  # noqa: E731
                                        axis=-1)[..., 0]
    out = pick(e) * (1 - f[..., None]) + pick(np.minimum(e + 1, last)) * f[..., None]
    return np.where(inside[..., None], out, np.nan)


def first_crossing(mean_curves: np.ndarray, threshold: float) -> np.ndarray:
    """Where each curve (..., epochs) first gets below ``threshold``, linear between epochs (0 if it starts below,
    inf if it never does)."""
    y = np.asarray(mean_curves, dtype=float)
    below = y < threshold
    first = np.where(below.any(axis=-1), below.argmax(axis=-1), -1)
    e = np.maximum(first, 1)
    y0 = np.take_along_axis(y, (e - 1)[..., None], axis=-1)[..., 0]
    y1 = np.take_along_axis(y, np.minimum(e, y.shape[-1] - 1)[..., None], axis=-1)[..., 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        inner = (e - 1) + (y0 - threshold) / (y0 - y1)
    return np.where(first < 0, np.inf, np.where(first == 0, 0.0, inner))


def point_tests(curves: np.ndarray, x: float, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """The mean curve at ``x`` against ``threshold``: (p of "m(x) <= threshold", p of "m(x) >= threshold"); 1 and 1
    where ``x`` lies beyond the recorded epochs."""
    y = values_at(curves, x)
    if np.isnan(y).all():
        ones = np.ones(np.shape(curves)[:-2])
        return ones, ones
    return hall_tests(y, threshold)


def above_until(curves: np.ndarray, x: float, threshold: float) -> np.ndarray:
    """p of "the mean curve is above ``threshold`` on all of [0, x]" (so it crosses after x): an intersection-union
    test over the epochs before x and x itself, the largest of their p-values (no assumption of a decreasing curve)."""
    curves = np.asarray(curves, dtype=float)
    at_x = point_tests(curves, x, threshold)[0]
    before = min(int(np.ceil(x)), curves.shape[-1])
    if before == 0:
        return at_x
    mean, sd, skew = _moments(curves[..., :before], axis=-2)  # every epoch before x at once: (..., epochs)
    return np.maximum(at_x, hall_p(mean - threshold, sd, skew, curves.shape[-2])[0].max(axis=-1))


def crossing_tests(curves: np.ndarray, threshold: float, band: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """"The mean curve crosses ``threshold`` inside ``band``": (p_support, p_refute), vectorised over leading axes.

    Supported: it is shown above the threshold until the lower edge (:func:`above_until`) and below it at the upper
    edge (or at the last epoch, where the edge lies beyond it), each at alpha (p = the larger). Refuted: below it at the lower edge, or above it until the upper edge, each
    at alpha / 2 (p = 2 x the smaller), as :func:`resclaims.decide.procedures.inside` does for any band.
    """
    low, high = band
    last = np.shape(curves)[-1] - 1  # "below at b" is tested at the last epoch where b lies beyond it (it crosses before)
    p_low_below = point_tests(curves, min(low, last), threshold)[1]
    p_high_below = point_tests(curves, min(high, last), threshold)[1]
    p_support = np.maximum(above_until(curves, low, threshold), p_high_below)
    return p_support, np.minimum(1.0, 2 * np.minimum(p_low_below, above_until(curves, high, threshold)))


def crossing_interval(curves: np.ndarray, threshold: float, alpha: float = ALPHA) -> tuple[float, float]:
    """The crossing's bounds from the tests: the first x where the mean curve is no longer shown above the threshold
    (at ``alpha``; the budget, the number of epochs, where it is shown above throughout), and the first where it is
    shown below it (inf: not within the recorded epochs)."""
    curves = np.asarray(curves, dtype=float)
    n, last = curves.shape[-2], curves.shape[-1] - 1

    def bound(x: float, level: float) -> float:
        mean, sd, skew = (float(v) for v in _moments(values_at(curves, x)))
        return hall_bound(mean, sd, skew, n, level) - threshold

    lower = _first_root(lambda x: bound(x, alpha) <= 0, last)
    upper = _first_root(lambda x: bound(x, 1 - alpha) < 0, last)
    return lower if lower is not None else float(last + 1), upper if upper is not None else np.inf


def _first_root(hit, last: int, steps: int = 50) -> float | None:
    """The first x in [0, last] where ``hit`` turns true (epoch by epoch, then bisection in the segment)."""
    if hit(0.0):
        return 0.0
    for e in range(1, last + 1):
        if hit(float(e)):
            lo, hi = e - 1.0, float(e)
            for _ in range(steps):
                mid = (lo + hi) / 2
                lo, hi = (lo, mid) if hit(mid) else (mid, hi)
            return hi
    return None


# -- the ratio of two crossings --------------------------------------------------------------------------------
def _above_until_each(curves: np.ndarray, columns: np.ndarray, x: np.ndarray, threshold: float) -> np.ndarray:
    """:func:`above_until` with one point per data set (``x``: the leading axes); ``columns`` is
    :func:`_running_above` of the curves."""
    x = np.broadcast_to(np.asarray(x, dtype=float), curves.shape[:-2])
    before = np.clip(np.ceil(np.nan_to_num(x, posinf=1e9)).astype(np.intp) - 1, -1, curves.shape[-1] - 1)
    earlier = np.where(before >= 0, np.take_along_axis(columns, np.maximum(before, 0)[..., None], axis=-1)[..., 0], 0.0)
    y = values_at(curves, x)
    at_x = np.where(np.isnan(y).any(axis=-1), 1.0, hall_tests(np.nan_to_num(y), threshold)[0])
    return np.maximum(earlier, at_x)


def _running_above(curves: np.ndarray, threshold: float) -> np.ndarray:
    """For each epoch, the largest p of "above the threshold" over it and the epochs before (..., epochs)."""
    mean, sd, skew = _moments(curves, axis=-2)
    return np.maximum.accumulate(hall_p(mean - threshold, sd, skew, curves.shape[-2])[0], axis=-1)


def _below_at_each(curves: np.ndarray, x: np.ndarray, threshold: float) -> np.ndarray:
    """p of "the mean curve is below ``threshold`` at x" (it crosses before x), one x per data set; past the last
    epoch the last epoch is tested (a curve below there crossed before x)."""
    return hall_tests(values_at(curves, np.minimum(x, curves.shape[-1] - 1)), threshold)[1]


def _best_split(rising, falling, low: float, high: float, steps: int = 30) -> np.ndarray:
    """The larger of two p-values where the one rising with t meets the one falling with t (bisection per data
    set; the better of the bracket's two ends)."""
    lo = low + 0 * rising(np.asarray(low, dtype=float))
    hi = high + 0 * lo
    for _ in range(steps):
        mid = (lo + hi) / 2
        left = rising(mid) > falling(mid)
        lo, hi = np.where(left, lo, mid), np.where(left, mid, hi)
    return np.minimum(np.maximum(rising(hi), falling(hi)), np.maximum(rising(lo), falling(lo)))


def ratio_tests(numerator: np.ndarray, denominator: np.ndarray, threshold: float,
                c: float) -> tuple[np.ndarray, np.ndarray]:
    """The ratio T_n / T_d of two mean curves' crossings (runs paired by index) against ``c``: (p of "at most c",
    p of "at least c"), vectorised over leading axes.

    "Above c" is shown where, for some t, the numerator is shown above the threshold until c t and the denominator
    below it at t, each at alpha / 2: if both one-sided bounds cover, T_n > c t > c T_d. Any t is valid (the two
    bounds cover together with probability 1 - alpha, whatever t the data choose), so t is where the two p-values
    meet, and p = 2 x the larger there (Bonferroni). "Below c" the same way, the other way round. No delta method:
    each part is a test of a mean at a point (:func:`crossing_tests`' own), valid where those are.
    """
    num, den = np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float)
    last = float(num.shape[-1] - 1)
    num_columns, den_columns = _running_above(num, threshold), _running_above(den, threshold)
    p_above = _best_split(lambda t: _above_until_each(num, num_columns, c * t, threshold),
                          lambda t: _below_at_each(den, t, threshold), 0.0, last)
    p_below = _best_split(lambda t: _above_until_each(den, den_columns, t, threshold),
                          lambda t: _below_at_each(num, c * t, threshold), 0.0, last)
    return np.minimum(1.0, 2 * p_above), np.minimum(1.0, 2 * p_below)


def ratio_band_tests(numerator: np.ndarray, denominator: np.ndarray, threshold: float,
                     band: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """"The ratio of crossings lies inside ``band``": (p_support, p_refute), as :func:`crossing_tests` combines its
    edges (supported: both edges at alpha; refuted: one edge at alpha / 2)."""
    low_above, low_below = ratio_tests(numerator, denominator, threshold, band[0])
    high_above, high_below = ratio_tests(numerator, denominator, threshold, band[1])
    return np.maximum(low_above, high_below), np.minimum(1.0, 2 * np.minimum(low_below, high_above))


def ratio_interval(numerator: np.ndarray, denominator: np.ndarray, threshold: float,
                   alpha: float = ALPHA) -> tuple[float, float]:
    """The ratio's bounds from its tests (:func:`ratio_tests`): "above c" is shown at alpha exactly when the
    numerator's lower bound at alpha / 2 exceeds c times the denominator's upper bound, so the bounds are the
    ratios of the crossings' own bounds (:func:`crossing_interval` at alpha / 2)."""
    num_low, num_high = crossing_interval(numerator, threshold, alpha / 2)
    den_low, den_high = crossing_interval(denominator, threshold, alpha / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (float(num_low / den_high) if den_high > 0 else 0.0,
                float(num_high / den_low) if den_low > 0 else np.inf)
