"""Statistics on tiny arrays whose answers can be worked out by hand."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from resclaims.decide.stats import (
    bootstrap_ci,
    bootstrap_mean_curves,
    bootstrap_rows,
    crossing_epochs,
    mean_curve_crossing,
)
from resclaims.decide.verdict import SUPPORTED, directional


def test_crossing_interpolates_within_the_epoch():
    # 1.0 at epoch 2, 0.0 at epoch 3: 0.25 is crossed three quarters of the way
    assert crossing_epochs(np.array([2.0, 1.5, 1.0, 0.0]), 0.25)[0] == pytest.approx(2.75)


def test_crossing_at_start_never_and_rows():
    curves = np.array([[0.1, 0.0], [5.0, 5.0], [1.0, 0.0]])
    np.testing.assert_allclose(crossing_epochs(curves, 0.5), [0.0, np.inf, 0.5])


def test_mean_curve_crossing_reads_the_average_curve():
    # mean curve: 1.0, 0.5, 0.0 -> crosses 0.25 at 1.5
    assert mean_curve_crossing(np.array([[2.0, 1.0, 0.0], [0.0, 0.0, 0.0]]), 0.25) == pytest.approx(1.5)


@settings(max_examples=50, deadline=None)
@given(arrays(float, (3, 6), elements=st.floats(0, 10)), st.floats(0.01, 5))
def test_crossing_is_in_range_and_below_threshold_there(curves, threshold):
    t = crossing_epochs(curves, threshold)
    for row, x in zip(curves, t):
        if np.isinf(x):
            assert (row >= threshold).all()
        else:
            assert 0 <= x <= len(row) - 1
            assert np.interp(x, np.arange(len(row)), row) <= threshold + 1e-9


def test_bootstrap_interval_covers_the_mean_and_is_degenerate_for_constants():
    x = np.arange(10.0)  # mean 4.5
    interval = bootstrap_ci(x, np.mean)
    assert interval.estimate == 4.5 and interval.low < 4.5 < interval.high
    assert bootstrap_ci(np.full(5, 3.0), np.mean).ci == (3.0, 3.0)


def test_bootstrap_is_reproducible_and_rows_stay_paired():
    g = np.random.default_rng(0)
    a = g.normal(size=(50, 4))
    assert bootstrap_ci(a[:, 0], np.mean) == bootstrap_ci(a[:, 0], np.mean)
    diff = bootstrap_rows((a, a + 1.0), lambda x, y: float(y.mean() - x.mean()))
    assert diff.ci == pytest.approx((1.0, 1.0))  # paired rows: every resample differs by exactly 1


# -- edge cases: ties, zero variance, all-equal runs, NaN ---------------------------------
ties = arrays(float, st.integers(2, 30), elements=st.sampled_from([0.0, 1.0, 1.0, 2.0, 20.0]))  # few values: many ties


def crossing_epochs_loop(curves, threshold):
    """The first implementation, one run at a time: the vectorised one must agree with it."""
    y = np.atleast_2d(np.asarray(curves, dtype=float))
    below = y < threshold
    first = np.where(below.any(axis=1), below.argmax(axis=1), -1)
    out = np.full(y.shape[0], np.inf)
    for run, e in enumerate(first):
        if e == 0:
            out[run] = 0.0
        elif e > 0:
            out[run] = (e - 1) + (y[run, e - 1] - threshold) / (y[run, e - 1] - y[run, e])
    return out


@settings(max_examples=60, deadline=None)
@given(arrays(float, st.tuples(st.integers(1, 5), st.integers(1, 6)),
              elements=st.one_of(st.floats(0, 3), st.just(np.nan), st.just(1.0))), st.floats(0.1, 2))
def test_vectorised_crossing_equals_the_loop(curves, threshold):
    np.testing.assert_array_equal(crossing_epochs(curves, threshold), crossing_epochs_loop(curves, threshold))


@settings(max_examples=25, deadline=None)
@given(ties)
def test_vectorised_bootstrap_gives_the_same_interval(x):
    looped = bootstrap_ci(x, np.median, n_resamples=200)
    vectorised = bootstrap_ci(x, np.median, n_resamples=200, vectorized=True)
    np.testing.assert_allclose(vectorised.ci, looped.ci, rtol=1e-12, atol=1e-12)
    assert vectorised.low <= vectorised.high
    if np.ptp(x) == 0:  # all-equal runs, zero variance
        assert vectorised.ci == (x[0], x[0])


def test_bootstrap_of_nan_data_cannot_support_anything():
    interval = bootstrap_ci(np.array([1.0, np.nan, 2.0, 3.0]), np.mean, n_resamples=100, vectorized=True)
    assert np.isnan(interval.estimate)
    assert directional(interval.ci) != SUPPORTED


@settings(max_examples=20, deadline=None)
@given(arrays(float, st.tuples(st.integers(2, 8), st.integers(2, 5)), elements=st.floats(0, 5)))
def test_mean_curve_bootstrap_equals_resampling_rows(curves):
    """Counts times curves is the mean of the resampled rows: the same interval as bootstrap_rows, same seed."""
    first = lambda m: m[..., 0] + 2 * m[..., -1]  # noqa: E731  (any vectorised statistic of a mean curve)
    fast = bootstrap_mean_curves((curves,), first, n_resamples=100, method="percentile")
    slow = bootstrap_rows((curves,), lambda c: first(c.mean(axis=0)), n_resamples=100, method="percentile")
    np.testing.assert_allclose(fast.ci, slow.ci, rtol=1e-9, atol=1e-9)
    assert fast.estimate == pytest.approx(slow.estimate)


def test_mean_curve_bootstrap_by_hand():
    # the mean curve of both rows is (1, 0): it crosses 0.5 at 0.5; one run alone (2, 0) crosses at 0.75, no interval
    curves = np.array([[2.0, 0.0], [0.0, 0.0]])
    crossing = lambda m: crossing_epochs(m.reshape(-1, 2), 0.5).reshape(m.shape[:-1])  # noqa: E731
    assert bootstrap_mean_curves((curves,), crossing).estimate == pytest.approx(0.5)
    assert bootstrap_mean_curves((curves[:1],), crossing).ci == (0.75, 0.75)


def test_bca_without_corrections_is_the_percentile_bootstrap():
    from resclaims.decide.stats import Replicates

    replicates = np.arange(1, 1001, dtype=float)
    tested = Replicates(500.5, replicates).at(100.0, alpha=0.05)
    assert tested.low == pytest.approx(np.quantile(replicates, 0.05))
    assert tested.high == pytest.approx(np.quantile(replicates, 0.95))
    assert tested.p_above == pytest.approx(0.100)  # share of replicates at or below 100
    assert tested.p_below == pytest.approx(0.901)  # 1 - share strictly below 100


def test_bca_interval_matches_scipys_and_agrees_with_its_tests():
    """On skewed data the BCa interval is scipy's (within Monte Carlo error), and its lower end clears a
    boundary exactly when the test of "at or below the boundary" has p <= alpha."""
    from scipy import stats as sps

    from resclaims.decide.stats import bootstrap_replicates

    x = np.random.default_rng(3).lognormal(0.0, 1.0, 60)
    bca = bootstrap_replicates((x,), np.mean, seed=1, n_resamples=20_000)
    scipy_ci = sps.bootstrap((x,), np.mean, confidence_level=0.90, method="BCa", n_resamples=20_000,
                             random_state=2).confidence_interval
    tested = bca.at(1.0, alpha=0.05)
    assert bca.bias != 0 and bca.acceleration > 0  # skewed: both corrections at work
    assert tested.low == pytest.approx(scipy_ci.low, rel=0.02)
    assert tested.high == pytest.approx(scipy_ci.high, rel=0.02)
    for boundary in (tested.low - 1e-3, tested.low + 1e-3):
        assert (bca.at(boundary, alpha=0.05).p_above <= 0.05) == (tested.low > boundary)
    for boundary in (tested.high - 1e-3, tested.high + 1e-3):
        assert (bca.at(boundary, alpha=0.05).p_below <= 0.05) == (tested.high < boundary)


@pytest.mark.parametrize("direction", [np.inf, -np.inf])
def test_bca_counts_replicates_a_last_bit_from_the_estimate_as_ties(direction):
    """Replicates of identical runs equal the estimate but for rounding (the last bit, either way): ties, so z0 = 0
    and the corrections leave the percentile bootstrap (a strict < once gave z0 = +-3.48)."""
    from resclaims.decide.stats import _bca

    estimate = 2.9166666666666665
    replicates = np.full(2000, np.nextafter(estimate, direction))
    bca = _bca(estimate, replicates, np.full(5, estimate))
    assert bca.bias == 0.0 and bca.acceleration == 0.0
    assert bca.at(3.5).p_above == pytest.approx(1 - 0.5 / 2000)  # every replicate below 3.5: nothing shows above
    # a replicate truly off the estimate (a relative 1e-9) is no tie
    assert _bca(estimate, np.full(2000, estimate * (1 + 1e-9)), np.full(5, estimate)).bias < -3
