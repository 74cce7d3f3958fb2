"""Zero mapping against identity mapping with a 9-parameter conv (source 001).

The source (Martyn, "How residual shortcuts speed up learning: a minimal
demonstration", 2019) trains ``OneConv``, a 3x3 conv (1 -> 1 channel, stride 1,
padding 1, no bias) and a ReLU, initialised with ``kaiming_normal_(mode="fan_out",
nonlinearity="relu")``, with Adam at PyTorch defaults, an L1 loss and batch size 1
over 200 uniform-random 3x3 images for 20 epochs. One experiment trains a fresh
model on X -> X (identity) and another on X -> 0 (zero) with the same X. It
records ``running_loss / epochs`` per epoch: the sum of the 200 per-sample losses
divided by 20, not their mean. Its dashed threshold, 0.01, is on that scale.

This module holds the source's model and training loop (the reference) and a
seed-batched kernel that trains every model of every experiment in one tensor
program: each model's conv is a (1 x 9) @ (9 x 9) product of its weights with
the 9 patches of its input (``F.unfold``), batched with ``torch.bmm``, and one
Adam steps all weights, stacked. Adam is elementwise and each model's loss
depends on its own weights only, so this is the source's computation, model by
model (``tests/kernels/test_zero_identity_kernel.py`` shows it).

Each model trains in an *arm*: the source's two are identity (X -> X) and zero
(X -> 0). Beyond the source, an arm can give every sample the same input (a
constant target) or add a shortcut (``relu(x + conv(x))``, whose optimum is the
zero kernel). Claim Z4 uses these to separate the source's two candidate causes.

The kernel follows :mod:`resclaims.run.runs`: ``train(protocol, seeds, device)`` with a
:class:`ZeroIdentityProtocol` (no sample size in it) returns a tidy frame.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

from resclaims.run.seeding import numpy_rng, torch_generator

LOSS_SCALES = ("source", "mean")


@dataclass(frozen=True)
class ZeroIdentityProtocol:
    """How one experiment trains its models (the number of experiments is not part of it)."""

    kernel: ClassVar[str] = __name__
    arms: tuple[str, ...] = ("identity", "zero")  # the models each experiment trains (ARMS)
    shared_init: bool = False  # every arm of an experiment starts from the same kernel (Z4's paired design)
    n_samples: int = 200  # 3x3 images per experiment (source: 200)
    epochs: int = 20  # passes over the samples (source: 20)
    threshold: float = 0.01  # the source's dashed line, on the "source" loss scale
    loss_scale: str = "source"  # "source": epoch sum / epochs, as 001 records it; "mean": per-sample mean
    dtype: torch.dtype = torch.float32  # the source trains in float32
    lr: float = 1e-3  # Adam's learning rate (the source: PyTorch's default, 1e-3)

    def __post_init__(self) -> None:
        if self.loss_scale not in LOSS_SCALES:
            raise ValueError(f"loss_scale must be one of {LOSS_SCALES}, got {self.loss_scale!r}")
        unknown = sorted(set(self.arms) - set(ARMS))
        if unknown:
            raise ValueError(f"unknown arms {unknown}; known: {sorted(ARMS)}")

    def scale_factor(self, loss_scale: str | None = None) -> float:
        """What the epoch's sum of per-sample losses is divided by on ``loss_scale``."""
        return self.epochs if (loss_scale or self.loss_scale) == "source" else self.n_samples




@dataclass(frozen=True)
class Arm:
    """What one model learns: its inputs, its targets and its architecture."""

    name: str
    target: str  # "input" (X -> X) or "zero" (X -> 0)
    fixed_input: bool = False  # every sample is the experiment's first image: the target never changes
    shortcut: bool = False  # output relu(x + conv(x)) instead of relu(conv(x))

    @property
    def optimum(self) -> str:
        """The unique optimal kernel: "zero" (all weights 0) or "centre" (central weight 1)."""
        if self.target == "zero" or self.shortcut:
            return "zero"
        return "centre"

    @property
    def target_varies(self) -> bool:
        return self.target == "input" and not self.fixed_input


ARMS = {
    arm.name: arm
    for arm in (
        Arm("identity", target="input"),  # source: X -> X
        Arm("zero", target="zero"),  # source: X -> 0
        Arm("identity_fixed_input", target="input", fixed_input=True),  # x0 -> x0: centre optimum, constant target
        Arm("residual_identity", target="input", shortcut=True),  # X -> X through a shortcut: zero optimum, varying target
    )
}


SOURCE_PROTOCOL = ZeroIdentityProtocol()  # 001's protocol: both tiers train it
SOURCE_SEEDS = 100  # the source's own number of experiments


class OneConv(nn.Module):
    """The source's model: one 3x3 conv without bias, then a ReLU (9 parameters)."""

    def __init__(self, channels: int = 1, shortcut: bool = False, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, stride=1, padding=1, bias=False)
        self.relu = nn.ReLU()
        self.shortcut = shortcut  # not in the source; Z4 only
        nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu", generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.conv1(x)  # (B, C, 3, 3)
        if self.shortcut:
            z = z + x
        return self.relu(z)


def initial_weights(seed: int, stream: str) -> torch.Tensor:
    """A OneConv's initial kernel for one run, drawn as the source draws it: shape (1, 1, 3, 3)."""
    return OneConv(generator=torch_generator(seed, "init", stream)).conv1.weight.detach()


def experiment_inputs(seed: int, n_samples: int) -> np.ndarray:
    """The experiment's X: ``n_samples`` uniform [0, 1) 3x3 images, float32, as ``np.random.random``."""
    return numpy_rng(seed, "data").random((n_samples, 3, 3)).astype(np.float32)


def arm_data(arm: Arm, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and targets, each (n_samples, 3, 3), for one arm on one experiment's X."""
    inputs = np.broadcast_to(x[:1], x.shape).copy() if arm.fixed_input else x
    targets = inputs if arm.target == "input" else np.zeros_like(inputs)
    return inputs, targets


def train_sequential(
    inputs: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor, epochs: int, shortcut: bool = False,
    lr: float = 1e-3,
) -> list[float]:
    """The source's ``train()``: one model, one optimiser, one sample at a time.

    ``inputs`` and ``targets`` have shape (n_samples, 1, 1, 3, 3), as in the
    source; ``weight`` is the initial kernel. Returns the sum of per-sample
    losses per epoch (the source divides it by ``epochs``).
    """
    model = OneConv(1, shortcut=shortcut).to(dtype=inputs.dtype, device=inputs.device)
    with torch.no_grad():
        model.conv1.weight.copy_(weight)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    criterion = nn.L1Loss()
    sums = []
    for _ in range(epochs):
        running_loss = 0.0
        for i, x in enumerate(inputs):
            optimizer.zero_grad()
            loss = criterion(model(x), targets[i])
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
        sums.append(running_loss)
    return sums


def train_batched(
    inputs: torch.Tensor,
    targets: torch.Tensor,
    weights: torch.Tensor,
    shortcut: torch.Tensor,
    epochs: int,
    on_epoch: Callable[[int], None] | None = None,
    lr: float = 1e-3,
) -> torch.Tensor:
    """Train M independent OneConvs at once; returns each epoch's loss sum, (epochs, M) float64.

    ``inputs`` and ``targets`` are (M, S, 3, 3), ``weights`` (M, 1, 3, 3) and
    ``shortcut`` (M,) bool. Every model sees its own samples in order, one per
    step, exactly as :func:`train_sequential` does. ``on_epoch(epoch)`` is
    called after each epoch (for progress). A model whose loss becomes NaN or
    inf has diverged: its sums from then on are not finite, it does not touch
    the other models (each has its own weights and Adam state), and training
    stops early once every model has diverged.
    """
    m, s = inputs.shape[:2]
    patches = F.unfold(inputs.reshape(m * s, 1, 3, 3), 3, padding=1)  # (M*S, 9 taps, 9 pixels)
    patches = patches.reshape(m, s, 9, 9).transpose(0, 1).contiguous()  # (S, M, 9, 9)
    skip = (inputs * shortcut.view(m, 1, 1, 1)).transpose(0, 1).reshape(s, m, 1, 9).contiguous()  # (S, M, 1, 9)
    target = targets.transpose(0, 1).reshape(s, m, 1, 9).contiguous()  # (S, M, 1, 9)
    w = weights.reshape(m, 1, 9).clone().requires_grad_(True)  # (M, 1, 9)
    optimizer = torch.optim.Adam([w], lr=lr)
    sums = torch.full((epochs, m), torch.nan, dtype=torch.float64, device=inputs.device)
    for epoch in range(epochs):
        sums[epoch] = 0.0
        for i in range(s):
            optimizer.zero_grad(set_to_none=True)
            z = F.relu(torch.bmm(w, patches[i]) + skip[i])  # (M, 1, 9)
            loss = (z - target[i]).abs().mean(dim=(1, 2))  # (M,): nn.L1Loss per model
            loss.sum().backward()  # each model's gradient is its own loss's
            optimizer.step()
            sums[epoch] += loss.detach()
        if on_epoch is not None:
            on_epoch(epoch)
        if not torch.isfinite(sums[epoch]).any():
            break  # every model diverged: the remaining epochs stay NaN
    return sums


def train(
    protocol: ZeroIdentityProtocol,
    seeds: Sequence[int],
    device: torch.device | str = "cpu",
    *,
    data: Any = None,
    on_epoch: Callable[[int], None] | None = None,
    on_condition: Any = None,
    checkpoints: Path | None = None,
) -> pd.DataFrame:
    """Train every arm for every seed in one program; return a tidy frame (the :mod:`resclaims.run.runs` kernel).

    Columns: seed, arm, epoch (0-based, as the source plots it), loss (on
    ``protocol.loss_scale``), diverged (the run's loss became NaN or inf; its
    later epochs are NaN). With ``shared_init`` every arm of a seed starts from
    the same kernel (a paired design); otherwise each arm draws its own, like
    the source's fresh model per setting. The experiment draws its own data
    (``data`` is unused), trains in seconds and keeps no checkpoints; the frame
    is handed over by returning it.
    """
    rows = [(seed, ARMS[name]) for name in protocol.arms for seed in seeds]
    inputs = {seed: experiment_inputs(seed, protocol.n_samples) for seed in seeds}
    pairs = [arm_data(arm, inputs[seed]) for seed, arm in rows]
    as_tensor = lambda arrays: torch.tensor(np.stack(arrays), dtype=protocol.dtype, device=device)  # noqa: E731
    weights = torch.cat([initial_weights(seed, "shared" if protocol.shared_init else arm.name) for seed, arm in rows])
    sums = train_batched(
        as_tensor([p[0] for p in pairs]),
        as_tensor([p[1] for p in pairs]),
        weights.to(dtype=protocol.dtype, device=device),
        torch.tensor([arm.shortcut for _, arm in rows], device=device),
        protocol.epochs,
        on_epoch,
        lr=protocol.lr,
    ).cpu().numpy()
    return tidy(sums / protocol.scale_factor(), rows)


def planned_frame(protocol: ZeroIdentityProtocol, seeds: Sequence[int]) -> pd.DataFrame:
    """The frame :func:`train` returns for ``seeds``, every loss NaN (so every run diverged): what a plan hands a
    test for runs it has not trained, so that the test goes on to its next requests (:mod:`resclaims.plugin.plan`)."""
    rows = [(seed, ARMS[name]) for name in protocol.arms for seed in seeds]
    return tidy(np.full((protocol.epochs, len(rows)), np.nan), rows)


def tidy(losses: np.ndarray, rows: Sequence[tuple[int, Arm]]) -> pd.DataFrame:
    """(epochs, runs) losses to a long frame; a run's epochs from its first non-finite loss are NaN."""
    epochs, runs = losses.shape
    bad = ~np.isfinite(losses)
    after_divergence = np.cumsum(bad, axis=0) > 0
    losses = np.where(after_divergence, np.nan, losses)
    return pd.DataFrame(
        {
            "seed": np.repeat([seed for seed, _ in rows], epochs),
            "arm": np.repeat([arm.name for _, arm in rows], epochs),
            "epoch": np.tile(np.arange(epochs), runs),
            "loss": losses.T.reshape(-1),
            "diverged": np.repeat(after_divergence.any(axis=0), epochs),
        }
    )


def curves(frame: pd.DataFrame, arm: str) -> tuple[np.ndarray, np.ndarray]:
    """Seeds and their loss curves (runs x epochs) for one arm, in seed order."""
    wide = frame[frame.arm == arm].pivot(index="seed", columns="epoch", values="loss")
    return wide.index.to_numpy(), wide.to_numpy()


def finite_pairs(frame: pd.DataFrame, a: str, b: str) -> tuple[np.ndarray, np.ndarray, int]:
    """Curves of arms ``a`` and ``b`` paired by seed, without pairs in which a run diverged; and how many did.

    A diverged run has NaN epochs (see :func:`tidy`): it never enters a statistic,
    and its pair goes with it so that the pairing holds.
    """
    seeds_a, curves_a = curves(frame, a)
    seeds_b, curves_b = curves(frame, b)
    if not np.array_equal(seeds_a, seeds_b):
        raise ValueError(f"arms {a} and {b} were not trained on the same seeds")
    finite = np.isfinite(curves_a).all(axis=1) & np.isfinite(curves_b).all(axis=1)
    return curves_a[finite], curves_b[finite], int((~finite).sum())
