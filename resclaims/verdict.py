"""From a statistic to a verdict: the one path every claim takes.

A procedure (:mod:`resclaims.procedures`) returns a :class:`Decision` made with
one of the decision rules below; :class:`resclaims.claims.Judge` turns it into the
:class:`ClaimResult` the report carries, applies :func:`with_power`, and turns the
verdict into the test's outcome.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from resclaims.stats import ALPHA

SUPPORTED, REFUTED, INCONCLUSIVE = "supported", "refuted", "inconclusive"
VERDICTS = (SUPPORTED, REFUTED, INCONCLUSIVE)
MIN_POWER = 0.8  # below this power at the source's stated effect, a test may not refute


@dataclass(frozen=True)
class Decision:
    """What a claim's procedure returns: the verdict and the numbers it rests on.

    A procedure is a claim's whole decision path (statistic, interval, test,
    rule) as one function of the runs; the claim test and the calibration
    (:mod:`resclaims.calibration`) call the same function.
    """

    verdict: str
    estimate: float
    ci: tuple[float, float]
    p_value: float | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ClaimResult:
    """One claim's outcome, as the report and ``summary.json`` carry it."""

    id: str  # claim id from CLAIMS.md, with a suffix for a part: "Z1", "Z1.magnitude"
    claim: str  # the claim in a sentence, quoted or paraphrased from the source
    source: str  # source document id: "001", "He2015", ...
    verdict: str  # supported | refuted | inconclusive
    estimate: float  # the point estimate of `statistic`
    ci: tuple[float, float]  # (1 - ALPHA) interval of the estimate
    p_value: float | None  # p of `test`, None where the rule uses an interval only
    n: int  # runs (seeds) per condition that entered the statistic
    statistic: str  # what `estimate` measures, with its unit
    test: str  # the test and decision rule
    tier: str  # quick | full
    protocol: str  # the protocol run, naming every deviation from the source
    details: dict[str, Any] = field(default_factory=dict)  # anything else worth keeping

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")

    def summary(self) -> str:
        """One line: id, verdict, estimate [CI], p, n."""
        p = "n/a" if self.p_value is None else f"{self.p_value:.3g}"
        lo, hi = self.ci
        return (
            f"{self.id} {self.verdict}: {self.statistic} = {self.estimate:.4g} "
            f"[{lo:.4g}, {hi:.4g}], p = {p}, n = {self.n} ({self.tier} tier)"
        )

    def to_json(self) -> dict[str, Any]:
        record = asdict(self)
        record["ci"] = list(self.ci)
        return _finite_or_none(record)


def _finite_or_none(value: Any) -> Any:
    """JSON has no inf or nan: write them as null (and say so in the schema)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    return value


def directional(ci: tuple[float, float], p_value: float, *, null: float = 0.0, alpha: float = ALPHA) -> str:
    """Verdict for "the effect is above ``null``".

    supported: p < alpha and the whole interval lies above ``null``.
    refuted: the whole interval lies below ``null`` (an effect the other way).
    inconclusive: otherwise.
    """
    low, high = ci
    if p_value < alpha and low > null:
        return SUPPORTED
    if high < null:
        return REFUTED
    return INCONCLUSIVE


def within_band(ci: tuple[float, float], band: tuple[float, float], *, lower_bound: bool = False) -> str:
    """Verdict for "the quantity is about X", with X's tolerance written as ``band``.

    supported: the interval lies inside the band (an equivalence test).
    refuted: the interval and the band do not overlap.
    inconclusive: they overlap only in part.

    With ``lower_bound`` the estimate is censored (the true value is at least
    this large, e.g. a curve that had not crossed its threshold when the budget
    ran out): it can refute by lying above the band, but it cannot support.
    """
    (low, high), (band_low, band_high) = ci, band
    if lower_bound:
        return REFUTED if low > band_high else INCONCLUSIVE
    if band_low <= low and high <= band_high:
        return SUPPORTED
    if high < band_low or low > band_high:
        return REFUTED
    return INCONCLUSIVE


def power_aware(verdict: str, power: float | None, *, minimum: float = MIN_POWER) -> str:
    """``refuted`` becomes ``inconclusive`` when the test's power at the source's stated effect is below ``minimum``.

    A test that would often miss the effect the source states cannot tell a
    false claim from an unlucky sample, so it may not refute. ``power`` is None
    where the source states no effect size; then the verdict stands.
    """
    if verdict == REFUTED and power is not None and power < minimum:
        return INCONCLUSIVE
    return verdict


def with_power(result: ClaimResult, power: float | None) -> ClaimResult:
    """``result`` with :func:`power_aware` applied and the power in its details."""
    verdict = power_aware(result.verdict, power)
    details = {**result.details, "power_at_stated_effect": power}
    if verdict != result.verdict:
        details["verdict_before_power_check"] = result.verdict
    return dataclasses.replace(result, verdict=verdict, details=details)


def require_supported(result: ClaimResult) -> None:
    """Fail the calling test unless the claim is supported, with the numbers."""
    assert result.verdict == SUPPORTED, result.summary()
