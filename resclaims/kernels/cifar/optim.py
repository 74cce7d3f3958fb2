"""The recipes' optimisers: Keras' Adam (source 003) and He et al.'s SGD with its learning-rate schedule."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from resclaims.kernels.cifar.config import TrainConfig


class KerasAdam(torch.optim.Adam):
    """Adam as Keras computes it, with Keras' defaults (lr 1e-3, betas 0.9/0.999, epsilon 1e-7).

    Keras adds epsilon to sqrt(v) before bias correction::

        Keras:   p -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)
        PyTorch: p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps')

    so the two agree when ``eps' = eps / sqrt(1 - b2^t)``: PyTorch's ``eps`` is set
    to that before every step. (At t = 1 it is 3.2e-6; it falls to 1e-7 as t grows.)
    """

    def __init__(self, params, lr: float = 1e-3, beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7) -> None:
        super().__init__(params, lr=lr, betas=(beta_1, beta_2), eps=epsilon)
        self.keras_epsilon = epsilon
        self.iterations = 0

    @torch.no_grad()
    def step(self, closure=None):
        self.iterations += 1
        for group in self.param_groups:
            group["eps"] = self.keras_epsilon / math.sqrt(1 - group["betas"][1] ** self.iterations)
        return super().step(closure)


def he_lr(step: int, milestones: Sequence[int], warmup_steps: int = 0) -> float:
    """He et al.'s learning rate at 0-based iteration ``step``: 0.1, /10 at each milestone; 0.01 in warm-up."""
    if step < warmup_steps:
        return 0.01
    return 0.1 * 0.1 ** sum(step >= m for m in milestones)


def make_optimizer(cfg: TrainConfig, params: list[torch.Tensor]) -> torch.optim.Optimizer:
    if cfg.recipe == "keras003":
        return KerasAdam(params, lr=1e-3 * cfg.lr_scale)
    return torch.optim.SGD(params, lr=0.1 * cfg.lr_scale, momentum=0.9, weight_decay=1e-4)
