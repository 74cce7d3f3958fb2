"""Claims as declarations: a quoted sentence and how it is decided; the library does the rest.

A claim is a :class:`Claim`: its id, its source, the sentence it tests, the
statistic with its unit, the :class:`~resclaims.decide.procedures.Procedure` that
decides it, and the effect the source states (if any). A claim test hands the
claim its data through the ``judge`` fixture, and everything else happens in
:func:`judge`, which no claim can skip:

1. the rows (runs, paired by index) in which any value is NaN or inf (a
   diverged run: :mod:`resclaims.run.contract` makes its every value NaN) are left
   out and counted, whatever the procedure;
2. the procedure is calibrated on the claim's own data (type-I error, power
   at the stated effect, smallest detectable effect) and recorded in the report;
   a procedure whose type-I error is significantly above alpha fails the test;
3. the procedure decides with two one-sided tests, each at alpha: "supported"
   when the claim's falsehood (at its boundary) is rejected, "refuted" when its
   truth is; the power at the stated effect goes in the report, and an
   inconclusive claim gets ``seeds_for_power``, the runs at which the procedure
   would reach 80% power (:func:`resclaims.decide.design.seeds_for_power`);
4. a ``protocol_bound`` claim (a magnitude or an epoch count) measured at a
   reduced protocol gets no verdict: "full tier only", the estimate kept as
   information, and the test is skipped; a confirmatory claim whose n is below
   its procedure's reach for "supported" after Holm in its family (level
   alpha / m, :mod:`resclaims.decide.multiplicity`) is refused before anything is
   decided: its test fails with one line that says the n it needs
   (:func:`below_reach`), never a verdict no runs could have changed;
5. the result is recorded in the report with the tier, the protocol and its
   fidelity ("source protocol" or "reduced: ..."); confirmatory claims are
   adjusted with Holm across their source's family when the report is written
   (:mod:`resclaims.decide.multiplicity`);
6. the verdict becomes the test outcome: "supported" passes, anything else
   raises :class:`NotSupported` with the estimate, interval, p and n.

A claim the evidence does not support at a tier has that outcome recorded in its
module's expected-outcomes file (``benchmarks/expected/<module>.toml``, read by
:mod:`resclaims.decide.expected`; the judge gets its tier's, ``expected``): the test
is then ``xfail(strict=True)`` with that reason (it turns red if the claim starts to
hold), and with the tier's own seeds the recorded verdict (the reason's first word)
must be the one the session reaches. A claim not in the file must be supported.

Example (the README's "Write your own claim")::

    LR = Claim("U1", source="mine", claim="Adam at lr 1e-3 learns the identity faster than at 1e-4",
               statistic="paired difference in epochs to 0.01, lr 1e-4 - lr 1e-3", unit="epochs",
               procedure=procedures.exceeds_paired())

    def test_U1(judge, ...):
        judge(LR, slow_epochs, fast_epochs, protocol="001's protocol at two learning rates")
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from resclaims.decide import calibration, design, procedures
from resclaims.decide.procedures import Procedure
from resclaims.decide.stored import Stored
from resclaims.decide.verdict import (
    FULL_TIER_ONLY,
    INCONCLUSIVE,
    REFUTED,
    SOURCE_PROTOCOL,
    SUPPORTED,
    ClaimResult,
    with_power,
)
from resclaims.decide.multiplicity import Families, reach_levels

# "Z1", "Z1.direction", "A4.share-of-vgg19" (a part may hold hyphens), "Z1.direction@adam" (a variant)
ID_PATTERN = re.compile(r"^[A-Z][A-Za-z0-9]*(\.[A-Za-z0-9_][A-Za-z0-9_-]*)*(@[A-Za-z0-9_]+)?$")
TIER_NAMES = ("quick", "full")
DEFECTIVE = "defective"  # a recorded outcome: the procedure's calibration fails on this tier's runs


class ClaimError(ValueError):
    """A claim declaration the suite cannot use; the message names the claim and the field."""


class NotSupported(AssertionError):
    """A claim's verdict was not "supported"; the message carries the estimate, interval, p and n."""


class OutcomeChanged(AssertionError):
    """A claim's recorded outcome at this tier no longer matches what the session measured."""


class BelowReach(AssertionError):
    """A confirmatory claim's n is below the fewest runs at which its procedure can say "supported" after Holm."""


class DefectiveProcedure(AssertionError):
    """A procedure said "supported" under its simulated null significantly more often than alpha."""


@dataclass(frozen=True, eq=False)
class Claim:
    """One claim: what it says, where it comes from, and how it is decided."""

    # id, source, claim, statistic and procedure are required: their defaults only let a declaration that leaves
    # one out stop with the one line that names the claim and the field (__post_init__), not a TypeError
    id: str = ""  # "Z1.direction": family letter and number, then parts; "@..." marks a variant
    source: str = ""  # the document it comes from: "001", "He2015", or your own ("mine")
    claim: str = ""  # the claim in one sentence, as the report shows it
    statistic: str = ""  # what the estimate measures
    procedure: Procedure | None = None  # how it is decided (resclaims.decide.procedures)
    unit: str = ""  # the statistic's unit: "epochs", "points", "x"
    quote: str = ""  # the source's own words, when ``claim`` paraphrases them
    stated: float | None = None  # the effect the source states, for the power (None: none stated)
    stated_text: str = "none stated"  # where the stated effect comes from
    grid: tuple[float, ...] = ()  # effects searched for the smallest detectable one
    confirmatory: bool = False  # a sentence the source asserts: Holm across its source's confirmatory claims
    protocol_bound: bool = False  # its number holds only at the source's protocol (a magnitude, an epoch count)
    reading: str = ""  # why that statistic reads the sentence, where it is not plain (the catalogue shows it)

    def __post_init__(self) -> None:
        name = self.id if isinstance(self.id, str) and self.id else "<no id>"
        if not isinstance(self.id, str) or not ID_PATTERN.match(self.id):
            raise ClaimError(f"claim {name}: id must look like 'Z1' or 'Z1.direction' (a capital letter first)")
        for attribute in ("source", "claim", "statistic"):
            value = getattr(self, attribute)
            if not isinstance(value, str) or not value.strip():
                raise ClaimError(f"claim {name}: missing {attribute}: say {_HELP[attribute]}")
        if self.procedure is None:
            raise ClaimError(f"claim {name}: missing procedure: say how it is decided, one of resclaims.decide.procedures "
                             f"({', '.join(procedures.__all__)})")
        if not isinstance(self.procedure, Procedure):
            raise ClaimError(f"claim {name}: unknown procedure {self.procedure!r}: use one of resclaims.decide.procedures "
                             f"({', '.join(procedures.__all__)})")
        if self.confirmatory and self.procedure.name == "exact":
            raise ClaimError(f"claim {name}: an exact claim has no error to control: drop confirmatory=True")

    def variant(self, suffix: str, **changes: Any) -> "Claim":
        """The same claim decided on other runs, as a row of its own: id ``<id>@<suffix>``, exploratory (the claim's
        confirmatory decision is the one on its own design's runs, and the family Holm adjusts, the one ``plan``
        counts before anything is decided, is the claims the tests declare; ``confirmatory=True`` in ``changes``
        makes a variant a member of its own)."""
        return dataclasses.replace(self, id=f"{self.id}@{suffix}", **{"confirmatory": False, **changes})

    @property
    def family(self) -> str:
        """The claim family: the id's leading letters ("Z" for "Z1.direction")."""
        return re.match(r"[A-Z]+", self.id).group(0)

    @property
    def source_family(self) -> str:
        """The source whose confirmatory family the claim belongs to: the first document ``source`` names."""
        return re.split(r"[,/ ]+", self.source.strip())[0]


def _refuse_unknown_keywords(init: Callable[..., None]) -> Callable[..., None]:
    """``Claim.__init__``, but a keyword that is no field stops with the one line that names the claim and the
    keyword, and lists the fields (Python's own TypeError names neither)."""
    fields = [f.name for f in dataclasses.fields(Claim)]

    @functools.wraps(init)
    def checked(self: Claim, *args: Any, **kwargs: Any) -> None:
        unknown = [key for key in kwargs if key not in fields]
        if unknown:
            given = args[0] if args else kwargs.get("id")
            name = given if isinstance(given, str) and given else "<no id>"
            closest = difflib.get_close_matches(unknown[0], fields, n=1)
            hint = f" (did you mean {closest[0]!r}?)" if closest else ""
            if unknown[0] == "known":
                hint = (" (an outcome that is not 'supported' goes in the module's expected-outcomes file, "
                        "expected/<module>.toml beside it: resclaims.decide.expected)")
            raise ClaimError(f"claim {name}: unknown keyword {unknown[0]!r}{hint}: a Claim takes "
                             f"{', '.join(fields)}")
        init(self, *args, **kwargs)

    return checked


Claim.__init__ = _refuse_unknown_keywords(Claim.__init__)

_HELP = {"source": "which document it comes from, e.g. source='001' (or 'mine')",
         "claim": "what it claims, in one sentence", "statistic": "what the estimate measures"}


def recorded_verdict(reason: str) -> str:
    """The verdict a recorded outcome names: its first word."""
    return re.split(r"[^a-z]", reason.strip().lower(), maxsplit=1)[0]


def below_reach(claim: Claim, n: int, m: int) -> str | None:
    """The one line that refuses a confirmatory ``claim`` decided on ``n`` runs in a Holm family of ``m``, where no
    runs at all could make it "supported" at alpha / m (the family's first step,
    :func:`resclaims.decide.multiplicity.reach_levels`); None where n reaches it, or where the procedure does not know its
    best p (:func:`resclaims.decide.procedures.reach`). ``plan`` prints the same line as a warning."""
    if claim.procedure.best_p is None:
        return None
    level, alpha = reach_levels(m)
    needed, _ = procedures.reach(claim.procedure, level)
    if needed is not None and n >= needed:
        return None
    best = claim.procedure.best_p(n)[0]
    what = f"needs n >= {needed}: run with --seeds {needed} or more" if needed else "no n reaches it"
    return (f"{claim.id}: n = {n} cannot reach supported after Holm in {claim.source_family}'s family of {m} "
            f"(level {alpha:g}/{m} = {level:.3g}; its best p at n = {n} is {best:.3g}): its procedure ("
            f"{claim.procedure.name}) {what}")


def finite_rows(*data: np.ndarray) -> tuple[tuple[np.ndarray, ...], int]:
    """``data`` (arrays paired by their first index) without the rows where any value is NaN or inf, and how many."""
    arrays = tuple(np.asarray(x, dtype=float) for x in data)
    if len({len(x) for x in arrays}) > 1:
        raise ValueError(f"a claim's data must be paired by run: lengths {[len(x) for x in arrays]}")
    finite = np.logical_and.reduce([np.isfinite(x.reshape(len(x), -1)).all(axis=1) for x in arrays])
    return tuple(x[finite] for x in arrays), int((~finite).sum())


@dataclass
class Judge:
    """Decides claims for one test: the ``judge`` fixture. See the module docstring for what a call does."""

    tier: str
    report: Any  # resclaims.report.report.Report
    calibration_seed: Callable[[str], int]  # claim id -> the seed of its calibration
    expect: Callable[[str, type], None]  # marks the running test xfail(strict=True, raises=...) with a reason
    protocol: str | None = None  # the protocol line of the module's tier (resclaims.run.tiers.Tier)
    fidelity: str = SOURCE_PROTOCOL  # the fidelity of the module's tier: "source protocol" or "reduced: ..."
    skip: Callable[[str], None] = lambda reason: None  # ends the running test as skipped (pytest.skip)
    default_seeds: bool = True  # the tier's own seeds and base seed: recorded outcomes must hold exactly
    n_sims: int = 0  # simulated data sets per power rate
    null_sims: int = calibration.NULL_SIMS  # simulated nulls per type-I error (what the gate needs)
    calibrated: dict[str, calibration.Calibration] = field(default_factory=dict)
    stored: Stored = field(default_factory=lambda: Stored(None))  # kept by content
    code: str = ""  # stored.code_digest of the deciding code and the claim's module (part of a stored key)
    families: Families | None = None  # the session's Holm families, for the reach rule (None: no rule)
    refuse: Callable[[str], None] | None = None  # ends the running test with a line (pytest.fail); default: BelowReach
    expected: Mapping[str, str] = field(default_factory=dict)  # claim id -> this tier's expected outcome (not supported)
    decide: Callable[..., Any] | None = None  # (claim, *data) -> Decision in place of the procedure's (--seeds auto)

    def __call__(self, claim: Claim, *data: np.ndarray, protocol: str | None = None,
                 details: Mapping[str, Any] | None = None) -> ClaimResult:
        """Decide ``claim`` on ``data`` (arrays paired by run), record it, and pass or fail the test."""
        result = self.record(claim, *data, protocol=protocol, details=details)
        self.outcome(claim, result)
        return result

    def record(self, claim: Claim, *data: np.ndarray, protocol: str | None = None,
               details: Mapping[str, Any] | None = None) -> ClaimResult:
        """Steps 1-4 of a claim (no test outcome): for a claim reported beside the one a test decides."""
        data, dropped = finite_rows(*data)
        refused = self.join(claim, len(data[0]) + dropped)
        if refused is not None and self.decide is None:  # --seeds auto: the budget's reach was checked at collection
            if self.refuse is not None:
                self.refuse(refused)
            raise BelowReach(refused)
        decision = claim.procedure(*data) if self.decide is None else self.decide(claim, *data)
        # --seeds auto, an interim look that decided nothing: no verdict here, so no calibration or power search yet
        going_on = bool((decision.details.get("sequential") or {}).get("continue"))
        calibrated = None if going_on else self.calibrate(claim, *data)
        extra = {**decision.details, **(details or {}),
                 "diverged_pairs_excluded": dropped + (details or {}).get("diverged_pairs_excluded", 0)}
        verdict, p_value, p_refute = decision.verdict, decision.p_value, decision.p_refute
        if not self.judged_here(claim):
            # a sentence about the source's protocol gets no verdict from a reduced one: the estimate is information
            extra.update(proxy_verdict=verdict, proxy_p_value=p_value, proxy_p_refute=p_refute)
            verdict, p_value, p_refute = FULL_TIER_ONLY, None, None
        seeds = None
        if verdict == INCONCLUSIVE and not going_on:
            seed = self.calibration_seed(claim.id)
            seeds, extra["seeds_for_power_how"] = self.stored.seeds_for_power(
                self.stored.key(self.code, claim.id, data, "seeds for power", seed),
                lambda: design.seeds_for_power(claim, claim.procedure, *data, seed=seed, decision=decision))
        result = with_power(ClaimResult(
            id=claim.id, claim=claim.claim, source=claim.source, verdict=verdict,
            estimate=decision.estimate, ci=decision.ci, p_value=p_value,
            n=int((decision.details.get("sequential") or {}).get("rows", len(data[0]))),  # a look's n, if decided there
            statistic=claim.statistic, test=claim.procedure.test, tier=self.tier,
            protocol=protocol or self.protocol or "not stated", details=extra, p_refute=p_refute,
            fidelity=self.fidelity, seeds_for_power=seeds,
            family="confirmatory" if claim.confirmatory else "exploratory",
        ), None if calibrated is None else calibrated.power_rate)
        result.details["holm_family"] = claim.source_family
        self.report.record(result)
        if calibrated is not None and calibrated.defective:
            if recorded_verdict(self.expected.get(claim.id, "")) == DEFECTIVE:
                self.expect(self.expected[claim.id], DefectiveProcedure)
            raise DefectiveProcedure(f"{claim.id}: the procedure '{claim.procedure.name}' said supported in "
                                     f"{calibrated.type_one} of {calibrated.type_one.n} simulated nulls, credibly "
                                     f"above alpha + {calibration.TOLERANCE} (one-sided binomial p = "
                                     f"{calibrated.gate_p:.2g}): fix the procedure before trusting its verdict")
        return result

    def judged_here(self, claim: Claim) -> bool:
        """Whether ``claim`` gets a verdict at this module's protocol (not a protocol-bound one at a reduced one)."""
        return not (claim.protocol_bound and self.fidelity != SOURCE_PROTOCOL)

    def join(self, claim: Claim, n: int) -> str | None:
        """A confirmatory ``claim`` about to be decided on ``n`` planned runs (diverged ones included: the design's
        n) joins its Holm family, or leaves it where it gets no verdict here; the line that refuses it where n is
        below its reach (:func:`below_reach`), else None."""
        if self.families is None or not claim.confirmatory:
            return None
        if not self.judged_here(claim):
            self.families.exclude(claim, FULL_TIER_ONLY)
            return None
        self.families.decided(claim)
        return below_reach(claim, n, self.families.size(claim))

    def exact(self, claim: Claim, holds: bool, value: float, *, n: int = 1, protocol: str | None = None,
              details: Mapping[str, Any] | None = None, why: str = "exact, no sampling") -> ClaimResult:
        """An exact claim (a count, a property checked on every input): supported if ``holds``, else refuted."""
        self.report.add_calibration(calibration.exact(claim.id, why))
        result = ClaimResult(
            id=claim.id, claim=claim.claim, source=claim.source, verdict=SUPPORTED if holds else REFUTED,
            estimate=float(value), ci=(float(value), float(value)), p_value=None, n=n, statistic=claim.statistic,
            test=claim.procedure.test, tier=self.tier, protocol=protocol or self.protocol or "not stated",
            details=dict(details or {}), fidelity=self.fidelity, ci_level=1.0)
        self.report.record(result)
        self.outcome(claim, result)
        return result

    def calibrate(self, claim: Claim, *data: np.ndarray) -> calibration.Calibration:
        """The claim's calibration on its data (once per claim id and session, and kept by content in ``stored``
        so that a later session on the same runs reads it back), recorded in the report."""
        if claim.id not in self.calibrated:
            seed = self.calibration_seed(claim.id)

            def compute() -> calibration.Calibration:
                worlds = claim.procedure.calibration(claim, *data)
                if worlds.get("null") is None:
                    return calibration.Calibration(claim.id, null=worlds.get("null_text", "no null constructible"),
                                                   null_label="no null constructible")
                return calibration.calibrate(claim.id, claim.procedure.decide, n_sims=self.n_sims, seed=seed,
                                             null_sims=self.null_sims, tests=claim.procedure.tests, **worlds)

            key = self.stored.key(self.code, claim.id, data, "calibration", self.n_sims, self.null_sims, seed)
            result = self.stored.calibration(key, compute)
            self.calibrated[claim.id] = result
            self.report.add_calibration(result)
        return self.calibrated[claim.id]

    def outcome(self, claim: Claim, result: ClaimResult) -> None:
        """Turn the verdict into the test's outcome, against the outcome recorded for this tier."""
        if result.verdict == FULL_TIER_ONLY:
            self.skip(f"{claim.id}: full tier only: a sentence about the source's protocol, measured at "
                      f"{self.fidelity}; proxy estimate {result.estimate:.4g} [{result.ci[0]:.4g}, {result.ci[1]:.4g}]")
        stage = result.details.get("sequential") or {}
        if stage.get("continue"):  # --seeds auto: not decided at this look; the next stage's runs decide it
            self.skip(f"{claim.id}: undecided at look {stage.get('look')} (n = {stage.get('n')}) of "
                      f"{stage.get('looks')}: continue with --seeds-after")
        recorded = self.expected.get(claim.id)
        if recorded:  # the reason: the numbers in the expected-outcomes file, and this session's own
            self.expect(f"{recorded}; this session: {result.summary()}", NotSupported)
            if self.default_seeds and result.verdict != recorded_verdict(recorded):
                raise OutcomeChanged(f"{claim.id}: recorded as {recorded_verdict(recorded)} at the {self.tier} tier, "
                                     f"now {result.summary()}: update its expected outcome")
        if result.verdict != SUPPORTED:
            raise NotSupported(result.summary())
