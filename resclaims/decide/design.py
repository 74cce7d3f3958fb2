"""How many runs a claim would need: the design question an inconclusive verdict leaves.

``seeds_for_power`` answers it for any procedure: the runs at which it would decide the claim with 80%
probability, by simulation where the procedure is fast, else by the normal approximation from its own interval.
The report shows the answer beside every inconclusive claim (``ClaimResult.seeds_for_power``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import stats
from threadpoolctl import threadpool_limits

from resclaims.decide.calibration import SEARCH_SIMS, supported, verdict_of
from resclaims.decide.procedures import Procedure
from resclaims.decide.stats import ALPHA
from resclaims.decide.verdict import MIN_POWER, REFUTED, SUPPORTED, Decision


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
    # CPU time, not wall time: a shared machine must not turn the search into the approximation (the same seed gives
    # the same answer on one machine). A sign test decides in well under a millisecond, a bootstrap over hundreds of
    # runs in a tenth of a second or more: the threshold sits far from both.
    start = time.process_time()
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
