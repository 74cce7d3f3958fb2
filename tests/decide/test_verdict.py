"""Decision rules and the claim record."""

import json
import math

import pytest

from resclaims.decide.verdict import (
    INCONCLUSIVE,
    REFUTED,
    SUPPORTED,
    ClaimResult,
    directional,
    require_supported,
    two_tests,
    with_power,
    within_band,
)


def result(verdict=SUPPORTED, **kw):
    fields = dict(id="X1", claim="c", source="s", verdict=verdict, estimate=1.5, ci=(1.0, 2.0), p_value=0.01, n=10,
                  statistic="stat", test="test", tier="quick", protocol="p")
    return ClaimResult(**{**fields, **kw})


@pytest.mark.parametrize("ci,expected", [
    ((0.1, 0.5), SUPPORTED),  # the lower one-sided bound clears 0
    ((-0.1, 0.5), INCONCLUSIVE),
    ((-0.5, -0.1), REFUTED),  # the upper one-sided bound lies below 0
])
def test_directional(ci, expected):
    assert directional(ci) == expected


@pytest.mark.parametrize("p_support,p_refute,expected", [
    (0.01, 0.99, SUPPORTED), (0.05, 0.99, SUPPORTED), (0.051, 0.99, INCONCLUSIVE), (0.9, 0.03, REFUTED),
    (0.5, 0.5, INCONCLUSIVE),
])
def test_two_tests_each_decide_at_alpha(p_support, p_refute, expected):
    assert two_tests(p_support, p_refute) == expected


@pytest.mark.parametrize("ci,expected", [((2.5, 3.0), SUPPORTED), ((3.0, 4.0), INCONCLUSIVE), ((4.0, 5.0), REFUTED),
                                         ((1.0, 2.0), REFUTED)])
def test_within_band(ci, expected):
    assert within_band(ci, (2.375, 3.5)) == expected


@pytest.mark.parametrize("ci,expected", [((2.5, 3.0), INCONCLUSIVE), ((3.6, 4.0), REFUTED), ((1.0, 2.0), INCONCLUSIVE)])
def test_a_lower_bound_can_refute_but_not_support(ci, expected):
    assert within_band(ci, (2.375, 3.5), lower_bound=True) == expected


def test_failure_message_carries_estimate_ci_p_and_n():
    with pytest.raises(AssertionError, match=r"X1 refuted: stat = 1.5 \[1, 2\] \(90%\), p = 0.01, n = 10"):
        require_supported(result(REFUTED))
    require_supported(result())


def test_json_has_the_contract_and_no_infinities():
    record = result(estimate=math.inf, ci=(math.nan, 1.0)).to_json()
    assert {"id", "verdict", "estimate", "ci", "p_value", "n", "tier", "protocol"} <= set(record)
    assert record["estimate"] is None and record["ci"] == [None, 1.0]
    json.dumps(record, allow_nan=False)


def test_unknown_verdict_is_rejected():
    with pytest.raises(ValueError, match="verdict"):
        result("probably")


def test_power_is_reported_and_no_longer_changes_the_verdict():
    weak = with_power(result(REFUTED), 0.42)
    assert weak.verdict == REFUTED and weak.estimate == 1.5 and weak.ci == (1.0, 2.0)
    assert weak.details == {"power_at_stated_effect": 0.42}


@pytest.mark.parametrize("ci", [(math.nan, math.nan), (math.nan, 0.5)])
def test_nan_never_supports_or_refutes(ci):
    assert directional(ci) == INCONCLUSIVE
    assert two_tests(math.nan, math.nan) == INCONCLUSIVE
    if any(math.isnan(v) for v in ci):
        assert within_band(ci, (0.0, 1.0)) == INCONCLUSIVE
