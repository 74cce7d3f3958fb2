"""Tests of a mean and of mean curves (resclaims/decide/means.py), on numbers small enough to check by hand."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from resclaims.decide import means
from resclaims.decide.stats import crossing_epochs


def test_without_skew_hall_is_students_t():
    x = np.array([-1.0, 0.0, 1.0, 2.0, 3.0])  # symmetric: skewness 0
    p_above, p_below = means.hall_tests(x, 0.5)
    t = stats.ttest_1samp(x, 0.5)
    assert float(p_above) == pytest.approx(stats.t.sf(t.statistic, 4))
    assert float(p_below) == pytest.approx(stats.t.cdf(t.statistic, 4))


def test_the_interval_inverts_the_tests():
    x = np.random.default_rng(0).lognormal(0.0, 1.0, 50)
    tested = means.mean_test(x, 1.0)
    assert tested.low < tested.estimate < tested.high
    assert float(means.hall_tests(x, tested.low)[0]) == pytest.approx(0.05)  # p_above at the lower bound: alpha
    assert float(means.hall_tests(x, tested.high)[1]) == pytest.approx(0.05)
    for boundary in (tested.low - 1e-6, tested.low + 1e-6):
        assert (float(means.hall_tests(x, boundary)[0]) <= 0.05) == (tested.low > boundary)


def test_right_skew_moves_the_interval_up():
    """Right-skewed runs: the mean's sampling distribution has a long right tail, so the skew-corrected interval
    reaches further above the mean than below it (Student's t is symmetric)."""
    x = np.random.default_rng(1).lognormal(0.0, 1.0, 200)
    tested = means.mean_test(x, 1.0)
    assert tested.high - tested.estimate > tested.estimate - tested.low


def test_no_spread_decides_by_the_sign():
    assert means.hall_tests(np.full(4, 0.3), 0.1) == (0.0, 1.0)
    assert means.hall_tests(np.full(4, 0.05), 0.1) == (1.0, 0.0)


def test_values_at_interpolates_and_is_nan_beyond_the_last_epoch():
    curves = np.array([[1.0, 0.5, 0.0], [3.0, 1.0, 1.0]])
    assert means.values_at(curves, 0.5) == pytest.approx([0.75, 2.0])
    assert means.values_at(curves, 2.0) == pytest.approx([0.0, 1.0])
    assert np.isnan(means.values_at(curves, 2.5)).all()
    stacked = np.stack([curves, curves + 1])  # one x per data set
    assert means.values_at(stacked, np.array([0.0, 1.5])) == pytest.approx(np.array([[1.0, 3.0], [1.25, 2.0]]))


def test_first_crossing_is_the_suites_crossing_epoch():
    y = np.array([[1.0, 0.3, 0.05, 0.0], [0.05, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0], [0.3, 0.1, 0.05, 0.0]])
    assert means.first_crossing(y, 0.1) == pytest.approx(crossing_epochs(y, 0.1))


def test_a_curve_that_dips_below_early_is_never_shown_above_until_later():
    """The intersection-union test looks at every epoch before the edge, so a curve that dips below the threshold
    at epoch 1 and climbs back is not shown to cross after 2."""
    dip = np.array([[1.0, 0.0, 1.0, 0.0] for _ in range(3)])
    assert float(means.above_until(dip, 2.0, 0.1)) == 1.0
    assert float(means.above_until(np.array([[1.0, 1.0, 1.0, 0.0]] * 3), 2.0, 0.1)) == 0.0


def test_crossing_tests_and_interval_by_hand():
    # mean curve [1, 0.3, 0.05, 0, 0] with a little spread: crosses 0.1 at 1 + 0.2 / 0.25 = 1.8
    c = np.array([[1.0, 0.3 + d, 0.05 + d / 10, 0.0, 0.0] for d in (-0.02, -0.01, 0.01, 0.02)])
    p_support, p_refute = means.crossing_tests(c, 0.1, (1.5, 2.5))
    assert p_support < 0.05 and p_refute == 1.0
    low, high = means.crossing_interval(c, 0.1)
    assert 1.5 < low < 1.8 < high < 2.0
    never = np.array([[1.0, 0.8, 0.6, 0.5, 0.4]] * 3)
    assert means.crossing_interval(never, 0.1) == (5.0, np.inf)  # shown above throughout: the budget, 5


def test_the_ratio_is_shown_above_or_below_c_through_a_split_point_t():
    zero = np.array([[0.25, 0.0, 0.0, 0.0, 0.0]] * 4)  # crosses 0.1 at 0.6
    identity = np.array([[1.0, 0.5 + d, 0.0, 0.0, 0.0] for d in (-0.05, 0.0, 0.0, 0.05)])  # mean crosses at 1.8
    # above 2: at t = 0.61 the zero curve is below 0.1 (0.0975) and the identity above it until 1.22 (0.39)
    p_above, p_below = means.ratio_tests(identity, zero, 0.1, 2.0)
    assert p_above < 0.01 and p_below == 1.0
    # below 3.4: at t = 0.59 the zero curve is above 0.1 (0.1025) and the identity below it at 2.006 (0)
    assert means.ratio_tests(identity, zero, 0.1, 3.4)[1] < 0.01
    # below 7 as well: past the last epoch (4) the identity is tested there, where it is 0
    assert means.ratio_tests(identity, zero, 0.1, 7.0)[1] < 0.01
    never = np.array([[1.0, 0.8, 0.6, 0.5, 0.4]] * 4)  # censored: above 0.1 through the last epoch
    assert means.ratio_tests(never, zero, 0.1, 3.0) == (0.0, 1.0)  # at 3 x 0.61 = 1.83 its mean loss is 0.63
    # above 7 would need the zero curve below 0.1 at some t with 7 t still inside the epochs: t <= 4 / 7 = 0.571
    assert means.ratio_tests(never, zero, 0.1, 7.0) == (1.0, 1.0)
    low, high = means.ratio_interval(identity, zero, 0.1)
    assert 2.0 < low < 3.0 < high < 3.4
