"""Shared decision procedures on arrays whose verdicts can be worked out by hand."""

import numpy as np
import pytest
from scipy import stats

from resclaims.decide import procedures
from resclaims.decide.claims import finite_rows
from resclaims.decide.verdict import INCONCLUSIVE, REFUTED, SUPPORTED


def test_one_helper_drops_the_pairs_with_a_diverged_run():
    """``claims.finite_rows`` is the one helper (``procedures.finite_pairs`` duplicated it for two arrays)."""
    (a, b), dropped = finite_rows(np.array([1.0, np.nan, 3.0]), np.array([1.0, 2.0, np.inf]))
    assert a.tolist() == [1.0] and b.tolist() == [1.0] and dropped == 2
    assert "finite_pairs" not in vars(procedures)


def test_paired_difference():
    a = np.arange(1.0, 11.0)
    assert procedures.paired_difference(a + 1, a).verdict == SUPPORTED  # every pair 1 apart
    assert procedures.paired_difference(a, a + 1).verdict == REFUTED
    equal = procedures.paired_difference(a, a)  # every difference 0: counts against both sides
    assert equal.verdict == INCONCLUSIVE and equal.p_value == 1.0 and equal.p_refute == 1.0 and equal.ci == (0.0, 0.0)


def test_the_sign_test_matches_scipys_binomial_test_and_its_interval_agrees():
    d = np.array([0.3, 1.2, -0.1, 2.0, 0.5, 0.7, 0.9, 1.1])
    decision = procedures.paired_difference(d, np.zeros_like(d))
    assert decision.p_value == pytest.approx(stats.binomtest(7, 8, 0.5, alternative="greater").pvalue)
    assert decision.p_refute == pytest.approx(stats.binomtest(1, 8, 0.5, alternative="greater").pvalue)
    assert decision.estimate == pytest.approx(np.median(d)) and decision.ci == (0.3, 1.2)  # x(2), x(7): 1 - 2 x 9/256
    assert decision.verdict == SUPPORTED and decision.ci[0] > 0


def test_five_runs_can_decide_only_unanimously_and_four_cannot_decide():
    assert procedures.paired_difference(np.arange(1.0, 6.0), np.zeros(5)).verdict == SUPPORTED  # p = 1/32
    assert procedures.paired_difference(np.array([1.0, 2, 3, 4, -1]), np.zeros(5)).verdict == INCONCLUSIVE
    four = procedures.paired_difference(np.arange(1.0, 5.0), np.zeros(4))  # p = 1/16 > alpha
    assert four.verdict == INCONCLUSIVE and four.ci == (-np.inf, np.inf)


def test_exceeds_and_below_margin():
    x = np.linspace(2.0, 3.0, 10)
    assert procedures.exceeds(1.0)(x).verdict == SUPPORTED and procedures.exceeds(4.0)(x).verdict == REFUTED
    assert procedures.below_margin(4.0)(x).verdict == SUPPORTED  # all well below the margin
    assert procedures.below_margin(1.0)(x).verdict == REFUTED  # all above it
    assert procedures.below_margin(2.5)(x).verdict == INCONCLUSIVE


def test_bands():
    x = np.array([5.0, 5.2, 5.4, 5.6, 5.8])
    assert procedures.median_in_band((4.0, 7.0))(x).verdict == SUPPORTED
    assert procedures.median_in_band((7.0, 9.0))(x).verdict == INCONCLUSIVE  # 5 of 5: p = 1/32 > alpha / 2 per edge
    assert procedures.median_in_band((7.0, 9.0))(np.append(x, 6.0)).verdict == REFUTED  # 6 of 6: 2/64 <= alpha
    assert procedures.median_in_band((5.3, 9.0))(x).verdict == INCONCLUSIVE
    gaps = np.array([5.0, 5.5, 6.0, 6.5, 4.5, 5.2, 5.8, 6.1, 4.9, 5.1])  # all 10 in [4, 7]
    share = procedures.share_in_band((4.0, 7.0), 0.8)(gaps)
    assert share.estimate == 1.0 and share.ci == pytest.approx((0.05 ** 0.1, 1.0))  # one-sided CP bound 0.741
    assert share.verdict == INCONCLUSIVE  # 10 of 10 cannot show more than 0.8
    assert procedures.share_in_band((4.0, 7.0), 0.5)(gaps).verdict == SUPPORTED
    assert procedures.share_in_band((4.0, 7.0), 0.8)(gaps + 3).verdict == REFUTED  # 1 of 10 in the band


def test_increasing_trend():
    positions = np.array([5.0, 10.0, 20.0])
    rows = np.array([[1.0, 2.0, 4.0], [0.0, 1.2, 3.0], [2.0, 2.5, 5.0], [1.0, 3.0, 4.1], [0.5, 1.0, 2.5]])
    up = procedures.increasing_trend(rows, positions)
    slopes = [np.polyfit(positions, row, 1)[0] for row in rows]
    assert up.verdict == SUPPORTED and up.estimate == pytest.approx(np.median(slopes))
    assert procedures.increasing_trend(rows[:, ::-1], positions).verdict == REFUTED
