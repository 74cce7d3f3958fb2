"""Calibration: how often a claim's procedure says "supported" when it should not, and when it should.

A *procedure* is a claim's decision path as one function: the claim's data (one
array per condition, runs paired by index) in, a :class:`~resclaims.decide.verdict.Decision`
(or a verdict string) out. The claim test calls the same function, so what is
calibrated here is what decides the claim. A *simulator* turns a numpy generator
into data for the procedure, with the null holding or with an effect injected:

- ``rejection_rate(procedure, simulate, n_sims, seed)``: how often it says
  "supported", with a Clopper-Pearson interval (``scipy.stats.binomtest``): the
  type-I error under a null simulator, the power under an effect simulator;
- ``smallest_detectable(...)``: the smallest effect on a grid with power >= 0.8.

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
from typing import Any

import numpy as np
from scipy import stats
from threadpoolctl import threadpool_limits

from resclaims.decide.stats import ALPHA
from resclaims.decide.verdict import MIN_POWER, REFUTED, SUPPORTED, Decision
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

N_SIMS = {"quick": 200, "full": 1000}  # simulated data sets per calibrated rate, by tier
SEARCH_SIMS = 100  # per grid point of the coarse smallest-detectable-effect search, every tier
TOLERANCE = 0.01  # a procedure whose type-I error is above ALPHA + TOLERANCE is a defect

Procedure = Callable[..., "Decision | str"]


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

    @property
    def exact(self) -> bool:
        return self.type_one is None

    @property
    def defective(self) -> bool:
        """The type-I error is significantly above ALPHA + TOLERANCE (its whole 95% interval is)."""
        return self.type_one is not None and self.type_one.ci[0] > ALPHA + TOLERANCE

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
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Calibration:
        """The inverse of :meth:`to_json` (what :class:`Stored` keeps)."""
        return cls(value["claim"], null=value["null"], null_label=value["null_label"], n_sims=value["n_sims"],
                   type_one=Rate.from_json(value["type_one"]), test_size=Rate.from_json(value["test_size"]),
                   effect=value["effect"], stated_effect=value["stated_effect"], power=Rate.from_json(value["power"]),
                   detectable=value["detectable"], grid=tuple(value["grid"]), unit=value["unit"],
                   seconds=value["seconds"])


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
) -> Calibration:
    """Type-I error under ``null``, power at ``stated_effect`` and the smallest detectable effect on ``grid``.

    The type-I error and the power use ``n_sims`` simulations each; the coarse
    search for the smallest detectable effect uses ``SEARCH_SIMS`` per grid point.
    Each part draws from its own generator of ``seed``. ``effect`` maps an
    effect size to a simulator; without it only the type-I error is computed.
    """
    start = time.perf_counter()
    power = detectable = None
    with threadpool_limits(limits=1, user_api="blas"):  # many small products: threads only contend
        under_null = outcomes(procedure, null, n_sims, seed)
        if effect is not None and stated_effect is not None:
            world = effect(stated_effect)
            if world is None:  # e.g. a mean curve whose crossing jumps past the value at a plateau
                effect_text = f"{effect_text}; no world has the value {stated_effect:.4g}: the statistic jumps past it"
            else:
                power = rejection_rate(procedure, world, n_sims, seed + 1)
        if effect is not None and len(grid):
            detectable = smallest_detectable(procedure, effect, sorted(grid), SEARCH_SIMS, seed + 2)
    has_test = any(isinstance(o, Decision) and o.p_value is not None for o in under_null)
    return Calibration(
        claim_id, null=null_text, null_label=null_label, n_sims=n_sims, type_one=rate(under_null),
        test_size=rate(under_null, significant) if has_test else None, effect=effect_text,
        stated_effect=stated_effect, power=power, detectable=detectable, grid=tuple(sorted(grid)), unit=unit,
        seconds=time.perf_counter() - start,
    )


SEEDS_FOR_POWER_MAX = 64  # seeds_for_power searches up to this many times the runs a claim has


def seeds_for_power(claim: Any, procedure: Procedure, *data: np.ndarray, seed: int, power: float = MIN_POWER,
                    n_sims: int = SEARCH_SIMS, decision: Decision | None = None) -> tuple[int | None, str]:
    """The number of runs at which ``procedure`` would decide the claim with probability >= ``power``, and how
    it was found.

    - With a stated effect: the runs at which it says "supported" with that probability in the claim's own
      effect world (its runs shifted to the stated effect, n of them resampled).
    - With none: the runs at which it gives a verdict either way ("supported" or "refuted") with that
      probability if the runs' distribution is the observed one (the runs resampled as they are).

    A bisection over n from the claim's runs up to ``SEEDS_FOR_POWER_MAX`` times them, with common random
    numbers. A procedure too slow to search (a bootstrap over hundreds of runs) gets the normal approximation
    from its own interval, n (z_(1-alpha) + z_power)^2 se^2 / d^2, with d the estimate's distance to the nearest
    boundary and se the interval's width / (2 z_(1-alpha)). None, with the reason, where no number of runs
    would do it (a censored estimate, an estimate on its boundary) or even the largest n falls short.
    """
    worlds = procedure.calibration(claim, *data)
    effect, stated = worlds.get("effect"), worlds.get("stated_effect", claim.stated)
    world = effect(stated) if effect is not None and stated is not None else None
    if world is not None:
        hit, aim = supported, f"says supported with {power:.0%} probability at the stated {stated:.4g} {claim.unit}"
    else:
        world, hit = _resampled(data), (lambda outcome: verdict_of(outcome) in (SUPPORTED, REFUTED))
        aim = (f"decides either way with {power:.0%} probability if the runs are as observed "
               f"({'no effect stated' if stated is None else f'no world has the stated {stated:.4g}'})")
    start = time.process_time()  # this process's CPU time: a machine shared with others does not stretch it
    procedure.decide(*world(np.random.default_rng(seed)))
    if time.process_time() - start > 0.02:  # a bootstrap over hundreds of runs: too slow to search
        return _normal_approximation(decision, len(data[0]), power)

    def powered(n: int) -> bool:
        rng = np.random.default_rng(seed)
        return sum(hit(procedure.decide(*world(rng, n))) for _ in range(n_sims)) >= power * n_sims

    low, high = len(data[0]) - 1, len(data[0]) * SEEDS_FOR_POWER_MAX
    with threadpool_limits(limits=1, user_api="blas"):
        if not powered(high):
            return None, f"even {high} runs fall short: no n up to there where the procedure {aim}"
        while high - low > 1:
            mid = (low + high) // 2
            low, high = (low, mid) if powered(mid) else (mid, high)
    return high, f"the procedure {aim}; {n_sims} simulations per n, bisection"


def _resampled(data: tuple[np.ndarray, ...]) -> Callable[..., tuple[np.ndarray, ...]]:
    """The observed world: n runs drawn with replacement from the claim's runs, rows kept together."""
    arrays = tuple(np.asarray(d) for d in data)

    def world(rng: np.random.Generator, n: int | None = None) -> tuple[np.ndarray, ...]:
        index = rng.integers(0, len(arrays[0]), len(arrays[0]) if n is None else n)
        return tuple(a[index] for a in arrays)

    return world


def _normal_approximation(decision: Decision | None, n: int, power: float) -> tuple[int | None, str]:
    """Seeds for a procedure too slow to simulate: scale its interval with 1 / sqrt(n) until it clears the
    nearest boundary with ``power`` at the observed estimate."""
    if decision is None:
        return None, "not searched: the procedure is a bootstrap over many runs"
    details = decision.details
    boundaries = details.get("band") or [details.get("null")]
    low, high = decision.ci
    if details.get("censored") or not (np.isfinite(low) and np.isfinite(high)) or None in boundaries:
        return None, "no number of runs decides it: the estimate is censored at the budget (a bound, not a value)"
    distance = min(abs(decision.estimate - float(b)) for b in boundaries)
    z = stats.norm.ppf(1 - ALPHA)
    se = (high - low) / (2 * z)
    if distance == 0 or se == 0:
        return None, "no number of runs decides it: the estimate sits on its boundary"
    seeds = int(np.ceil(n * ((z + stats.norm.ppf(power)) * se / distance) ** 2))
    return max(seeds, n + 1), (f"normal approximation from the claim's own interval (a bootstrap too slow to "
                               f"simulate): {power:.0%} power to clear the nearest boundary at the observed "
                               f"{decision.estimate:.4g}")


def geometric_grid(start: float, stop: float, ratio: float = 2**0.5) -> tuple[float, ...]:
    """start, start * ratio, ... up to ``stop``: the coarse grid of a smallest-detectable-effect search."""
    n = int(np.floor(np.log(stop / start) / np.log(ratio) + 1e-9)) + 1
    return tuple(float(start * ratio**i) for i in range(n))
