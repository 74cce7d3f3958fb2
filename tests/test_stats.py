"""Statistics on tiny arrays whose answers can be worked out by hand."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from resclaims.stats import (
    bootstrap_ci,
    bootstrap_rows,
    crossing_epochs,
    mean_curve_crossing,
    paired_signed_rank,
    paired_variance_test,
    variance_test,
)


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


def test_signed_rank_direction_and_all_ties():
    a, b = np.arange(1.0, 11.0), np.zeros(10)
    assert paired_signed_rank(a, b, alternative="greater") < 0.01
    assert paired_signed_rank(b, a, alternative="greater") > 0.99
    assert paired_signed_rank(a, a) == 1.0


def test_variance_tests_see_a_fourfold_spread():
    g = np.random.default_rng(1)
    wide, narrow = g.normal(0, 2, 200), g.normal(0, 1, 200)
    assert paired_variance_test(wide, narrow, alternative="greater") < 0.01
    assert paired_variance_test(narrow, wide, alternative="greater") > 0.99
    assert variance_test(wide, narrow) < 0.01
    assert variance_test(np.ones(5), np.ones(5)) == 1.0
