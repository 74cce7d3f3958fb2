"""The CIFAR kernel of :mod:`resclaims.run.runs`: protocols (a recipe and its arms) in, tidy frames out.

:class:`CifarRuns` trains every arm at every seed (claims K1-K3, D1, D2, H1);
its conditions are its arms, so the run cache stores each (arm, seed) as soon as
its arm has trained, and a session stopped part-way keeps the arms it finished.
An arm in training checkpoints into the cache's scratch folder (see
:func:`resclaims.kernels.cifar.training.train`), so the next session resumes it.
:class:`GradientRuns` records per-layer gradient norms (claim D3), one condition.

Cached runs are keyed by :data:`VERSION`: the source of every module of
:mod:`resclaims.kernels.cifar` and of the models it trains (any change to one retrains).
Published runs (:mod:`resclaims.run.store`) are keyed by :data:`NAME` and :data:`NUMERICS`
instead, never by source: bump :data:`NUMERICS` with any change that changes the numbers a
run produces (the store's spot check fails until it is bumped). :func:`validate` says when
a frame cannot have come from its protocol.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import torch

from resclaims.datasets.cifar10 import Cifar10
from resclaims.kernels.cifar.config import Arm, TrainConfig
from resclaims.kernels.cifar.steps import resolve_mode
from resclaims.kernels.cifar.training import gradient_norms as gradient_arms
from resclaims.kernels.cifar.training import train as train_arms
from resclaims.kernels.cifar.workers import default_workers
from resclaims.models import cifar as he_models
from resclaims.models import grouped as grouped_models
from resclaims.models import keras003
from resclaims.run.cache import kernel_version

# cached runs depend on the model code too
MODELS_VERSION = kernel_version(keras003) + kernel_version(he_models) + kernel_version(grouped_models)
VERSION = kernel_version(sys.modules[__package__]) + MODELS_VERSION  # the whole package, and the models
NAME = "cifar"  # what the published run store files these runs under
NUMERICS = 1  # bump when a change changes the numbers a run produces (the published run store keys by it)


@dataclass(frozen=True)
class CifarRuns:
    """Every arm trained under one recipe; arms at the same seed see the same batches (paired by seed)."""

    train: TrainConfig
    arms: tuple[Arm, ...]
    kernel: ClassVar[str] = __name__

    @property
    def name(self) -> str:
        return ", ".join(arm.name for arm in self.arms)

    def conditions(self) -> list["CifarRuns"]:
        """One protocol per arm: each (arm, seed) is cached on its own."""
        return [CifarRuns(self.train, (arm,)) for arm in self.arms]

    def select(self, conditions: Sequence["CifarRuns"]) -> "CifarRuns":
        """The protocol of a subset of :meth:`conditions`."""
        return CifarRuns(self.train, tuple(arm for c in conditions for arm in c.arms))


@dataclass(frozen=True)
class GradientRuns:
    """Per-layer weight-gradient norms of every arm at the 0-based steps ``checkpoints`` (claim D3)."""

    train: TrainConfig
    arms: tuple[Arm, ...]
    checkpoints: tuple[int, ...]
    kernel: ClassVar[str] = __name__

    @property
    def name(self) -> str:
        return "gradients of " + ", ".join(arm.name for arm in self.arms)


def device_kind(device: torch.device) -> str:
    """The cache's device kind for runs trained on ``device``: its type, and on a GPU the step mode, whose numbers
    differ (a captured step's dropout masks, :mod:`resclaims.kernels.cifar.steps`); CPU runs are eager, plain ``"cpu"``."""
    mode = resolve_mode("auto", device)
    return device.type if mode == "eager" else f"{device.type}, {mode} steps"


def from_content(content: dict[str, Any]) -> CifarRuns:
    """The one-arm :class:`CifarRuns` whose :func:`resclaims.run.store.content` is ``content`` (what a published run's
    key records): 003's recipe builds :class:`~resclaims.models.keras003.Keras003`, He's
    :class:`~resclaims.models.cifar.CifarNet`, from the arguments the key holds."""
    train = {k: tuple(v) if isinstance(v, list) else v for k, v in content["train"].items()}
    config = TrainConfig(**train)
    model = keras003.Keras003 if config.recipe == "keras003" else he_models.CifarNet
    arms = tuple(Arm(a["name"], partial(model, *a["build"]["args"], **{k: tuple(v) if isinstance(v, list) else v
                                                                        for k, v in a["build"]["keywords"].items()}),
                     a["warmup_steps"]) for a in content["arms"])
    return CifarRuns(config, arms)


def load_data(data_dir: Path | None) -> Cifar10:
    """The data set published runs trained on, from ``data_dir`` or the download cache (never downloaded)."""
    from resclaims.datasets import cifar10

    return cifar10.load(data_dir, download_missing=False)


def first_epoch(protocol: CifarRuns, group: Sequence[int], data: Cifar10) -> pd.DataFrame:
    """The first logged epoch of ``protocol``'s runs at ``group`` (the seeds that trained together), trained on this
    CPU as the kernel trains: what the store's spot check compares with a published run's first row."""
    cfg = replace(protocol.train, steps=protocol.train.log_every)
    return train_arms(cfg, protocol.arms, list(group), data, torch.device("cpu"))


def validate(protocol: CifarRuns | GradientRuns, frame: pd.DataFrame) -> str | None:
    """Why one seed's frame of a one-arm ``protocol`` cannot have come from it (None: it can): another arm, not
    one row per logged epoch 1..E, or an accuracy outside [0, 1] (NaN only where the run diverged, or in a
    column of a split the protocol does not evaluate: all NaN)."""
    if isinstance(protocol, GradientRuns):
        return None
    (arm,) = protocol.arms
    epochs = protocol.train.steps // protocol.train.log_every
    if "arm" not in frame or set(frame["arm"]) != {arm.name}:
        return f"its rows are not all of arm {arm.name}"
    if "epoch" not in frame or sorted(frame["epoch"]) != list(range(1, epochs + 1)):
        return f"it does not hold one row for each of the protocol's {epochs} logged epochs"
    diverged = frame["diverged"].to_numpy(bool) if "diverged" in frame else False
    for column in (c for c in frame if c.endswith("_acc")):
        values = frame[column].to_numpy(float)
        if (values != values).all():  # a split the protocol does not evaluate (003 holds out no validation images)
            continue
        bad = ~((values >= 0) & (values <= 1)) & ~(diverged & (values != values))
        if bad.any():
            return f"{column} {values[bad][0]!r} is not an accuracy in [0, 1]"
    return None


def progress_total(protocol: CifarRuns | GradientRuns, n_seeds: int) -> int:
    """``on_epoch`` calls: one per logged epoch of each arm (gradients: one per arm)."""
    if isinstance(protocol, GradientRuns):
        return len(protocol.arms)
    return len(protocol.arms) * protocol.train.steps // protocol.train.log_every


def train(protocol: CifarRuns | GradientRuns, seeds: Sequence[int], device: torch.device, *, data: Cifar10,
          on_epoch: Callable[[int], None] | None = None,
          on_condition: Callable[[Any, pd.DataFrame], None] | None = None,
          checkpoints: Path | None = None) -> pd.DataFrame:
    """The :mod:`resclaims.run.runs` kernel: one row per (arm, seed, logged epoch), or (gradients) per layer and step.

    Arms train in worker processes on CPU (:func:`default_workers`); each finished
    arm is handed to ``on_condition`` as its one-arm :class:`CifarRuns`.
    """
    if isinstance(protocol, GradientRuns):
        frame = gradient_arms(protocol.train, protocol.arms, seeds, data, protocol.checkpoints, device,
                              workers=default_workers(device))
        for i, _ in enumerate(protocol.arms, start=1):
            if on_epoch is not None:
                on_epoch(i)
        return frame  # one condition: handed over by returning it
    by_name = {arm.name: arm for arm in protocol.arms}

    def hand_over(frame: pd.DataFrame) -> None:  # an arm's frame, as its one-arm protocol
        if on_condition is not None:
            on_condition(CifarRuns(protocol.train, (by_name[frame.arm.iloc[0]],)), frame)
    return train_arms(protocol.train, protocol.arms, seeds, data, device, workers=default_workers(device),
                      on_epoch=on_epoch, on_arm=hand_over, checkpoints=checkpoints)
