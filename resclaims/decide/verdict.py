"""From a statistic to a verdict: the one path every claim takes.

A procedure (:mod:`resclaims.decide.procedures`) returns a :class:`Decision` made with
one of the decision rules below; :class:`resclaims.decide.claims.Judge` turns it into the
:class:`ClaimResult` the report carries, applies :func:`with_power`, and turns the
verdict into the test's outcome.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from resclaims.decide.stats import ALPHA

SUPPORTED, REFUTED, INCONCLUSIVE = "supported", "refuted", "inconclusive"
FULL_TIER_ONLY = "full tier only"  # a sentence about the source's protocol, measured at a reduced one: no verdict
VERDICTS = (SUPPORTED, REFUTED, INCONCLUSIVE, FULL_TIER_ONLY)
MIN_POWER = 0.8  # the power a design should have at the source's stated effect (seeds_for_power aims at it)
CI_LEVEL = 1 - 2 * ALPHA  # every interval: its two ends are the one-sided (1 - ALPHA) bounds
SOURCE_PROTOCOL = "source protocol"  # a result's fidelity when the run is the source's protocol


@dataclass(frozen=True)
class Decision:
    """What a claim's procedure returns: the verdict and the numbers it rests on.

    A procedure is a claim's whole decision path (statistic, interval, test,
    rule) as one function of the runs; the claim test and the calibration
    (:mod:`resclaims.decide.calibration`) call the same function.
    """

    verdict: str
    estimate: float
    ci: tuple[float, float]
    p_value: float | None = None  # the test that supports: P(data this far | the claim false, at its boundary)
    details: dict[str, Any] = field(default_factory=dict)
    p_refute: float | None = None  # the test that refutes: P(data this far | the claim true, at its boundary)


@dataclass(frozen=True)
class ClaimResult:
    """One claim's outcome, as the report and ``summary.json`` carry it."""

    id: str  # claim id from CLAIMS.md, with a suffix for a part: "Z1", "Z1.magnitude"
    claim: str  # the claim in a sentence, quoted or paraphrased from the source
    source: str  # source document id: "001", "He2015", ...
    verdict: str  # supported | refuted | inconclusive
    estimate: float  # the point estimate of `statistic`
    ci: tuple[float, float]  # (1 - 2 ALPHA) interval of the estimate: each end a one-sided (1 - ALPHA) bound
    p_value: float | None  # p of the test that supports, None where the rule uses an interval only
    n: int  # runs (seeds) per condition that entered the statistic
    statistic: str  # what `estimate` measures, with its unit
    test: str  # the test and decision rule
    tier: str  # quick | full
    protocol: str  # the protocol run, naming every deviation from the source
    details: dict[str, Any] = field(default_factory=dict)  # anything else worth keeping
    p_refute: float | None = None  # p of the test that refutes (the claim true at its boundary)
    fidelity: str = SOURCE_PROTOCOL  # "source protocol", or "reduced: <what changed>"
    family: str = "exploratory"  # "confirmatory": a sentence the source asserts (Holm across its source's family)
    p_adjusted: float | None = None  # Holm-adjusted p_value across the source's confirmatory family
    p_refute_adjusted: float | None = None  # Holm-adjusted p_refute across the same family
    verdict_adjusted: str | None = None  # the confirmatory verdict after Holm
    seeds_for_power: int | None = None  # for an inconclusive claim: runs at which the procedure reaches 80% power
    ci_level: float = CI_LEVEL

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")

    def summary(self) -> str:
        """One line: id, verdict, estimate [CI], p, n."""
        p = "n/a" if self.p_value is None else f"{self.p_value:.3g}"
        refute = "" if self.p_refute is None else f", p_refute = {self.p_refute:.3g}"
        lo, hi = self.ci
        return (
            f"{self.id} {self.verdict}: {self.statistic} = {self.estimate:.4g} "
            f"[{lo:.4g}, {hi:.4g}] ({self.ci_level:.0%}), p = {p}{refute}, n = {self.n} ({self.tier} tier, "
            f"{self.fidelity})"
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


def two_tests(p_support: float, p_refute: float, *, alpha: float = ALPHA) -> str:
    """The verdict of two one-sided tests, each at ``alpha``.

    supported: the test of "the claim is false (at its boundary)" rejects, p_support <= alpha;
    refuted: the test of "the claim is true (at its boundary)" rejects, p_refute <= alpha;
    inconclusive: neither. Each decision's error is at most alpha at the boundary.
    """
    if p_support <= alpha:
        return SUPPORTED
    if p_refute <= alpha:
        return REFUTED
    return INCONCLUSIVE


def directional(ci: tuple[float, float], *, null: float = 0.0) -> str:
    """Verdict for "the effect is above ``null``" from a (1 - 2 alpha) interval whose ends are one-sided bounds.

    supported: the lower bound lies above ``null`` (the claim false at ``null``: error <= alpha).
    refuted: the upper bound lies below ``null`` (the claim true at ``null``: error <= alpha).
    inconclusive: otherwise.
    """
    low, high = ci
    if low > null:
        return SUPPORTED
    if high < null:
        return REFUTED
    return INCONCLUSIVE


def within_band(ci: tuple[float, float], band: tuple[float, float], *, lower_bound: bool = False) -> str:
    """Verdict for "the quantity is about X", with X's tolerance written as ``band``, from a (1 - 2 alpha) interval.

    supported: the interval lies inside the band (two one-sided tests, each at alpha: equivalence).
    refuted: the interval and the band do not overlap (a one-sided test at the nearer edge rejects).
    inconclusive: they overlap only in part.

    "Refuted" from the same (1 - 2 alpha) interval tests each edge at alpha, and the union over the two edges
    reaches 2 alpha when the band is narrow; the shared procedures refute at alpha / 2 per edge instead
    (:func:`resclaims.decide.procedures.inside`, whose ``refute_ci`` is the (1 - alpha) interval to pass here for that).

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


def with_power(result: ClaimResult, power: float | None) -> ClaimResult:
    """``result`` with the power at the source's stated effect in its details (it no longer changes the verdict:
    each of "supported" and "refuted" is a test with its own error bound)."""
    return dataclasses.replace(result, details={**result.details, "power_at_stated_effect": power})


def require_supported(result: ClaimResult) -> None:
    """Fail the calling test unless the claim is supported, with the numbers."""
    assert result.verdict == SUPPORTED, result.summary()
