"""Procedures: how a claim is decided, named by what they decide.

A :class:`Procedure` is a claim's whole decision path: the statistic, its
interval, the two tests and the rule, as one function of the claim's data
(arrays of runs, paired by index) that returns a
:class:`~resclaims.decide.verdict.Decision`, and how to calibrate that function on the
same data (a null world and an effect world; :mod:`resclaims.decide.calibration`). The
claim test and its calibration call the same function, so what is calibrated is
what decides the claim.

Every shared procedure decides with **two one-sided tests of one quantity**:
"supported" when the test of "the claim is false, at its boundary" rejects at
alpha, "refuted" when the test of "the claim is true, at its boundary" rejects
at alpha, so each decision's error is at most alpha, and the reported interval's
ends are the two one-sided (1 - alpha) bounds of the same quantity. A band
claim's "refuted" is a union over its two edges, each tested at alpha / 2
(:func:`inside`), and its ``details["refute_ci"]`` is the matching (1 - alpha)
interval. The
quantity is a **median** (of the runs, or of paired differences), tested with
the exact sign test and bounded by order statistics, or a **share** of runs,
tested with the exact binomial test and bounded by Clopper-Pearson: neither
assumes a shape, so skew, heavy tails, censoring at a budget, ties and small n
leave the error bounds intact (``tests/report/test_validation.py`` checks them on
simulated worlds at each tier's n). The price is power: a sign test needs 5
runs to say anything at alpha = 0.05 and 9 to survive Holm across 5 claims.

**Reach.** Each shared procedure says, for n runs, the smallest p-value each of its
two tests can attain (``Procedure.best_p``: all runs on one side of the boundary, or
all inside or outside the band), and :func:`reach` turns that into the fewest runs at
which a verdict is possible at all at a level (after Holm: alpha / m, see
:mod:`resclaims.decide.multiplicity`). Below it a test has no power whatever the runs say:
``plan`` prints the reach of every confirmatory claim and the judge refuses a
confirmatory claim whose n is below its reach for "supported".

The shared procedures, by what they decide:

- :func:`exceeds_paired`: "a exceeds b": the median paired difference above 0;
- :func:`exceeds`: "x is above a value": the median run above it;
- :func:`below_margin`: "x is below a margin" (non-inferiority): the median run below it;
- :func:`median_in_band`: "x is about X": the median run inside a band (equivalence);
- :func:`share_in_band`: "x is consistent": the share of runs inside a band above a stated share;
- :func:`increasing`: "the rows increase along positions": the median run's slope above 0;
- :func:`exact`: a count or a property, no sampling.

A family adds its own (``Procedure(name, test, decide, calibration)``) only
where none of these fits.
"""

from __future__ import annotations

import difflib
import dis
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from resclaims.decide import calibration as cal
from resclaims.decide.exact import (  # noqa: F401 (this module's interface too)
    band_by_construction,
    band_tests,
    below_tests,
    by_construction,
    exceeds_tests,
    fewest_for,
    paired_tests,
    share_tests,
    slopes,
    trend_tests,
)
from resclaims.decide.stats import ALPHA, Tested, share_test, sign_test
from resclaims.decide.verdict import Decision, two_tests

__all__ = ["Procedure", "exceeds_paired", "exceeds", "below_margin", "median_in_band", "share_in_band", "increasing",
           "exact", "custom"]

MOST_RUNS = 100_000  # reach: past this many runs a verdict counts as out of reach


def __getattr__(name: str) -> Any:
    """A name this module lacks: for a misspelled procedure (``procedures.exceeds_pairde``), the valid ones and the
    closest; ``from resclaims.decide.procedures import exceeds_pairde`` gets the same line, as an ImportError (Python
    would replace an AttributeError here with its generic "cannot import name")."""
    if name.startswith("__"):  # Python's and tools' own look-ups (__path__, __wrapped__, ...)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}", name=name)
    valid = [n for n in __all__ if n != "Procedure"]
    closest = difflib.get_close_matches(name, valid, n=1)
    message = (f"resclaims.decide.procedures has no procedure {name!r}: use one of {', '.join(valid)}"
               + (f"; did you mean {closest[0]!r}?" if closest else ""))
    if _importing_from(sys._getframe(1)):
        raise ImportError(message, name=__name__, path=__file__)
    raise AttributeError(message, name=name, obj=sys.modules[__name__])


def _importing_from(frame: Any) -> bool:
    """Whether ``frame`` is running ``from ... import name`` (its current instruction is IMPORT_FROM)."""
    code, at = frame.f_code.co_code, frame.f_lasti
    return 0 <= at < len(code) and dis.opname[code[at]] == "IMPORT_FROM"


Worlds = Callable[..., dict[str, Any]]  # (claim, *data) -> keyword arguments of calibration.calibrate


@dataclass(frozen=True)
class Procedure:
    """A named decision: ``decide(*data) -> Decision`` and its calibration on the same data."""

    name: str  # what it decides, in words: "a exceeds b, paired"
    test: str  # the test and the rule, for the report's test column
    decide: Callable[..., Decision]
    calibration: Worlds  # (claim, *data) -> null and effect worlds (calibration.calibrate's keywords)
    tests: Callable[..., tuple[np.ndarray, np.ndarray]] | None = None  # the two p-values, vectorised over data sets
    # n -> the smallest p of the test that supports and of the test that refutes, on the scale compared with alpha
    # (None: not known, a family's own or a bootstrap procedure; reach() then says nothing)
    best_p: Callable[[int], tuple[float, float]] | None = None

    def __call__(self, *data: np.ndarray) -> Decision:
        return self.decide(*data)


def reach(procedure: Procedure, level: float) -> tuple[int | None, int | None]:
    """The fewest runs at which ``procedure`` can say "supported", and "refuted", at ``level``: the smallest n whose
    best attainable p (``procedure.best_p(n)``) is at most ``level``. (None, None) where the procedure does not
    know its best p (a family's own or a bootstrap procedure); None for a verdict out of reach below
    :data:`MOST_RUNS`. A test with fewer runs has no power for that verdict, whatever the runs are."""
    if procedure.best_p is None:
        return None, None
    found: list[int | None] = [None, None]
    for n in range(1, MOST_RUNS + 1):
        for i, p in enumerate(procedure.best_p(n)):
            if found[i] is None and p <= level:
                found[i] = n
        if None not in found:
            break
    return found[0], found[1]


def sign_best_p(n: int) -> tuple[float, float]:
    """The exact sign test's best p both ways at n runs: all n on one side of the boundary, 0.5^n."""
    return 0.5**n, 0.5**n


# "Refuted" for a band (median_in_band, inside): the test at either edge rejects, a union over the two edges, so each
# edge's test is held to half the level (Bonferroni: p_refute = 2 x the smaller edge p; see ``inside``).
BAND_REFUTE_SHARE = 0.5


def band_best_p(n: int) -> tuple[float, float]:
    """median_in_band's best p at n runs: "supported" needs both edges' sign tests (all n inside the band: 0.5^n
    each); "refuted" one edge's (all n beyond it: 0.5^n), held to BAND_REFUTE_SHARE of the level, so on alpha's
    scale 0.5^n / BAND_REFUTE_SHARE."""
    return 0.5**n, 0.5**n / BAND_REFUTE_SHARE


def share_best_p(share: float) -> Callable[[int], tuple[float, float]]:
    """share_in_band's best p at n runs: binomial tests at ``share``: all n in the band (share^n) supports, none in
    it ((1 - share)^n) refutes."""
    return lambda n: (share**n, (1 - share) ** n)


def _no_null(why: str) -> Worlds:
    return lambda claim, *data: {"null": None, "null_text": why}


def above(tested: Tested, boundary: float = 0.0) -> Decision:
    """"The quantity lies above ``boundary``": supported if p_above <= alpha, refuted if p_below <= alpha."""
    return Decision(two_tests(tested.p_above, tested.p_below), float(tested.estimate), tested.ci,
                    float(tested.p_above), details={"null": boundary}, p_refute=float(tested.p_below))


def below(tested: Tested, boundary: float) -> Decision:
    """"The quantity lies below ``boundary``": supported if p_below <= alpha, refuted if p_above <= alpha."""
    return Decision(two_tests(tested.p_below, tested.p_above), float(tested.estimate), tested.ci,
                    float(tested.p_below), details={"null": boundary}, p_refute=float(tested.p_above))


def inside(low: Tested, high: Tested, band: tuple[float, float], *,
           refute_ci: tuple[float, float] | None = None) -> Decision:
    """"The quantity lies inside ``band``", from the one-sided tests at its two edges (``low`` and ``high``).

    Supported: both one-sided tests reject the outside (equivalence, two one-sided
    tests: p = the larger of the two), so the interval, whose ends are the one-sided
    (1 - alpha) bounds, lies inside the band.

    Refuted: the test at one edge shows the quantity outside it, each edge's test at
    alpha / 2 (Bonferroni over the two edges: p_refute = 2 x the smaller of the two,
    at most 1). "Refuted" is a union of two rejections, at the lower edge (the
    quantity below it) and at the upper edge (above it). With the truth on one edge,
    the other edge's test rejects too with a probability that nears alpha as the
    band narrows: a median's sign tests count the runs below the lower edge and those
    above the upper one, and a world whose runs put half below the lower edge and
    half above the upper one (no mass in the band, whatever its width) has its median
    in the band and rejects at either edge with probability alpha each: 2 alpha at
    alpha per edge, exactly alpha at alpha / 2 (there it is the two-sided sign test).
    No split that does not know the band's mass does better. Refuting only at the
    edge nearer the estimate is no remedy: an edge's test rejects only when the
    estimate lies beyond that edge, so that edge is already the nearer one, and the
    rule is the same union. ``refute_ci`` is the (1 - alpha) interval (each end a
    one-sided (1 - alpha / 2) bound), which misses the band exactly when "refuted".
    """
    p_support = max(float(low.p_above), float(high.p_below))
    p_refute = min(1.0, 2 * min(float(low.p_below), float(high.p_above)))
    details: dict[str, Any] = {"band": list(band)}
    if refute_ci is not None:
        details["refute_ci"] = [float(refute_ci[0]), float(refute_ci[1])]
    return Decision(two_tests(p_support, p_refute), float(low.estimate), low.ci, p_support,
                    details=details, p_refute=p_refute)


def paired_difference(a: np.ndarray, b: np.ndarray) -> Decision:
    """"a exceeds b", paired by run: the median of a - b, its order-statistic interval, exact sign tests at 0."""
    return above(sign_test(a - b, 0.0))


def _exceeds(x: np.ndarray, null: float) -> Decision:
    return above(sign_test(x, null), null)


def _below_margin(x: np.ndarray, margin: float) -> Decision:
    return below(sign_test(x, margin), margin)


def _median_in_band(x: np.ndarray, band: tuple[float, float]) -> Decision:
    return inside(sign_test(x, band[0]), sign_test(x, band[1]), band, refute_ci=sign_test(x, alpha=ALPHA / 2).ci)


def _share_in_band(x: np.ndarray, band: tuple[float, float], share: float) -> Decision:
    """The share of runs inside ``band`` (closed), its Clopper-Pearson interval and the binomial tests at ``share``."""
    hits = int(((x >= band[0]) & (x <= band[1])).sum())
    decision = above(share_test(hits, len(x), share), share)
    return Decision(decision.verdict, decision.estimate, decision.ci, decision.p_value, p_refute=decision.p_refute,
                    details={"null": share, "band": list(band), "runs_in_band": hits})


def increasing_trend(rows: np.ndarray, positions: np.ndarray) -> Decision:
    """"The rows increase along ``positions``": the median run's slope, exact sign tests at 0."""
    return above(sign_test(slopes(rows, positions), 0.0))


# -- the shared procedures ---------------------------------------------------------------
SIGN = "exact sign test of the median, order-statistic interval"


def exceeds_paired(*, members: str = "the two runs of a pair", test: str | None = None) -> Procedure:
    """"a exceeds b", paired by run: the median of a - b above 0 (exact sign tests, both ways).

    Calibrated with a and b exchanged within pairs (the null: exact by construction,
    :func:`by_construction`) and the paired differences shifted so their median is
    the effect (``members`` names the pair).
    """

    def worlds(claim, a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
        return dict(**cal.paired_worlds(a, b, members=members, grid=claim.grid, unit=claim.unit, stated=claim.stated,
                                        stated_text=claim.stated_text, center=np.median),
                    **by_construction(np.asarray(a, dtype=float) - b, "exchanging each pair"))

    return Procedure("a exceeds b, paired", test or f"median paired difference above 0: {SIGN}", paired_difference,
                     worlds, paired_tests, sign_best_p)


def exceeds(null: float, *, what: str = "each run's value", test: str | None = None) -> Procedure:
    """"x is above ``null``": the median run above ``null`` (exact sign tests, both ways).

    Calibrated with every run reflected about ``null`` at random (the null: exact by
    construction, :func:`by_construction`) and the runs moved so that their median
    lies the effect above ``null``.
    """

    def worlds(claim, x: np.ndarray) -> dict[str, Any]:
        return dict(null=cal.reflect(x, null), null_label=f"centred on {null:g}",
                    null_text=f"{what} reflected about {null:g} at random (a sign flip of x - ({null:g}))",
                    effect=lambda above: cal.located(x, np.median)(null + above), stated_effect=claim.stated,
                    grid=claim.grid, unit=claim.unit, effect_text=f"{claim.stated_text}; searched: the runs moved so "
                    f"their median is the effect above {null:g}, spread kept; runs resampled",
                    **by_construction(np.asarray(x, dtype=float) - null, f"reflecting each run about {null:g}"))

    return Procedure(f"x is above {null:g}", test or f"median above {null:g}: {SIGN}", partial(_exceeds, null=null),
                     worlds, partial(exceeds_tests, null=null), sign_best_p)


def below_margin(margin: float, *, what: str = "each run's value", test: str | None = None) -> Procedure:
    """"x is below ``margin``" (non-inferiority): the median run below the margin (exact sign tests, both ways).

    Calibrated with every run reflected about the margin at random (the null: exact
    by construction, :func:`by_construction`) and the runs moved so that their
    median lies the effect below it (the claim's ``stated`` effect: how far below
    the margin "no change" is).
    """

    def worlds(claim, x: np.ndarray) -> dict[str, Any]:
        return dict(null=cal.reflect(x, margin), null_label="at the margin",
                    null_text=f"{what} reflected about the {margin:g} margin at random (a sign flip of x - margin)",
                    effect=lambda below: cal.located(x, np.median)(margin - below), stated_effect=claim.stated,
                    grid=claim.grid, unit=claim.unit, effect_text=f"{claim.stated_text}: the runs moved so their "
                    "median sits that far below the margin, spread kept; runs resampled",
                    **by_construction(np.asarray(x, dtype=float) - margin, f"reflecting each run about {margin:g}"))

    return Procedure(f"x is below {margin:g}", test or f"non-inferiority, margin {margin:g}: median below the margin: "
                     f"{SIGN}", partial(_below_margin, margin=margin), worlds, partial(below_tests, margin=margin),
                     sign_best_p)


def median_in_band(band: tuple[float, float], *, what: str = "every run", how: str = "shift",
                   test: str | None = None) -> Procedure:
    """"x is about X": the median run inside ``band`` (exact sign tests at both edges; :func:`inside`).

    Supported when both one-sided sign tests reject the outside at alpha (equivalence:
    the 90% order-statistic interval inside the band); refuted when the sign test at
    one edge puts the median beyond it at alpha / 2 (Bonferroni over the two edges:
    the 95% interval, ``details["refute_ci"]``, misses the band), which keeps
    P(refuted | median in the band) at alpha however narrow the band. Five runs
    therefore cannot refute (5 of 5 give p = 1/32 > 0.025); six can. Calibrated on the
    band edge nearer the estimate (the null: exact by construction,
    :func:`band_by_construction`).
    """

    def worlds(claim, x: np.ndarray) -> dict[str, Any]:
        return dict(unit=claim.unit, grid=claim.grid, **cal.band_worlds((x,), 0, np.median, band, claim.stated, what,
                                                                        stated_text=claim.stated_text, how=how),
                    **band_by_construction(x, band, how))

    return Procedure(f"median in [{band[0]:g}, {band[1]:g}]",
                     test or f"median inside the band {list(band)} (equivalence: two one-sided sign tests at alpha; "
                     f"refuted at alpha / 2 per edge); {SIGN}",
                     partial(_median_in_band, band=band), worlds, partial(band_tests, band=band), band_best_p)


def share_in_band(band: tuple[float, float], share: float, *, what: str = "every run",
                  test: str | None = None) -> Procedure:
    """"x is consistent": more than ``share`` of the runs fall inside ``band`` (exact binomial tests, both ways).

    No model of the spread: each run is in the band or not. Calibrated with runs
    drawn so that each falls inside the band with probability ``share`` (the
    null) or with the claim's ``stated`` share (the effect).
    """

    def worlds(claim, x: np.ndarray) -> dict[str, Any]:
        inside_band = (x >= band[0]) & (x <= band[1])
        if inside_band.all() or not inside_band.any():
            return {"null": None, "null_text": f"{what} all {'inside' if inside_band.all() else 'outside'} the band: "
                                               "no world with another share can be drawn from them"}
        return dict(null=cal.mixed(x[inside_band], x[~inside_band], share), null_label=f"share {share:g} in band",
                    null_text=f"{what} drawn from those inside the band with probability {share:g}, else from those "
                              "outside", effect=lambda p: cal.mixed(x[inside_band], x[~inside_band], p),
                    stated_effect=claim.stated, grid=claim.grid, unit=claim.unit,
                    effect_text=f"{claim.stated_text}: runs drawn from those inside the band with that probability")

    return Procedure(f"share in [{band[0]:g}, {band[1]:g}] above {share:g}",
                     test or f"share of runs inside {list(band)} above {share:g}: exact binomial test, "
                     "Clopper-Pearson interval", partial(_share_in_band, band=band, share=share), worlds,
                     partial(share_tests, band=band, share=share), share_best_p(share))


def increasing(positions: Sequence[float], *, test: str | None = None, effect_text: str | None = None) -> Procedure:
    """"The rows increase along ``positions``": the median run's least-squares slope above 0 (exact sign tests).

    Calibrated with each run's values permuted across positions (the null) and
    each run's slope moved so that the median slope is the effect.
    """
    positions = np.asarray(positions, dtype=float)

    def worlds(claim, rows: np.ndarray) -> dict[str, Any]:
        return dict(null=cal.permute_rows(rows), null_label="positions permuted",
                    null_text="each run's values put in a random order of positions (no trend)",
                    effect=cal.row_trend(rows, positions, np.median), stated_effect=claim.stated, grid=claim.grid,
                    unit=claim.unit, effect_text=effect_text or f"{claim.stated_text}; searched: each run's values "
                    "with the median slope replaced by the effect; runs resampled")

    return Procedure("the rows increase", test or f"median per-run slope above 0: {SIGN}",
                     partial(increasing_trend, positions=positions), worlds, partial(trend_tests, positions=positions),
                     sign_best_p)


def exact(test: str = "exact count") -> Procedure:
    """A count or a property checked on every input: nothing is sampled (``judge.exact``)."""

    def decide(*data: np.ndarray) -> Decision:
        raise TypeError("an exact claim is decided with judge.exact(claim, holds, value)")

    return Procedure("exact", test, decide, _no_null("exact, no sampling"), best_p=lambda n: (0.0, 0.0))  # one look


def custom(name: str, test: str, decide: Callable[..., Decision], calibration: Worlds | None = None,
           *, no_null: str = "no null constructible", tests: Callable[..., tuple] | None = None,
           best_p: Callable[[int], tuple[float, float]] | None = None) -> Procedure:
    """A family's own procedure, where none of the shared ones fits (``tests``: its vectorised p-values; ``best_p``:
    its smallest attainable p-values at n runs, for :func:`reach`)."""
    return Procedure(name, test, decide, calibration or _no_null(no_null), tests, best_p)
