"""What a CIFAR training run is: its protocol (:class:`TrainConfig`), its arms, and each family's tiers.

:data:`HE2015` is He et al.'s protocol, ``TrainConfig()`` source 003's;
:data:`K_TIERS` and :data:`D_TIERS` are claims K's and D's quick and full tiers
(:class:`resclaims.run.tiers.Tier`: seeds per arm, fidelity, protocol line, and the family's
config, :class:`KerasFamily` or :class:`HeFamily`), the one place their seeds are declared.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import ClassVar

import torch.nn as nn

from resclaims.decide.verdict import SOURCE_PROTOCOL

from resclaims.models.cifar import WIDTHS, CifarNet
from resclaims.models.keras003 import Keras003
from resclaims.run.tiers import REDUCED, Tier

RECIPES = ("keras003", "he2015")
ORDERS = ("batches", "images", "stream")
STACKS = ("auto", "grouped", "loop")  # how the runs of one arm train together (see ModelStack)


@dataclass(frozen=True)
class TrainConfig:
    """One training protocol. The defaults are source 003's; :data:`HE2015` is He et al.'s."""

    recipe: str = "keras003"  # keras003 (source 003) or he2015 (He et al. section 4.2)
    steps: int = 30 * 195  # optimizer steps per run (003: epochs=30, steps_per_epoch=195)
    log_every: int = 195  # steps per logged epoch (003: steps_per_epoch=195)
    batch_size: int = 64  # 003: .batch(64); He: 128
    order: str = "batches"  # batches (003's quirk), images, or stream (Caffe, He)
    val_size: int = 0  # training images held out for validation (He: 5,000)
    eval_val: bool = True  # evaluate the validation split every logged epoch
    test_size: int | None = None  # test images evaluated per epoch, a fixed subset (None: all 10,000)
    train_eval_size: int = 0  # clean training images evaluated in eval mode per epoch (claim D2)
    milestones: tuple[int, ...] = ()  # he2015: iterations where lr is divided by 10 (32k, 48k)
    downsample: int = 1  # he2015: average-pool images by this factor (quick tier: 2, 16x16 inputs)
    lr_scale: float = 1.0  # multiplies the recipe's learning rate at every step (1: the source's)

    def __post_init__(self) -> None:
        if self.recipe not in RECIPES:
            raise ValueError(f"recipe must be one of {RECIPES}, got {self.recipe!r}")
        if self.order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {self.order!r}")
        if self.steps < 1 or self.log_every < 1 or self.steps % self.log_every:
            raise ValueError(f"steps ({self.steps}) must be a positive multiple of log_every ({self.log_every})")


HE2015 = TrainConfig(
    recipe="he2015",
    steps=64_000,  # "terminate training at 64k iterations"
    log_every=1_000,
    batch_size=128,
    order="stream",
    val_size=5_000,  # "45k/5k train/val split"
    milestones=(32_000, 48_000),  # "divide it by 10 at 32k and 48k iterations"
)


@dataclass(frozen=True)
class Arm:
    """One condition: a model architecture and how it starts training."""

    name: str  # e.g. "resnet-10", "plain-56"
    build: Callable[[], nn.Module]  # a fresh model, initialised from torch's global generator
    warmup_steps: int = 0  # he2015: iterations at lr 0.01 before 0.1 (He et al.: ResNet-110, about 400)


def keras_arms(blocks: Sequence[int], width: float = 1.0, suffix: str = "") -> list[Arm]:
    """Source 003's residual and plain networks at each block count: "resnet-10", "plain-10", ..."""
    return [
        Arm(f"{kind}-{b}{suffix}", partial(Keras003, b, residual=kind == "resnet", width=width))
        for b in blocks
        for kind in ("resnet", "plain")
    ]


def he_arms(depths: Sequence[int], residual: bool, widths: tuple[int, int, int] = WIDTHS) -> list[Arm]:
    """He et al.'s CIFAR nets: "resnet-20", "plain-56", ...; depth 110 and deeper warm up for 400 iterations."""
    kind = "resnet" if residual else "plain"
    return [
        Arm(f"{kind}-{d}", partial(CifarNet, d, residual=residual, widths=widths), warmup_steps=400 if d >= 110 else 0)
        for d in depths
    ]


class Family:
    """What K's and D's tier configs share: how a tier reads in the report. A config at its source's protocol is
    ``"<source> exactly"``; another is reduced, and says what differs."""

    source: ClassVar[str]  # the source's protocol, in a few words: "003's protocol"

    @property
    def at_source(self) -> bool:  # the source's protocol exactly
        raise NotImplementedError

    @property
    def differences(self) -> str:  # what differs from the source's protocol, for the fidelity
        raise NotImplementedError

    @property
    def scale(self) -> str:  # what differs, for the protocol line
        return self.differences

    @property
    def setup(self) -> str:  # the rest of the protocol line ({seeds}: the session's seeds per arm)
        raise NotImplementedError

    def tier(self, seeds: int) -> Tier:
        """This config as a tier of ``seeds`` per arm, with its fidelity and protocol line."""
        if self.at_source:
            fidelity, scale = SOURCE_PROTOCOL, f"{self.source} exactly"
        else:
            fidelity, scale = REDUCED + self.differences, f"{self.source}, {self.scale}"
        return Tier(seeds=seeds, fidelity=fidelity, protocol=f"{scale}; {self.setup}", config=self)


@dataclass(frozen=True)
class KerasFamily(Family):
    """Claims K1-K3: source 003's network and protocol at one tier (:data:`K_TIERS`)."""

    train: TrainConfig
    width: float = 1.0  # channel multiplier (source: 1.0)
    blocks: int = 10  # K1, K2 (source: num_res_net_blocks = 10)
    depth_blocks: tuple[int, ...] = (5, 10, 20)  # K3's block counts; () leaves K3 to the full tier
    order_effect: bool = True  # also train with images reshuffled each pass (the batch-shuffle quirk's effect)

    source: ClassVar[str] = "003's protocol"

    @property
    def at_source(self) -> bool:
        return self.train == TrainConfig() and self.width == 1.0

    @property
    def differences(self) -> str:
        t = self.train
        return f"first {t.steps} of 5,850 steps, width x{self.width:g}, test subset {t.test_size or 10_000}"

    @property
    def setup(self) -> str:
        return (f"Keras net (glorot-uniform, BN momentum 0.99, eps 1e-3), Keras Adam (lr 1e-3, eps 1e-7), batch "
                f"{self.train.batch_size}, .batch(64).shuffle(10000) order, central crop 24 + flip; {{seeds}} seeds "
                "per arm, paired by seed")


@dataclass(frozen=True)
class HeFamily(Family):
    """Claims D1-D3 and H1: He et al.'s CIFAR nets and recipe at one tier (:data:`D_TIERS`)."""

    train: TrainConfig
    depths: tuple[int, int] = (20, 56)  # D1, D2: (shallow, deep), plain and residual
    widths: tuple[int, int, int] = WIDTHS  # stage widths (He: 16, 32, 64)
    table_depths: tuple[int, ...] = (20, 32, 44, 56, 110)  # H1's ResNets; () leaves H1 to the full tier
    grad: TrainConfig = HE2015  # D3's recipe
    grad_depth: int = 56  # D3's plain net
    grad_checkpoints: tuple[int, ...] = (0, 10, 100, 1000)  # D3: steps whose gradients are measured

    source: ClassVar[str] = "He et al. 4.2"

    @property
    def at_source(self) -> bool:
        return self.train.steps == HE2015.steps

    @property
    def _reduced(self) -> str:
        side = 32 // self.train.downsample
        return (f"first {self.train.steps} of 64k iterations, widths {'-'.join(map(str, self.widths))}, "
                f"{side}x{side} inputs")

    @property
    def differences(self) -> str:
        return f"depths {self.depths[0]} and {self.depths[1]}, {self._reduced}"

    @property
    def scale(self) -> str:
        return f"{self._reduced}, error subsets {self.train.test_size}/{self.train.train_eval_size}"

    @property
    def setup(self) -> str:
        return f"depths {self.depths[0]} vs {self.depths[1]}; {{seeds}} seeds per arm, paired by seed"


K_TIERS = {
    # 2-core CPU, about 60 s: the first 400 of 003's 5,850 steps, every channel count / 4 (8-16-64 for 32-64-256),
    # test accuracy on a fixed 2,000 of the 10,000 test images. K3 (2.5x the cost) and the order effect: full tier only.
    # Seeds: runs per arm, paired by seed across arms.
    "quick": KerasFamily(
        train=TrainConfig(steps=400, log_every=100, test_size=2_000), width=0.25,
        depth_blocks=(), order_effect=False,
    ).tier(seeds=5),
    "full": KerasFamily(train=TrainConfig()).tier(seeds=10),
}  # fmt: skip

D_TIERS = {
    # 2-core CPU, about 70 s: depths 8 and 20 (ratio 2.5; He: 20 and 56, 2.8) at half width (8-16-32) on 16x16
    # images (2x2 means of the augmented 32x32), the first 200 of He's 64k iterations (lr 0.1 throughout), errors on
    # fixed 2,000-image subsets. D3 (10 s): plain-56 as He builds it, batch 32, gradients at steps 0 and 5.
    # H1: full tier only. 8 seeds per arm at both: the sign test's smallest p, 1/256, survives Holm.
    "quick": HeFamily(
        train=replace(HE2015, steps=200, log_every=100, eval_val=False, test_size=2_000, train_eval_size=2_000,
                      downsample=2),
        depths=(8, 20), widths=(8, 16, 32), table_depths=(),
        grad=replace(HE2015, batch_size=32), grad_checkpoints=(0, 5),
    ).tier(seeds=8),
    "full": HeFamily(train=replace(HE2015, train_eval_size=5_000)).tier(seeds=8),
}  # fmt: skip
