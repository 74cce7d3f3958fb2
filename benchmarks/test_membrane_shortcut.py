"""M1-M3: a 2-layer ResNet block learns the identity on the membrane labels, with and without shortcut (source 000).

Source sentences (Martyn 2019, "How do residual shortcuts affect image-to-image
mapping in a minimal setting?"):
  M1 "The model with residual shortcut learns significantly faster and after 50
     epochs outperforms the model-without-shortcut."
  M2 "The images in this dataset are binary black and white, which means that each
     pixel is either totally black 0.0 or totally white 1.0."
  M3 (the suite's own, beyond the source) the prediction sigmoid(relu(z)) is never below
     0.5, so a black target pixel costs at least 0.5: the loss has a floor no
     training removes. Measure it, show both arms reach it, and test M1 again with a
     head that can output 0.

Protocol (000): resnet_block(1) (conv3x3, BN, ReLU, conv3x3, BN, [+ x], ReLU;
kaiming_normal_ fan_out kernels, BN weight 1, bias 0), prediction sigmoid(block(x)),
nn.L1Loss against x, Adam defaults, batch 1, the 30 ISBI membrane labels reshuffled
every epoch, 50 epochs; the two models step in turn on each image; the recorded loss
is the epoch's sum of the 30 per-image losses (here also / 30: the per-pixel mean).
Full tier: the source's protocol exactly (512x512), 16 seeds (the source ran once);
quick tier: "reduced: 64x64 central crops" of the 30 labels (binary, as the
originals), 50 epochs, 16 seeds. Deviations in both tiers: seeds derive from the base
seed (the source is unseeded); each architecture draws its kernels from its own seeded
stream, and a seed's image order is a seeded numpy permutation per epoch; models
train seed-batched, equal to the source's loop in float64
(tests/kernels/test_membrane_kernel.py). M3's fixed head drops the block's final ReLU,
predicting sigmoid(z); the fixed pair starts from the same kernels and sees the same
images as the source's pair.

Statistics (each claim's declaration below says its statistic and test):
  M1.faster, M1.better  (confirmatory) per model the per-pixel L1 averaged over the 50
                   epochs (faster) or at epoch 50 (better); no_shortcut - shortcut, paired
                   by seed: median, exact sign tests both ways. M3.fixed_*: the same for
                   the fixed-head pair.
  M2               every pixel of the 30 PNGs is 0 or 255: exact.
  M3.floor         no source-head run has an epoch loss below 0.5 x the black fraction.
  M3.reaches_floor.<arm>  floor / epoch-50 loss per seed: median in [0.9, 1].
History, calibration and earlier results: docs/HISTORY.md.
"""
from __future__ import annotations


import numpy as np
import pandas as pd
import pytest
import torch

from resclaims.datasets.membrane import Membrane, decode, load
from resclaims.decide import calibration, procedures
from resclaims.decide.claims import Claim, finite_rows
from resclaims.decide.verdict import SOURCE_PROTOCOL, SUPPORTED
from resclaims.families import plotting
from resclaims.families.membrane import curves, plot_reconstructions, share_in_band, shortcut_wins
from resclaims.run.tiers import Tier
from resclaims.kernels import membrane
from resclaims.kernels.membrane import (
    ARMS,
    FIXED_ARMS,
    MembraneProtocol,
    loss_floor,
    prepare,
)

SOURCE = "000"
FULL_PROTOCOL_TARGET_S = 300.0  # 16 seeds x 2 arms x 50 epochs at 512x512 on 2 CPU cores

# -- the claims ------------------------------------------------------------------------------
SHORTCUT_WINS = dict(  # M1's two parts; M3.fixed_* are the same for the fixed-head pair
    source=SOURCE, unit="per-pixel L1", grid=calibration.geometric_grid(1e-4, 0.2),
    quote="The model with residual shortcut learns significantly faster and after 50 epochs outperforms the "
          "model-without-shortcut.",
    stated_text="none stated (the source says 'significantly faster', 'outperforms')",
    procedure=procedures.exceeds_paired(members="the two arms of a seed"))
FASTER = "mean per-pixel L1 over the 50 epochs, {} - {}, median paired difference"
BETTER = "per-pixel L1 at epoch 50, {} - {}, median paired difference"
M1_FASTER = Claim("M1.faster", claim="the shortcut model learns significantly faster", confirmatory=True,
                  statistic=FASTER.format("no_shortcut", "shortcut"), **SHORTCUT_WINS)
M1_BETTER = Claim("M1.better", claim="after 50 epochs the shortcut model outperforms the model without",
                  confirmatory=True, statistic=BETTER.format("no_shortcut", "shortcut"), **SHORTCUT_WINS)
M2 = Claim("M2", source=SOURCE, claim="every pixel is either 0.0 (black) or 1.0 (white)",
           quote="The images in this dataset are binary black and white, which means that each pixel is either "
                 "totally black 0.0 or totally white 1.0.",
           statistic="fraction of pixels exactly 0.0 or 1.0 after the source's float32 / 255",
           procedure=procedures.exact("exact check of every pixel"))
M3_FLOOR = Claim("M3.floor", source="CLAIMS.md",
                 claim="sigmoid(relu(z)) leaves a loss floor of 0.5 x the black fraction that no training removes",
                 statistic="floor, per-pixel L1 (0.5 x fraction of black pixels of the training images)",
                 procedure=procedures.exact("exact: every epoch loss of every source-head run is >= the floor"))
REACHES_FLOOR = dict(source="CLAIMS.md", statistic="floor / per-pixel L1 at epoch 50, median over seeds",
                     procedure=share_in_band, unit="(share)", stated=0.95,
                     stated_text="no value stated; the band's middle")
M3_REACHES_NO_SHORTCUT = Claim(
    "M3.reaches_floor.no_shortcut", claim="the no_shortcut model trains down to the floor", **REACHES_FLOOR)
M3_REACHES_SHORTCUT = Claim(
    "M3.reaches_floor.shortcut", claim="the shortcut model trains down to the floor", **REACHES_FLOOR)
M3_FIXED_FASTER = Claim("M3.fixed_faster", claim="the shortcut model learns significantly faster (fixed head)",
                        statistic=FASTER.format("no_shortcut_fixed", "shortcut_fixed"), **SHORTCUT_WINS)
M3_FIXED_BETTER = Claim("M3.fixed_better", claim="after 50 epochs the shortcut model outperforms the model without "
                        "(fixed head)", statistic=BETTER.format("no_shortcut_fixed", "shortcut_fixed"), **SHORTCUT_WINS)


def protocol_text(protocol: MembraneProtocol, n_seeds: int | str, head: str = "source") -> str:
    text = (f"000's protocol at {protocol.describe(n_seeds)}; deviations: seeded kernels and image order, seed-batched "
            "training (equal to the source's loop in float64)")
    if head == "fixed":
        text += "; fixed head: the final ReLU dropped, prediction sigmoid(z), all else identical"
    return text


TIERS = {name: Tier(seeds=membrane.SEEDS[name], config=protocol, protocol=protocol_text(protocol, "{seeds}"),
                    fidelity=SOURCE_PROTOCOL if protocol.crop is None else
                    f"reduced: {protocol.crop}x{protocol.crop} central crops")
         for name, protocol in membrane.TIERS.items()}


# -- data and runs -------------------------------------------------------------------
@pytest.fixture(scope="module")
def data(dataset) -> Membrane:
    return dataset(load, "membrane")  # skipped if missing, one-line failure if broken


@pytest.fixture(scope="module")
def images(data, config, settings) -> torch.Tensor:
    return prepare(data.images, config, settings.device)


@pytest.fixture(scope="module")
def frame(runs, data, tier, config, settings, report) -> pd.DataFrame:
    """Both pairs (source head, fixed head) for every seed, trained once (or taken from the run cache)."""
    trained = runs(config, tier.seeds, seed_name="M", data=data)
    report.note("M1", f"{settings.tier} tier: {config.describe(tier.seeds)}.")
    return trained


# -- M1 ---------------------------------------------------------------------------------
@pytest.mark.quick
@pytest.mark.full
@pytest.mark.parametrize("part, claim", [("faster", M1_FASTER), ("better", M1_BETTER)], ids=["faster", "better"])
def test_M1_shortcut_wins(frame, images, config, report, judge, part, claim):
    if part == "faster":
        side = f"{config.crop or 512}px"
        plotting.plot_learning_curves(
            frame[frame["head"] == "source"], report.figure_path("M1", "M1_learning_curves"), y="loss_sum",
            by="arm", ylabel=f"L1 loss, sum over the {images.shape[0]} images (source scale)",
            title=f"M1: identity mapping of {side} images with and without shortcut",
        )
        plot_reconstructions(frame, images, report.figure_path("M1", "M1_reconstructions"), config.epochs)
    a, b, details = shortcut_wins(frame, (ARMS[0].name, ARMS[1].name), part)
    judge(claim, a, b, details=details)


# -- M2 ---------------------------------------------------------------------------------
@pytest.mark.quick
@pytest.mark.full
def test_M2_targets_are_binary(data, report, judge):
    files = sorted(data.folder.glob("*.png"), key=lambda p: int(p.stem))
    raw = np.stack([decode(path) for path in files])  # (30, 512, 512) uint8, undecoded by the loader's checks
    binary = np.isin(raw.astype(np.float32) / 255, (0.0, 1.0))  # after the source's conversion
    report.note("M2", f"fraction of black (0) pixels over the 30 full images: {float((raw == 0).mean()):.4f}")
    judge.exact(M2, bool(binary.all()), float(binary.mean()), n=len(files),
                why="exact, no sampling: every pixel is checked",
                protocol=f"all {raw.shape[1]}x{raw.shape[2]} pixels of the {len(files)} label PNGs, decoded with Pillow",
                details={"values": np.unique(raw).tolist(), "black_fraction": float((raw == 0).mean()),
                         "non_binary_pixels": int((~binary).sum())})


# -- M3 ---------------------------------------------------------------------------------
@pytest.mark.quick
@pytest.mark.full
def test_M3_floor_is_a_bound(frame, images, tier, config, report, judge):
    floor = loss_floor(images.cpu().numpy())
    source_head = frame[frame["head"] == "source"]
    excess = source_head.loss.to_numpy() - floor
    fixed_below = frame[(frame["head"] == "fixed") & (frame.loss < floor)]
    report.note("M3", f"floor 0.5 x black fraction = {floor:.4f} per pixel ({floor * images.shape[0]:.3f} on the "
                      f"source's scale); fixed-head runs below it at epoch {config.epochs}: "
                      f"{fixed_below[fixed_below.epoch == config.epochs - 1].shape[0]} of {tier.seeds * 2}")
    plotting.plot_learning_curves(
        frame, report.figure_path("M3", "M3_learning_curves"), by="arm", threshold=floor, logy=True,
        ylabel="L1 loss, per-pixel mean", title="M3: both heads; dashed: the floor of sigmoid(relu(z))",
    )
    tolerance = 1e-6 * floor  # float32 sums of per-image means
    n_runs = source_head[["seed", "arm"]].drop_duplicates().shape[0]
    judge.exact(M3_FLOOR, bool(excess.min() >= -tolerance), floor, n=n_runs,
                why="exact, no sampling: a bound checked on every epoch of every run",
                details={"min_excess_over_floor": float(excess.min()), "floor_source_scale": floor * images.shape[0]})


@pytest.mark.quick
@pytest.mark.full
@pytest.mark.parametrize("claim", [M3_REACHES_NO_SHORTCUT, M3_REACHES_SHORTCUT],
                         ids=lambda claim: claim.id.removeprefix("M3.reaches_floor."))
def test_M3_arm_reaches_floor(frame, images, judge, claim):
    floor = loss_floor(images.cpu().numpy())
    final = curves(frame, claim.id.removeprefix("M3.reaches_floor."))[:, -1]
    share = floor / final  # a diverged run's last epoch is NaN: the judge leaves it out and counts it
    ok = np.isfinite(final)
    judge(claim, share, details={"floor": floor, "mean_final_loss": float(final[ok].mean()),
                                 "mean_share": float(share[ok].mean()), "min_share": float(share[ok].min()),
                                 "max_share": float(share[ok].max())})


@pytest.mark.quick
@pytest.mark.full
@pytest.mark.parametrize("part, claim, m1", [("faster", M3_FIXED_FASTER, M1_FASTER),
                                             ("better", M3_FIXED_BETTER, M1_BETTER)], ids=["faster", "better"])
def test_M3_M1_with_fixed_head(frame, tier, config, report, judge, part, claim, m1):
    source_head, _ = finite_rows(*shortcut_wins(frame, (ARMS[0].name, ARMS[1].name), part)[:2])
    original = m1.procedure(*source_head).verdict
    a, b, details = shortcut_wins(frame, (FIXED_ARMS[0].name, FIXED_ARMS[1].name), part)
    fixed = judge.record(claim, a, b, protocol=protocol_text(config, tier.seeds, "fixed"), details=details)
    survives = "survives" if fixed.verdict == SUPPORTED else f"does not survive ({fixed.verdict})"
    report.note("M3", f"{m1.id} ({original} with the source's head) {survives} the fixed head: {fixed.summary()}")
    judge.outcome(claim, fixed)
