"""Calibration: how often a claim's procedure says "supported" when it should not, and when it should.

A *procedure* is a claim's decision path as one function: the claim's data (one
array per condition, runs paired by index) in, a :class:`~resclaims.decide.verdict.Decision`
(or a verdict string) out. The claim test calls the same function, so what is
calibrated here is what decides the claim. A *simulator* turns a numpy generator
into data for the procedure, with the null holding or with an effect injected:

- ``rejection_rate(procedure, simulate, n_sims, seed)``: how often it says
  "supported", with a Clopper-Pearson interval (``scipy.stats.binomtest``): the
  type-I error under a null simulator, the power under an effect simulator;
- ``smallest_detectable(...)``: the smallest effect on a grid with power >= 0.8;
- the gate (:func:`null_rate`, :attr:`Calibration.defective`): a procedure whose
  type-I error is credibly above alpha + 1 point fails its claim. ``NULL_SIMS``
  simulated nulls, on every tier, make the gate see a true rate of 0.08 with
  probability >= 0.9 (:func:`gate_power`).

A null under which the procedure's rate is known without simulation (a sign test
of runs reflected or exchanged at random, or resampled with their median on the
boundary) is *exact by construction*: its procedure passes ``construction`` (why)
and ``exact_rate`` (the rate, or a bound, from the binomial), the report says so,
and the simulated rate, which no gate can flag, checks the code rather than the
procedure.

Simulators mimic the claim's own data, so n and the distribution's shape are the
claim's (rliable's contract: arrays of runs). Nulls:

- ``exchange(a, b)``: swaps the two members of each pair with probability 1/2 (a
  sign flip of the paired differences). The runs are the observed ones, so n and
  the shape are kept, and the null (the two conditions are exchangeable) holds
  exactly. For paired directional and paired variance claims. ``reflect(x, c)``
  is its one-sample form (x - c sign-flipped), ``permute_rows`` its form for a
  trend across conditions (each run's values in a random order).
- ``rescaled(...)`` then ``resample``: for band claims ("about X"). One condition's
  per-run quantity is multiplied by (or shifted by) the constant that puts the
  statistic of the whole observed sample on the band edge nearer the estimate,
  and runs are drawn from that sample with replacement: in that world the true
  value is the edge.

Effects (for the power at the source's stated effect, and the smallest detectable
one), with the observed noise kept and runs resampled: ``paired_shift`` re-centres
the paired differences on 0 and shifts them (each pair keeps its sum),
``paired_scale`` rescales a's deviations so that SD(a) / SD(b) is the effect,
``located`` moves one sample's centre, ``row_trend`` sets the runs' mean slope,
and for band claims the sample is rescaled to the stated value.
``paired_worlds`` and ``band_worlds`` assemble the usual arguments of
:func:`calibrate`; 

Claims with nothing sampled (counts, properties checked on every input) get
:func:`exact`: "exact, no sampling".
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import stats
from threadpoolctl import threadpool_limits

from resclaims.decide.stats import ALPHA
from resclaims.decide.verdict import MIN_POWER, SUPPORTED, Decision
from resclaims.decide.worlds import (  # noqa: F401 (the worlds are part of this module's interface)
    Effect,
    Simulator,
    band_effect,
    band_null,
    band_worlds,
    exchange,
    located,
    mixed,
    paired_scale,
    paired_shift,
    paired_worlds,
    permute_rows,
    reflect,
    resample,
    rescaled,
    row_trend,
)

if TYPE_CHECKING:  # procedures imports this module
    from resclaims.decide.procedures import Procedure

N_SIMS = {"quick": 200, "full": 1000}  # simulated data sets per power rate, by tier
SEARCH_SIMS = 100  # per grid point of the coarse smallest-detectable-effect search, every tier
TOLERANCE = 0.01  # a procedure whose type-I error is credibly above ALPHA + TOLERANCE is a defect

# -- the gate: H0 "type-I error <= GATE_RATE" against "> GATE_RATE", one-sided exact binomial test at GATE_LEVEL
GATE_RATE = ALPHA + TOLERANCE  # 0.06
GATE_LEVEL = 0.05  # the gate's own false alarm at a rate of exactly 0.06 (about 3e-4 at 0.05)
GATE_POWER = (0.08, 0.9)  # the gate sees a true rate of 0.08 with probability >= 0.9
NULL_SIMS = 1500  # simulated nulls per calibration, every tier (gate_power: 0.914 at 0.08)
LOOKS = ((300, 12), (750, 42))  # after 300 nulls at most 12 "supported" (4%), after 750 at most 42 (5.6%), pass


def gate_critical(n: int, rate: float = GATE_RATE, level: float = GATE_LEVEL) -> int:
    """The fewest "supported" of ``n`` nulls that the gate flags: P(Binomial(n, rate) >= k) <= level."""
    counts = np.arange(n + 2)
    return int(counts[stats.binom.sf(counts - 1, n, rate) <= level][0])


def gate_power(rate: float, n: int = NULL_SIMS, looks: Sequence[tuple[int, int]] = LOOKS) -> float:
    """The probability that the gate flags a procedure whose true type-I error is ``rate``: exact, from the binomial.

    The design (:func:`null_rate`): at each look (n_j, f_j) a count k_j <= f_j of "supported" among the first
    n_j nulls passes; a procedure that passes no look runs all ``n`` and is flagged when its count k >= c =
    :func:`gate_critical` (n), the one-sided exact binomial test of "rate <= 0.06" at 0.05 (106 of 1,500: 7.07%).
    P(flag) follows the count's distribution look by look (binomial steps, the passing counts removed).

    Why 1,500: with no look, P(flag) at 0.08 is 0.918 at 1,500 and stays >= 0.9 from 1,459 nulls on (0.25 at
    200, 0.77 at 1,000); the old gate (the whole 95% Clopper-Pearson interval above 0.06, 200 nulls) flagged
    0.08 with probability 0.18 and 0.86 even with 1,500. The looks only let a procedure pass early, so they can
    only lower the false alarm, and each bound is a count that a rate of 0.08 reaches with probability below 0.01:
    with ``LOOKS`` P(flag) is 0.914 at 0.08, 0.048 at 0.06 and 3e-4 at 0.05, and the nulls simulated average 300
    at 0, 431 at 0.036 and 776 at 0.05 (1,500 with no look).
    """
    c = gate_critical(n)
    counts, done = np.ones(1), 0  # P(count so far = k, no look passed)
    for n_at, f in (look for look in looks if look[0] < n):
        counts = np.convolve(counts, stats.binom.pmf(np.arange(n_at - done + 1), n_at - done, rate))
        counts[: f + 1], done = 0.0, n_at
    counts = np.convolve(counts, stats.binom.pmf(np.arange(n - done + 1), n - done, rate))
    return float(counts[c:].sum())


def verdict_of(outcome: Decision | str) -> str:
    return outcome.verdict if isinstance(outcome, Decision) else outcome


@dataclass(frozen=True)
class Rate:
    """``k`` of ``n`` simulated data sets, with a 95% Clopper-Pearson interval."""

    k: int
    n: int

    @property
    def rate(self) -> float:
        return self.k / self.n

    @property
    def ci(self) -> tuple[float, float]:
        interval = stats.binomtest(self.k, self.n).proportion_ci()
        return (float(interval.low), float(interval.high))

    def __str__(self) -> str:
        low, high = self.ci
        return f"{self.rate:.3f} [{low:.3f}, {high:.3f}]"

    def to_json(self) -> dict[str, Any]:
        return {"k": self.k, "n": self.n, "rate": self.rate, "ci": list(self.ci)}

    @classmethod
    def from_json(cls, value: dict[str, Any] | None) -> Rate | None:
        return None if value is None else cls(int(value["k"]), int(value["n"]))


def outcomes(procedure: Procedure, simulate: Simulator, n_sims: int, seed: int) -> list[Decision | str]:
    """The procedure's outcome on each of ``n_sims`` simulated data sets."""
    rng = np.random.default_rng(seed)
    return [procedure(*simulate(rng)) for _ in range(n_sims)]


def supported(outcome: Decision | str) -> bool:
    return verdict_of(outcome) == SUPPORTED


def significant(outcome: Decision | str) -> bool:
    """The procedure's test rejected at ALPHA (whatever its interval said)."""
    return isinstance(outcome, Decision) and outcome.p_value is not None and outcome.p_value < ALPHA


def rate(results: Sequence[Decision | str], hit: Callable[[Decision | str], bool] = supported) -> Rate:
    return Rate(sum(bool(hit(r)) for r in results), len(results))


def rejection_rate(procedure: Procedure, simulate: Simulator, n_sims: int, seed: int) -> Rate:
    """How often ``procedure`` says "supported" on data from ``simulate``, with its binomial CI."""
    return rate(outcomes(procedure, simulate, n_sims, seed))


def has_power(procedure: Procedure, simulate: Simulator, n_sims: int, seed: int, power: float = MIN_POWER) -> bool:
    """Whether at least ``power`` of ``n_sims`` simulations say "supported", stopping once that is decided."""
    rng = np.random.default_rng(seed)
    needed = int(np.ceil(power * n_sims))
    hits = misses = 0
    while hits < needed and misses <= n_sims - needed:
        if supported(procedure(*simulate(rng))):
            hits += 1
        else:
            misses += 1
    return hits >= needed


Tests = Callable[..., tuple[np.ndarray, np.ndarray]]  # Procedure.tests: (p_support, p_refute), vectorised


def _hits(procedure: Procedure, tests: Tests | None, simulate: Simulator, rng: np.random.Generator,
          n: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Whether each of ``n`` data sets drawn from ``simulate`` is "supported", and whether its test rejects (None
    where the procedure has no p-value). With ``tests`` (the procedure's vectorised p-values, which decide as
    ``decide`` does: tests/report/test_validation.py) the data sets are stacked and tested at once; the same draws either way.
    """
    if tests is not None:
        drawn = [simulate(rng) for _ in range(n)]
        p_support = np.asarray(tests(*(np.stack(arrays) for arrays in zip(*drawn)))[0], dtype=float)
        return p_support <= ALPHA, p_support < ALPHA
    results = [procedure(*simulate(rng)) for _ in range(n)]
    has_test = any(isinstance(o, Decision) and o.p_value is not None for o in results)
    return (np.array([supported(r) for r in results], dtype=bool),
            np.array([significant(r) for r in results], dtype=bool) if has_test else None)


def null_rate(procedure: Procedure, simulate: Simulator, seed: int, n_sims: int = NULL_SIMS, *,
              tests: Tests | None = None, looks: Sequence[tuple[int, int]] = LOOKS) -> tuple[Rate, Rate | None]:
    """The type-I error (and the test's size) under ``simulate``, as the gate reads it (:func:`gate_power`).

    At each of ``looks`` (n_j, f_j) below ``n_sims``, at most f_j "supported" among the first n_j nulls stops
    there (the rate is then from n_j nulls); a procedure that passes no look gets all ``n_sims``.
    """
    rng = np.random.default_rng(seed)
    hits, rejects = np.zeros(0, dtype=bool), np.zeros(0, dtype=bool)
    for n_at, f in [*(look for look in looks if look[0] < n_sims), (n_sims, n_sims)]:
        more, more_rejects = _hits(procedure, tests, simulate, rng, n_at - len(hits))
        hits = np.concatenate([hits, more])
        rejects = None if rejects is None or more_rejects is None else np.concatenate([rejects, more_rejects])
        if hits.sum() <= f:
            break
    return Rate(int(hits.sum()), len(hits)), None if rejects is None else Rate(int(rejects.sum()), len(rejects))


def smallest_detectable(procedure: Procedure, effect: Effect, grid: Sequence[float], n_sims: int, seed: int,
                        power: float = MIN_POWER) -> float | None:
    """The smallest effect in the increasing ``grid`` with power >= ``power``; None if even the largest lacks it.

    A bisection over the grid, which assumes power grows with the effect; every
    grid point uses the same seed (common random numbers), so the comparison
    between points is not blurred by simulation noise.
    """
    low, high = -1, len(grid)  # power lacking at low (or nothing tried), reached at high
    while high - low > 1:
        mid = (low + high) // 2
        if has_power(procedure, effect(grid[mid]), n_sims, seed, power):
            high = mid
        else:
            low = mid
    return grid[high] if high < len(grid) else None


# -- the calibration of one claim ----------------------------------------------------
@dataclass(frozen=True)
class Calibration:
    """A claim's procedure under simulated nulls and effects, as the report shows it."""

    claim_id: str
    null: str  # how the null data were simulated (or why there are none)
    null_label: str = ""  # the null in a few words, for a table
    n_sims: int = 0
    type_one: Rate | None = None  # P(supported | null)
    test_size: Rate | None = None  # P(p < ALPHA | null), for procedures with a test
    effect: str | None = None  # the source's stated effect, and how it was injected
    stated_effect: float | None = None
    power: Rate | None = None  # P(supported | stated effect)
    detectable: float | None = None  # smallest grid effect with power >= MIN_POWER
    grid: tuple[float, ...] = ()  # the effects searched for ``detectable``
    unit: str = ""
    seconds: float = 0.0
    construction: str | None = None  # why the null's rate is at most alpha without simulation (None: it is not)
    exact_rate: float | None = None  # that rate, or its bound, from the binomial

    @property
    def exact(self) -> bool:
        return self.type_one is None

    @property
    def by_construction(self) -> bool:
        """The null's rate is known to be at most alpha: the simulated one checks the code; no gate can flag it."""
        return self.construction is not None

    @property
    def gate_p(self) -> float | None:
        """The one-sided exact binomial p of H0 "the type-I error is at most GATE_RATE" (0.06), from the nulls."""
        if self.type_one is None:
            return None
        return float(stats.binom.sf(self.type_one.k - 1, self.type_one.n, GATE_RATE))

    @property
    def defective(self) -> bool:
        """The type-I error is credibly above ALPHA + TOLERANCE: the gate's one-sided test rejects at GATE_LEVEL.

        With ``NULL_SIMS`` nulls a true rate of 0.08 is flagged with probability 0.914 and one of 0.05 with
        3e-4 (:func:`gate_power`); a rate from fewer nulls (a procedure that passed a look) is judged by the same
        test, which it passes.
        """
        return self.gate_p is not None and self.gate_p <= GATE_LEVEL

    @property
    def power_rate(self) -> float | None:
        return None if self.power is None else self.power.rate

    def to_json(self) -> dict[str, Any]:
        as_json = lambda r: None if r is None else r.to_json()  # noqa: E731
        return {
            "claim": self.claim_id, "null": self.null, "null_label": self.null_label, "n_sims": self.n_sims,
            "type_one": as_json(self.type_one), "search_sims": SEARCH_SIMS,
            "test_size": as_json(self.test_size), "effect": self.effect, "stated_effect": self.stated_effect,
            "power": as_json(self.power), "detectable": self.detectable, "grid": list(self.grid), "unit": self.unit,
            "alpha": ALPHA, "min_power": MIN_POWER, "defective": self.defective, "seconds": self.seconds,
            "gate": {"rate": GATE_RATE, "level": GATE_LEVEL, "p": self.gate_p, "null_sims": NULL_SIMS,
                     "looks": [list(look) for look in LOOKS],
                     "power_at": GATE_POWER[0], "power": gate_power(GATE_POWER[0])},
            "construction": self.construction, "exact_rate": self.exact_rate,
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Calibration:
        """The inverse of :meth:`to_json` (what :class:`Stored` keeps)."""
        return cls(value["claim"], null=value["null"], null_label=value["null_label"], n_sims=value["n_sims"],
                   type_one=Rate.from_json(value["type_one"]), test_size=Rate.from_json(value["test_size"]),
                   effect=value["effect"], stated_effect=value["stated_effect"], power=Rate.from_json(value["power"]),
                   detectable=value["detectable"], grid=tuple(value["grid"]), unit=value["unit"],
                   seconds=value["seconds"], construction=value.get("construction"),
                   exact_rate=value.get("exact_rate"))


def exact(claim_id: str, why: str = "exact, no sampling") -> Calibration:
    return Calibration(claim_id, null=why, null_label="exact, no sampling")


def calibrate(
    claim_id: str,
    procedure: Procedure,
    *,
    null: Simulator,
    null_text: str,
    n_sims: int,
    seed: int,
    null_label: str = "simulated",
    effect: Effect | None = None,
    stated_effect: float | None = None,
    effect_text: str | None = None,
    grid: Sequence[float] = (),
    unit: str = "",
    null_sims: int | None = None,
    tests: Tests | None = None,
    construction: str | None = None,
    exact_rate: float | None = None,
) -> Calibration:
    """Type-I error under ``null``, power at ``stated_effect`` and the smallest detectable effect on ``grid``.

    The type-I error uses ``null_sims`` simulations (the claim test passes ``NULL_SIMS``, what the gate needs;
    default ``n_sims``) with the gate's looks (:func:`null_rate`), the power ``n_sims``; the coarse search
    for the smallest detectable effect uses ``SEARCH_SIMS`` per grid point. Each part draws from its own
    generator of ``seed``. ``effect`` maps an effect size to a simulator; without it only the type-I error is
    computed. ``tests`` (the procedure's vectorised p-values) computes the same rates at once.
    ``construction`` and ``exact_rate``: the null's rate known without simulation (exact by construction).
    """
    start = time.perf_counter()
    power = detectable = None
    with threadpool_limits(limits=1, user_api="blas"):  # many small products: threads only contend
        type_one, test_size = null_rate(procedure, null, seed, n_sims if null_sims is None else null_sims,
                                        tests=tests)
        if effect is not None and stated_effect is not None:
            world = effect(stated_effect)
            if world is None:  # e.g. a mean curve whose crossing jumps past the value at a plateau
                effect_text = f"{effect_text}; no world has the value {stated_effect:.4g}: the statistic jumps past it"
            else:
                hits, _ = _hits(procedure, tests, world, np.random.default_rng(seed + 1), n_sims)
                power = Rate(int(hits.sum()), n_sims)
        if effect is not None and len(grid):
            detectable = smallest_detectable(procedure, effect, sorted(grid), SEARCH_SIMS, seed + 2)
    return Calibration(
        claim_id, null=null_text, null_label=null_label, n_sims=n_sims, type_one=type_one, test_size=test_size,
        effect=effect_text, stated_effect=stated_effect, power=power, detectable=detectable, grid=tuple(sorted(grid)),
        unit=unit, seconds=time.perf_counter() - start, construction=construction, exact_rate=exact_rate,
    )


def geometric_grid(start: float, stop: float, ratio: float = 2**0.5) -> tuple[float, ...]:
    """start, start * ratio, ... up to ``stop``: the coarse grid of a smallest-detectable-effect search."""
    n = int(np.floor(np.log(stop / start) / np.log(ratio) + 1e-9)) + 1
    return tuple(float(start * ratio**i) for i in range(n))
