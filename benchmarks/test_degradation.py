"""D1-D3 and H1: the degradation problem, and He et al.'s CIFAR-10 depth table.

Source sentences:
  D1 "20-layer models out performed 56-layer models" (001); "Note that the 56-layer
     network has higher test and training errors" (003); "Just adding more layers ...
     leads to higher training error" (004). The residual twins should not degrade.
  D2 "the degradation problem leads to higher training errors too" (003); it is "not
     caused by ... overfitting" (004).
  D3 "The vanishing gradient problem ... has now largely been solved through the use
     of ReLU activations and batch normalization" (003); degradation is "not caused
     by vanishing gradient" (004).
  H1 "The ResNet architecture enables 110-layer convolutional networks to outperform
     20-layer networks" (001). He et al. Table 6, CIFAR-10 test error: ResNet-20 8.75%,
     32 7.51%, 44 7.17%, 56 6.97%, 110 6.43% (best of 5; mean 6.61 +- 0.16).

Protocol (full tier, He et al. section 4.2 exactly): ``resclaims.models.cifar``
nets (depth 6n+2, 16-32-64 filters, option-A shortcuts for the residual twins),
45k/5k split, per-pixel mean subtracted, 4-pixel pad + random 32x32 crop + flip,
SGD momentum 0.9, weight decay 1e-4, batch 128, lr 0.1 divided by 10 at 32k and 48k
iterations, 64k iterations, ResNet-110 warmed up at lr 0.01 for 400 iterations.
Plain and residual at depths 20 and 56 (D1, D2) and ResNet-32/44/110 (H1), 5 seeds
each, arms paired by seed (same batches and augmentation). D3: plain-56 with and
without BN, gradients at iterations 0, 10, 100 and 1,000 of the same recipe.
Deviations: runs are seeded from the base seed; the 45k/5k split is one fixed random
split; weight decay applies to every parameter (as in the Torch code He et al.
point to); training error is the running error over the last logged interval (1,000
iterations) of augmented batches in training mode (what the papers' curves show); on CUDA the
forward pass runs in bfloat16 autocast.

Quick tier (2-core CPU): depths 8 and 20 instead of 20 and 56 (ratio 2.5 instead of
2.8), stage widths 8-16-32 instead of 16-32-64, images averaged to 16x16 after
augmentation, the first 200 of the 64k iterations (all at lr 0.1), errors on fixed
2,000-image subsets, 5 seeds. D3 uses plain-56 as He builds it (32x32, full width),
batch 32 instead of 128, gradients at iterations 0 and 5. H1 runs in the full tier
only. The scale was fixed from the time budget before any run.

Statistics (alpha = 0.05, 95% intervals, rules fixed before running):
  D1.plain     final training error, plain-deep minus plain-shallow (points), paired
               by seed: mean, BCa bootstrap CI, one-sided Wilcoxon. Supported if
               p < alpha and the CI is above 0.
  D1.residual  "the residual twins do not degrade": ResNet-deep minus ResNet-shallow
               training error against a non-inferiority margin of 1 point (small next
               to the several points by which He et al.'s plain nets degrade).
               Supported if the CI's upper end is below 1 and the one-sided Wilcoxon
               of (difference - 1) < 0 has p < alpha; refuted if the CI lies above 1.
  D1.contrast  (plain-deep - plain-shallow) - (ResNet-deep - ResNet-shallow): the plain
               nets degrade more. As D1.plain.
  D2           the degradation on training error measured on clean training images in
               eval mode (no augmentation, BN running statistics), plain-deep minus
               plain-shallow; the test-error gap is reported beside it. As D1.plain.
  D3           per-layer gradient RMS (||dL/dW|| / sqrt(weights)), first conv over last
               conv, log10, the minimum over the checkpoints per seed, in plain-56 with
               BN. Vanishing means a ratio below 1/10 (log10 < -1). Supported ("no
               vanishing") if the CI is above -1 and the one-sided Wilcoxon against -1
               has p < alpha.
  D3.no_bn     the same statistic with BN minus without BN (convs with biases, same
               init and recipe): without BN the gradient reaching the first layer is
               relatively smaller. As D1.plain.
  H1           (full) test error, ResNet-20 minus ResNet-110, paired by seed. As
               D1.plain. Each depth's mean test error with its CI is reported next to
               Table 6.

Calibration (resclaims.calibration; quick 200 simulated data sets per rate, full 1000): the
paired claims exchange the two runs of each seed for the null; D1.residual reflects each
seed's difference about the 1-point margin, D3 each seed's log ratio about -1. Power is taken
where a source states a size: H1 at Table 6's 8.75 - 6.43 = 2.32 points, D1.residual at no
degradation (a true difference of 0); a claim whose power there is below 0.8 reports
"inconclusive" where it would have said "refuted". The others report their smallest
detectable effect. Runs that diverge (NaN or inf loss) are left out with their seed's pair
and counted.
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import pandas as pd
import pytest

from resclaims import calibration, cifar, plotting
from resclaims.datasets import cifar10
from resclaims.models.cifar import CifarNet
from resclaims.procedures import below_margin, exceeds, finite_pairs, paired_difference
from resclaims.stats import bootstrap_ci
from resclaims.verdict import ClaimResult, claim_result, with_power

SOURCES = {"D1": "001, 003, 004", "D2": "003, 004", "D3": "003, 004", "H1": "001, He2015"}
MARGIN = 1.0  # D1.residual: non-inferiority margin, points of training error
VANISHING = -1.0  # D3: log10 of first/last gradient RMS below which gradients vanish
TABLE6 = {20: 8.75, 32: 7.51, 44: 7.17, 56: 6.97, 110: 6.43}  # He et al. Table 6, test error (%)
GRID = calibration.geometric_grid(0.1, 25.0)  # effects searched for the smallest detectable one, points (D3: log10)
# Procedures (a claim's whole decision as one function of its runs; the claim test and its calibration call it):
# D1.plain, D1.contrast, D2, D3.no_bn, H1: resclaims.procedures.paired_difference; D1.residual: below_margin;
# D3: exceeds.
# Claims the quick tier does not support, with the numbers that showed it (base seed 20190403, CIFAR-10 JPEG q75 copy).
KNOWN_OUTCOMES = {
    ("quick", "D1.residual"): "inconclusive at quick tier: ResNet-20 - ResNet-8 training error 3.50 points [1.57, 8.25], above the "
                   "1-point margin, p = 0.97, n = 5 (200 of 64k iterations); the interval alone would refute, but the "
                   "test's power at no degradation is 0.32 [0.26, 0.39], below 0.8",
    ("quick", "D3"): "inconclusive at quick tier: min over checkpoints of log10(first / last conv gradient RMS) -1.85 "
          "[-2.95, -0.76] against -1, p = 0.84, n = 5 (at step 0 the ratio is +2.3: BN's gradients explode toward the "
          "input; by step 5 the first conv's has fallen to 10^-4.2)",
    ("quick", "D3.no_bn"): "inconclusive at quick tier: with BN - without BN 0.39 [-1.12, 1.66], p = 0.41, n = 5",
}  # fmt: skip


def protocol(config: cifar.HeFamily, data: cifar10.Cifar10) -> str:
    t = config.train
    if t.steps == cifar.HE2015.steps:
        scale = "He et al. 4.2 exactly"
    else:
        scale = (f"He et al. 4.2, first {t.steps} of 64k iterations, widths {'-'.join(map(str, config.widths))}, "
                 f"{32 // t.downsample}x{32 // t.downsample} inputs, error subsets {t.test_size}/{t.train_eval_size}")
    shallow, deep = config.depths
    return f"{scale}; depths {shallow} vs {deep}; {config.n_seeds} seeds per arm, paired by seed; data: {data.name}"


def paired_result(claim_id, claim, a, b, statistic, settings, protocol_text, calibrate, details=None,
                  stated: float | None = None, stated_text: str = "none stated", unit: str = "points") -> ClaimResult:
    """"a exceeds b", paired by seed: mean difference, BCa bootstrap CI, one-sided Wilcoxon; seeds in which a run
    diverged are left out and counted; refuted only if the test has the power to see the source's effect."""
    a, b, diverged = finite_pairs(a, b)
    power = calibrate(claim_id, procedure=paired_difference, **calibration.paired_wiring(
        a, b, members="the two runs of a seed", grid=GRID, unit=unit, stated=stated, stated_text=stated_text,
    )).power_rate
    return with_power(claim_result(
        paired_difference(a, b),
        id=claim_id, claim=claim, source=SOURCES[claim_id.split(".")[0]], n=len(a), statistic=statistic,
        test="one-sided Wilcoxon signed-rank, paired by seed; BCa bootstrap CI", tier=settings.tier,
        protocol=protocol_text, details={"per_seed": (a - b).tolist(), "diverged_seeds_excluded": diverged, **(details or {})},
    ), power)  # fmt: skip


# -- runs ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def config(settings) -> cifar.HeFamily:
    return settings.config(cifar.D_TIERS)


@pytest.fixture(scope="module")
def data(dataset) -> cifar10.Cifar10:
    return dataset(cifar10.load, "cifar10")  # skipped if missing, one-line failure if broken


@pytest.fixture(scope="module")
def runs(settings, config, data, report, run_cache, progress) -> pd.DataFrame:
    """Plain and residual at both depths, and (full tier) H1's ResNets, with error columns in percent."""
    depths = sorted({*config.depths, *config.table_depths})
    arms = cifar.he_arms(config.depths, residual=False, widths=config.widths)
    arms += cifar.he_arms(depths, residual=True, widths=config.widths)
    frame = cifar.train_cached("D", config.train, arms, settings.run_seeds("D", config.n_seeds), data, settings.device,
                               run_cache, progress)  # fmt: skip
    for split in ("train", "test", "val", "train_eval"):
        frame[f"{split}_err"] = 100 * (1 - frame[f"{split}_acc"])
    report.add_runs("D", frame)
    report.note("D1", f"scale: {protocol(config, data)}")
    return frame


def final(frame: pd.DataFrame, arm: str, column: str) -> np.ndarray:
    """``column`` at the last logged epoch of every run of ``arm``, ordered by seed."""
    last = frame[(frame.arm == arm) & (frame.step == frame.step.max())].sort_values("seed")
    return last[column].to_numpy()


def depth_gap(frame, kind: str, config, column: str) -> np.ndarray:
    """Per seed, deep minus shallow; NaN where a run diverged."""
    shallow, deep = config.depths
    return final(frame, f"{kind}-{deep}", column) - final(frame, f"{kind}-{shallow}", column)


# -- D1 -----------------------------------------------------------------------------------
@pytest.mark.quick
@pytest.mark.full
def test_D1_plain_degrades(runs, config, data, settings, report, calibrate, known_outcome):
    known_outcome(KNOWN_OUTCOMES, "D1.plain")
    shallow, deep = config.depths
    plain = runs[runs.arm.str.startswith("plain")]
    plotting.plot_learning_curves(plain, report.figure_path("D1", "D1_plain_training_error"), x="step", y="train_err",
                                  by="arm", title="plain nets: training error", ylabel="training error (%)")
    twins = runs[runs.arm.isin([f"{k}-{d}" for k in ("plain", "resnet") for d in config.depths])]
    plotting.plot_learning_curves(twins, report.figure_path("D1", "D1_test_error"), x="step", y="test_err",
                                  by="arm", title="test error", ylabel="test error (%)")
    report.verify(paired_result(
        "D1.plain", f"plain-{deep} has a higher training error than plain-{shallow}",
        final(runs, f"plain-{deep}", "train_err"), final(runs, f"plain-{shallow}", "train_err"),
        f"final training error, plain-{deep} - plain-{shallow} (points)", settings, protocol(config, data), calibrate,
        details={"test_error_gap": depth_gap(runs, "plain", config, "test_err").tolist()},
    ))  # fmt: skip


@pytest.mark.quick
@pytest.mark.full
def test_D1_residual_does_not_degrade(runs, config, data, settings, report, calibrate, known_outcome):
    known_outcome(KNOWN_OUTCOMES, "D1.residual")
    shallow, deep = config.depths
    d = depth_gap(runs, "resnet", config, "train_err")
    diverged, d = int((~np.isfinite(d)).sum()), d[np.isfinite(d)]
    procedure = partial(below_margin, margin=MARGIN)
    power = calibrate(
        "D1.residual", procedure=procedure, null=calibration.reflect(d, MARGIN), null_label="at the margin",
        null_text=f"each seed's difference reflected about the {MARGIN:g}-point margin at random (a sign flip of "
                  "difference - margin)",
        effect=lambda below: calibration.located(d)(MARGIN - below), stated_effect=MARGIN, grid=GRID,
        unit="points below the margin",
        effect_text="no degradation (a true difference of 0, one margin below it): the differences moved so their "
                    "mean sits that far below the margin, spread kept; seeds resampled").power_rate
    plotting.plot_learning_curves(runs[runs.arm.str.startswith("resnet")], report.figure_path("D1", "D1_resnet_training_error"),
                                  x="step", y="train_err", by="arm", title="residual nets: training error",
                                  ylabel="training error (%)")  # fmt: skip
    report.verify(with_power(claim_result(
        procedure(d),
        id="D1.residual", claim=f"ResNet-{deep} does not have a higher training error than ResNet-{shallow}",
        source=SOURCES["D1"], n=len(d), statistic=f"final training error, ResNet-{deep} - ResNet-{shallow} (points)",
        test=f"non-inferiority, margin {MARGIN} point: one-sided Wilcoxon of (difference - margin) < 0, BCa bootstrap "
             "CI; supported if the CI lies below the margin", tier=settings.tier, protocol=protocol(config, data),
        details={"per_seed": d.tolist(), "margin": MARGIN, "diverged_seeds_excluded": diverged},
    ), power))  # fmt: skip


@pytest.mark.quick
@pytest.mark.full
def test_D1_contrast(runs, config, data, settings, report, calibrate, known_outcome):
    known_outcome(KNOWN_OUTCOMES, "D1.contrast")
    report.verify(paired_result(
        "D1.contrast", "the plain nets degrade with depth more than their residual twins",
        depth_gap(runs, "plain", config, "train_err"), depth_gap(runs, "resnet", config, "train_err"),
        "training-error degradation with depth, plain minus residual (points)", settings, protocol(config, data),
        calibrate,
    ))  # fmt: skip


# -- D2 -----------------------------------------------------------------------------------
@pytest.mark.quick
@pytest.mark.full
def test_D2_degradation_is_on_training_error(runs, config, data, settings, report, calibrate, known_outcome):
    known_outcome(KNOWN_OUTCOMES, "D2")
    shallow, deep = config.depths
    test_gap = depth_gap(runs, "plain", config, "test_err")
    report.verify(paired_result(
        "D2", f"plain-{deep}'s degradation shows on the training set itself (not only on test data)",
        final(runs, f"plain-{deep}", "train_eval_err"), final(runs, f"plain-{shallow}", "train_eval_err"),
        f"final error on clean training images in eval mode, plain-{deep} - plain-{shallow} (points)",
        settings, protocol(config, data) + f"; {config.train.train_eval_size} fixed training images", calibrate,
        details={"test_error_gap": test_gap.tolist(), "test_error_gap_mean": float(np.nanmean(test_gap))},
    ))  # fmt: skip


# -- D3 -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gradients(settings, config, data, report, run_cache) -> pd.DataFrame:
    arms = [cifar.Arm(f"plain-{config.grad_depth}{suffix}", partial(CifarNet, config.grad_depth, residual=False, batch_norm=bn))
            for bn, suffix in ((True, ""), (False, "-no-bn"))]  # fmt: skip
    seeds = settings.run_seeds("D3", config.n_seeds)
    frame = cifar.gradient_norms_cached(config.grad, arms, seeds, data, config.grad_checkpoints, settings.device, run_cache)
    report.add_runs("D3", frame)
    return frame


def first_over_last(frame: pd.DataFrame, arm: str) -> np.ndarray:
    """Per seed: the minimum over checkpoints of log10(gradient RMS of the first conv / the last conv)."""
    convs = frame[(frame.arm == arm) & frame.name.str.contains("conv")]
    first, last = convs.layer.min(), convs.layer.max()
    rms = convs.pivot_table(index=["seed", "step"], columns="layer", values="grad_rms")
    ratio = np.log10(rms[first] / rms[last])  # (seed, step)
    return ratio.groupby("seed").min().sort_index().to_numpy()


def d3_protocol(config, data) -> str:
    return (f"plain-{config.grad_depth} (He's widths, 32x32), He's recipe at batch {config.grad.batch_size}, gradients "
            f"of the step's batch at iterations {list(config.grad_checkpoints)}; {config.n_seeds} seeds; data: {data.name}")


@pytest.mark.quick
@pytest.mark.full
def test_D3_no_vanishing_gradient_with_bn(gradients, config, data, settings, report, calibrate, known_outcome):
    known_outcome(KNOWN_OUTCOMES, "D3")
    arm = f"plain-{config.grad_depth}"
    x = first_over_last(gradients, arm)
    non_finite, x = int((~np.isfinite(x)).sum()), x[np.isfinite(x)]
    procedure = partial(exceeds, null=VANISHING)
    calibrate(
        "D3", procedure=procedure, null=calibration.reflect(x, VANISHING), null_label=f"centred on {VANISHING:g}",
        null_text=f"each seed's log10 ratio reflected about {VANISHING:g} at random (a sign flip of x - ({VANISHING:g}))",
        effect=lambda above: calibration.located(x)(VANISHING + above), grid=GRID, unit="log10 above -1",
        effect_text="none stated; searched: the seeds' log10 ratios moved so their mean is the effect above -1, "
                    "spread kept; seeds resampled")
    figure = gradients[gradients.step == 0].assign(log10_grad_rms=lambda f: np.log10(f.grad_rms))
    plotting.plot_learning_curves(figure, report.figure_path("D3", "D3_gradient_by_layer"), x="layer", y="log10_grad_rms",
                                  by="arm", title=f"plain-{config.grad_depth} at initialisation: gradient RMS per layer",
                                  ylabel="log10 gradient RMS")  # fmt: skip
    report.verify(claim_result(
        procedure(x),
        id="D3", claim=f"with BN, gradients do not vanish in plain-{config.grad_depth}", source=SOURCES["D3"], n=len(x),
        statistic="min over checkpoints of log10(gradient RMS first conv / last conv)",
        test=f"one-sided Wilcoxon against {VANISHING} (a 10x decay), BCa bootstrap CI", tier=settings.tier,
        protocol=d3_protocol(config, data), details={**_gradient_details(gradients), "non_finite_excluded": non_finite},
    ))  # fmt: skip


@pytest.mark.quick
@pytest.mark.full
def test_D3_contrast_without_bn(gradients, config, data, settings, report, calibrate, known_outcome):
    known_outcome(KNOWN_OUTCOMES, "D3.no_bn")
    bn, no_bn = (first_over_last(gradients, f"plain-{config.grad_depth}{s}") for s in ("", "-no-bn"))
    result = paired_result(
        "D3.no_bn", "without BN the gradient reaching the first layer is relatively smaller", bn, no_bn,
        "min over checkpoints of log10(first / last conv gradient RMS), with BN - without BN", settings,
        d3_protocol(config, data), calibrate, details={"with_bn": bn.tolist(), "without_bn": no_bn.tolist()},
        unit="log10",
    )  # fmt: skip
    report.verify(result)


def _gradient_details(frame: pd.DataFrame) -> dict:
    """Mean log10 gradient RMS of the first and last conv per arm and checkpoint."""
    convs = frame[frame.name.str.contains("conv")]
    ends = convs[convs.layer.isin([convs.layer.min(), convs.layer.max()])]
    table = ends.assign(log10=np.log10(ends.grad_rms)).groupby(["arm", "step", "layer"]).log10.mean()
    return {f"{arm} step {step} layer {layer}": round(float(v), 3) for (arm, step, layer), v in table.items()}


# -- H1 -----------------------------------------------------------------------------------
@pytest.mark.full
def test_H1_resnet110_beats_resnet20(runs, config, data, settings, report, calibrate):
    if len(config.table_depths) < 2:
        pytest.skip("full tier only: H1 trains ResNet-20 to ResNet-110 for 64k iterations")
    shallow, deep = min(config.table_depths), max(config.table_depths)
    table = {}
    for depth in config.table_depths:
        err = final(runs, f"resnet-{depth}", "test_err")
        err = err[np.isfinite(err)]  # diverged runs left out (counted in the report's runs table)
        ci = bootstrap_ci(err, np.mean)
        table[depth] = {"mean": ci.estimate, "ci": list(ci.ci), "best": float(err.min()), "paper": TABLE6.get(depth)}
        report.note("H1", f"ResNet-{depth}: test error {ci.estimate:.2f}% [{ci.low:.2f}, {ci.high:.2f}] (best "
                          f"{err.min():.2f}%, n = {len(err)}); He et al. Table 6: {TABLE6.get(depth, math.nan):.2f}%")
    report.verify(paired_result(
        "H1", f"ResNet-{deep} reaches a lower test error than ResNet-{shallow}",
        final(runs, f"resnet-{shallow}", "test_err"), final(runs, f"resnet-{deep}", "test_err"),
        f"final test error, ResNet-{shallow} - ResNet-{deep} (points)", settings, protocol(config, data), calibrate,
        details={"table": {str(k): v for k, v in table.items()}},
        stated=TABLE6[shallow] - TABLE6[deep], stated_text=f"Table 6's {TABLE6[shallow]} - {TABLE6[deep]} points",
    ))  # fmt: skip


# -- timing (pytest-benchmark) ------------------------------------------------------------------
@pytest.mark.quick
@pytest.mark.full
@pytest.mark.parametrize("device_kind", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
@pytest.mark.parametrize("name", ["resnet-20", "plain-20", "resnet-56", "plain-56"])
def test_T_he_train_step(name, device_kind, benchmark, report):
    """One training step of He's CIFAR net (batch 128, SGD, 32x32) at full width."""
    kind, depth = name.split("-")
    arm = cifar.he_arms([int(depth)], residual=kind == "resnet")[0]
    cfg = cifar.HE2015
    benchmark.group = f"T He CIFAR train step, batch 128, {device_kind}"
    loss = cifar.time_step(benchmark, cfg, arm, 1, device_kind, rounds=2 if device_kind == "cpu" else 20)
    assert math.isfinite(loss)
    report.add_benchmark(benchmark, f"train step {name}, batch 128, {device_kind}", impl="sequential",
                         images=cfg.batch_size, device=device_kind, cpu_threads=cifar.timing_threads(device_kind))


@pytest.mark.quick
@pytest.mark.full
@pytest.mark.parametrize("device_kind", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
@pytest.mark.parametrize("stack", ["loop", "grouped"])
def test_T_he_stacked_step(stack, device_kind, benchmark, report, settings):
    """One step of 5 seeds of ResNet-20 at this tier's widths and image size: one after the other, or grouped."""
    config = settings.config(cifar.D_TIERS)
    arm = cifar.he_arms([20], residual=True, widths=config.widths)[0]
    n, cfg = 5, config.train
    benchmark.group = f"T He ResNet-20 {'-'.join(map(str, config.widths))} step of {n} seeds, {device_kind}"
    loss = cifar.time_step(benchmark, cfg, arm, n, device_kind, stack=stack)
    assert math.isfinite(loss)
    report.add_benchmark(benchmark, f"{n} x he resnet-20 {'-'.join(map(str, config.widths))}, {stack}, {device_kind}",
                         experiments=n, impl="batched" if stack == "grouped" else "sequential",
                         images=n * cfg.batch_size, device=device_kind, cpu_threads=cifar.timing_threads(device_kind))
