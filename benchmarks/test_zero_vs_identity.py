"""Z1-Z4: a 9-parameter conv learns the zero mapping faster than the identity (source 001).

Source sentences (Martyn 2019, "How residual shortcuts speed up learning"):
  Z1 "In the zero setting the model reduces the L1 loss to below 0.01 (dashed line)
     in 3.5 epochs, in the identity setting the model takes 10 epochs to achieve
     this." / "The model learns a mapping to zero almost three times faster than it
     learns the identity function."
  Z2 "The wider confidence interval indicates greater variance in the identity setting."
  Z3 "If every weight in the kernel is zero, then every input will be multiplied by
     zero and so the output must be zero in every position"; "the central kernel
     weight to 1.0" gives the identity; the model has "only 9 parameters".
  Z4 "Further investigation is needed. My guess would be that the target variance is
     the cause."

Protocol: the source's, in both tiers (OneConv, kaiming_normal_ fan_out, Adam
defaults, L1, batch 1, 200 uniform 3x3 images, 20 epochs, float32, loss recorded as
epoch sum / 20). Experiments per setting: quick 400, full 2,000, plus (full) the
source's exact 100 as rows of their own. Deviations: seeds come from the base seed
(the source is unseeded), and each experiment's two fresh models draw their
kernels from separate seeded streams; models train seed-batched (equal to the
source's loop: tests/test_zero_identity_kernel.py).

Statistics (alpha = 0.05, 95% intervals, decision rules fixed from the source's
text before any run):
  Z1.direction  per-experiment epochs to 0.01 (sub-epoch interpolation; a run that
                never gets there is censored at the 20-epoch budget), identity minus
                zero, paired by experiment. Estimate: median difference, BCa bootstrap
                CI; test: one-sided Wilcoxon signed-rank. Supported if p < alpha and
                the CI is above 0.
  Z1.magnitude  identity/zero ratio of the mean curves' crossing epochs (the source
                reads its plot's mean curves). The source states 3.5 and 10 epochs, read
                to half an epoch, so its ratio lies in [9.5/4, 10.5/3] = [2.375, 3.5].
                Supported if the bootstrap CI lies in that band, refuted if disjoint.
  Z1.zero_epochs, Z1.identity_epochs  the mean curves' crossing epochs against
                3.5 ± 0.5 and 10 ± 0.5, same rule.
  Z1 sweep      the ratio at thresholds from 0.001 to 1 (a figure and a table).
  Z2            SD of the per-run mean loss over the 20 epochs, identity / zero. Paired
                bootstrap CI; one-sided exchange test of the SD ratio (identity and zero
                swapped within experiments at random). Supported if p < alpha and the CI
                is above 1. (The first version used Pitman-Morgan's test, which assumes
                normal data: calibration showed it rejecting 38% of simulated nulls, because
                a few dead-ReLU identity runs have mean losses near 5.)
  Z3            exact facts, as hypothesis property tests.
  Z4            the source's gap splits exactly in two. Three models per seed, all from
                the seed's same initial kernel:
                  zero       X -> 0: zero optimum, constant target (the source's)
                  identity   X -> X: centre-one optimum, varying target (the source's)
                  shortcut   X -> X through relu(x + conv(x)): zero optimum, varying target
                The shortcut model has the identity's targets and the zero model's optimum
                and starting distance, so in epochs to 0.01 (censored), per seed,
                  identity - zero = (identity - shortcut) + (shortcut - zero)
                                  = weight configuration + target variance.
                Wilcoxon + BCa bootstrap on each part. The source's guess is supported if
                the target-variance part is > 0 and larger than the weight-configuration
                part (paired), refuted if it is <= 0 or smaller, else inconclusive.
                A fourth cell (one image repeated, x0 -> x0: centre optimum, constant target)
                was in the first design; it also removes input diversity, which leaves a
                9x9 system that is ill-conditioned and slow to fit, so it is reported only.

Diverged runs (NaN or inf loss) are left out of every statistic, with their pair, and counted.

Calibration (resclaims.calibration; quick 200 simulated data sets per rate, full 1000): each
claim's decision is one function (the decide_* procedures below) that the claim test and the
calibration both call. Nulls: for the paired claims (Z1.direction, Z2, Z4 and its parts) the
two members of each pair are exchanged at random; for the band claims one setting's per-run
quantity is rescaled (the loss of every run, or for the per-run ratio every identity run's
epochs) so that the statistic of all runs sits on the band edge nearer the estimate, and runs
are resampled. Power at the source's numbers (10 - 3.5 epochs; ratio 10 / 3.5; 3.5 and 10
epochs; for Z4 the whole gap as target variance) is injected the same way; a claim whose power
there is below 0.8 reports "inconclusive" where it would have said "refuted".
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings as hypothesis_settings, strategies as st
from hypothesis.extra.numpy import arrays

from resclaims import calibration, plotting, zero_identity
from resclaims.procedures import paired_difference
from resclaims.stats import (
    ALPHA,
    bootstrap_ci,
    bootstrap_mean_curves,
    crossing_epochs,
    paired_exchange_test,
    paired_signed_rank,
)
from resclaims.verdict import (
    INCONCLUSIVE,
    REFUTED,
    SUPPORTED,
    ClaimResult,
    Decision,
    claim_result,
    directional,
    with_power,
    within_band,
)
from resclaims.zero_identity import (
    SOURCE_PROTOCOL,
    TASKS,
    TIERS,
    OneConv,
    ZeroIdentityConfig,
    curves,
    experiment_inputs,
    finite_pairs,
    initial_weights,
    task_data,
    train,
    train_batched,
    train_sequential,
)

SOURCE = "001"
SOURCE_ZERO_EPOCHS, SOURCE_IDENTITY_EPOCHS, READING = 3.5, 10.0, 0.5  # read off the source's plot to half an epoch
RATIO_BAND = (
    (SOURCE_IDENTITY_EPOCHS - READING) / (SOURCE_ZERO_EPOCHS + READING),
    (SOURCE_IDENTITY_EPOCHS + READING) / (SOURCE_ZERO_EPOCHS - READING),
)  # (2.375, 3.5)
ZERO_BAND = (SOURCE_ZERO_EPOCHS - READING, SOURCE_ZERO_EPOCHS + READING)
IDENTITY_BAND = (SOURCE_IDENTITY_EPOCHS - READING, SOURCE_IDENTITY_EPOCHS + READING)
SOURCE_RATIO = SOURCE_IDENTITY_EPOCHS / SOURCE_ZERO_EPOCHS  # "almost three times faster": 10 / 3.5
SWEEP = np.geomspace(0.001, 1.0, 16)  # thresholds, source scale
PROTOCOL = (
    "001's protocol: OneConv, kaiming_normal_ fan_out, Adam defaults, L1, batch 1, 200 uniform 3x3 images, "
    "20 epochs, float32, loss = epoch sum / 20; deviations: seeded (base seed) data and kernels, seed-batched training"
)


# -- runs -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def config(settings) -> ZeroIdentityConfig:
    return settings.config(TIERS)


def trained(request, config: ZeroIdentityConfig, stream: str, n: int, tasks=("identity", "zero"), shared_init=False):
    """Runs for ``n`` seeds of ``stream``, from the run cache or trained seed-batched; recorded in the report."""
    settings, run_cache, progress, report = (request.getfixturevalue(name) for name in
                                             ("settings", "run_cache", "progress", "report"))
    seeds = settings.run_seeds(stream, n)
    with progress.track(f"Z ({stream})", ", ".join(tasks), n, config.epochs) as on_epoch:
        frame = run_cache.runs(
            zero_identity,
            lambda missing: train(config, missing, tasks, device=settings.device, shared_init=shared_init, on_epoch=on_epoch),
            seeds, device_kind=settings.device.type, config=config, tasks=tasks, shared_init=shared_init,
        )
    report.add_runs("Z", frame.assign(stream=stream))
    return frame


@pytest.fixture(scope="module")
def runs(request, config) -> pd.DataFrame:
    """identity and zero for every experiment: the data of Z1 and Z2."""
    return trained(request, config, "Z", config.n_seeds)


@pytest.fixture(scope="module")
def source_runs(request) -> pd.DataFrame:
    """The source's exact 100 experiments (full tier)."""
    return trained(request, SOURCE_PROTOCOL, "Z-source-100", SOURCE_PROTOCOL.n_seeds)


@pytest.fixture(scope="module")
def factorial_runs(request, config) -> pd.DataFrame:
    """The Z4 models at the same seeds, each seed's models starting from the same kernel."""
    return trained(request, config, "Z4", config.n_seeds, tasks=tuple(TASKS), shared_init=True)


def convergence_counts(frame: pd.DataFrame, threshold: float) -> dict[str, dict[str, int]]:
    """Per setting: runs that never got below the threshold, that never moved (dead ReLU), that diverged."""
    counts = {}
    for setting in frame.setting.unique():
        _, c = curves(frame, setting)
        finite = np.isfinite(c).all(axis=1)
        counts[setting] = {
            "runs": len(c),
            "never_below_threshold": int(np.isinf(crossing_epochs(c[finite], threshold)).sum()),
            "dead_from_start": int((np.ptp(c[finite], axis=1) == 0).sum()),
            "diverged": int((~finite).sum()),
        }
    return counts


def censored_crossings(c: np.ndarray, threshold: float) -> np.ndarray:
    """Epochs to the threshold; a run that never gets there counts as the budget (its epoch count)."""
    return np.minimum(crossing_epochs(c, threshold), c.shape[1])


def mean_crossing(mean_curves: np.ndarray, threshold: float, budget: int) -> np.ndarray:
    """The epoch at which each mean curve, shape (..., epochs), gets below the threshold, censored at the budget."""
    means = np.asarray(mean_curves, dtype=float)
    t = crossing_epochs(means.reshape(-1, means.shape[-1]), threshold).reshape(means.shape[:-1])
    return np.minimum(t, budget)


def per_run_ratio(t_identity: np.ndarray, t_zero: np.ndarray) -> np.ndarray:
    return t_identity / np.maximum(t_zero, 1e-9)


def sd_ratio(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.std(a, ddof=1, axis=axis) / np.std(b, ddof=1, axis=axis)


# -- procedures: each claim's whole decision, one function of its runs ------------------
# The claim tests and the calibration (resclaims.calibration) call these same functions.
def decide_direction(t_identity: np.ndarray, t_zero: np.ndarray) -> Decision:
    """Z1.direction: median paired difference in epochs (BCa CI), one-sided Wilcoxon; directional rule."""
    difference = bootstrap_ci((t_identity - t_zero,), np.median, vectorized=True)
    p = paired_signed_rank(t_identity, t_zero, alternative="greater")
    return Decision(directional(difference.ci, p), difference.estimate, difference.ci, p)


def decide_mean_ratio(identity: np.ndarray, zero: np.ndarray, *, threshold: float, budget: int) -> Decision:
    """Z1.magnitude: identity/zero ratio of the mean curves' crossings (BCa CI, runs resampled) in the band.

    A censored identity crossing makes the ratio a lower bound, which can refute but not support.
    """
    ratio = bootstrap_mean_curves(
        (identity, zero), lambda i, z: mean_crossing(i, threshold, budget) / mean_crossing(z, threshold, budget))
    epochs = {"identity_epochs": float(mean_crossing(identity.mean(axis=0), threshold, budget)),
              "zero_epochs": float(mean_crossing(zero.mean(axis=0), threshold, budget))}
    censored = epochs["identity_epochs"] >= budget
    return Decision(within_band(ratio.ci, RATIO_BAND, lower_bound=censored), ratio.estimate, ratio.ci,
                    details={"band": list(RATIO_BAND), "censored": bool(censored), **epochs})


def decide_per_run_ratio(t_identity: np.ndarray, t_zero: np.ndarray) -> Decision:
    """Z1.magnitude.per_run: median over experiments of the per-run ratio (BCa CI) in the band."""
    ratio = bootstrap_ci((per_run_ratio(t_identity, t_zero),), np.median, vectorized=True)
    return Decision(within_band(ratio.ci, RATIO_BAND), ratio.estimate, ratio.ci, details={"band": list(RATIO_BAND)})


def decide_mean_crossing(c: np.ndarray, *, band: tuple[float, float], threshold: float, budget: int) -> Decision:
    """Z1.zero_epochs, Z1.identity_epochs: the mean curve's crossing epoch (BCa CI) in the band."""
    crossing = bootstrap_mean_curves((c,), lambda m: mean_crossing(m, threshold, budget))
    censored = crossing.estimate >= budget
    return Decision(within_band(crossing.ci, band, lower_bound=censored), crossing.estimate, crossing.ci,
                    details={"band": list(band), "censored": bool(censored)})


def decide_variance(auc_identity: np.ndarray, auc_zero: np.ndarray) -> Decision:
    """Z2: SD ratio identity / zero (paired BCa CI), one-sided exchange test of the ratio; directional rule at 1.

    The exchange test replaced Pitman-Morgan's (a Pearson correlation test of sums and differences), which
    assumes normal data: the dead-ReLU identity runs' mean losses near 5 make it reject 38% of simulated nulls.
    """
    ratio = bootstrap_ci((auc_identity, auc_zero), sd_ratio, paired=True, vectorized=True)
    p = paired_exchange_test(auc_identity, auc_zero, sd_ratio, alternative="greater")
    return Decision(directional(ratio.ci, p, null=1.0), ratio.estimate, ratio.ci, p)


def decide_z4(target_variance: np.ndarray, weight_configuration: np.ndarray) -> Decision:
    """Z4: the source's guess holds if the target-variance part is > 0 and exceeds the weight-configuration part.

    supported: the target-variance part is supported (> 0) and the per-seed difference of the parts is > 0
    (one-sided Wilcoxon p < alpha, BCa CI of the mean above 0); refuted: the part's CI is <= 0 or the
    difference's CI is below 0; else inconclusive.
    """
    part = paired_difference(target_variance, np.zeros_like(target_variance))
    gap = bootstrap_ci((target_variance - weight_configuration,), np.mean, vectorized=True)
    p = paired_signed_rank(target_variance, weight_configuration, alternative="greater")
    if part.verdict == SUPPORTED and gap.low > 0 and p < ALPHA:
        verdict = SUPPORTED
    elif part.ci[1] <= 0 or gap.high < 0:
        verdict = REFUTED
    else:
        verdict = INCONCLUSIVE
    return Decision(verdict, gap.estimate, gap.ci, p)


# -- calibration: each procedure under simulated nulls and at the source's stated effect --
SHIFTS = calibration.geometric_grid(0.05, 8.0)  # effects searched, epochs
SD_RATIOS = tuple(1 + d for d in calibration.geometric_grid(0.05, 8.0))  # effects searched, SD ratio
EXCHANGE = "identity and zero exchanged within each experiment at random (sign flip of the paired differences)"


def z1_data(frame: pd.DataFrame, cfg: ZeroIdentityConfig) -> dict:
    """Z1's inputs: paired curves without diverged runs, their crossings, and the converged pairs."""
    identity, zero, diverged = finite_pairs(frame, "identity", "zero")
    converged = np.isfinite(crossing_epochs(identity, cfg.threshold)) & np.isfinite(crossing_epochs(zero, cfg.threshold))
    return dict(identity=identity, zero=zero, diverged=diverged, converged=converged,
                t_identity=censored_crossings(identity, cfg.threshold), t_zero=censored_crossings(zero, cfg.threshold))


def z1_procedures(cfg: ZeroIdentityConfig, budget: int) -> dict:
    common = dict(threshold=cfg.threshold, budget=budget)
    return {
        "direction": decide_direction,
        "magnitude": functools.partial(decide_mean_ratio, **common),
        "per_run": decide_per_run_ratio,
        "zero_epochs": functools.partial(decide_mean_crossing, band=ZERO_BAND, **common),
        "identity_epochs": functools.partial(decide_mean_crossing, band=IDENTITY_BAND, **common),
    }


def calibrate_z1(calibrate, frame: pd.DataFrame, cfg: ZeroIdentityConfig, suffix: str = "") -> calibration.Calibrations:
    """Every Z1 procedure calibrated on its own data, each when first asked for."""
    data = z1_data(frame, cfg)
    budget = data["identity"].shape[1]
    procedures = z1_procedures(cfg, budget)
    ti, tz, identity, zero, converged = (data[k] for k in ("t_identity", "t_zero", "identity", "zero", "converged"))
    mean_ratio = lambda i, z: float(mean_crossing(i.mean(axis=0), cfg.threshold, budget)  # noqa: E731
                                    / mean_crossing(z.mean(axis=0), cfg.threshold, budget))
    mean_epochs = lambda c: float(mean_crossing(c.mean(axis=0), cfg.threshold, budget))  # noqa: E731
    median_ratio = lambda i, z: float(np.median(per_run_ratio(i, z)))  # noqa: E731
    band = calibration.band_wiring
    wirings = {
        "Z1.direction": lambda: dict(procedure=procedures["direction"], **calibration.paired_wiring(
            ti, tz, members="identity and zero runs of an experiment", grid=SHIFTS, unit="epochs", center=np.median,
            stated=SOURCE_IDENTITY_EPOCHS - SOURCE_ZERO_EPOCHS, stated_text="the source's 10 - 3.5 epochs")),
        "Z1.magnitude": lambda: dict(procedure=procedures["magnitude"], unit="x", **band(
            (identity, zero), 0, mean_ratio, RATIO_BAND, SOURCE_RATIO, "every identity run's loss")),
        "Z1.magnitude.converged": lambda: dict(procedure=procedures["magnitude"], unit="x", **band(
            (identity[converged], zero[converged]), 0, mean_ratio, RATIO_BAND, SOURCE_RATIO, "every identity run's loss")),
        "Z1.magnitude.per_run": lambda: dict(procedure=procedures["per_run"], unit="x", **band(
            (ti, tz), 0, median_ratio, RATIO_BAND, SOURCE_RATIO, "every identity run's epochs to 0.01")),
        "Z1.zero_epochs": lambda: dict(procedure=procedures["zero_epochs"], unit="epochs", **band(
            (zero,), 0, mean_epochs, ZERO_BAND, SOURCE_ZERO_EPOCHS, "every zero run's loss")),
        "Z1.identity_epochs": lambda: dict(procedure=procedures["identity_epochs"], unit="epochs", **band(
            (identity,), 0, mean_epochs, IDENTITY_BAND, SOURCE_IDENTITY_EPOCHS, "every identity run's loss")),
    }
    return calibration.Calibrations(calibrate, {f"{claim_id}{suffix}": wiring for claim_id, wiring in wirings.items()})


# -- Z1 ---------------------------------------------------------------------------------
def z1_direction(frame: pd.DataFrame, cfg: ZeroIdentityConfig, tier: str, suffix: str = "") -> ClaimResult:
    data = z1_data(frame, cfg)
    claim_id = f"Z1.direction{suffix}"
    result = claim_result(
        decide_direction(data["t_identity"], data["t_zero"]),
        id=claim_id,
        claim="the zero mapping reaches loss 0.01 sooner than the identity mapping",
        source=SOURCE,
        n=len(data["t_zero"]),
        statistic="median paired difference in epochs to 0.01, identity - zero",
        test="one-sided Wilcoxon signed-rank (Pratt), BCa bootstrap CI; censored at the budget",
        tier=tier,
        protocol=PROTOCOL,
        details={
            "median_epochs_identity": float(np.median(data["t_identity"])),
            "median_epochs_zero": float(np.median(data["t_zero"])),
            "convergence": convergence_counts(frame, cfg.threshold),
            "diverged_pairs_excluded": data["diverged"],
        },
    )
    return result


def z1_magnitude(frame: pd.DataFrame, cfg: ZeroIdentityConfig, tier: str, suffix: str = "") -> list[ClaimResult]:
    """The ratio three ways (all runs as the source, converged runs only, per run) and the two crossing epochs.

    A dead-ReLU identity run keeps a loss near 5 for ever, which alone holds the
    mean of n curves above 0.01 when n < 500: the source's mean-curve reading
    depends on whether its sample happened to contain one. So the ratio is also
    computed without the pairs in which a run never reaches 0.01 (they are
    counted), and per run. Crossings past the budget are censored: such an
    estimate is a lower bound, which can refute but not support.
    """
    data = z1_data(frame, cfg)
    identity, zero, converged = data["identity"], data["zero"], data["converged"]
    budget = identity.shape[1]
    procedures = z1_procedures(cfg, budget)
    common = dict(source=SOURCE, tier=tier, protocol=PROTOCOL)
    band_text = f"[{RATIO_BAND[0]:.3g}, {RATIO_BAND[1]:.3g}]"
    results = []
    for part, (i, z), how in (
        ("", (identity, zero), "all runs, as the source plots them"),
        (".converged", (identity[converged], zero[converged]), f"only the {converged.sum()} pairs in which both runs reach 0.01"),
    ):
        decision = procedures["magnitude"](i, z)
        results.append(claim_result(
            decision,
            id=f"Z1.magnitude{part}{suffix}",
            claim="the zero mapping is learnt almost three times faster than the identity",
            n=len(z),
            statistic=f"identity/zero ratio of the mean curves' epochs to 0.01 ({how})"
                      + (" - a lower bound: the identity mean curve never got there" if decision.details["censored"] else ""),
            test=f"bootstrap CI (BCa, experiments resampled) inside the source's band {band_text}",
            details={"pairs_excluded": int((~converged).sum()) if part else 0},
            **common,
        ))
    results.append(claim_result(
        procedures["per_run"](data["t_identity"], data["t_zero"]),
        id=f"Z1.magnitude.per_run{suffix}",
        claim="the zero mapping is learnt almost three times faster than the identity",
        n=len(data["t_zero"]),
        statistic="median over experiments of the identity/zero ratio of epochs to 0.01 (censored at the budget)",
        test=f"bootstrap CI (BCa) of the median inside the source's band {band_text}",
        **common,
    ))
    for setting, c, stated in (("zero", zero, SOURCE_ZERO_EPOCHS), ("identity", identity, SOURCE_IDENTITY_EPOCHS)):
        decision = procedures[f"{setting}_epochs"](c)
        band = decision.details["band"]
        results.append(claim_result(
            decision,
            id=f"Z1.{setting}_epochs{suffix}",
            claim=f"in the {setting} setting the mean loss gets below 0.01 in {stated:g} epochs",
            n=len(c),
            statistic=f"{setting} mean curve's epoch at 0.01, all runs (x as the source plots it, first epoch = 0)"
                      + (f" - censored at the {budget}-epoch budget" if decision.details["censored"] else ""),
            test=f"bootstrap CI (BCa) inside [{band[0]:g}, {band[1]:g}] (the source's reading ± half an epoch)",
            **common,
        ))
    return results


def threshold_sweep(frame: pd.DataFrame) -> pd.DataFrame:
    identity, zero, _ = finite_pairs(frame, "identity", "zero")
    budget = identity.shape[1]
    rows = []
    for threshold in SWEEP:
        ratio = bootstrap_mean_curves(
            (identity, zero), lambda i, z: mean_crossing(i, threshold, budget) / mean_crossing(z, threshold, budget),
            n_resamples=500, method="percentile",
        )
        rows.append({"threshold": threshold, "ratio": ratio.estimate, "low": ratio.low, "high": ratio.high})
    return pd.DataFrame(rows)


def plot_sweep(sweep: pd.DataFrame, path, threshold: float) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.8))
    ax.plot(sweep.threshold, sweep.ratio, marker="o", label="identity / zero, mean curves")
    ax.fill_between(sweep.threshold, sweep.low, sweep.high, alpha=0.25, label="95% bootstrap CI")
    ax.axhspan(*RATIO_BAND, color="green", alpha=0.1, label="source's claim (2.4-3.5x)")
    ax.axvline(threshold, linestyle="--", color="gray", label=f"source's threshold {threshold:g}")
    ax.set(xscale="log", xlabel="loss threshold (source scale: epoch sum / 20)", ylabel="ratio of epochs to threshold",
           title="Z1: how the identity/zero ratio depends on the dashed line")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@pytest.fixture(scope="module")
def z1_calibrations(calibrate, runs, config) -> dict:
    return calibrate_z1(calibrate, runs, config)


@pytest.mark.quick
@pytest.mark.full
def test_Z1_direction(runs, config, settings, report, z1_calibrations):
    result = with_power(z1_direction(runs, config, settings.tier), z1_calibrations["Z1.direction"].power_rate)
    counts = result.details["convergence"]
    report.note("Z1", "runs that never reached 0.01 in 20 epochs, never moved, or diverged, per setting: " + "; ".join(
        f"{s}: {c['never_below_threshold']} never below, {c['dead_from_start']} dead, {c['diverged']} diverged of {c['runs']}"
        for s, c in counts.items()))
    report.verify(result)


@pytest.fixture(scope="module")
def z1_results(runs, config, settings, report) -> dict[str, ClaimResult]:
    """Z1's magnitude rows (before the power check), with the sweep and the learning-curve figures, computed once."""
    sweep = threshold_sweep(runs)
    plot_sweep(sweep, report.figure_path("Z1", "Z1_threshold_sweep"), config.threshold)
    report.note("Z1", "threshold sweep, identity/zero ratio of mean-curve crossings (values from a censored identity "
                "curve are lower bounds): " + ", ".join(
                    f"{t:.3g}: {r:.2f} [{lo:.2f}, {hi:.2f}]" for t, r, lo, hi in sweep.itertuples(index=False)))
    plotting.plot_learning_curves(
        runs, report.figure_path("Z1", "Z1_learning_curves_source_scale"), threshold=config.threshold,
        title=f"Z1: training loss, identity vs zero (source scale: epoch sum / {config.epochs}), as in 001",
        ylabel=f"L1 loss, epoch sum / {config.epochs}",
    )
    to_mean = config.scale_factor() / config.scale_factor("mean")
    plotting.plot_learning_curves(
        runs.assign(loss=runs.loss * to_mean), report.figure_path("Z1", "Z1_learning_curves_mean_scale"), logy=True,
        threshold=config.threshold * to_mean, ylabel="L1 loss, per-sample mean",
        title="Z1: training loss, identity vs zero (per-sample mean L1, log scale)",
    )
    return {result.id: result for result in z1_magnitude(runs, config, settings.tier)}
# Measured with base seed 20190403: quick n = 400, full n = 2000 (CPU, torch 2.13).
Z1_ROWS = [
    pytest.param("Z1.magnitude", marks=pytest.mark.xfail(strict=True, reason=(
        "inconclusive: dead-ReLU identity runs (5/400) keep the identity mean curve (all runs, as the source plots it) "
        "above 0.01 for all 20 epochs, so the ratio is only a lower bound: >= 3.10 [2.95, 3.27] (quick), "
        ">= 2.97 [2.91, 3.03] (full); band [2.375, 3.5]"))),
    pytest.param("Z1.magnitude.converged", marks=pytest.mark.xfail(strict=True, reason=(
        "inconclusive/refuted: without pairs that never reach 0.01, ratio 2.34 [1.88, 2.68] (quick, n = 393; power "
        "0.69 at 2.857), 2.12 [1.91, 2.31] (full, n = 1972, refuted; no rescaled world has 2.857: the mean curve's "
        "crossing jumps from 2.67 to the 20-epoch budget); band [2.375, 3.5]"))),
    pytest.param("Z1.magnitude.per_run", marks=pytest.mark.xfail(strict=True, reason=(
        "refuted: median per-run ratio 1.56 [1.39, 1.73] (quick, n = 400), 1.45 [1.39, 1.51] (full, n = 2000); "
        "band [2.375, 3.5]"))),
    pytest.param("Z1.zero_epochs", marks=pytest.mark.xfail(strict=True, reason=(
        "refuted: the zero mean curve reaches 0.01 at epoch 6.45 [6.11, 6.77] (quick), 6.73 [6.59, 6.88] (full), "
        "not 3.5 ± 0.5"))),
    pytest.param("Z1.identity_epochs", marks=pytest.mark.xfail(strict=True, reason=(
        "inconclusive: the identity mean curve (all runs) is still above 0.01 after 20 epochs at both tiers, not "
        "10 ± 0.5, but the procedure cannot refute: its power where the true crossing is 10 epochs is 0.00 "
        "[0.00, 0.02] (quick), 0.00 [0.00, 0.004] (full): dead-ReLU runs keep resampled mean curves above 0.01"))),
]


@pytest.mark.quick
@pytest.mark.full
@pytest.mark.parametrize("claim_id", Z1_ROWS)
def test_Z1_magnitude(z1_results, z1_calibrations, claim_id, report):
    report.verify(with_power(z1_results[claim_id], z1_calibrations[claim_id].power_rate))



@pytest.mark.xfail(strict=True, reason=(
    "inconclusive on the source's own 100 experiments (full tier): identity mean curve censored, ratio >= 2.77 "
    "[1.73, 3.33]; converged ratio 1.74 [1.44, 2.10] refuted; per-run ratio 1.36 [1.11, 1.51] and zero epochs 7.21 "
    "[6.68, 8.00] lie outside their bands but are inconclusive: power 0.35 and 0.43 at the source's values with "
    "100 experiments; direction supported"))
@pytest.mark.full
def test_Z1_source_protocol_100(source_runs, calibrate, settings, report):
    """The source's own 100 experiments, as rows of their own."""
    calibrations = calibrate_z1(calibrate, source_runs, SOURCE_PROTOCOL, suffix="@source100")
    direction, *magnitude = (with_power(r, calibrations[r.id].power_rate) for r in [
        z1_direction(source_runs, SOURCE_PROTOCOL, settings.tier, suffix="@source100"),
        *z1_magnitude(source_runs, SOURCE_PROTOCOL, settings.tier, suffix="@source100")])
    for result in [direction, *magnitude[1:]]:
        report.record(result)
    report.verify(magnitude[0])


# -- Z2 ---------------------------------------------------------------------------------
def z2_data(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-run mean loss over the epochs, identity and zero, paired, without diverged pairs."""
    identity, zero, diverged = finite_pairs(frame, "identity", "zero")
    return identity.mean(axis=1), zero.mean(axis=1), diverged


@pytest.fixture(scope="module")
def z2_calibrations(calibrate, runs) -> dict:
    auc_identity, auc_zero, _ = z2_data(runs)
    return {"Z2": calibrate(
        "Z2", procedure=decide_variance, null=calibration.exchange(auc_identity, auc_zero), null_text=EXCHANGE,
        null_label="pairs exchanged",
        effect=calibration.paired_scale(auc_identity, auc_zero), grid=SD_RATIOS, unit="(SD ratio)",
        effect_text="none stated (the source reads a wider band off its plot); searched: "
                    "the identity runs' deviations from their mean rescaled so that the SD ratio is the effect; "
                    "experiments resampled")}


@pytest.mark.quick
@pytest.mark.full
def test_Z2_identity_has_greater_variance(runs, settings, report, z2_calibrations):
    identity, zero, diverged = finite_pairs(runs, "identity", "zero")
    auc_identity, auc_zero, _ = z2_data(runs)
    per_epoch = np.std(identity, axis=0, ddof=1) / np.std(zero, axis=0, ddof=1)
    report.verify(with_power(claim_result(
        decide_variance(auc_identity, auc_zero),
        id="Z2",
        claim="greater variance across runs in the identity setting",
        source=SOURCE,
        n=len(auc_zero),
        statistic="SD across runs of the per-run mean loss over 20 epochs, identity / zero",
        test="one-sided exchange test of the SD ratio (identity and zero swapped within experiments; scipy "
             "permutation_test, 2000 resamples), paired BCa bootstrap CI",
        tier=settings.tier,
        protocol=PROTOCOL,
        details={"sd_ratio_per_epoch": per_epoch.tolist(), "diverged_pairs_excluded": diverged},
    ), z2_calibrations["Z2"].power_rate))

# -- Z3 ---------------------------------------------------------------------------------
images = arrays(np.float32, st.tuples(st.integers(1, 4), st.integers(3, 12), st.integers(3, 12)),
                elements=st.floats(-1e3, 1e3, width=32))


def kernel(values: list[float]) -> OneConv:
    model = OneConv()
    with torch.no_grad():
        model.conv1.weight.copy_(torch.tensor(values).reshape(1, 1, 3, 3))
    return model


def property_claim(claim_id: str, claim: str, prop, settings, report, examples: int = 300) -> None:
    """Run a hypothesis property; record "supported" over the examples it checked, or "refuted"."""
    checked = []

    @hypothesis_settings(max_examples=examples, deadline=None, database=None, derandomize=True)
    @given(images)
    def check(x):
        prop(torch.from_numpy(x).unsqueeze(1))  # (B, 1, H, W)
        checked.append(1)

    verdict, error = SUPPORTED, None
    try:
        check()
    except AssertionError as failure:
        verdict, error = REFUTED, str(failure)
    report.add_calibration(calibration.exact(claim_id, "exact, no sampling: the property is checked on every input"))
    report.verify(ClaimResult(
        id=claim_id, claim=claim, source=SOURCE, verdict=verdict, estimate=float(verdict == SUPPORTED),
        ci=(float(verdict == SUPPORTED),) * 2, p_value=None, n=len(checked),
        statistic="1 if the property held on every generated input", test="hypothesis property test (exact)",
        tier=settings.tier, protocol="exact check on random images of 1-4 samples, 3x3 to 12x12, values in [-1000, 1000]",
        details={"counterexample": error} if error else {},
    ))


@pytest.mark.quick
@pytest.mark.full
def test_Z3_zero_kernel_outputs_zero(settings, report):
    zero = kernel([0.0] * 9)

    def prop(x):
        assert torch.equal(zero(x), torch.zeros_like(x))

    property_claim("Z3.zero_kernel", "a zero kernel outputs zero at every position", prop, settings, report)


@pytest.mark.quick
@pytest.mark.full
def test_Z3_centre_kernel_is_identity(settings, report):
    centre = kernel([0, 0, 0, 0, 1.0, 0, 0, 0, 0])

    def prop(x):
        x = x.abs()  # the source's inputs are non-negative; after the ReLU the identity holds there
        assert torch.equal(centre(x), x)

    property_claim("Z3.centre_kernel", "a kernel with central weight 1 maps its input to itself", prop, settings, report)


@pytest.mark.quick
@pytest.mark.full
def test_Z3_nine_parameters(settings, report):
    count = sum(p.numel() for p in OneConv().parameters())
    report.add_calibration(calibration.exact("Z3.parameters"))
    report.verify(ClaimResult(
        id="Z3.parameters", claim="the model has only 9 parameters", source=SOURCE,
        verdict=SUPPORTED if count == 9 else REFUTED, estimate=float(count), ci=(float(count),) * 2, p_value=None,
        n=1, statistic="parameters of OneConv(1)", test="exact count", tier=settings.tier, protocol="OneConv(1) as in 001",
    ))


# -- Z4 ---------------------------------------------------------------------------------
def factorial_effects(frame: pd.DataFrame, threshold: float) -> dict[str, np.ndarray]:
    """Per seed: epochs to the threshold per task, and the two parts of the identity - zero gap.

    A seed with a diverged run (NaN loss) is left out of every part and counted.
    """
    runs = {name: curves(frame, name)[1] for name in TASKS}
    finite = np.logical_and.reduce([np.isfinite(c).all(axis=1) for c in runs.values()])
    epochs = {name: censored_crossings(c[finite], threshold) for name, c in runs.items()}
    return {
        "epochs": epochs,
        "weight_configuration": epochs["identity"] - epochs["residual_identity"],  # same targets
        "target_variance": epochs["residual_identity"] - epochs["zero"],  # same optimum and start
        "diverged_seeds_excluded": int((~finite).sum()),
    }


@pytest.fixture(scope="module")
def z4_calibrations(calibrate, factorial_runs, config) -> calibration.Calibrations:
    effects = factorial_effects(factorial_runs, config.threshold)
    epochs = effects["epochs"]
    tv, wc = effects["target_variance"], effects["weight_configuration"]
    gap = float(np.mean(epochs["identity"] - epochs["zero"]))

    def part(slower: np.ndarray, faster: np.ndarray) -> dict:
        return dict(procedure=paired_difference, **calibration.paired_wiring(
            slower, faster, members="the part's two models of a seed", grid=SHIFTS, unit="epochs",
            stated_text="none stated (the source names the causes, not their sizes)"))

    return calibration.Calibrations(calibrate, {
        "Z4.target_variance": lambda: part(epochs["residual_identity"], epochs["zero"]),
        "Z4.weight_configuration": lambda: part(epochs["identity"], epochs["residual_identity"]),
        "Z4": lambda: dict(
            procedure=decide_z4, null=calibration.exchange(tv, wc), null_label="parts exchanged",
            null_text="the two parts exchanged within each seed at random (the parts are equal in distribution)",
            effect=calibration.paired_shift(tv, wc), stated_effect=gap, grid=SHIFTS, unit="epochs",
            effect_text=f"the source's guess taken fully: the whole identity - zero gap ({gap:.3g} epochs, mean over "
                        "seeds) is target variance and none is weight configuration: the per-seed difference of the "
                        "parts re-centred on 0 (mean), then that much moved from the weight-configuration part to the "
                        "target-variance part (each seed's gap unchanged); seeds resampled"),
    })


@pytest.mark.xfail(strict=True, reason=(
    "both parts slow learning, weight configuration a little more: quick (n = 400) weight configuration 1.25 "
    "[1.02, 1.49], target variance 1.07 [0.86, 1.32] epochs, difference -0.18 [-0.44, 0.14] (inconclusive); "
    "full (n = 2000) 1.20 [1.09, 1.33] vs 1.05 [0.94, 1.15], difference -0.15 [-0.28, -0.02] (refuted)"))
@pytest.mark.quick
@pytest.mark.full
def test_Z4_target_variance_or_weight_configuration(factorial_runs, config, settings, report, z4_calibrations):
    effects = factorial_effects(factorial_runs, config.threshold)
    epochs = effects["epochs"]
    n = len(effects["target_variance"])
    protocol = (PROTOCOL + "; Z4 design (not in the source): zero, identity and shortcut-identity models per seed "
                "from one initial kernel; gap = weight configuration + target variance")
    parts = {}
    for factor, (slower, faster) in (("target_variance", (epochs["residual_identity"], epochs["zero"])),
                                     ("weight_configuration", (epochs["identity"], epochs["residual_identity"]))):
        parts[factor] = report.record(with_power(claim_result(
            paired_difference(slower, faster),
            id=f"Z4.{factor}", claim=f"{factor.replace('_', ' ')} slows learning", source=SOURCE, n=n,
            statistic=f"{factor.replace('_', ' ')} part of the identity - zero gap, epochs to 0.01 (mean over seeds)",
            test="one-sided Wilcoxon signed-rank of per-seed parts, BCa bootstrap CI", tier=settings.tier,
            protocol=protocol,
        ), z4_calibrations[f"Z4.{factor}"].power_rate))
    significant = frozenset(f for f, r in parts.items() if r.verdict == SUPPORTED)
    explanation = {frozenset(): "neither", frozenset({"target_variance"}): "target variance",
                   frozenset({"weight_configuration"}): "weight configuration"}.get(significant, "both")
    mean_epochs = {name: float(np.mean(e)) for name, e in epochs.items()}
    total = mean_epochs["identity"] - mean_epochs["zero"]
    report.note("Z4", f"the data support: {explanation}. Mean epochs to 0.01: " + "; ".join(
        f"{k}: {v:.2f}" for k, v in mean_epochs.items()) + f". Of the identity - zero gap ({total:.2f} epochs), "
        f"weight configuration accounts for {parts['weight_configuration'].estimate:.2f} and target variance for "
        f"{parts['target_variance'].estimate:.2f}. identity_fixed_input (x0 -> x0) is reported only (see docstring).")
    plotting.plot_learning_curves(
        factorial_runs, report.figure_path("Z4", "Z4_learning_curves"), threshold=config.threshold, logy=True,
        title="Z4: zero, identity, shortcut-identity (and fixed-input identity), same initial kernels",
        ylabel=f"L1 loss, epoch sum / {config.epochs}",
    )
    report.verify(with_power(claim_result(
        decide_z4(effects["target_variance"], effects["weight_configuration"]),
        id="Z4", claim="the target variance, not the weight configuration, is the cause (the source's guess)",
        source=SOURCE, n=n,
        statistic="target-variance part minus weight-configuration part of the gap, epochs to 0.01",
        test="supported if the target-variance part is > 0 and exceeds the weight-configuration part "
             "(one-sided Wilcoxon, BCa CI); refuted if it is <= 0 or smaller",
        tier=settings.tier, protocol=protocol,
        details={"explanation": explanation, "mean_epochs": mean_epochs,
                 "diverged_seeds_excluded": effects["diverged_seeds_excluded"]},
    ), z4_calibrations["Z4"].power_rate))


# -- calibration ------------------------------------------------------------------------
@pytest.mark.quick
@pytest.mark.full
@pytest.mark.parametrize("family", ["z1_calibrations", "z2_calibrations", "z4_calibrations"])
def test_procedures_are_calibrated(family, request):
    """No procedure says "supported" under its simulated null significantly more often than alpha + 0.01."""
    for result in request.getfixturevalue(family).values():  # computes any calibration not yet asked for
        assert not result.defective, (f"{result.claim_id}: type-I error {result.type_one} over {result.n_sims} "
                                      f"simulated nulls, above alpha + {calibration.TOLERANCE}")


# -- timing (pytest-benchmark) ---------------------------------------------------------
def epoch_problem(n_experiments: int, device) -> tuple[torch.Tensor, ...]:
    """Inputs, targets, kernels and shortcut flags for n experiments x (identity, zero)."""
    seeds = range(n_experiments)
    data = [task_data(TASKS[t], experiment_inputs(s, 200)) for t in ("identity", "zero") for s in seeds]
    weights = torch.cat([initial_weights(s, t) for t in ("identity", "zero") for s in seeds])
    as_tensor = lambda a: torch.tensor(np.stack(a), device=device)  # noqa: E731
    shortcut = torch.zeros(2 * n_experiments, dtype=torch.bool, device=device)
    return as_tensor([d[0] for d in data]), as_tensor([d[1] for d in data]), weights.to(device), shortcut


def run_sequential(inputs, targets, weights, epochs) -> None:
    for x, y, w in zip(inputs, targets, weights):
        train_sequential(x.reshape(-1, 1, 1, 3, 3), y.reshape(-1, 1, 1, 3, 3), w, epochs)


@pytest.mark.quick
@pytest.mark.full
@pytest.mark.parametrize("n", [1, 100, 1000])
def test_time_one_epoch_batched(benchmark, n, device, report):
    problem = epoch_problem(n, device)
    benchmark.group = "Z one epoch"
    benchmark.pedantic(train_batched, args=(*problem, 1), rounds=3, warmup_rounds=1)
    report.add_benchmark(benchmark, f"batched, {n} experiments x 2 settings", "Z one epoch", n, impl="batched")


@pytest.mark.parametrize("n", [pytest.param(1, marks=[pytest.mark.quick, pytest.mark.full]),
                               pytest.param(100, marks=[pytest.mark.quick, pytest.mark.full]),
                               pytest.param(1000, marks=pytest.mark.full)])
def test_time_one_epoch_sequential(benchmark, n, device, report):
    inputs, targets, weights, _ = epoch_problem(n, device)
    benchmark.group = "Z one epoch"
    benchmark.pedantic(run_sequential, args=(inputs, targets, weights, 1), rounds=1)
    report.add_benchmark(benchmark, f"sequential, {n} experiments x 2 settings", "Z one epoch", n, impl="sequential")


PROTOCOL_EXPERIMENTS = {"batched": 1000, "sequential": 2}


@pytest.mark.quick
@pytest.mark.full
@pytest.mark.parametrize("impl", ["sequential", "batched"])
def test_time_protocol(benchmark, impl, device, report):
    """The whole Z protocol (20 epochs): 1000 experiments batched, 2 sequentially, per experiment."""
    n = PROTOCOL_EXPERIMENTS[impl]
    problem = epoch_problem(n, device)
    benchmark.group = "Z protocol, 20 epochs"
    if impl == "batched":
        benchmark.pedantic(train_batched, args=(*problem, 20), rounds=1)
    else:
        benchmark.pedantic(run_sequential, args=(*problem[:3], 20), rounds=1)
    report.add_benchmark(benchmark, f"{impl}, {n} experiments x 2 settings x 20 epochs", "Z protocol, 20 epochs", n,
                         impl=impl)


@pytest.mark.quick
@pytest.mark.full
def test_speedup_target(report, device):
    """Targets: 1000 x 2 x 20 batched in <= 10 s on 2 CPU cores, >= 100x the sequential loop per experiment."""
    timings = {t.extra["impl"]: t for t in report.timings if t.group == "Z protocol, 20 epochs"}
    if set(timings) != {"batched", "sequential"}:
        pytest.skip("needs both test_time_protocol benchmarks in this session (and --benchmark-disable off)")
    speedup = timings["sequential"].per_experiment / timings["batched"].per_experiment
    report.note("timing", f"Z protocol: 1000 x 2 x 20 batched in {timings['batched'].seconds:.2f} s "
                          f"(target <= 10 s on 2 CPU cores); {speedup:.0f}x the sequential loop per experiment (target >= 100x)")
    assert speedup >= 100, f"seed batching is only {speedup:.0f}x faster than the sequential loop per experiment"
    if device.type == "cpu":
        assert timings["batched"].seconds <= 10, f"1000 x 2 x 20 took {timings['batched'].seconds:.1f} s (> 10 s)"
