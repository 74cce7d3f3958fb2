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
arm, residual and plain paired by seed (same batches, same augmentation);
K1.consistency: 44 seeds of the same pair (the first 10 are K1's), its own design.
Deviations: runs are seeded from the base seed; the loss is computed from logits
(as Keras >= 2.5 does for a softmax output); test accuracy is measured on all
10,000 test images in eval mode each epoch, where 003's ``validation_steps=3``
draws 3 batches of 5,000; on an image-folder copy the training set is put in a
fixed random order before the batch-shuffle, since the official order is lost.
Quick tier, "reduced": the first 400 steps (4 logged epochs of 100 steps), the
network at 1/4 width (8-16-64 channels), test accuracy on a fixed 2,000-image subset,
5 seeds; K3 and the order effect run in the full tier only, and K1's "around 5-6%"
and "consistent" get no verdict there ("full tier only").

Statistics (final-epoch accuracies in points, residual - plain, paired by seed; each
claim's declaration below says its statistic and test):
  K1.direction, K2  training / test accuracy gap: median, exact sign tests at 0.
  K1              (confirmatory) the training gap against "around 5-6%", the band [4, 7]
                  (the stated range widened by a point each side): median, two one-sided
                  sign tests.
  K1.consistency  (confirmatory) share of seeds whose gap lies in [4, 7], against four in
                  five (0.8): exact binomial tests, at its own design n (44 seeds).
  K3              (confirmatory) each seed's least-squares slope of the gap on block count
                  (5, 10, 20): median, exact sign tests at 0.
  K1.order        (full) the K1 gap under 003's batch shuffle minus with images reshuffled
                  every pass, against "no effect" [-1, 1], as K1.
History, designs and calibration: docs/HISTORY.md.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from resclaims.datasets import cifar10
from resclaims.decide import calibration, procedures, stats
from resclaims.decide.claims import Claim
from resclaims.families.cifar import gap, percent, plot_gap_per_seed, plot_residual_vs_plain
from resclaims.kernels import cifar

SOURCE = "003"
BAND = (4.0, 7.0)  # "around a 5-6% improvement", percentage points
CONSISTENT_SHARE = 0.8  # "consistent across the runs": more than four runs in five inside BAND
ORDER_BAND = (-1.0, 1.0)  # the data-order quirk "has no effect", points
STATED_GAP = 5.5  # "around a 5-6% improvement": the middle of the stated range, points (power is taken there)
GAPS = calibration.geometric_grid(0.1, 25.0)  # effects searched for the smallest detectable gap, points
K3_BLOCKS = np.array(sorted(cifar.K_TIERS["full"].config.depth_blocks), dtype=float)  # K3 runs in the full tier only
IMPROVEMENT = ("there is around a 5-6% improvement in the training accuracy from a ResNet architecture compared to "
               "the \u201cplain\u201d non-ResNet architecture.")
CONSISTENT = "I have run this comparison a number of times and the 5-6% gap is consistent across the runs."
PAIRED = procedures.exceeds_paired(members="residual and plain runs of a seed")
CONSISTENT_STATED = 0.95  # K1.consistency's effect for power (the source states none): 95% of seeds in the band
HOLM_003 = ("K1", "K1.consistency", "K3")  # 003's confirmatory claims: its Holm family in a session of this module
# K1.consistency's own design n at the full tier, from the binomial distribution alone (no run looked at): the fewest
# seeds at which its exact test has 80% power at CONSISTENT_STATED, at Holm's first-step level alpha / 3
CONSISTENCY_SEEDS = {"quick": cifar.K_TIERS["quick"].seeds,  # full tier only there: no runs beyond K1's
                     "full": stats.share_seeds_for_power(CONSISTENT_SHARE, CONSISTENT_STATED,
                                                         stats.ALPHA / len(HOLM_003))}
FULL_SEEDS = cifar.K_TIERS["full"].seeds  # K1's design at the full tier
SHARE_RULE = procedures.share_in_band(BAND, CONSISTENT_SHARE, what="every seed's gap")

# -- the claims (outcomes that are not "supported": expected/test_cifar_resnet_vs_plain.toml) -------------------
K1_DIRECTION = Claim(
    "K1.direction", source=SOURCE, quote=IMPROVEMENT, procedure=PAIRED, unit="points", grid=GAPS,
    claim="the residual net reaches a higher training accuracy than the plain net",
    statistic="median over seeds of the final-epoch training accuracy gap, residual - plain (points)",
    stated=STATED_GAP, stated_text="the source's 5-6%")
K1 = Claim(
    "K1", source=SOURCE, quote=IMPROVEMENT, unit="points", confirmatory=True, protocol_bound=True,
    claim="around a 5-6% improvement in training accuracy from the residual architecture",
    statistic="median over seeds of the final-epoch training accuracy gap, residual - plain (points)",
    reading="the median, not the mean: the source gives the gap its runs show, 'consistent across the runs', a "
            "typical run's (under skew the two verdicts differ in 5-52% of data sets at 5-10 seeds: "
            "validation_means.mean_median_disagreement)",
    procedure=procedures.median_in_band(BAND, what="every seed's gap", how="shift"),
    stated=STATED_GAP, stated_text="the middle of the source's 5-6%,")
K1_CONSISTENCY = Claim(
    "K1.consistency", source=SOURCE, quote=CONSISTENT, unit="share", confirmatory=True, protocol_bound=True,
    claim="the training accuracy gap is consistent across runs",
    statistic=f"share of seeds whose final-epoch training accuracy gap lies in [{BAND[0]:g}, {BAND[1]:g}] points",
    procedure=replace(SHARE_RULE, test=f"{SHARE_RULE.test}; full tier: {CONSISTENCY_SEEDS['full']} seeds of the K1 "
                      f"pair (its first {FULL_SEEDS} are K1's), the fewest with 80% power at "
                      f"{CONSISTENT_STATED:g} in the band at Holm's {stats.ALPHA:g}/{len(HOLM_003)} (at "
                      f"{FULL_SEEDS} seeds even all in the band gives p = {CONSISTENT_SHARE:g}^"
                      f"{FULL_SEEDS} = {CONSISTENT_SHARE ** FULL_SEEDS:.3f}: never supported)"),
    stated=CONSISTENT_STATED, stated_text="none stated; 95% of seeds in the band")
K1_ORDER = Claim(
    "K1.order", source=SOURCE, unit="points",
    claim="003's .batch(64).shuffle(10000) order (whole batches shuffled) leaves the K1 gap unchanged",
    statistic="median over seeds of the K1 gap with batches shuffled minus with images shuffled (points)",
    procedure=procedures.median_in_band(ORDER_BAND, what="every seed's effect", how="shift"),
    stated=0.0, stated_text="no effect,")
K2 = Claim(
    "K2", source=SOURCE, procedure=PAIRED, unit="points", grid=GAPS,
    claim="the residual net's advantage shows in test accuracy as well",
    statistic="median over seeds of the final-epoch test accuracy gap, residual - plain (points)")
K3 = Claim(
    "K3", source=SOURCE, unit="points per block", grid=calibration.geometric_grid(0.005, 2.0), confirmatory=True,
    quote="As demonstrated in the original paper, this effect will be more pronounced in deeper networks.",
    claim="the residual net's training accuracy advantage grows with the number of blocks",
    statistic="median over seeds of the slope of the training accuracy gap on block count (points per block)",
    procedure=procedures.increasing(K3_BLOCKS, effect_text="none stated ('more pronounced in deeper networks'); "
                                                           "searched: each seed's gaps with the median slope replaced "
                                                           "by the effect; seeds resampled"))


# -- runs ---------------------------------------------------------------------------------
TIERS = cifar.K_TIERS  # quick: 400 of 5,850 steps, width x0.25, 5 seeds; full: 003's protocol, 10 seeds


@pytest.fixture(scope="module")
def data(dataset) -> cifar10.Cifar10:
    return dataset(cifar10.load, "cifar10")  # skipped if missing, one-line failure if broken


@pytest.fixture(scope="module")
def k_runs(runs, tier, config, data, report) -> pd.DataFrame:
    """Residual and plain at ``config.blocks`` (K1, K2): the first runs a fill trains, pair by pair."""
    arms = cifar.keras_arms([config.blocks], config.width)
    frame = runs(cifar.CifarRuns(config.train, tuple(arms)), tier.seeds, seed_name="K", data=data)
    report.note("K1", f"scale: {tier.protocol}; data: {data.name}")
    return frame


@pytest.fixture(scope="module")
def consistency_seeds(settings) -> int:
    return settings.n_seeds(CONSISTENCY_SEEDS)


@pytest.fixture(scope="module")
def consistency_runs(request, runs, tier, config, consistency_seeds, data) -> pd.DataFrame:
    """K1.consistency's runs: the K1 pair at its own design n (full tier: 44 seeds; seed i derives from the base
    seed, "K" and i alone, so the first 10 are K1's), in a request of its own, which a fill trains after every other
    (:meth:`resclaims.plugin.plan.Plan.jobs`); K1's own runs where the two counts agree (the quick tier, --seeds)."""
    if consistency_seeds == tier.seeds:
        return request.getfixturevalue("k_runs")
    arms = cifar.keras_arms([config.blocks], config.width)
    return runs(cifar.CifarRuns(config.train, tuple(arms)), consistency_seeds, seed_name="K", data=data,
                label="K1.consistency")


@pytest.fixture(scope="module")
def k_order_runs(request, runs, tier, config, data) -> pd.DataFrame:
    """The K1 pair again with images reshuffled every pass (full tier), as arms "resnet-10-images" and
    "plain-10-images", at the same seeds (paired by seed), beside the K1 pair's runs. Asked for before the pair, so
    that a plan sees both requests when neither is trained."""
    images = cifar.CifarRuns(replace(config.train, order="images"),
                             tuple(cifar.keras_arms([config.blocks], config.width, "-images")))
    frame = runs(images, tier.seeds, seed_name="K", data=data, label="K1.order")
    return pd.concat([request.getfixturevalue("k_runs"), frame], ignore_index=True)


@pytest.fixture(scope="module")
def k_depth_runs(runs, tier, config, data) -> pd.DataFrame:
    """Residual and plain at each of K3's block counts (full tier), the K1 pair's among them: one request, so that
    a session lacking any of them says how many of all of K3's runs it lacks."""
    arms = cifar.keras_arms(sorted({config.blocks, *config.depth_blocks}), config.width)
    return runs(cifar.CifarRuns(config.train, tuple(arms)), tier.seeds, seed_name="K", data=data, label="K3")


def residual_and_plain(k_runs, config, column: str) -> tuple[np.ndarray, np.ndarray, dict]:
    """The K1 pair's final ``column`` in percent, per seed, and the details the report shows beside it."""
    res, plain = (percent(k_runs, f"{kind}-{config.blocks}", column) for kind in ("resnet", "plain"))
    return res, plain, {"residual": res.tolist(), "plain": plain.tolist(), "gap_per_seed": (res - plain).tolist()}


# -- K1 -----------------------------------------------------------------------------------
@pytest.mark.quick
@pytest.mark.full
def test_K1_direction(k_runs, config, report, judge):
    res, plain, details = residual_and_plain(k_runs, config, "train_acc")
    plot_residual_vs_plain(k_runs, config.blocks, report.figure_path("K1", "K1_train_accuracy"), "train_acc")
    judge(K1_DIRECTION, res, plain, details=details)


@pytest.mark.quick
@pytest.mark.full
def test_K1_magnitude(k_runs, config, report, judge):
    d = gap(k_runs, config.blocks, "train_acc")
    plot_gap_per_seed(k_runs, config.blocks, report.figure_path("K1", "K1_train_accuracy_gap_per_seed"), "train_acc")
    judge(K1, d, details={"gap_per_seed": d.tolist()})


@pytest.mark.quick
@pytest.mark.full
def test_K1_consistency(consistency_runs, k_runs, tier, config, consistency_seeds, judge):
    # k_runs after consistency_runs: a session lacking runs names K1.consistency's own first; a plan counts K1's
    # request for this test where the two agree (consistency_runs then hands over K1's runs)
    d = gap(consistency_runs, config.blocks, "train_acc")
    design = "" if consistency_seeds == tier.seeds else f"; K1.consistency: {consistency_seeds} seeds per arm, its design"
    judge(K1_CONSISTENCY, d, protocol=tier.protocol + design,
          details={"gap_per_seed": d.tolist(), "sd": float(np.std(d, ddof=1))})


@pytest.mark.full
def test_K1_data_order_effect(request, tier, config, judge):
    if not config.order_effect:
        pytest.skip("the data-order effect is measured in the full tier only")
    k_runs = request.getfixturevalue("k_order_runs")
    effect = gap(k_runs, config.blocks, "train_acc") - gap(k_runs, config.blocks, "train_acc", "-images")
    judge(K1_ORDER, effect, protocol=tier.protocol + "; second arm pair with images reshuffled every pass",
          details={"effect_per_seed": effect.tolist()})


# -- K2 -----------------------------------------------------------------------------------
@pytest.mark.quick
@pytest.mark.full
def test_K2_test_accuracy(k_runs, config, report, judge):
    res, plain, details = residual_and_plain(k_runs, config, "test_acc")
    plot_residual_vs_plain(k_runs, config.blocks, report.figure_path("K2", "K2_test_accuracy"), "test_acc")
    judge(K2, res, plain, details=details)


# -- K3 -----------------------------------------------------------------------------------
@pytest.mark.quick
@pytest.mark.full
def test_K3_gap_grows_with_depth(request, tier, config, judge):
    if len(config.depth_blocks) < 3:
        pytest.skip("full tier only: K3 trains 5, 10 and 20 blocks, beyond the quick tier's CPU budget")
    k_runs = request.getfixturevalue("k_depth_runs")  # the full tier's only: the quick tier trains no K3 arms
    assert sorted(config.depth_blocks) == K3_BLOCKS.tolist(), "K3's procedure is declared for the full tier's blocks"
    gaps = np.stack([gap(k_runs, int(b), "train_acc") for b in K3_BLOCKS], axis=1)  # (seeds, block counts)
    finite = np.isfinite(gaps).all(axis=1)
    judge(K3, gaps, protocol=tier.protocol + f"; blocks {[int(b) for b in K3_BLOCKS]}",
          details={"blocks": K3_BLOCKS.tolist(), "mean_gap": gaps[finite].mean(axis=0).tolist(),
                   "gaps": gaps[finite].tolist()})
