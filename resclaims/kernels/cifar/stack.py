"""The runs of one arm as one module: each model built from its own seed, held side by side in a :class:`ModelStack`."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from contextlib import contextmanager

import torch
import torch.nn as nn

from resclaims.kernels.cifar.config import Arm
from resclaims.models import grouped as grouped_models
from resclaims.run.seeding import numpy_rng


def run_seed(purpose: str, seed: int, arm: str) -> int:
    """The seed of run (``seed``, ``arm``) for ``purpose`` (its initialisation, its dropout masks)."""
    return int(numpy_rng(seed, purpose, arm).integers(2**63))


def build(arm: Arm, seed: int) -> nn.Module:
    """``arm``'s model initialised from ``seed``, leaving the caller's CPU generator as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(run_seed("init", seed, arm.name))
        return arm.build()


@contextmanager
def seeded_device(device: torch.device, seed: int):
    """Seed ``device``'s global generator (dropout draws from it) and restore it afterwards."""
    cuda = device.type == "cuda"
    with torch.random.fork_rng(devices=[device] if cuda else []):
        if cuda:
            torch.cuda.manual_seed(seed)
        else:
            torch.default_generator.manual_seed(seed)
        yield


class ModelStack:
    """G independent models of one architecture, held as one grouped module (:mod:`resclaims.models.grouped`).

    ``stack(xs)`` runs model g on ``xs[g]`` for every g: in one grouped pass
    (``grouped=True`` and all batches the same size) or one model after the
    other through views of the grouped parameters. Either way each model sees
    only its own batch and its own BatchNorm statistics, so summing the G losses
    and stepping one optimizer over the grouped parameters trains each model
    exactly as alone (Adam and SGD act elementwise).
    """

    def __init__(self, models: Sequence[nn.Module], grouped: bool, channels_last: bool = False) -> None:
        self.template = copy.deepcopy(models[0]).to("meta")  # the architecture, for one model at a time
        self.net = grouped_models.group(models)
        self.size, self.grouped, self.channels_last = len(models), grouped, channels_last
        if channels_last:
            self.net.to(memory_format=torch.channels_last)

    def format(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` in the stack's memory format (channels_last or contiguous)."""
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def __call__(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Logits of model g on ``xs[g]`` (B_g, ...) for every g."""
        if self.grouped and len({x.shape for x in xs}) == 1:
            z = self.net(self.format(grouped_models.join_inputs(xs)))  # (B, G*10)
            return list(grouped_models.split_logits(z, self.size).unbind(0))
        return [grouped_models.member_forward(self.net, self.template, g, self.format(x)) for g, x in enumerate(xs)]

    def shared(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of every model on the same batch: (G, B, classes)."""
        return torch.stack(self([x] * self.size))

    def parameters(self) -> list[torch.Tensor]:
        return list(self.net.parameters())

    def train(self, mode: bool = True) -> None:
        self.net.train(mode)

    def module(self, g: int, template: nn.Module) -> nn.Module:
        """Model g as an ordinary module (``template`` supplies the architecture)."""
        template.load_state_dict(grouped_models.member_state(self.net, g, template))
        return template
