"""Decision rules and the claim record."""

import json
import math

import pytest

from resclaims.verdict import (
    INCONCLUSIVE,
    REFUTED,
    SUPPORTED,
    ClaimResult,
    directional,
    power_aware,
    require_supported,
    with_power,
    within_band,
)


def result(verdict=SUPPORTED, **kw):
    fields = dict(id="X1", claim="c", source="s", verdict=verdict, estimate=1.5, ci=(1.0, 2.0), p_value=0.01, n=10,
                  statistic="stat", test="test", tier="quick", protocol="p")
    return ClaimResult(**{**fields, **kw})


@pytest.mark.parametrize("ci,p,expected", [
    ((0.1, 0.5), 0.01, SUPPORTED),
    ((0.1, 0.5), 0.20, INCONCLUSIVE),  # the interval alone is not enough
    ((-0.1, 0.5), 0.01, INCONCLUSIVE),
    ((-0.5, -0.1), 0.99, REFUTED),
])
def test_directional(ci, p, expected):
    assert directional(ci, p) == expected


@pytest.mark.parametrize("ci,expected", [((2.5, 3.0), SUPPORTED), ((3.0, 4.0), INCONCLUSIVE), ((4.0, 5.0), REFUTED),
                                         ((1.0, 2.0), REFUTED)])
def test_within_band(ci, expected):
    assert within_band(ci, (2.375, 3.5)) == expected


@pytest.mark.parametrize("ci,expected", [((2.5, 3.0), INCONCLUSIVE), ((3.6, 4.0), REFUTED), ((1.0, 2.0), INCONCLUSIVE)])
def test_a_lower_bound_can_refute_but_not_support(ci, expected):
    assert within_band(ci, (2.375, 3.5), lower_bound=True) == expected


def test_failure_message_carries_estimate_ci_p_and_n():
    with pytest.raises(AssertionError, match=r"X1 refuted: stat = 1.5 \[1, 2\], p = 0.01, n = 10"):
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


@pytest.mark.parametrize("verdict,power,expected", [
    (REFUTED, 0.5, INCONCLUSIVE),  # an underpowered test may not refute
    (REFUTED, 0.8, REFUTED),
    (REFUTED, None, REFUTED),  # no stated effect: the verdict stands
    (SUPPORTED, 0.1, SUPPORTED),
    (INCONCLUSIVE, 0.1, INCONCLUSIVE),
])
def test_power_aware(verdict, power, expected):
    assert power_aware(verdict, power) == expected


def test_with_power_keeps_the_numbers_and_says_what_changed():
    weak = with_power(result(REFUTED), 0.42)
    assert weak.verdict == INCONCLUSIVE and weak.estimate == 1.5 and weak.ci == (1.0, 2.0)
    assert weak.details == {"power_at_stated_effect": 0.42, "verdict_before_power_check": REFUTED}
    strong = with_power(result(REFUTED), 0.95)
    assert strong.verdict == REFUTED and "verdict_before_power_check" not in strong.details


@pytest.mark.parametrize("ci,p", [((math.nan, math.nan), math.nan), ((0.1, 0.5), math.nan), ((math.nan, 0.5), 0.01)])
def test_nan_never_supports_or_refutes(ci, p):
    assert directional(ci, p) == INCONCLUSIVE
    if any(math.isnan(v) for v in ci):
        assert within_band(ci, (0.0, 1.0)) == INCONCLUSIVE
