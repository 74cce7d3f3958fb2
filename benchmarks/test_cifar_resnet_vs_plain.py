"""K1-K3: 10 residual blocks against 10 plain blocks on CIFAR-10 (source 003, Keras).

Source sentences (Thomas, "Introduction to ResNet in TensorFlow 2"):
  K1 "there is around a 5-6% improvement in the training accuracy from a ResNet
     architecture compared to the “plain” non-ResNet architecture. I have run this
     comparison a number of times and the 5-6% gap is consistent across the runs."
  K2 the source's second figure compares the two on the test (validation) set.
  K3 "As demonstrated in the original paper, this effect will be more pronounced in
     deeper networks."

Protocol (full tier, 003's exactly): the Keras network of
``resclaims.models.keras003`` (glorot-uniform kernels, zero biases, BN momentum 0.99,
epsilon 1e-3), pixels / 255, central crop 24x24, random flip,
``.batch(64).shuffle(10000)`` (whole batches shuffled), Keras Adam (lr 1e-3,
epsilon 1e-7 on sqrt(v)), 30 epochs x 195 steps, sparse cross-entropy; 10 seeds per
arm, residual and plain paired by seed (same batches, same augmentation).
Deviations: runs are seeded from the base seed; the loss is computed from logits
(as Keras >= 2.5 does for a softmax output); test accuracy is measured on all
10,000 test images in eval mode each epoch, where 003's ``validation_steps=3``
draws 3 batches of 5,000 (one half of the test set counted twice); on an
image-folder copy (the CI's "CIFAR-10 (JPEG q75 copy)") the training set is put in
a fixed random order before the batch-shuffle, since the official order is lost.

Quick tier (2-core CPU): the first 400 steps of the same protocol (4 logged epochs
of 100 steps), the network at 1/4 width (8-16-64 channels instead of 32-64-256),
test accuracy on a fixed 2,000-image subset, 5 seeds. K3 and the order effect run
in the full tier only. The scale was fixed from the time budget before any run.

Statistics (alpha = 0.05, 95% intervals, rules fixed from the text before running):
  K1.direction    final-epoch training accuracy, residual minus plain, in percentage
                  points, paired by seed. Mean with a BCa bootstrap CI; one-sided
                  Wilcoxon signed-rank. Supported if p < alpha and the CI is above 0.
  K1              the same gap against "around 5-6%": the band [4, 7] points (the
                  stated range widened by one point each side for "around", as read
                  off a plot of accuracy). Supported if the CI lies inside the band,
                  refuted if it misses it. The CI is Student's t interval of the mean:
                  the first rule's BCa interval, calibrated, said "supported" in 7.3%
                  of simulated nulls at the band's edge with 5 seeds (the t interval:
                  2.7%).
  K1.consistency  "consistent across the runs": the SD of the per-seed gap. If 95%
                  of runs are to fall in a 3-point-wide band like [4, 7], the SD is at
                  most 0.75 points. Chi-square CI of the SD; supported if it lies in
                  [0, 0.75], refuted if it lies above.
  K2              final-epoch test accuracy gap, as K1.direction.
  K3              per-seed gap at 5, 10 and 20 blocks: the slope of gap on block
                  count (points per block) with a bootstrap CI over seeds, and Page's
                  trend test (one-sided, increasing). Supported if p < alpha and the
                  CI is above 0.
  K1.order        (full) the K1 gap under the source's batch shuffle minus the gap
                  with images reshuffled every pass; "no effect" is the band [-1, 1]
                  (t interval of the mean, as K1).

Calibration (resclaims.calibration; quick 200 simulated data sets per rate, full 1000):
K1.direction and K2 exchange residual and plain within each seed for the null; K1 and
K1.order shift every seed's gap so that the mean of all seeds sits on the band edge nearer
the estimate; K1.consistency rescales the gaps so that their SD is 0.75; K3 permutes each
seed's three gaps across block counts. Power is taken at the source's 5-6% (5.5 points) for
K1.direction and K1, at no effect for K1.order and at the band's middle (SD 0.375) for
K1.consistency; a claim whose power there is below 0.8 reports "inconclusive" where it would
have said "refuted". Runs that diverge (NaN or inf loss) are left out with their seed's pair
and counted.
"""

from __future__ import annotations

import math
from dataclasses import replace
from functools import partial

import numpy as np
import pandas as pd
import pytest

from resclaims import calibration, cifar, plotting
from resclaims.datasets import cifar10
from resclaims.procedures import (
    finite_pairs,
    increasing_trend,
    mean_in_band,
    paired_difference,
    sd_in_band,
)
from resclaims.verdict import ClaimResult, claim_result, with_power

SOURCE = "003"
BAND = (4.0, 7.0)  # "around a 5-6% improvement", percentage points
MAX_SD = 0.75  # "consistent across the runs": 95% of runs inside a 3-point band
ORDER_BAND = (-1.0, 1.0)  # the data-order quirk "has no effect", points
STATED_GAP = 5.5  # "around a 5-6% improvement": the middle of the stated range, points (power is taken there)
GAPS = calibration.geometric_grid(0.1, 25.0)  # effects searched for the smallest detectable gap, points
# Procedures: a claim's whole decision as one function of its runs; the claim test and its calibration call it.
# K1.direction, K2: resclaims.procedures.paired_difference; K3: increasing_trend.
decide_gap_in_band = partial(mean_in_band, band=BAND)  # K1
decide_consistency = partial(sd_in_band, band=(0.0, MAX_SD))  # K1.consistency
decide_order = partial(mean_in_band, band=ORDER_BAND)  # K1.order
WORDS = {"train_acc": "training accuracy", "test_acc": "test accuracy"}
# Claims the quick tier does not support, with the numbers that showed it (base seed 20190403, CIFAR-10 JPEG q75 copy).
KNOWN_OUTCOMES = {
    ("quick", "K1"): "refuted at quick tier: training accuracy gap 8.40 points [7.33, 9.47] (t interval) lies above the band "
          "[4, 7], n = 5 (400 of 5,850 steps, width x0.25); power at 5.5 points 0.92 [0.87, 0.95]",
    ("quick", "K1.consistency"): "inconclusive at quick tier: SD of the gap 0.86 points [0.51, 2.47] against [0, 0.75], n = 5",
    ("quick", "K2"): "inconclusive at quick tier: test accuracy gap 0.47 points [-4.75, 5.42], p = 0.41, n = 5 (test accuracy "
          "12-22% after 400 steps, below the 26-29% training accuracy)",
}  # fmt: skip


def protocol(config: cifar.KerasFamily, data: cifar10.Cifar10) -> str:
    t = config.train
    scale = (
        "003's protocol exactly"
        if t == cifar.TrainConfig() and config.width == 1.0
        else f"003's protocol, first {t.steps} of 5,850 steps, width x{config.width:g}, "
        f"test subset {t.test_size or 10_000}"
    )
    return (
        f"{scale}; Keras net (glorot-uniform, BN momentum 0.99, eps 1e-3), Keras Adam (lr 1e-3, eps 1e-7), "
        f"batch {t.batch_size}, .batch(64).shuffle(10000) order, central crop 24 + flip; {config.n_seeds} seeds per arm, "
        f"paired by seed; data: {data.name}"
    )


# -- runs ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def config(settings) -> cifar.KerasFamily:
    return settings.config(cifar.K_TIERS)


@pytest.fixture(scope="module")
def data(dataset) -> cifar10.Cifar10:
    return dataset(cifar10.load, "cifar10")  # skipped if missing, one-line failure if broken


@pytest.fixture(scope="module")
def runs(settings, config, data, report, run_cache, progress) -> pd.DataFrame:
    """Residual and plain at every block count (K1, K2: config.blocks; K3: config.depth_blocks), and (full tier)
    the K1 pair again with images reshuffled every pass, as arms "resnet-10-images" and "plain-10-images"."""
    train = partial(cifar.train_cached, seeds=settings.run_seeds("K", config.n_seeds), data=data,
                    device=settings.device, run_cache=run_cache, progress=progress)  # fmt: skip
    frame = train("K", config.train, cifar.keras_arms(sorted({config.blocks, *config.depth_blocks}), config.width))
    if config.order_effect:
        images = replace(config.train, order="images")
        frame = pd.concat([frame, train("K1.order", images, cifar.keras_arms([config.blocks], config.width, "-images"))],
                          ignore_index=True)  # fmt: skip
    report.add_runs("K", frame)
    report.note("K1", f"scale: {protocol(config, data)}")
    return frame


def final(frame: pd.DataFrame, arm: str, column: str) -> np.ndarray:
    """``column`` at the last logged epoch of every run of ``arm``, in percent, ordered by seed (NaN: diverged)."""
    last = frame[(frame.arm == arm) & (frame.epoch == frame.epoch.max())].sort_values("seed")
    return 100 * last[column].to_numpy()


def gap(frame: pd.DataFrame, blocks: int, column: str, suffix: str = "") -> np.ndarray:
    """Per-seed residual minus plain at ``blocks`` blocks, percentage points, without seeds where a run diverged."""
    res, plain, _ = finite_pairs(final(frame, f"resnet-{blocks}{suffix}", column),
                                 final(frame, f"plain-{blocks}{suffix}", column))
    return res - plain


def direction_result(runs, config, data, settings, calibrate, claim_id, column, claim,
                     stated: float | None = None) -> ClaimResult:
    res, plain, diverged = finite_pairs(final(runs, f"resnet-{config.blocks}", column),
                                        final(runs, f"plain-{config.blocks}", column))
    power = calibrate(claim_id, procedure=paired_difference, **calibration.paired_wiring(
        res, plain, members="residual and plain runs of a seed", grid=GAPS, unit="points", stated=stated,
        stated_text="the source's 5-6%" if stated else "none stated")).power_rate
    return with_power(claim_result(
        paired_difference(res, plain),
        id=claim_id, claim=claim, source=SOURCE, n=len(res),
        statistic=f"mean final-epoch {WORDS[column]} gap, residual - plain (points)",
        test="one-sided Wilcoxon signed-rank, paired by seed; BCa bootstrap CI", tier=settings.tier,
        protocol=protocol(config, data),
        details={"residual": res.tolist(), "plain": plain.tolist(), "gap_per_seed": (res - plain).tolist(),
                 "diverged_seeds_excluded": diverged},
    ), power)  # fmt: skip


def plot_residual_vs_plain(runs, config, report, claim_id: str, column: str) -> None:
    """The K1 pair's accuracy curves (mean with a 95% band per arm), in the claim's section of the report."""
    name = column.replace("_acc", "_accuracy")  # train_accuracy, test_accuracy
    figure = runs[runs.arm.isin([f"resnet-{config.blocks}", f"plain-{config.blocks}"])].assign(
        **{name: lambda f: 100 * f[column]})
    plotting.plot_learning_curves(figure, report.figure_path(claim_id, f"{claim_id}_{name}"), x="epoch", y=name,
                                  by="arm", title=f"003: {WORDS[column]}, residual vs plain", ylabel=f"{WORDS[column]} (%)")


# -- K1 -----------------------------------------------------------------------------------
@pytest.mark.quick
@pytest.mark.full
def test_K1_direction(runs, config, data, settings, report, calibrate, known_outcome):
    known_outcome(KNOWN_OUTCOMES, "K1.direction")
    result = direction_result(runs, config, data, settings, calibrate, "K1.direction", "train_acc",
                              "the residual net reaches a higher training accuracy than the plain net", STATED_GAP)
    plot_residual_vs_plain(runs, config, report, "K1", "train_acc")
    report.verify(result)


@pytest.mark.quick
@pytest.mark.full
def test_K1_magnitude(runs, config, data, settings, report, calibrate, known_outcome):
    known_outcome(KNOWN_OUTCOMES, "K1")
    d = gap(runs, config.blocks, "train_acc")
    power = calibrate("K1", procedure=decide_gap_in_band, unit="points", **calibration.band_wiring(
        (d,), 0, np.mean, BAND, STATED_GAP, "every seed's gap", stated_text="the middle of the source's 5-6%,",
        how="shift")).power_rate
    report.verify(with_power(claim_result(
        decide_gap_in_band(d),
        id="K1", claim="around a 5-6% improvement in training accuracy from the residual architecture",
        source=SOURCE, n=len(d), statistic="mean final-epoch training accuracy gap, residual - plain (points)",
        test=f"Student t interval of the mean inside the band {list(BAND)} (equivalence)", tier=settings.tier,
        protocol=protocol(config, data), details={"gap_per_seed": d.tolist()},
    ), power))  # fmt: skip



@pytest.mark.quick
@pytest.mark.full
def test_K1_consistency(runs, config, data, settings, report, calibrate, known_outcome):
    known_outcome(KNOWN_OUTCOMES, "K1.consistency")
    d = gap(runs, config.blocks, "train_acc")
    sd = lambda x: float(np.std(x, ddof=1))  # noqa: E731
    power = calibrate("K1.consistency", procedure=decide_consistency, unit="points (SD)", **calibration.band_wiring(
        (d,), 0, sd, (0.0, MAX_SD), MAX_SD / 2, "every seed's gap", stated_text="no SD stated; the band's middle")).power_rate
    report.verify(with_power(claim_result(
        decide_consistency(d),
        id="K1.consistency", claim="the training accuracy gap is consistent across runs", source=SOURCE, n=len(d),
        statistic="SD across seeds of the final-epoch training accuracy gap (points)",
        test=f"chi-square CI of the SD inside [0, {MAX_SD}]", tier=settings.tier, protocol=protocol(config, data),
        details={"gap_per_seed": d.tolist(), "share_in_band": float(np.mean((d >= BAND[0]) & (d <= BAND[1])))},
    ), power))  # fmt: skip


@pytest.mark.full
def test_K1_data_order_effect(runs, config, data, settings, report, calibrate, known_outcome):
    known_outcome(KNOWN_OUTCOMES, "K1.order")
    if not config.order_effect:
        pytest.skip("the data-order effect is measured in the full tier only")
    effect = gap(runs, config.blocks, "train_acc") - gap(runs, config.blocks, "train_acc", "-images")
    power = calibrate("K1.order", procedure=decide_order, unit="points", **calibration.band_wiring(
        (effect,), 0, np.mean, ORDER_BAND, 0.0, "every seed's effect", stated_text="no effect,", how="shift")).power_rate
    result = with_power(claim_result(
        decide_order(effect),
        id="K1.order", claim="003's .batch(64).shuffle(10000) order (whole batches shuffled) leaves the K1 gap unchanged",
        source=SOURCE, n=len(effect), statistic="K1 gap with batches shuffled minus K1 gap with images shuffled (points)",
        test=f"Student t interval of the mean inside {list(ORDER_BAND)} (equivalence)", tier=settings.tier,
        protocol=protocol(config, data) + "; second arm pair with images reshuffled every pass",
        details={"effect_per_seed": effect.tolist()},
    ), power)  # fmt: skip
    report.note("K1", f"data order: the K1 gap under 003's batch shuffle minus the gap with images reshuffled each "
                      f"pass = {result.estimate:.2f} points [{result.ci[0]:.2f}, {result.ci[1]:.2f}], n = {len(effect)}")
    report.verify(result)


# -- K2 -----------------------------------------------------------------------------------
@pytest.mark.quick
@pytest.mark.full
def test_K2_test_accuracy(runs, config, data, settings, report, calibrate, known_outcome):
    known_outcome(KNOWN_OUTCOMES, "K2")
    result = direction_result(runs, config, data, settings, calibrate, "K2", "test_acc",
                              "the residual net's advantage shows in test accuracy as well")
    plot_residual_vs_plain(runs, config, report, "K2", "test_acc")
    report.verify(result)


# -- K3 -----------------------------------------------------------------------------------
@pytest.mark.quick
@pytest.mark.full
def test_K3_gap_grows_with_depth(runs, config, data, settings, report, calibrate, known_outcome):
    known_outcome(KNOWN_OUTCOMES, "K3")
    if len(config.depth_blocks) < 3:
        pytest.skip("full tier only: K3 trains 5, 10 and 20 blocks, beyond the quick tier's CPU budget")
    blocks = np.array(sorted(config.depth_blocks), dtype=float)
    per_arm = {int(b): (final(runs, f"resnet-{int(b)}", "train_acc") - final(runs, f"plain-{int(b)}", "train_acc"))
               for b in blocks}
    gaps = np.stack(list(per_arm.values()), axis=1)  # (seeds, block counts)
    finite = np.isfinite(gaps).all(axis=1)  # a seed with a diverged run is left out, and counted
    gaps = gaps[finite]
    procedure = partial(increasing_trend, positions=blocks)
    power = calibrate(
        "K3", procedure=procedure, null=calibration.permute_rows(gaps), null_label="block counts permuted",
        null_text="each seed's three gaps put in a random order of block counts (Page's test's null)",
        effect=calibration.row_trend(gaps, blocks), grid=calibration.geometric_grid(0.005, 2.0),
        unit="points per block",
        effect_text="none stated ('more pronounced in deeper networks'); searched: each seed's gaps with the mean "
                    "slope replaced by the effect; seeds resampled").power_rate
    report.verify(with_power(claim_result(
        procedure(gaps),
        id="K3", claim="the residual net's training accuracy advantage grows with the number of blocks", source=SOURCE,
        n=len(gaps), statistic="slope of the training accuracy gap on block count (points per block)",
        test="Page's trend test (increasing), BCa bootstrap CI over seeds", tier=settings.tier,
        protocol=protocol(config, data) + f"; blocks {[int(b) for b in blocks]}",
        details={"blocks": blocks.tolist(), "mean_gap": gaps.mean(axis=0).tolist(), "gaps": gaps.tolist(),
                 "diverged_seeds_excluded": int((~finite).sum())},
    ), power))  # fmt: skip


# -- timing (pytest-benchmark) ------------------------------------------------------------------
@pytest.mark.quick
@pytest.mark.full
@pytest.mark.parametrize("device_kind", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
@pytest.mark.parametrize("kind", ["resnet", "plain"])
def test_T_keras003_train_step(kind, device_kind, benchmark, report):
    """One training step of 003's network (10 blocks, full width, batch 64, Keras Adam)."""
    arm = next(a for a in cifar.keras_arms([10]) if a.name.startswith(kind))
    cfg = cifar.TrainConfig()
    benchmark.group = f"T keras003 train step, {device_kind}"
    loss = cifar.time_step(benchmark, cfg, arm, 1, device_kind)
    assert math.isfinite(loss)
    report.add_benchmark(benchmark, f"train step keras003 {arm.name}, batch 64, {device_kind}", impl="sequential",
                         images=cfg.batch_size, device=device_kind, cpu_threads=cifar.timing_threads(device_kind))


@pytest.mark.quick
@pytest.mark.full
@pytest.mark.parametrize("device_kind", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
@pytest.mark.parametrize("stack", ["loop", "grouped"])
def test_T_keras003_stacked_step(stack, device_kind, benchmark, report, settings):
    """One step of 5 seeds of the K1 arm at this tier's width: one after the other, or in one grouped pass."""
    config = settings.config(cifar.K_TIERS)
    arm = cifar.keras_arms([config.blocks], config.width)[0]
    n = 5
    benchmark.group = f"T keras003 x{config.width:g} step of {n} seeds, {device_kind}"
    loss = cifar.time_step(benchmark, config.train, arm, n, device_kind, stack=stack)
    assert math.isfinite(loss)
    report.add_benchmark(benchmark, f"{n} x keras003 {arm.name} x{config.width:g}, {stack}, {device_kind}", experiments=n,
                         impl="batched" if stack == "grouped" else "sequential", images=n * config.train.batch_size,
                         device=device_kind, cpu_threads=cifar.timing_threads(device_kind))
