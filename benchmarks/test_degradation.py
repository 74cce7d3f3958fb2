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
Plain and residual at depths 20 and 56 (D1, D2) and ResNet-32/44/110 (H1), 8 seeds
each, arms paired by seed (same batches and augmentation). D3: plain-56 with and
without BN, gradients at iterations 0, 10, 100 and 1,000 of the same recipe.
Deviations: runs are seeded from the base seed; the 45k/5k split is one fixed random
split; weight decay applies to every parameter (as in the Torch code He et al.
point to); training error is the running error over the last logged interval (1,000
iterations) of augmented batches in training mode (what the papers' curves show); on CUDA the
forward pass runs in bfloat16 autocast.
Quick tier, "reduced": depths 8 and 20 instead of 20 and 56, stage widths 8-16-32,
images averaged to 16x16 after augmentation, the first 200 of the 64k iterations (all
at lr 0.1), errors on fixed 2,000-image subsets, 8 seeds; D3 uses plain-56 as He
builds it (32x32, full width), batch 32, gradients at iterations 0 and 5; H1 runs in
the full tier only. The claims are directions, tested at the tier's depths as the
proxies they are ("the deeper plain net", not "the 56-layer net").

Statistics (medians over seeds, exact sign tests both ways; each claim's declaration below
says its statistic and test):
  D1.plain, D2  (confirmatory) final training error (D2: on clean training images in eval
                mode), plain-deep - plain-shallow, points, paired by seed: above 0.
  D1.residual   ResNet-deep - ResNet-shallow training error, below a 1-point margin.
  D1.contrast   (plain-deep - plain-shallow) - (ResNet-deep - ResNet-shallow): above 0.
  D3            (confirmatory) log10 of first-conv over last-conv gradient RMS in plain-56
                with BN, the minimum over checkpoints per seed: above -1 ("no vanishing");
                D3.no_bn: with BN minus without, above 0.
  H1            (full, confirmatory) test error, ResNet-20 - ResNet-110: above 0.
History and calibration: docs/HISTORY.md.
"""
from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
import pytest

from resclaims.datasets import cifar10
from resclaims.decide import calibration, procedures
from resclaims.decide.claims import Claim
from resclaims.families.cifar import (depth_gap, depth_table, final, first_over_last, gradient_details,
                                      plot_errors, plot_gradients, with_errors)
from resclaims.kernels import cifar
from resclaims.models.cifar import CifarNet

SOURCES = {"D1": "001, 003, 004", "D2": "003, 004", "D3": "003, 004", "H1": "001, He2015"}
MARGIN = 1.0  # D1.residual: non-inferiority margin, points of training error
VANISHING = -1.0  # D3: log10 of first/last gradient RMS below which gradients vanish
TABLE6 = {20: 8.75, 32: 7.51, 44: 7.17, 56: 6.97, 110: 6.43}  # He et al. Table 6, test error (%)
GRID = calibration.geometric_grid(0.1, 25.0)  # effects searched for the smallest detectable one, points (D3: log10)
PAIRED = procedures.exceeds_paired(members="the two runs of a seed")
DEGRADE = ("Note that the 56-layer network has higher test and training errors (003); Just adding more layers ... "
           "leads to higher training error (004)")

# -- the claims (outcomes that are not "supported": expected/test_degradation.toml). The depths compared are the
# tier's (quick 8 and 20, full 20 and 56): the protocol names them.
D1_PLAIN = Claim(
    "D1.plain", source=SOURCES["D1"], quote=DEGRADE, procedure=PAIRED, unit="points", grid=GRID, confirmatory=True,
    claim="the deeper plain net has a higher training error than the shallower one",
    statistic="median over seeds of the final training error, deep plain - shallow plain (points)")
D1_RESIDUAL = Claim(
    "D1.residual", source=SOURCES["D1"], unit="points below the margin", grid=GRID,
    claim="the deeper ResNet does not have a higher training error than the shallower one",
    statistic="median over seeds of the final training error, deep ResNet - shallow ResNet (points)",
    procedure=procedures.below_margin(MARGIN, what="each seed's difference"),
    stated=MARGIN, stated_text="no degradation (a true difference of 0, one margin below it)")
D1_CONTRAST = Claim(
    "D1.contrast", source=SOURCES["D1"], procedure=PAIRED, unit="points", grid=GRID,
    claim="the plain nets degrade with depth more than their residual twins",
    statistic="median over seeds of the training-error degradation with depth, plain minus residual (points)")
D2 = Claim(
    "D2", source=SOURCES["D2"], procedure=PAIRED, unit="points", grid=GRID, confirmatory=True,
    quote="the degradation problem leads to higher training errors too (003)",
    claim="the deeper plain net's degradation shows on the training set itself (not only on test data)",
    statistic="median over seeds of the final error on clean training images in eval mode, deep plain - shallow "
              "plain (points)")
D3 = Claim(
    "D3", source=SOURCES["D3"], unit="log10 above -1", grid=GRID, confirmatory=True,
    quote="The vanishing gradient problem ... has now largely been solved through the use of ReLU activations and "
          "batch normalization (003)",
    claim="with BN, gradients do not vanish in the deep plain net",
    statistic="median over seeds of the min over checkpoints of log10(gradient RMS first conv / last conv)",
    procedure=procedures.exceeds(VANISHING, what="each seed's log10 ratio"))
D3_NO_BN = Claim(
    "D3.no_bn", source=SOURCES["D3"], procedure=PAIRED, unit="log10", grid=GRID,
    claim="without BN the gradient reaching the first layer is relatively smaller",
    statistic="median over seeds of the min over checkpoints of log10(first / last conv gradient RMS), with BN - "
              "without BN")
H1_SHALLOW, H1_DEEP = min(TABLE6), max(TABLE6)
H1 = Claim(
    "H1", source=SOURCES["H1"], procedure=PAIRED, unit="points", grid=GRID, confirmatory=True,
    quote="The ResNet architecture enables 110-layer convolutional networks to outperform 20-layer networks (001)",
    claim=f"ResNet-{H1_DEEP} reaches a lower test error than ResNet-{H1_SHALLOW}",
    statistic="median over seeds of the final test error, shallowest - deepest ResNet (points)",
    stated=TABLE6[H1_SHALLOW] - TABLE6[H1_DEEP],
    stated_text=f"Table 6's {TABLE6[H1_SHALLOW]} - {TABLE6[H1_DEEP]} points")


# -- runs ---------------------------------------------------------------------------------
TIERS = cifar.D_TIERS  # quick: depths 8 and 20, 200 of 64k iterations, 8 seeds; full: He et al.'s protocol, 8 seeds


@pytest.fixture(scope="module")
def data(dataset) -> cifar10.Cifar10:
    return dataset(cifar10.load, "cifar10")  # skipped if missing, one-line failure if broken


@pytest.fixture(scope="module")
def d_runs(runs, tier, config, data, report) -> pd.DataFrame:
    """Plain and residual at both depths, and (full tier) H1's ResNets, with error columns in percent."""
    depths = sorted({*config.depths, *config.table_depths})
    arms = cifar.he_arms(config.depths, residual=False, widths=config.widths)
    arms += cifar.he_arms(depths, residual=True, widths=config.widths)
    frame = runs(cifar.CifarRuns(config.train, tuple(arms)), tier.seeds, seed_name="D", data=data)
    report.note("D1", f"scale: {tier.protocol}; data: {data.name}")
    return with_errors(frame)


@pytest.fixture(scope="module")
def gradients(runs, tier, config, data) -> pd.DataFrame:
    """D3: plain nets at the gradient depth, with and without BN."""
    arms = tuple(cifar.Arm(f"plain-{config.grad_depth}{suffix}",
                           partial(CifarNet, config.grad_depth, residual=False, batch_norm=bn))
                 for bn, suffix in ((True, ""), (False, "-no-bn")))
    return runs(cifar.GradientRuns(config.grad, arms, tuple(config.grad_checkpoints)), tier.seeds, seed_name="D3",
                family="D3", data=data)  # D3's own row in the report's run table


@pytest.fixture(scope="module")
def d3_protocol(tier, config, data) -> str:
    return (f"plain-{config.grad_depth} (He's widths, 32x32), He's recipe at batch {config.grad.batch_size}, gradients "
            f"of the step's batch at iterations {list(config.grad_checkpoints)}; {tier.seeds} seeds; data: {data.name}")


def depths(config) -> dict:
    shallow, deep = config.depths
    return {"shallow": shallow, "deep": deep}


# -- D1 -----------------------------------------------------------------------------------
@pytest.mark.quick
@pytest.mark.full
def test_D1_plain_degrades(d_runs, config, report, judge):
    shallow, deep = config.depths
    plot_errors(d_runs[d_runs.arm.str.startswith("plain")], report.figure_path("D1", "D1_plain_training_error"),
                "train_err", "plain nets: training error")
    twins = d_runs[d_runs.arm.isin([f"{k}-{d}" for k in ("plain", "resnet") for d in config.depths])]
    plot_errors(twins, report.figure_path("D1", "D1_test_error"), "test_err", "test error")
    judge(D1_PLAIN, final(d_runs, f"plain-{deep}", "train_err"), final(d_runs, f"plain-{shallow}", "train_err"),
          details={**depths(config), "test_error_gap": depth_gap(d_runs, "plain", config.depths, "test_err").tolist()})


@pytest.mark.quick
@pytest.mark.full
def test_D1_residual_does_not_degrade(d_runs, config, report, judge):
    d = depth_gap(d_runs, "resnet", config.depths, "train_err")
    plot_errors(d_runs[d_runs.arm.str.startswith("resnet")], report.figure_path("D1", "D1_resnet_training_error"),
                "train_err", "residual nets: training error")
    judge(D1_RESIDUAL, d, details={**depths(config), "per_seed": d[np.isfinite(d)].tolist(), "margin": MARGIN})


@pytest.mark.quick
@pytest.mark.full
def test_D1_contrast(d_runs, config, judge):
    judge(D1_CONTRAST, depth_gap(d_runs, "plain", config.depths, "train_err"),
          depth_gap(d_runs, "resnet", config.depths, "train_err"), details=depths(config))


# -- D2 -----------------------------------------------------------------------------------
@pytest.mark.quick
@pytest.mark.full
def test_D2_degradation_is_on_training_error(d_runs, tier, config, judge):
    shallow, deep = config.depths
    test_gap = depth_gap(d_runs, "plain", config.depths, "test_err")
    judge(D2, final(d_runs, f"plain-{deep}", "train_eval_err"), final(d_runs, f"plain-{shallow}", "train_eval_err"),
          protocol=tier.protocol + f"; {config.train.train_eval_size} fixed training images",
          details={**depths(config), "test_error_gap": test_gap.tolist(),
                   "test_error_gap_mean": float(np.nanmean(test_gap))})


# -- D3 -----------------------------------------------------------------------------------
@pytest.mark.quick
@pytest.mark.full
def test_D3_no_vanishing_gradient_with_bn(gradients, config, report, judge, d3_protocol):
    x = first_over_last(gradients, f"plain-{config.grad_depth}")
    plot_gradients(gradients, report.figure_path("D3", "D3_gradient_by_layer"), config.grad_depth)
    judge(D3, x, protocol=d3_protocol, details={**gradient_details(gradients), "depth": config.grad_depth})


@pytest.mark.quick
@pytest.mark.full
def test_D3_contrast_without_bn(gradients, config, judge, d3_protocol):
    bn, no_bn = (first_over_last(gradients, f"plain-{config.grad_depth}{s}") for s in ("", "-no-bn"))
    judge(D3_NO_BN, bn, no_bn, protocol=d3_protocol, details={"with_bn": bn.tolist(), "without_bn": no_bn.tolist()})


# -- H1 -----------------------------------------------------------------------------------
@pytest.mark.full
def test_H1_resnet110_beats_resnet20(d_runs, tier, config, report, judge):
    if len(config.table_depths) < 2:
        pytest.skip("full tier only: H1 trains ResNet-20 to ResNet-110 for 64k iterations")
    shallow, deep = min(config.table_depths), max(config.table_depths)
    table, notes = depth_table(d_runs, config.table_depths, TABLE6)
    for line in notes:
        report.note("H1", line)
    judge(H1, final(d_runs, f"resnet-{shallow}", "test_err"), final(d_runs, f"resnet-{deep}", "test_err"),
          details={"depths": [shallow, deep], "table": {str(k): v for k, v in table.items()}})
