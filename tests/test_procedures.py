"""Shared decision procedures on arrays whose verdicts can be worked out by hand."""

import numpy as np
import pytest

from resclaims import procedures
from resclaims.verdict import INCONCLUSIVE, REFUTED, SUPPORTED


def test_finite_pairs_drops_a_pair_with_a_diverged_run():
    a, b, dropped = procedures.finite_pairs(np.array([1.0, np.nan, 3.0]), np.array([1.0, 2.0, np.inf]))
    assert a.tolist() == [1.0] and b.tolist() == [1.0] and dropped == 2


def test_paired_difference():
    a = np.arange(1.0, 11.0)
    assert procedures.paired_difference(a + 1, a).verdict == SUPPORTED  # every pair 1 apart
    assert procedures.paired_difference(a, a + 1).verdict == REFUTED
    equal = procedures.paired_difference(a, a)
    assert equal.verdict == INCONCLUSIVE and equal.p_value == 1.0 and equal.ci == (0.0, 0.0)


def test_exceeds_and_below_margin():
    x = np.linspace(2.0, 3.0, 10)
    assert procedures.exceeds(1.0)(x).verdict == SUPPORTED and procedures.exceeds(4.0)(x).verdict == REFUTED
    assert procedures.below_margin(4.0)(x).verdict == SUPPORTED  # all well below the margin
    assert procedures.below_margin(1.0)(x).verdict == REFUTED  # all above it
    assert procedures.below_margin(2.5)(x).verdict == INCONCLUSIVE


def test_bands():
    x = np.array([5.0, 5.2, 5.4, 5.6, 5.8])
    assert procedures.mean_in_band((4.0, 7.0))(x).verdict == SUPPORTED
    assert procedures.mean_in_band((7.0, 9.0))(x).verdict == REFUTED
    sd = procedures.sd_in_band((0.0, 0.75))(x)  # SD 0.316; chi-square CI x [0.599, 2.874] on 4 df
    assert sd.estimate == pytest.approx(0.3162, abs=1e-4) and sd.ci[1] == pytest.approx(0.3162 * 2.874, abs=1e-3)
    assert sd.verdict == INCONCLUSIVE


def test_increasing_trend():
    positions = np.array([5.0, 10.0, 20.0])
    rows = np.array([[1.0, 2.0, 4.0], [0.0, 1.2, 3.0], [2.0, 2.5, 5.0], [1.0, 3.0, 4.1], [0.5, 1.0, 2.5]])
    up = procedures.increasing_trend(rows, positions)
    assert up.verdict == SUPPORTED and up.estimate == pytest.approx(np.polyfit(positions, rows.mean(0), 1)[0])
    assert procedures.increasing_trend(rows[:, ::-1], positions).verdict == REFUTED
