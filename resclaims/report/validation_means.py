"""The validation suite's mean-curve cells: Z1's crossing and ratio procedures on learning curves written for the
purpose (:mod:`resclaims.decide.means`; the sign and binomial cells are in :mod:`resclaims.report.validation`).

Each world is a set of runs' loss curves whose *mean* curve crosses the threshold exactly on a band edge: the
claim is then false for "supported" (the limit of a crossing just outside the edge) and true for "refuted".
A run's curve is its mean curve times a factor of mean 1 (a run slow at one epoch is slow at all), so the mean
curve is exactly the written one and only the factor's shape changes from world to world (mean 0 and SD 1 noise,
times ``CV``): normal; heavy-tailed (t3); skewed right and left (exponential); lognormal; censored at a budget
(a fifth of the runs never learn: flat at 3x the threshold, never reaching it, as dead-ReLU runs do, the rest
lognormal about their own mean curve); and, beyond reach, rare slow runs (2% of runs at 50x the rest, half the
mean's mass: the Z identity arm's dead runs are of this kind). The procedures' claims are on means, and a mean
carried by a few rare runs cannot be tested to a stated error at any n that holds few of them: those cells are
reported, not held to alpha (``BEYOND_REACH``); nor are the lognormal worlds at n = 400 (``KNOWN_ABOVE``), where
the test of "the mean is below" measured 0.064-0.072 and no candidate tried did better. No test of a mean is
valid over all distributions with a finite variance (Bahadur and Savage 1956): each holds only on the shapes it is
shown to hold on, which is what these cells are for.

The cases follow Z1's claims: the zero mean curve's crossing in [3, 4] and the identity's in [9.5, 10.5] (a
fractional edge: the test interpolates between epochs), and the identity/zero ratio of crossings in [2.375, 3.5]
(the zero curve crossing at epoch 4, the identity at 9.5 or 14), at the Z tiers' n (2,000 in both), at 400 (the
quick tier's n until the lognormal cells there showed the tests above alpha + 1 point: it was raised to 2,000) and at
16 (reported: small n). The cells take a few minutes, so the tests that run them are marked slow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from resclaims.decide import means
from resclaims.decide.stats import ALPHA
from resclaims.report.validation import margin, rate

THRESHOLD = 0.01
CV = 1.5  # each run's factor: 1 + CV x noise (the quick tier's zero runs at epochs 3-4: SD / mean 1.7-1.9)
SIMS = 2000  # data sets per cell (margin 0.018); the n = 2,000 cells take about a minute each on one busy core
CHUNK = 100  # data sets simulated at once (memory: CHUNK x n x epochs floats per arm)
SIZES = (400, 2000)  # 2,000: the Z tiers' n; 400: a --seeds 400 session's (held but KNOWN_ABOVE); SMALL_N: reported
SMALL_N = 16
BEYOND_REACH = ("rare slow runs (2% at 50x)",)  # reported, not held to alpha: see the module's docstring
# (world, n) where the test of a mean is measured above alpha + 1 point: reported, not held (the README's table).
# At n = 400 the one-sided test of "the mean is below the threshold" on lognormal runs says so in 0.064-0.066 of
# data sets (sigma 1) and 0.069-0.072 (Z's skewness, 7.9) with the truth on the threshold: Hall's correction, a
# bootstrap-t and a bootstrap of Hall's statistic all measured 0.066-0.070 there; Student's t 0.095.
KNOWN_ABOVE = (("lognormal", 400), ("lognormal, as Z's runs (CV 1.5)", 400))
DEAD_SHARE, DEAD_LEVEL = 0.2, 3.0  # the censored world: a fifth of the runs flat at 3x the threshold


SIGMA = float(np.sqrt(np.log(1 + CV**2)))  # the lognormal factor with mean 1 and SD CV (skewness 7.9, kurtosis 206)


def _lognormal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.lognormal(-SIGMA**2 / 2, SIGMA, shape)


def _censored(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Dead runs as NaN factors (:func:`runs` puts them flat at ``DEAD_LEVEL`` x the threshold), the rest lognormal."""
    return np.where(rng.random(shape) < DEAD_SHARE, np.nan, _lognormal(rng, shape))


FACTORS: dict[str, Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]] = {  # each run's factor: mean 1
    "normal": lambda rng, shape: 1.0 + CV * rng.standard_normal(shape),
    "heavy tails (t3)": lambda rng, shape: 1.0 + CV * rng.standard_t(3, shape) / np.sqrt(3.0),
    "skewed right": lambda rng, shape: 1.0 + CV * (rng.exponential(1.0, shape) - 1.0),
    "skewed left": lambda rng, shape: 1.0 + CV * (1.0 - rng.exponential(1.0, shape)),
    "lognormal": lambda rng, shape: rng.lognormal(-0.5, 1.0, shape),  # sigma 1: skewness 6.2, the suite's own
    "lognormal, as Z's runs (CV 1.5)": _lognormal,  # skewness 7.9: Z's zero runs at epochs 3-4 have 6-7.5
    "censored at a budget": _censored,
    # 2% of runs at 25.5, the rest at 0.5: mean 1, the 2% hold half of it
    "rare slow runs (2% at 50x)": lambda rng, shape: np.where(rng.random(shape) < 0.02, 25.5, 0.5),
}
WORLDS = tuple(FACTORS)


def mean_curve(crossing: float, epochs: int, decay: float) -> np.ndarray:
    """A decreasing mean curve at epochs 0..epochs-1, linear between them, that crosses ``THRESHOLD`` exactly at
    ``crossing``: THRESHOLD exp(-decay (e - crossing)), moved by the constant that puts its interpolation there."""
    e = np.arange(epochs, dtype=float)
    curve = THRESHOLD * np.exp(-decay * (e - crossing))
    return curve + THRESHOLD - float(np.interp(crossing, e, curve))


def runs(rng: np.random.Generator, world: str, mean: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``shape`` (data sets, runs) of curves whose expected curve is ``mean``: each run the mean curve times its
    factor; in the censored world a dead run is flat at ``DEAD_LEVEL`` x the threshold and the live runs' mean
    curve is the written one scaled so that all runs' mean still crosses at the same point."""
    factor = FACTORS[world](rng, shape)[..., None]
    if world != "censored at a budget":
        return mean * factor
    live = mean * (1 - DEAD_SHARE * DEAD_LEVEL) / (1 - DEAD_SHARE)  # all runs' mean: 0.6 x threshold + 0.4 x mean
    return np.where(np.isnan(factor), DEAD_LEVEL * THRESHOLD, live * factor)


@dataclass(frozen=True)
class CurveCase:
    """A mean-curve procedure's vectorised (p_support, p_refute) and its curves with the truth on a band edge."""

    name: str
    tests: Callable[..., tuple[np.ndarray, np.ndarray]]
    draw: Callable[[np.random.Generator, str, int, int], tuple[np.ndarray, ...]]  # (rng, world, sims, n) -> curves


def _crossing(band: tuple[float, float], at: float, epochs: int) -> CurveCase:
    mean = mean_curve(at, epochs, 0.7)
    return CurveCase(f"mean-curve crossing in [{band[0]:g}, {band[1]:g}], at {at:g}",
                     lambda c: means.crossing_tests(c, THRESHOLD, band),
                     lambda rng, world, sims, n: (runs(rng, world, mean, (sims, n)),))


def _ratio(band: tuple[float, float], at: float, zero_at: float = 4.0) -> CurveCase:
    zero, identity = mean_curve(zero_at, 20, 0.7), mean_curve(at * zero_at, 20, 0.35)
    return CurveCase(f"ratio of mean-curve crossings in [{band[0]:g}, {band[1]:g}], at {at:g}",
                     lambda i, z: means.ratio_band_tests(i, z, THRESHOLD, band),
                     lambda rng, world, sims, n: (runs(rng, world, identity, (sims, n)),
                                                  runs(rng, world, zero, (sims, n))))


ZERO_BAND, IDENTITY_BAND, RATIO_BAND = (3.0, 4.0), (9.5, 10.5), (2.375, 3.5)
CASES = [*(_crossing(ZERO_BAND, at, 8) for at in ZERO_BAND), *(_crossing(IDENTITY_BAND, at, 13) for at in IDENTITY_BAND),
         *(_ratio(RATIO_BAND, at) for at in RATIO_BAND)]


def cell(case: CurveCase, world: str, n: int, *, sims: int = SIMS, seed: int = 0) -> dict[str, Any]:
    """Both error rates of ``case`` in ``world`` at ``n`` runs, ``sims`` data sets drawn ``CHUNK`` at a time."""
    rng = np.random.default_rng([seed, n, CASES.index(case), WORLDS.index(world)])
    supported, refuted = [], []
    for start in range(0, sims, CHUNK):
        p_support, p_refute = case.tests(*case.draw(rng, world, min(CHUNK, sims - start), n))
        supported.append(np.asarray(p_support) <= ALPHA)
        refuted.append(~supported[-1] & (np.asarray(p_refute) <= ALPHA))
    held = world not in BEYOND_REACH and n in SIZES and (world, n) not in KNOWN_ABOVE
    return {"procedure": case.name, "world": world, "n": n, "sims": sims, "held": held,
            "false_supported": rate(np.concatenate(supported)),
            "false_refuted": rate(np.concatenate(refuted))}


def run(*, sims: int = SIMS, seed: int = 0, sizes: tuple[int, ...] = (SMALL_N, *SIZES)) -> dict[str, Any]:
    """Every mean-curve cell; ``failures`` are the held cells (the Z tiers' n, worlds within reach) above alpha plus
    the Monte Carlo margin."""
    rows = [cell(case, world, n, sims=sims, seed=seed) for case in CASES for n in sizes for world in WORLDS]
    limit = ALPHA + margin(sims=sims)
    return {"rows": rows, "alpha": ALPHA, "margin": margin(sims=sims), "sims": sims,
            "failures": [r for r in rows if r["held"] and max(r["false_supported"]["rate"],
                                                               r["false_refuted"]["rate"]) > limit]}


# -- mean or median: how often the two readings of "around X" disagree (issue 25, item 6) -------------------------
SKEWED = {  # noise of median 0 and SD 1, skewed (the gaps between two nets' accuracies over seeds, say)
    "skewed right": lambda rng, shape: rng.exponential(1.0, shape) - np.log(2),
    "skewed left": lambda rng, shape: np.log(2) - rng.exponential(1.0, shape),
    "lognormal": lambda rng, shape: (rng.lognormal(0.0, 1.0, shape) - 1.0) / float(np.sqrt((np.e - 1) * np.e)),
}


def mean_in_band_tests(x: np.ndarray, band: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """A reader of the mean's verdict on "the mean lies in ``band``": Student's t at each edge (the test such a
    reader would run), combined as median_in_band combines its edges (supported: both at alpha; refuted: one edge
    at alpha / 2). Vectorised over leading axes."""
    from scipy import stats

    x = np.asarray(x, dtype=float)
    n = x.shape[-1]
    t = [(x.mean(axis=-1) - edge) / (x.std(axis=-1, ddof=1) / np.sqrt(n)) for edge in band]
    above_low, below_high = stats.t.sf(t[0], n - 1), stats.t.cdf(t[1], n - 1)
    return np.maximum(above_low, below_high), np.minimum(1.0, 2 * np.minimum(stats.t.cdf(t[0], n - 1),
                                                                            stats.t.sf(t[1], n - 1)))


def mean_median_disagreement(world: str, n: int, *, band: tuple[float, float] = (4.0, 7.0), median: float = 5.5,
                             sd: float = 2.0, sims: int = 20_000, seed: int = 0) -> dict[str, Any]:
    """How often the median's verdict on "around X" (median_in_band, sign tests) and a mean reader's (Student's t,
    :func:`mean_in_band_tests`) differ, on runs of ``world``'s skewed noise with median ``median`` and SD ``sd``.

    Returns the two verdicts' rates, the share of data sets where they differ, and where the true mean lies (a
    skewed world moves it off the median by 0.31 SD for the exponential, 0.6 SD for the lognormal).
    """
    from resclaims.decide.procedures import band_tests
    from resclaims.decide.verdict import INCONCLUSIVE, REFUTED, SUPPORTED

    rng = np.random.default_rng([seed, n, list(SKEWED).index(world)])
    x = median + sd * SKEWED[world](rng, (sims, n))
    verdicts = {}
    for name, (p_support, p_refute) in (("median", band_tests(x, band)), ("mean", mean_in_band_tests(x, band))):
        verdicts[name] = np.where(p_support <= ALPHA, SUPPORTED, np.where(p_refute <= ALPHA, REFUTED, INCONCLUSIVE))
    true_mean = median + sd * float(SKEWED[world](np.random.default_rng(1), 2_000_000).mean())
    rates = {f"{who}_{v}": float(np.mean(verdicts[who] == v)) for who in verdicts for v in (SUPPORTED, REFUTED)}
    return {"world": world, "n": n, "sd": sd, "median": median, "mean": true_mean, **rates,
            "differ": float(np.mean(verdicts["median"] != verdicts["mean"]))}
