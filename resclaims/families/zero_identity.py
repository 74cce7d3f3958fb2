"""Z (source 001): epochs to a loss threshold, the source's mean-curve readings, and their procedures.

The source reads its plot: the epoch at which the *mean* curve of 100 runs
crosses the dashed line (0.01 on its loss scale). These helpers compute that
reading and the per-run one, censored at the budget (a curve that never gets
there counts as the budget; a censored estimate is a lower bound, which can
refute but not support), and the Z procedures that no shared one fits. A curve
with a NaN or inf (a diverged run, :mod:`resclaims.run.contract`) has no crossing:
NaN, never the budget, so that ``judge`` leaves it out and counts it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from resclaims.decide import calibration as cal
from resclaims.decide import means
from resclaims.decide.procedures import Procedure, above, custom, median_in_band, sign_best_p
from resclaims.decide.stats import ALPHA, crossing_epochs, sign_test
from resclaims.decide.verdict import Decision, two_tests
from resclaims.kernels.zero_identity import (
    OneConv,
    curves,
    finite_pairs,
)

SHIFTS = cal.geometric_grid(0.05, 8.0)  # effects searched, epochs
SD_RATIOS = tuple(1 + d for d in cal.geometric_grid(0.05, 8.0))  # effects searched, SD ratio


# -- epochs to the threshold ----------------------------------------------------------------
def censored_crossings(c: np.ndarray, threshold: float) -> np.ndarray:
    """Epochs to the threshold; a run that never gets there counts as the budget (its epoch count), a diverged run
    (a NaN or inf on its curve) is NaN."""
    c = np.asarray(c, dtype=float)
    return uncensored_divergence(np.minimum(crossing_epochs(c, threshold), c.shape[1]), c)


def mean_crossing(mean_curves: np.ndarray, threshold: float, budget: int) -> np.ndarray:
    """The epoch at which each mean curve, shape (..., epochs), gets below the threshold, censored at the budget
    (NaN where a mean curve holds a NaN or inf: a diverged run is in it)."""
    means = np.asarray(mean_curves, dtype=float)
    t = crossing_epochs(means.reshape(-1, means.shape[-1]), threshold).reshape(means.shape[:-1])
    return uncensored_divergence(np.minimum(t, budget), means)


def uncensored_divergence(epochs: np.ndarray, curves: np.ndarray) -> np.ndarray:
    """``epochs`` (one per curve), NaN where the curve is not finite throughout: a diverged run neither reached the
    threshold nor was censored at the budget."""
    return np.where(np.isfinite(curves).all(axis=-1), epochs, np.nan)


def per_run_ratio(t_identity: np.ndarray, t_zero: np.ndarray) -> np.ndarray:
    return t_identity / np.maximum(t_zero, 1e-9)


def sd_ratio(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.std(a, ddof=1, axis=axis) / np.std(b, ddof=1, axis=axis)


def convergence_counts(frame: pd.DataFrame, threshold: float) -> dict[str, dict[str, int]]:
    """Per arm: runs that never got below the threshold, that never moved (dead ReLU), that diverged."""
    counts = {}
    for arm in frame.arm.unique():
        _, c = curves(frame, arm)
        finite = np.isfinite(c).all(axis=1)
        counts[arm] = {
            "runs": len(c),
            "never_below_threshold": int(np.isinf(crossing_epochs(c[finite], threshold)).sum()),
            "dead_from_start": int((np.ptp(c[finite], axis=1) == 0).sum()),
            "diverged": int((~finite).sum()),
        }
    return counts


def factorial_effects(frame: pd.DataFrame, arms: tuple[str, ...], threshold: float) -> dict[str, np.ndarray]:
    """Z4, per seed: epochs to the threshold per arm, and the two parts of the identity - zero gap.

    A seed with a diverged run (NaN loss) is left out of every part and counted.
    """
    runs = {name: curves(frame, name)[1] for name in arms}
    finite = np.logical_and.reduce([np.isfinite(c).all(axis=1) for c in runs.values()])
    epochs = {name: censored_crossings(c[finite], threshold) for name, c in runs.items()}
    return {
        "epochs": epochs,
        "weight_configuration": epochs["identity"] - epochs["residual_identity"],  # same targets
        "target_variance": epochs["residual_identity"] - epochs["zero"],  # same optimum and start
        "diverged_seeds_excluded": int((~finite).sum()),
    }


# -- Z1's data -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Z1Data:
    """Z1's inputs: paired curves without diverged runs, their censored crossings, and the converged pairs."""

    identity: np.ndarray
    zero: np.ndarray
    diverged: int
    threshold: float

    @classmethod
    def of(cls, frame: pd.DataFrame, threshold: float) -> "Z1Data":
        return cls(*finite_pairs(frame, "identity", "zero"), threshold)

    @property
    def t_identity(self) -> np.ndarray:
        return censored_crossings(self.identity, self.threshold)

    @property
    def t_zero(self) -> np.ndarray:
        return censored_crossings(self.zero, self.threshold)

    @property
    def converged(self) -> np.ndarray:
        return (np.isfinite(crossing_epochs(self.identity, self.threshold))
                & np.isfinite(crossing_epochs(self.zero, self.threshold)))


# -- procedures -----------------------------------------------------------------------------
MEANS = ("skew-corrected (Hall 1992) one-sided tests of the mean loss at each edge (resclaims.decide.means); both "
         "errors within alpha + 1 point at the Z tiers' n, 2,000, on written worlds (at 400 too, except on lognormal "
         "runs: 0.064-0.072), not where a mean is carried by a few rare runs")


def band_best_p(edge: tuple[float, float]) -> tuple[float, float]:
    """A mean-curve band's best p from one edge test's (p of "above", p of "below"): supported when both edges'
    tests reject (p = the larger), refuted when one edge's does at alpha / 2 (p = 2 x the smaller, at most 1), as
    :func:`resclaims.decide.means.crossing_tests` and ``ratio_band_tests`` combine them."""
    return max(edge), min(1.0, 2 * min(edge))


def crossing_best_p(n: int) -> tuple[float, float]:
    """The crossing tests' best p at n runs: each edge test is Hall's test of a mean (or the largest of several,
    above_until), whose best p is :func:`resclaims.decide.means.hall_best_p` (0 from 2 runs on, 1 below)."""
    return band_best_p(means.hall_best_p(n))


def ratio_best_p(n: int) -> tuple[float, float]:
    """The ratio tests' best p at n runs per arm: an edge of the ratio is 2 x the larger of two Hall tests (one per
    arm, each at alpha / 2; :func:`resclaims.decide.means.ratio_tests`), then the band's rule."""
    above, below = means.hall_best_p(n)
    return band_best_p((min(1.0, 2 * max(above, below)), min(1.0, 2 * max(below, above))))


def mean_curve_band(p_support: float, p_refute: float, estimate: float, ci: tuple[float, float],
                    refute_ci: tuple[float, float], band: tuple[float, float], censored: bool, **details) -> Decision:
    """A mean-curve statistic inside ``band``, from its tests at the two edges (:mod:`resclaims.decide.means`). A
    censored estimate is a lower bound; the edge tests need no special case (a curve not seen below the threshold
    is never shown to cross early)."""
    return Decision(two_tests(p_support, p_refute), float(estimate), ci, float(p_support), p_refute=float(p_refute),
                    details={"band": list(band), "refute_ci": [float(v) for v in refute_ci],
                             "censored": bool(censored), **details})


def mean_curve_ratio(band: tuple[float, float], threshold: float, budget: int) -> Procedure:
    """Z1.magnitude: identity/zero ratio of the mean curves' crossings in the band.

    "The ratio is above c" is shown where the identity mean loss is shown above the threshold until c t and the
    zero one below it at t, for some t, each at alpha / 2 (:func:`resclaims.decide.means.ratio_tests`; valid
    wherever the crossings' own tests are). Supported if both edges' tests put the ratio inside the band (alpha
    each), refuted if one edge's puts it outside (alpha / 2 each). Nothing is shown past the 20 recorded epochs,
    so a censored identity curve can show the ratio above the band's lower edge, never below its upper one.
    """

    def decide(identity: np.ndarray, zero: np.ndarray) -> Decision:
        epochs = {"identity_epochs": float(mean_crossing(identity.mean(axis=0), threshold, budget)),
                  "zero_epochs": float(mean_crossing(zero.mean(axis=0), threshold, budget))}
        p_support, p_refute = (float(p) for p in means.ratio_band_tests(identity, zero, threshold, band))
        return mean_curve_band(p_support, p_refute, epochs["identity_epochs"] / epochs["zero_epochs"],
                               means.ratio_interval(identity, zero, threshold),
                               means.ratio_interval(identity, zero, threshold, ALPHA / 2), band,
                               epochs["identity_epochs"] >= budget, **epochs)

    def worlds(claim, identity: np.ndarray, zero: np.ndarray) -> dict:
        statistic = lambda i, z: float(mean_crossing(i.mean(axis=0), threshold, budget)  # noqa: E731
                                       / mean_crossing(z.mean(axis=0), threshold, budget))
        return dict(unit=claim.unit, **cal.band_worlds((identity, zero), 0, statistic, band, claim.stated,
                                                       "every identity run's loss"))

    return custom(f"mean-curve ratio in [{band[0]:.4g}, {band[1]:.4g}]",
                  f"inside the source's band [{band[0]:.3g}, {band[1]:.3g}]: {MEANS}; an edge c shown as the identity "
                  "curve's crossing beyond c t and the zero one's before t, each at alpha / 2", decide, worlds,
                  tests=lambda identity, zero: means.ratio_band_tests(identity, zero, threshold, band), best_p=ratio_best_p)


def per_run_ratio_in_band(band: tuple[float, float]) -> Procedure:
    """Z1.magnitude.per_run: the median over experiments of the per-run ratio in the band (sign tests)."""
    median = median_in_band(band, what="every identity run's epochs to 0.01")

    def decide(t_identity: np.ndarray, t_zero: np.ndarray) -> Decision:
        return median.decide(per_run_ratio(t_identity, t_zero))

    def worlds(claim, t_identity: np.ndarray, t_zero: np.ndarray) -> dict:
        statistic = lambda i, z: float(np.median(per_run_ratio(i, z)))  # noqa: E731
        return dict(unit=claim.unit, **cal.band_worlds((t_identity, t_zero), 0, statistic, band, claim.stated,
                                                       "every identity run's epochs to 0.01"))

    return custom(f"median per-run ratio in [{band[0]:.4g}, {band[1]:.4g}]",
                  f"median per-run ratio inside the source's band [{band[0]:.3g}, {band[1]:.3g}]: two one-sided "
                  "exact sign tests, order-statistic interval", decide, worlds,
                  tests=lambda t_identity, t_zero: median.tests(per_run_ratio(t_identity, t_zero)))


def mean_curve_crossing(band: tuple[float, float], threshold: float, budget: int, arm: str) -> Procedure:
    """Z1.zero_epochs, Z1.identity_epochs: the mean curve's crossing epoch in the band.

    A mean curve crosses before b exactly when the mean loss at b is below the threshold (linear between epochs):
    supported if the mean loss is shown above the threshold up to the lower edge and below it at the upper edge
    (alpha each), refuted if it is shown below at the lower edge or above up to the upper edge (alpha / 2 each)
    (:func:`resclaims.decide.means.crossing_tests`).
    """

    def decide(c: np.ndarray) -> Decision:
        estimate = float(mean_crossing(c.mean(axis=0), threshold, budget))
        p_support, p_refute = (float(p) for p in means.crossing_tests(c, threshold, band))
        return mean_curve_band(p_support, p_refute, estimate, means.crossing_interval(c, threshold),
                               means.crossing_interval(c, threshold, ALPHA / 2), band, estimate >= budget)

    def worlds(claim, c: np.ndarray) -> dict:
        statistic = lambda x: float(mean_crossing(x.mean(axis=0), threshold, budget))  # noqa: E731
        return dict(unit=claim.unit, **cal.band_worlds((c,), 0, statistic, band, claim.stated,
                                                       f"every {arm} run's loss"))

    return custom(f"mean-curve crossing in [{band[0]:g}, {band[1]:g}]",
                  f"inside [{band[0]:g}, {band[1]:g}] (the source's reading ± half an epoch): {MEANS}", decide,
                  worlds, tests=lambda c: means.crossing_tests(c, threshold, band), best_p=crossing_best_p)


def spread_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per disjoint pair of experiments (1st and 2nd, 3rd and 4th, ...): |a_i - a_j| - |b_i - b_j|.

    A difference of two runs of one arm has no location, so a difference in means cannot pass for one in
    spread, and no centre is estimated, so the pairs stay independent: centring each arm on its sample median
    made the signs move together, and the sign test said "supported" in 10-12% of skewed worlds with equal
    spreads (the validation suite). Vectorised over leading axes.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    m = a.shape[-1] // 2 * 2
    with np.errstate(invalid="ignore"):  # two censored runs (inf - inf): NaN, a tie for the sign test (against both sides)
        return np.abs(a[..., 0:m:2] - a[..., 1:m:2]) - np.abs(b[..., 0:m:2] - b[..., 1:m:2])


def variance_tests(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Z2's two p-values, vectorised over data sets (rows)."""
    t = sign_test(spread_difference(a, b), 0.0)
    return t.p_above, t.p_below


def z4_tests(tv: np.ndarray, wc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Z4's two p-values, vectorised over data sets (rows)."""
    part, gap = sign_test(tv, 0.0), sign_test(np.asarray(tv) - np.asarray(wc), 0.0)
    return np.maximum(part.p_above, gap.p_above), np.minimum(1.0, 2 * np.minimum(part.p_below, gap.p_below))


def decide_variance(auc_identity: np.ndarray, auc_zero: np.ndarray) -> Decision:
    """Z2: the identity runs spread more: the median of :func:`spread_difference` above 0 (sign tests).

    Only signs count, so heavy tails cannot pass for a spread either. It replaced an exchange test of the SD
    ratio, which rejected in 14.7% of simulated worlds where only the means differed, and whose ratio interval
    refuted 15% of heavy-tailed nulls.
    """
    decision = above(sign_test(spread_difference(auc_identity, auc_zero), 0.0))
    farther = float(np.mean(spread_difference(auc_identity, auc_zero) > 0))  # share of pairs where identity spreads more
    return Decision(decision.verdict, decision.estimate, decision.ci, decision.p_value, p_refute=decision.p_refute,
                    details={**decision.details, "share_identity_farther": farther,
                             "sd_ratio": float(np.std(auc_identity, ddof=1) / np.std(auc_zero, ddof=1))})


def _variance_worlds(claim, auc_identity: np.ndarray, auc_zero: np.ndarray) -> dict:
    return dict(
        null=cal.exchange(auc_identity, auc_zero), null_label="pairs exchanged",
        null_text="identity and zero exchanged within each experiment at random (sign flip of the paired differences)",
        effect=cal.paired_scale(auc_identity, auc_zero), grid=claim.grid, unit=claim.unit,
        effect_text=f"{claim.stated_text}; searched: the identity runs' deviations from their mean rescaled so that "
                    "the SD ratio is the effect; experiments resampled")


variance_ratio_above_one = custom(
    "identity spreads more, paired",
    "median over disjoint pairs of experiments of |identity_i - identity_j| - |zero_i - zero_j| above 0: exact sign "
    "tests (blind to a difference in means, robust to heavy tails), order-statistic interval", decide_variance,
    _variance_worlds, tests=variance_tests, best_p=lambda n: sign_best_p(n // 2))  # n // 2 disjoint pairs


def decide_z4(target_variance: np.ndarray, weight_configuration: np.ndarray) -> Decision:
    """Z4: the source's guess holds if the target-variance part is > 0 and exceeds the weight-configuration part.

    Both are medians over seeds with exact sign tests. Supported: both one-sided tests reject "not so" (an
    intersection-union test: p = the larger, error <= alpha). Refuted: either test shows the opposite, each at
    alpha / 2 (Bonferroni over the two ways the guess can fail: p_refute = 2 x the smaller).
    """
    part, gap = sign_test(target_variance, 0.0), sign_test(target_variance - weight_configuration, 0.0)
    p_support, p_refute = (float(p) for p in z4_tests(target_variance, weight_configuration))
    return Decision(two_tests(p_support, p_refute), float(gap.estimate), gap.ci, p_support, p_refute=p_refute,
                    details={"null": 0.0, "target_variance_part": float(part.estimate)})


def _z4_worlds(claim, tv: np.ndarray, wc: np.ndarray, gap: np.ndarray) -> dict:
    stated = float(np.median(gap))
    return dict(
        null=cal.exchange(tv, wc), null_label="parts exchanged",
        null_text="the two parts exchanged within each seed at random (the parts are equal in distribution)",
        effect=cal.paired_shift(tv, wc, np.median), stated_effect=stated, grid=claim.grid, unit=claim.unit,
        effect_text=f"the source's guess taken fully: the whole identity - zero gap ({stated:.3g} epochs, median over "
                    "seeds) is target variance and none is weight configuration: the per-seed difference of the "
                    "parts re-centred on 0 (median), then that much moved from the weight-configuration part to the "
                    "target-variance part (each seed's gap unchanged); seeds resampled")


target_variance_is_the_cause = custom(
    "target variance exceeds weight configuration",
    "supported if the target-variance part's median is > 0 and exceeds the weight-configuration part's (both exact "
    "sign tests at alpha); refuted if either shows the opposite (sign tests at alpha / 2 each)",
    lambda tv, wc, gap=None: decide_z4(tv, wc), _z4_worlds, tests=lambda tv, wc, gap=None: z4_tests(tv, wc),
    best_p=lambda n: band_best_p(sign_best_p(n)))  # both sign tests' best (every seed on one side) as a band's


# -- Z3: exact properties, checked with hypothesis ---------------------------------------------
images = arrays(np.float32, st.tuples(st.integers(1, 4), st.integers(3, 12), st.integers(3, 12)),
                elements=st.floats(-1e3, 1e3, width=32))
PROPERTY_PROTOCOL = "exact check on random images of 1-4 samples, 3x3 to 12x12, values in [-1000, 1000]"


def kernel(values: list[float]) -> OneConv:
    model = OneConv()
    with torch.no_grad():
        model.conv1.weight.copy_(torch.tensor(values).reshape(1, 1, 3, 3))
    return model


def check_property(claim, prop, judge, examples: int = 300) -> None:
    """Run a hypothesis property; "supported" over the examples it checked, or "refuted" with the counterexample."""
    checked = []

    @hypothesis_settings(max_examples=examples, deadline=None, database=None, derandomize=True)
    @given(images)
    def check(x):
        prop(torch.from_numpy(x).unsqueeze(1))  # (B, 1, H, W)
        checked.append(1)

    error = None
    try:
        check()
    except AssertionError as failure:
        error = str(failure)
    judge.exact(claim, error is None, float(error is None), n=len(checked), protocol=PROPERTY_PROTOCOL,
                details={"counterexample": error} if error else {},
                why="exact, no sampling: the property is checked on every input")
