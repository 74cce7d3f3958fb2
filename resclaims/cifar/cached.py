"""Training through the session's run cache (:mod:`resclaims.cache`).

The cache keys runs by the kernel ``resclaims.cifar``: the package's name and the
source of all its modules (any change to one retrains), and :data:`MODELS_VERSION`,
the source of the models it trains.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

import pandas as pd
import torch

from resclaims.cache import kernel_version
from resclaims.cifar.config import Arm, TrainConfig
from resclaims.cifar.training import gradient_norms, train
from resclaims.cifar.workers import default_workers
from resclaims.datasets.cifar10 import Cifar10
from resclaims.models import cifar as he_models
from resclaims.models import grouped as grouped_models
from resclaims.models import keras003

# cached runs depend on the model code too
MODELS_VERSION = kernel_version(keras003) + kernel_version(he_models) + kernel_version(grouped_models)


def train_cached(claim: str, cfg: TrainConfig, arms: Sequence[Arm], seeds: Sequence[int], data: Cifar10,
                 device: torch.device, run_cache, progress) -> pd.DataFrame:
    """:func:`train` through the session's run cache, with a progress bar.

    Runs are cached per (arm, seed), and each arm is stored as soon as it has
    trained: a session stopped part-way (a full tier takes hours) keeps the arms
    it finished, and the next one trains only what is missing. An arm in
    training checkpoints into the cache every two minutes (:func:`train`), so
    the next session resumes it where the last one stopped (:data:`CHECKPOINT_SECONDS`).
    """
    by_name = {arm.name: arm for arm in arms}
    kernel, key = sys.modules[__package__], {"config": cfg, "data": data.checksum, "models": MODELS_VERSION}

    def fit(todo: list[Arm], missing: list[int], keep: Callable[[Arm, pd.DataFrame], None]) -> pd.DataFrame:
        epochs = len(todo) * cfg.steps // cfg.log_every
        scratch = run_cache.scratch(kernel, device_kind=device.type, seeds=missing, **key)  # a file per arm in it
        with progress.track(claim, ", ".join(a.name for a in todo), len(missing), epochs) as on_epoch:
            return train(cfg, todo, missing, data, device, workers=default_workers(device), on_epoch=on_epoch,
                         on_arm=lambda frame: keep(by_name[frame.arm.iloc[0]], frame), checkpoints=scratch)  # fmt: skip

    return run_cache.runs_per_condition(kernel, fit, list(arms), seeds, device_kind=device.type, **key)


def gradient_norms_cached(cfg: TrainConfig, arms: Sequence[Arm], seeds: Sequence[int], data: Cifar10,
                          checkpoints: Sequence[int], device: torch.device, run_cache) -> pd.DataFrame:
    """:func:`gradient_norms` through the session's run cache."""
    return run_cache.runs(
        sys.modules[__package__],
        lambda missing: gradient_norms(cfg, arms, missing, data, checkpoints, device, workers=default_workers(device)),
        seeds, device_kind=device.type, config=cfg, arms=list(arms), data=data.checksum, models=MODELS_VERSION,
        checkpoints=tuple(checkpoints),
    )  # fmt: skip
