"""Calibration: how often a claim's procedure says "supported" when it should not, and when it should.

A *procedure* is a claim's decision path as one function: the claim's data (one
array per condition, runs paired by index) in, a :class:`~resclaims.verdict.Decision`
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
``paired_wiring`` and ``band_wiring`` assemble the usual arguments of
:func:`calibrate`; :class:`Calibrations` computes a family's calibrations lazily.

Claims with nothing sampled (counts, properties checked on every input) get
:func:`exact`: "exact, no sampling".
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats
from threadpoolctl import threadpool_limits

from resclaims.stats import ALPHA
from resclaims.verdict import MIN_POWER, SUPPORTED, Decision

N_SIMS = {"quick": 200, "full": 1000}  # simulated data sets per calibrated rate, by tier
SEARCH_SIMS = 100  # per grid point of the coarse smallest-detectable-effect search, every tier
TOLERANCE = 0.01  # a procedure whose type-I error is above ALPHA + TOLERANCE is a defect

Procedure = Callable[..., "Decision | str"]
Simulator = Callable[[np.random.Generator], tuple[np.ndarray, ...]]
Effect = Callable[[float], "Simulator | None"]  # an effect size -> a simulator of data with it (None: unreachable)


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


# -- simulators --------------------------------------------------------------------
def exchange(a: np.ndarray, b: np.ndarray) -> Simulator:
    """The exact paired null: each pair's two members swap places with probability 1/2."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)

    def simulate(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        swap = rng.random(len(a)) < 0.5
        return np.where(swap, b, a), np.where(swap, a, b)

    return simulate


def resample(*arrays: np.ndarray) -> Simulator:
    """Runs drawn with replacement, the same rows from every array (pairs stay pairs)."""
    arrays = tuple(np.asarray(x, dtype=float) for x in arrays)

    def simulate(rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        rows = rng.integers(0, len(arrays[0]), len(arrays[0]))
        return tuple(x[rows] for x in arrays)

    return simulate


def reflect(x: np.ndarray, center: float) -> Simulator:
    """The one-sample null "x is centred on ``center``": each run reflected about it with probability 1/2.

    The one-sample form of :func:`exchange` (a sign flip of x - center): exact for
    a test against ``center`` that assumes symmetry, such as Wilcoxon's.
    """
    x = np.asarray(x, dtype=float)

    def simulate(rng: np.random.Generator) -> tuple[np.ndarray]:
        return (center + np.where(rng.random(len(x)) < 0.5, -1.0, 1.0) * (x - center),)

    return simulate


def located(x: np.ndarray, center: Callable[[np.ndarray], float] = np.mean) -> Effect:
    """Effect ``value``: the runs moved so that their ``center`` is ``value`` (their spread kept), then resampled."""
    x = np.asarray(x, dtype=float)
    noise = x - center(x)

    def effect(value: float) -> Simulator:
        def simulate(rng: np.random.Generator) -> tuple[np.ndarray]:
            return (value + noise[rng.integers(0, len(x), len(x))],)

        return simulate

    return effect


def permute_rows(rows: np.ndarray) -> Simulator:
    """The null "no trend along the columns": each run's values put in a random order (Page's test's null)."""
    rows = np.asarray(rows, dtype=float)

    def simulate(rng: np.random.Generator) -> tuple[np.ndarray]:
        return (rng.permuted(rows, axis=1),)

    return simulate


def row_trend(rows: np.ndarray, positions: np.ndarray) -> Effect:
    """Effect ``slope``: each run's values with the mean row's least-squares slope replaced by ``slope``; runs resampled."""
    rows, positions = np.asarray(rows, dtype=float), np.asarray(positions, dtype=float)
    centred = positions - positions.mean()
    observed = rows.mean(axis=0) @ (centred / (centred**2).sum())
    flat = rows - observed * centred  # the trend removed, the noise kept

    def effect(slope: float) -> Simulator:
        def simulate(rng: np.random.Generator) -> tuple[np.ndarray]:
            return (flat[rng.integers(0, len(rows), len(rows))] + slope * centred,)

        return simulate

    return effect


def paired_shift(a: np.ndarray, b: np.ndarray, center: Callable[[np.ndarray], float] = np.mean) -> Effect:
    """Effect ``delta`` on the paired difference a - b, with the observed noise.

    The observed differences are re-centred so that their ``center`` (the
    statistic's: mean or median) is 0, then shifted by ``delta``; each pair
    keeps its sum, and pairs are resampled with replacement. In that world the
    centre of the differences is exactly ``delta``.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    total, difference = a + b, a - b
    noise = difference - center(difference)

    def effect(delta: float) -> Simulator:
        def simulate(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
            rows = rng.integers(0, len(a), len(a))
            d = noise[rows] + delta
            return (total[rows] + d) / 2, (total[rows] - d) / 2

        return simulate

    return effect


def paired_scale(a: np.ndarray, b: np.ndarray) -> Effect:
    """Effect ``ratio`` on SD(a) / SD(b): a's deviations from its mean rescaled so the sample's ratio is ``ratio``.

    Both conditions keep their shapes and their pairing; pairs are resampled
    with replacement. In that world SD(a) / SD(b) is exactly ``ratio``.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    unit = (a - a.mean()) * (np.std(b) / np.std(a))  # a's deviations, with b's SD

    def effect(ratio: float) -> Simulator:
        scaled = a.mean() + ratio * unit

        def simulate(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
            rows = rng.integers(0, len(a), len(a))
            return scaled[rows], b[rows]

        return simulate

    return effect


def rescaled(arrays: Sequence[np.ndarray], member: int, statistic: Callable[..., float], target: float,
             *, how: str = "scale", bounds: tuple[float, float] = (1e-6, 1e6),
             rtol: float = 1e-3) -> tuple[tuple[np.ndarray, ...], float] | None:
    """``arrays`` with ``arrays[member]`` moved so that ``statistic(*arrays) == target``, and the move.

    ``how="scale"`` multiplies it by a factor c (found by bisection in log space
    within ``bounds``); ``how="shift"`` adds a constant c (bisection within
    +-``bounds[1]``). Both assume the statistic is monotonic in c. Returns the
    arrays and c, or None where no c reaches the target within ``rtol`` (a
    budget censors the statistic, say).
    """
    if how not in ("scale", "shift"):
        raise ValueError(f"how must be scale or shift, got {how!r}")
    arrays = tuple(np.asarray(x, dtype=float) for x in arrays)
    move = (lambda x, t: x * np.exp(t)) if how == "scale" else (lambda x, t: x + t)  # noqa: E731
    low, high = (np.log(bounds[0]), np.log(bounds[1])) if how == "scale" else (-bounds[1], bounds[1])

    def at(t: float) -> tuple[np.ndarray, ...]:
        return tuple(move(x, t) if i == member else x for i, x in enumerate(arrays))

    increasing = statistic(*at(high)) >= statistic(*at(low))
    for _ in range(100):
        mid = (low + high) / 2
        if (statistic(*at(mid)) < target) == increasing:
            low = mid
        else:
            high = mid
    t = (low + high) / 2
    if not np.isclose(statistic(*at(t)), target, rtol=rtol, atol=1e-9):
        return None
    return at(t), float(np.exp(t)) if how == "scale" else float(t)


def band_null(arrays: Sequence[np.ndarray], member: int, statistic: Callable[..., float], band: tuple[float, float],
              estimate: float, how: str = "scale") -> tuple[Simulator, float, float] | None:
    """The band claim's null: runs resampled from the sample moved (:func:`rescaled`) so its statistic is on a band edge.

    The edge nearer the estimate is used, the other one where the nearer is out of
    reach (a budget censors the statistic). Returns the simulator, the edge and
    the move; None if neither edge is reachable.
    """
    for edge in sorted(band, key=lambda e: abs(e - estimate)):
        world = rescaled(arrays, member, statistic, edge, how=how)
        if world is not None:
            return resample(*world[0]), edge, world[1]
    return None


def band_effect(arrays: Sequence[np.ndarray], member: int, statistic: Callable[..., float], how: str = "scale") -> Effect:
    """Effect ``value``: runs resampled from the sample moved so that its statistic is ``value`` (None if unreachable)."""

    def effect(value: float) -> Simulator | None:
        world = rescaled(arrays, member, statistic, value, how=how)
        return None if world is None else resample(*world[0])

    return effect


def band_wiring(arrays: Sequence[np.ndarray], member: int, statistic: Callable[..., float], band: tuple[float, float],
                stated: float, what: str, stated_text: str = "the source's value", how: str = "scale") -> dict[str, Any]:
    """The null and effect arguments of :func:`calibrate` for a band claim.

    ``what`` names the moved per-run quantity (``arrays[member]``) in the report,
    ``how`` how it is moved (multiplied: "scale", or shifted: "shift"); ``null``
    is None where no move reaches a band edge.
    """
    estimate = float(statistic(*arrays))
    null = band_null(arrays, member, statistic, band, estimate, how)
    verb = "multiplied by" if how == "scale" else "shifted by"
    if null is None:
        return dict(null=None, null_text=f"no {'rescaling' if how == 'scale' else 'shift'} of {what} puts the statistic "
                                         "on a band edge")
    simulate, edge, move = null
    return dict(
        null=simulate,
        null_label=f"at the band edge {edge:.4g}",
        null_text=f"{what} {verb} {move:.4g}, which puts the statistic of all runs on the band edge {edge:.4g}; "
                  "runs resampled with replacement",
        effect=band_effect(arrays, member, statistic, how), stated_effect=stated,
        effect_text=f"{stated_text} {stated:.4g}: {what} {'rescaled' if how == 'scale' else 'shifted'} so that the "
                    f"statistic of all runs is {stated:.4g}; runs resampled",
    )


def paired_wiring(a: np.ndarray, b: np.ndarray, *, members: str, grid: Sequence[float], unit: str,
                  stated: float | None = None, stated_text: str = "none stated",
                  center: Callable[[np.ndarray], float] = np.mean) -> dict[str, Any]:
    """The null and effect arguments of :func:`calibrate` for a paired directional claim, "a exceeds b".

    Null: :func:`exchange`. Effect: :func:`paired_shift` with the statistic's
    ``center`` (mean or median). ``members`` names the pair in the report.
    """
    return dict(
        null=exchange(a, b), null_label="pairs exchanged",
        null_text=f"{members} exchanged within each pair at random (sign flip of the paired differences)",
        effect=paired_shift(a, b, center), stated_effect=stated, grid=grid, unit=unit,
        effect_text=f"{stated_text}; the paired differences re-centred on 0 ({center.__name__}) and shifted by the "
                    "effect, each pair keeping its sum; pairs resampled",
    )


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


class Calibrations(Mapping[str, Calibration]):
    """Claim id -> its calibration, computed on first use (running one claim calibrates only that claim).

    ``wirings`` maps each claim id to a function that returns the keyword
    arguments of ``calibrate(claim_id, **arguments)`` (the ``calibrate`` fixture).
    """

    def __init__(self, calibrate: Callable[..., Calibration], wirings: Mapping[str, Callable[[], dict[str, Any]]]) -> None:
        self._calibrate, self._wirings, self._done = calibrate, dict(wirings), {}

    def __getitem__(self, claim_id: str) -> Calibration:
        if claim_id not in self._done:
            self._done[claim_id] = self._calibrate(claim_id, **self._wirings[claim_id]())
        return self._done[claim_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._wirings)

    def __len__(self) -> int:
        return len(self._wirings)


def geometric_grid(start: float, stop: float, ratio: float = 2**0.5) -> tuple[float, ...]:
    """start, start * ratio, ... up to ``stop``: the coarse grid of a smallest-detectable-effect search."""
    n = int(np.floor(np.log(stop / start) / np.log(ratio) + 1e-9)) + 1
    return tuple(float(start * ratio**i) for i in range(n))
