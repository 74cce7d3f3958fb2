"""CIFAR-10 training for claims K, D and H1: data on the device, batched augmentation, stacked seeds.

Two recipes, each the source's own protocol at ``TrainConfig``'s defaults for it:

``keras003`` (source 003, claims K1-K3)
    pixels / 255, ``tf.image.central_crop(x, 0.75)`` (rows and columns 4..27 of 32)
    and ``random_flip_left_right``; batches of 64 in the pipeline's order (below);
    Keras' Adam (lr 1e-3, beta 0.9/0.999, epsilon 1e-7 placed as Keras places it,
    see :class:`KerasAdam`); 30 epochs of 195 steps; sparse categorical
    cross-entropy on the softmax output, computed from the logits.
``he2015`` (He et al. 2015, section 4.2, claims D1-D3 and H1)
    a fixed 45k/5k train/validation split; the per-pixel mean of the training
    images subtracted; 4-pixel zero padding, a random 32x32 crop and a random
    flip; batches of 128; SGD with momentum 0.9 and weight decay 1e-4, lr 0.1
    divided by 10 at 32k and 48k iterations, 64k iterations; lr 0.01 for the
    first ~400 iterations where an arm asks for warm-up (ResNet-110).

Data order. Source 003 builds ``from_tensor_slices(...).batch(64).shuffle(10000)``:
it cuts the training set, in its stored order, into 782 fixed batches (781 of 64
and one of 16) and shuffles the order of those batches every pass, never the
images within them (``order="batches"``). ``order="images"`` reshuffles images
every pass instead (what the author presumably meant), so the quirk's effect can
be measured; ``order="stream"`` is Caffe's: per-pass permutations, cut into full
batches across pass boundaries (He et al.). An image-folder copy of CIFAR-10 is
sorted by class, so the official stored order is lost: such a copy is put once
into a fixed random order (the same for every run) before batching.

Speed. The training set lives on the device as uint8; augmentation is batched
tensor operations with per-run random numbers. The runs of one architecture
train together as a :class:`ModelStack`: one module holding all G models side by
side as grouped convolutions (:mod:`resclaims.models.grouped`), and a step either
runs all of them in one pass or one after the other through views of the grouped
parameters (``stack="grouped"`` or ``"loop"``). Both compute exactly what separate
training computes (tests/test_cifar_training.py shows it in float64). A grouped
pass launches one model's kernels for G models, which is what small nets on a GPU
need; ``"auto"`` picks it on CUDA. On CPU, compute-bound, it gains little: one
thread, 5 seeds, per step, 80 against 85 ms (quick K net), 135 against 159 ms
(quick D net), but 526 against 449 ms for 003's full-width net, so ``"auto"``
keeps ``loop`` on CPU (torch 2.13, this project's 2-core CI machine). What pays
on CPU is processes: arms train in parallel worker processes of one thread each
(:func:`map_arms`). On the shared 2-core machine (other jobs running), 5 seeds x
2 arms of the quick K net took 45 s that way against 65 s on one thread, and in
a busier moment 40 s against 233 s for one process with two threads, whose
parallel regions stall whenever another process holds a core. On CUDA the
forward pass runs under bfloat16 autocast in channels_last memory format;
neither changes what a claim compares.

Every run records, per logged epoch, its training loss and accuracy (the running
mean over the epoch's batches in training mode, as Keras reports them) and the
test loss and accuracy in eval mode, optionally also on clean training images
and on the validation split, in a tidy frame: one row per (arm, seed, epoch).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import itertools
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

from resclaims.cache import kernel_version
from resclaims.datasets.cifar10 import Cifar10
from resclaims.models import cifar as he_models
from resclaims.models import grouped as grouped_models
from resclaims.models import keras003
from resclaims.models.cifar import WIDTHS, CifarNet
from resclaims.models.keras003 import Keras003
from resclaims.seeding import numpy_rng, torch_generator

RECIPES = ("keras003", "he2015")
ORDERS = ("batches", "images", "stream")
STACKS = ("auto", "grouped", "loop")  # how the runs of one arm train together (see ModelStack)
DATA_SEED = 0  # fixed orders and splits of the data set itself, shared by every run
EVAL_CHUNK = 1000  # images per evaluation forward pass
CHECKPOINT_SECONDS = 120.0  # an arm in training saves its state at most this often (train's checkpoints)
# cached runs depend on the model code too
MODELS_VERSION = kernel_version(keras003) + kernel_version(he_models) + kernel_version(grouped_models)


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


@dataclass(frozen=True)
class KerasFamily:
    """Claims K1-K3: source 003's network and protocol at one tier."""

    n_seeds: int  # runs per arm, paired by seed across arms
    train: TrainConfig
    width: float = 1.0  # channel multiplier (source: 1.0)
    blocks: int = 10  # K1, K2 (source: num_res_net_blocks = 10)
    depth_blocks: tuple[int, ...] = (5, 10, 20)  # K3's block counts; () leaves K3 to the full tier
    order_effect: bool = True  # also train with images reshuffled each pass (the batch-shuffle quirk's effect)


@dataclass(frozen=True)
class HeFamily:
    """Claims D1-D3 and H1: He et al.'s CIFAR nets and recipe at one tier."""

    n_seeds: int  # runs per arm, paired by seed across arms
    train: TrainConfig
    depths: tuple[int, int] = (20, 56)  # D1, D2: (shallow, deep), plain and residual
    widths: tuple[int, int, int] = WIDTHS  # stage widths (He: 16, 32, 64)
    table_depths: tuple[int, ...] = (20, 32, 44, 56, 110)  # H1's ResNets; () leaves H1 to the full tier
    grad: TrainConfig = HE2015  # D3's recipe
    grad_depth: int = 56  # D3's plain net
    grad_checkpoints: tuple[int, ...] = (0, 10, 100, 1000)  # D3: steps whose gradients are measured


K_TIERS = {
    # 2-core CPU, about 60 s: the first 400 of 003's 5,850 steps, every channel count / 4 (8-16-64 for 32-64-256),
    # test accuracy on a fixed 2,000 of the 10,000 test images. K3 (2.5x the cost) and the order effect: full tier only.
    "quick": KerasFamily(
        n_seeds=5, train=TrainConfig(steps=400, log_every=100, test_size=2_000), width=0.25,
        depth_blocks=(), order_effect=False,
    ),
    "full": KerasFamily(n_seeds=10, train=TrainConfig()),
}  # fmt: skip

D_TIERS = {
    # 2-core CPU, about 70 s: depths 8 and 20 (ratio 2.5; He: 20 and 56, 2.8) at half width (8-16-32) on 16x16
    # images (2x2 means of the augmented 32x32), the first 200 of He's 64k iterations (lr 0.1 throughout), errors on
    # fixed 2,000-image subsets. D3 (10 s): plain-56 as He builds it, batch 32, gradients at steps 0 and 5.
    # H1: full tier only.
    "quick": HeFamily(
        n_seeds=5,
        train=replace(HE2015, steps=200, log_every=100, eval_val=False, test_size=2_000, train_eval_size=2_000,
                      downsample=2),
        depths=(8, 20), widths=(8, 16, 32), table_depths=(),
        grad=replace(HE2015, batch_size=32), grad_checkpoints=(0, 5),
    ),
    "full": HeFamily(n_seeds=5, train=replace(HE2015, train_eval_size=5_000)),
}  # fmt: skip


# -- optimisation ---------------------------------------------------------------
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


# -- data on the device ---------------------------------------------------------
@dataclass(frozen=True)
class DeviceData:
    """The images a protocol uses, as uint8 tensors on the device, in training order."""

    x_train: torch.Tensor  # (N, 3, 32, 32) uint8
    y_train: torch.Tensor  # (N,) int64
    x_test: torch.Tensor  # (T, 3, 32, 32) uint8
    y_test: torch.Tensor  # (T,)
    x_val: torch.Tensor  # (V, 3, 32, 32) uint8, V = cfg.val_size (may be 0)
    y_val: torch.Tensor
    x_train_eval: torch.Tensor  # (E, 3, 32, 32) uint8, a fixed subset of the training images
    y_train_eval: torch.Tensor
    mean: torch.Tensor  # (3, 32, 32) float32, per-pixel mean of x_train / 255


def fixed_permutation(n: int, purpose: str) -> np.ndarray:
    """A permutation of ``range(n)`` that belongs to the data set, not to a run."""
    return numpy_rng(DATA_SEED, "cifar10", purpose).permutation(n)


def to_device(data: Cifar10, cfg: TrainConfig, device: torch.device) -> DeviceData:
    """Put the protocol's splits on ``device`` (see the module docstring for the orders)."""
    order = np.arange(len(data.y_train)) if data.official_order else fixed_permutation(len(data.y_train), "order")
    if cfg.val_size:
        held = np.zeros(len(order), dtype=bool)
        held[fixed_permutation(len(order), "validation")[: cfg.val_size]] = True
        train, val = order[~held[order]], order[held[order]]  # both keep the stored order
    else:
        train, val = order, order[:0]
    if len(train) < cfg.batch_size:
        raise ValueError(f"{data.name}: {len(train)} training images (of {len(order)}, {cfg.val_size} held out for "
                         f"validation) cannot fill one batch of {cfg.batch_size}; is the data set complete?")
    test = np.sort(fixed_permutation(len(data.y_test), "test")[: cfg.test_size])
    train_eval = train[np.sort(fixed_permutation(len(train), "train-eval")[: cfg.train_eval_size])]

    def put(x: np.ndarray, y: np.ndarray, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        images = torch.from_numpy(np.ascontiguousarray(x[index].transpose(0, 3, 1, 2)))  # (n, 3, 32, 32)
        return images.to(device), torch.from_numpy(y[index]).to(device)

    mean = np.zeros((3, 32, 32))
    if cfg.recipe == "he2015":  # "the per-pixel mean subtracted"
        mean = data.x_train[train].mean(axis=0, dtype=np.float64).transpose(2, 0, 1) / 255
    return DeviceData(
        *put(data.x_train, data.y_train, train),
        *put(data.x_test, data.y_test, test),
        *put(data.x_train, data.y_train, val),
        *put(data.x_train, data.y_train, train_eval),
        mean=torch.from_numpy(mean).float().to(device),
    )


def batch_order(n: int, batch_size: int, order: str, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Index batches into the training set, forever, in one of the :data:`ORDERS`."""
    if order == "batches":  # .batch(B).shuffle(10000).repeat(): fixed batches, their order shuffled per pass
        starts = np.arange(0, n, batch_size)
        while True:
            for start in rng.permutation(starts):
                yield np.arange(start, min(start + batch_size, n))
    elif order == "images":  # a fresh permutation of the images every pass; the last batch is partial
        while True:
            perm = rng.permutation(n)
            yield from (perm[s : s + batch_size] for s in range(0, n, batch_size))
    else:  # stream: permutations back to back, cut into full batches
        buffer = np.empty(0, dtype=np.int64)
        while True:
            while len(buffer) < batch_size:
                buffer = np.concatenate([buffer, rng.permutation(n)])
            yield buffer[:batch_size]
            buffer = buffer[batch_size:]


# -- augmentation, batched on the device ----------------------------------------
def central_crop_flip(x: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """003's ``x / 255``, ``central_crop(x, 0.75)`` and left-right flip where ``flip``: (B, 3, 32, 32) uint8 -> (B, 3, 24, 24)."""
    x = x[:, :, 4:28, 4:28].float() / 255
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def pad_crop_flip(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor, pad: int = 4) -> torch.Tensor:
    """He et al.'s augmentation: zero-pad by ``pad``, crop at offsets (dy, dx), flip where ``flip``.

    ``x`` is (B, C, H, W) float; offsets lie in [0, 2 * pad]. One gather does all three.
    """
    B, _, H, W = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))  # (B, C, H + 2p, W + 2p)
    rows = dy[:, None] + torch.arange(H, device=x.device)  # (B, H)
    cols = dx[:, None] + torch.arange(W, device=x.device)  # (B, W)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    out = padded[torch.arange(B, device=x.device)[:, None, None], :, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2)


def train_transform(cfg: TrainConfig, dev: DeviceData, x: torch.Tensor, flip, dy, dx) -> torch.Tensor:
    """Augment a uint8 batch (B, 3, 32, 32) with its random flips (B,) and crop offsets (B,) in [0, 8]."""
    if cfg.recipe == "keras003":
        return central_crop_flip(x, flip)
    z = pad_crop_flip(x.float() / 255 - dev.mean, dy, dx, flip)
    return F.avg_pool2d(z, cfg.downsample) if cfg.downsample > 1 else z


def test_transform(cfg: TrainConfig, dev: DeviceData, x: torch.Tensor) -> torch.Tensor:
    """The evaluation view of a uint8 batch: 003's central crop, or He's mean-subtracted image."""
    if cfg.recipe == "keras003":
        return x[:, :, 4:28, 4:28].float() / 255
    z = x.float() / 255 - dev.mean
    return F.avg_pool2d(z, cfg.downsample) if cfg.downsample > 1 else z


def run_batches(cfg: TrainConfig, dev: DeviceData, seed: int, skip: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One run's training batches, augmented on the device: ((B, 3, S, S) float32, (B,) int64), forever.

    Indices and random numbers are drawn on the CPU from the run's seed (so every
    device sees the same ones) and sent to the device once per logged epoch.
    ``skip`` logged epochs are drawn and dropped first (a run resumed from a checkpoint).
    """
    device = dev.y_train.device
    order = batch_order(len(dev.y_train), cfg.batch_size, cfg.order, numpy_rng(seed, "order"))
    generator = torch_generator(seed, "augment")
    for epoch in itertools.count():
        chunk = [next(order) for _ in range(cfg.log_every)]
        n = sum(len(c) for c in chunk)
        index = torch.from_numpy(np.concatenate(chunk)).to(device)  # (n,)
        flip = (torch.rand(n, generator=generator) < 0.5).to(device)
        dy, dx = torch.randint(0, 9, (2, n), generator=generator).to(device)
        if epoch < skip:
            continue
        start = 0
        for c in chunk:
            s = slice(start, start + len(c))
            start += len(c)
            yield train_transform(cfg, dev, dev.x_train[index[s]], flip[s], dy[s], dx[s]), dev.y_train[index[s]]


# -- stacked models ---------------------------------------------------------------
def _digest(arm: Arm) -> str:
    """A short hash of everything that defines an arm (its name, model and warm-up)."""
    return hashlib.sha256(repr(arm).encode()).hexdigest()[:12]


def _seed(purpose: str, seed: int, arm: str) -> int:
    return int(numpy_rng(seed, purpose, arm).integers(2**63))


def build(arm: Arm, seed: int) -> nn.Module:
    """``arm``'s model initialised from ``seed``, leaving the caller's CPU generator as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(_seed("init", seed, arm.name))
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

    def _format(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def __call__(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Logits of model g on ``xs[g]`` (B_g, ...) for every g."""
        if self.grouped and len({x.shape for x in xs}) == 1:
            z = self.net(self._format(grouped_models.join_inputs(xs)))  # (B, G*10)
            return list(grouped_models.split_logits(z, self.size).unbind(0))
        return [grouped_models.member_forward(self.net, self.template, g, self._format(x)) for g, x in enumerate(xs)]

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


# -- training ---------------------------------------------------------------------
def train(
    cfg: TrainConfig,
    arms: Sequence[Arm],
    seeds: Sequence[int],
    data: Cifar10,
    device: torch.device | str = "cpu",
    *,
    stack: str = "auto",
    amp: bool | None = None,
    channels_last: bool | None = None,
    dtype: torch.dtype = torch.float32,
    workers: int = 1,
    on_epoch: Callable[[int], None] | None = None,
    on_arm: Callable[[pd.DataFrame], object] | None = None,
    checkpoints: Path | None = None,
    checkpoint_seconds: float | None = None,
) -> pd.DataFrame:
    """Train every arm at every seed; one row per (arm, seed, logged epoch), with a ``diverged`` column.

    Runs of one arm train together (``stack``: ``"grouped"``, ``"loop"``, or
    ``"auto"``: grouped on CUDA, loop on CPU). Run (arm, seed) draws its data order
    and augmentation from ``seed`` alone, so arms at the same seed see the same
    batches (pairs by seed share data). Its initialisation comes from
    ``(seed, arm)``; dropout masks come from the device generator, seeded per arm
    from the first seed. ``amp`` (bfloat16 autocast) and ``channels_last``
    default to on for CUDA and off for CPU. ``workers`` > 1 trains
    arms in parallel processes (see :func:`map_arms`). ``on_epoch(epoch)`` is
    called after each logged epoch of each arm (from worker processes: when the
    arm is done), for progress bars; ``on_arm(frame)`` with each arm's frame as
    that arm finishes (to store it before the next one). With a ``checkpoints``
    folder, each arm saves its whole training state there at the end of a logged
    epoch at most every ``checkpoint_seconds`` (default :data:`CHECKPOINT_SECONDS`) and resumes from it when started
    again, with the same numbers as an uninterrupted run; the file is removed
    when the arm finishes. A run whose loss becomes NaN or inf has
    diverged: its metrics from that epoch on are NaN, and an arm whose runs have
    all diverged stops training.
    """
    device = torch.device(device)
    if stack not in STACKS:
        raise ValueError(f"stack must be one of {STACKS}, got {stack!r}")
    cuda = device.type == "cuda"
    grouped = stack == "grouped" or (stack == "auto" and cuda)
    amp = cuda if amp is None else amp
    channels_last = cuda if channels_last is None else channels_last
    dev = to_device(data, cfg, device)
    run = partial(_train_arm, cfg, seeds=list(seeds), dev=dev, device=device, grouped=grouped, amp=amp,
                  channels_last=channels_last, dtype=dtype, checkpoints=checkpoints,
                  checkpoint_seconds=CHECKPOINT_SECONDS if checkpoint_seconds is None else checkpoint_seconds)  # fmt: skip
    replay = None
    if workers <= 1:
        run = partial(run, on_epoch=on_epoch)
    elif on_epoch is not None:  # workers cannot call back: replay an arm's epochs when it is done
        replay = lambda frame: [on_epoch(int(e)) for e in sorted(frame.epoch.unique())]  # noqa: E731

    def on_done(frame: pd.DataFrame) -> None:
        for callback in (replay, on_arm):
            if callback is not None:
                callback(frame)

    return pd.concat(map_arms(run, arms, workers, on_done), ignore_index=True)


def default_workers(device: torch.device) -> int:
    """Processes to train arms in: one per CPU core this process may use on CPU, one on CUDA.

    Not ``torch.get_num_threads()``: CI sets ``OMP_NUM_THREADS=1``, which would leave one core idle.
    """
    if torch.device(device).type != "cpu":
        return 1
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def map_arms(
    fn: Callable[[Arm], pd.DataFrame],
    arms: Sequence[Arm],
    workers: int = 1,
    on_done: Callable[[pd.DataFrame], object] | None = None,
) -> list[pd.DataFrame]:
    """``fn(arm)`` for every arm, in order: in this process, or in ``workers`` single-threaded processes.

    Small CPU models use two cores better as two one-thread processes than as one
    process with two threads, and a core busy with other work slows a process
    down instead of stalling every parallel region of the other. The largest
    arms start first (longest-processing-time order). Tensors in ``fn``'s
    arguments reach the workers through shared memory. ``on_done(frame)`` is
    called in this process as each arm finishes; if an arm fails, the others
    still finish and are handed to ``on_done`` before the first error is raised.
    """
    on_done = on_done or (lambda frame: None)
    if workers <= 1 or len(arms) <= 1:
        frames = []
        for arm in arms:
            frames.append(fn(arm))
            on_done(frames[-1])
        return frames
    size = [sum(p.numel() for p in build(arm, 0).parameters()) for arm in arms]
    context = torch.multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(min(workers, len(arms)), mp_context=context, initializer=torch.set_num_threads,
                             initargs=(1,)) as pool:  # fmt: skip
        futures = {pool.submit(fn, arms[i]): i for i in sorted(range(len(arms)), key=lambda i: -size[i])}
        frames, errors = {}, []
        for future in as_completed(futures):
            if future.exception() is not None:
                errors.append(future.exception())
                continue
            frames[futures[future]] = future.result()
            on_done(frames[futures[future]])
        if errors:
            raise errors[0]
        return [frames[i] for i in range(len(arms))]


def _train_arm(cfg, arm, *, seeds, dev, device, grouped, amp, channels_last, dtype, checkpoints=None,
               checkpoint_seconds=CHECKPOINT_SECONDS, on_epoch=None) -> pd.DataFrame:  # fmt: skip
    models = [build(arm, seed).to(device=device, dtype=dtype) for seed in seeds]
    stack = ModelStack(models, grouped, channels_last)
    optimizer = make_optimizer(cfg, stack.parameters())
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if amp else nullcontext()
    cudnn = torch.backends.cudnn.flags(enabled=True, benchmark=True) if device.type == "cuda" else nullcontext()
    rows, losses, hits, sizes = [], [], [], []  # per step of the current epoch: (G,) tensors, G sizes
    diverged = torch.zeros(len(seeds), dtype=torch.bool, device=device)  # (G,): a loss was NaN or inf
    checkpoint = Path(checkpoints) / f"{arm.name}-{_digest(arm)}.pt" if checkpoints is not None else None
    with seeded_device(device, _seed("dropout", seeds[0], arm.name)), cudnn:
        first = 0
        if checkpoint is not None and checkpoint.exists():
            rows, first = _resume(checkpoint, stack, optimizer, diverged, device)
        batches = [run_batches(cfg, dev, seed, skip=first // cfg.log_every) for seed in seeds]
        saved = time.monotonic()
        for step in range(first, cfg.steps):
            xs, ys = zip(*(next(b) for b in batches))
            with autocast:
                logits = stack([x.to(dtype) for x in xs])  # G x (B, 10)
            loss = torch.stack([F.cross_entropy(z.float(), y) for z, y in zip(logits, ys)])  # (G,)
            optimizer.zero_grad(set_to_none=True)
            loss.sum().backward()
            if cfg.recipe == "he2015":
                for group in optimizer.param_groups:
                    group["lr"] = he_lr(step, cfg.milestones, arm.warmup_steps) * cfg.lr_scale
            optimizer.step()
            diverged |= ~torch.isfinite(loss.detach())
            losses.append(loss.detach().double())
            hits.append(torch.stack([(z.argmax(1) == y).sum() for z, y in zip(logits, ys)]).double())
            sizes.append([len(y) for y in ys])
            if (step + 1) % cfg.log_every:
                continue
            n = torch.tensor(sizes, dtype=torch.float64, device=device)  # (S, G)
            metrics = {
                "train_loss": (torch.stack(losses) * n).sum(0) / n.sum(0),  # sample-weighted, as Keras averages
                "train_acc": torch.stack(hits).sum(0) / n.sum(0),
            }
            for split in ("test", "val", "train_eval"):
                x, y = getattr(dev, f"x_{split}"), getattr(dev, f"y_{split}")
                if split == "val" and not cfg.eval_val:
                    y = y[:0]
                metrics[f"{split}_loss"], metrics[f"{split}_acc"] = _evaluate(cfg, stack, dev, x, y, autocast, dtype)
            metrics = {k: v.cpu().numpy() for k, v in metrics.items()}
            gone = diverged.cpu().numpy()
            epoch = (step + 1) // cfg.log_every
            for g, seed in enumerate(seeds):
                rows.append({"arm": arm.name, "seed": seed, "epoch": epoch, "step": step + 1, "diverged": bool(gone[g]),
                             **{k: math.nan if gone[g] else float(v[g]) for k, v in metrics.items()}})  # fmt: skip
            losses, hits, sizes = [], [], []
            if checkpoint is not None and time.monotonic() - saved >= checkpoint_seconds and step + 1 < cfg.steps:
                _save_checkpoint(checkpoint, step + 1, rows, stack, optimizer, diverged, device)
                saved = time.monotonic()
            if on_epoch is not None:
                on_epoch(epoch)
            if gone.all():  # every run of the arm diverged: stop, and log the epochs left as NaN
                rows += [{**row, "epoch": later, "step": later * cfg.log_every}
                         for later in range(epoch + 1, cfg.steps // cfg.log_every + 1) for row in rows[-len(seeds):]]
                break
    frame = pd.DataFrame(rows)
    frame["diverged"] = frame.groupby("seed").diverged.transform("any")  # a run is diverged on every row
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # the folder, once no arm of this training has a checkpoint left
            checkpoint.parent.rmdir()
    return frame


def _save_checkpoint(path: Path, steps_done: int, rows, stack, optimizer, diverged, device) -> None:
    """An arm's whole training state after ``steps_done`` steps (a logged epoch's end), written atomically."""
    rng = torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state()
    state = {"steps_done": steps_done, "rows": rows, "net": stack.net.state_dict(),
             "optimizer": optimizer.state_dict(), "iterations": getattr(optimizer, "iterations", None),
             "diverged": diverged.cpu(), "rng": rng}  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".tmp{os.getpid()}")
    try:
        torch.save(state, temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _resume(path: Path, stack, optimizer, diverged, device) -> tuple[list[dict], int]:
    """Load :func:`_save_checkpoint`'s state into the arm's objects; returns the rows so far and the steps done."""
    state = torch.load(path, map_location=device, weights_only=False)
    stack.net.load_state_dict(state["net"])
    optimizer.load_state_dict(state["optimizer"])
    if state["iterations"] is not None:
        optimizer.iterations = state["iterations"]
    diverged.copy_(state["diverged"])
    if device.type == "cuda":
        torch.cuda.set_rng_state(state["rng"].cpu(), device)
    else:
        torch.set_rng_state(state["rng"].cpu())
    return state["rows"], state["steps_done"]


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
    kernel, key = sys.modules[__name__], {"config": cfg, "data": data.checksum, "models": MODELS_VERSION}

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
        sys.modules[__name__],
        lambda missing: gradient_norms(cfg, arms, missing, data, checkpoints, device, workers=default_workers(device)),
        seeds, device_kind=device.type, config=cfg, arms=list(arms), data=data.checksum, models=MODELS_VERSION,
        checkpoints=tuple(checkpoints),
    )  # fmt: skip


@contextmanager
def cpu_threads(n: int):
    """Run the block with ``n`` intra-op CPU threads (timings: comparable, and safe on a shared CPU)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)


def step_closure(cfg: TrainConfig, arm: Arm, n_models: int, device: torch.device | str, *, stack: str = "loop") -> Callable[[], float]:
    """One training step of ``n_models`` copies of ``arm`` on fixed random batches, for timing.

    The step is the one :func:`train` takes (same stack, optimizer, autocast and
    memory format on CUDA); the closure returns the summed loss, which waits for
    the device.
    """
    device = torch.device(device)
    cuda = device.type == "cuda"
    if stack not in STACKS[1:]:
        raise ValueError(f"stack must be one of {STACKS[1:]}, got {stack!r}")
    side = 24 if cfg.recipe == "keras003" else 32 // cfg.downsample
    generator = torch_generator(0, "timing", arm.name)
    xs = [torch.rand(cfg.batch_size, 3, side, side, generator=generator).to(device) for _ in range(n_models)]
    ys = [torch.randint(0, 10, (cfg.batch_size,), generator=generator).to(device) for _ in range(n_models)]
    stack = ModelStack([build(arm, seed).to(device) for seed in range(n_models)], stack == "grouped", cuda)
    optimizer = make_optimizer(cfg, stack.parameters())
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else nullcontext()

    def step() -> float:
        with autocast, (torch.backends.cudnn.flags(enabled=True, benchmark=True) if cuda else nullcontext()):
            logits = stack(xs)
        loss = sum(F.cross_entropy(z.float(), y) for z, y in zip(logits, ys))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def timing_threads(device_kind: str) -> int | None:
    """CPU threads a timed step runs on (:func:`time_step`); None on a GPU."""
    return 1 if device_kind == "cpu" else None


def time_step(benchmark, cfg: TrainConfig, arm: Arm, n_models: int, device_kind: str, *, stack: str = "loop",
              rounds: int = 5) -> float:
    """Time one :func:`step_closure` step with pytest-benchmark's ``pedantic`` (one warm-up); returns the last loss.

    On CPU the step runs on :func:`timing_threads` threads: comparable across
    machines with more cores, and not stalled by other work on a shared CPU.
    """
    with cpu_threads(timing_threads(device_kind) or torch.get_num_threads()):
        step = step_closure(cfg, arm, n_models, device_kind, stack=stack)
        return benchmark.pedantic(step, rounds=rounds, warmup_rounds=1, iterations=1)


@torch.no_grad()
def _evaluate(cfg, stack, dev, x, y, autocast, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean loss and accuracy of every model on (x, y) in eval mode: two (G,) tensors (nan if empty)."""
    if len(y) == 0:
        return (torch.full((stack.size,), math.nan),) * 2
    stack.train(False)
    loss_sum = torch.zeros(stack.size, dtype=torch.float64, device=y.device)
    correct = torch.zeros_like(loss_sum)
    for start in range(0, len(y), EVAL_CHUNK):
        xb, yb = test_transform(cfg, dev, x[start : start + EVAL_CHUNK]).to(dtype), y[start : start + EVAL_CHUNK]
        with autocast:
            logits = stack.shared(xb).float()  # (G, b, 10)
        loss_sum += F.cross_entropy(logits.transpose(1, 2), yb.expand(stack.size, -1), reduction="none").sum(1).double()
        correct += (logits.argmax(2) == yb).sum(1).double()
    stack.train(True)
    return loss_sum / len(y), correct / len(y)


# -- gradient norms per layer (claim D3) ---------------------------------------------
def gradient_norms(
    cfg: TrainConfig,
    arms: Sequence[Arm],
    seeds: Sequence[int],
    data: Cifar10,
    checkpoints: Sequence[int],
    device: torch.device | str = "cpu",
    *,
    workers: int = 1,
) -> pd.DataFrame:
    """Per-layer weight-gradient norms while training, at the given 0-based steps.

    Each (arm, seed) trains with ``cfg``'s recipe for ``max(checkpoints)`` steps;
    at each checkpoint the gradient of that step's batch is recorded, before the
    optimizer uses it. One row per (arm, seed, step, layer): ``layer`` counts the
    weighted layers (convs, then the fc) in forward order; ``grad_norm`` is
    ||dL/dW||, ``grad_rms`` that over sqrt(weights) (comparable across layers of
    different sizes), ``weight_norm`` ||W||, ``relative`` ||dL/dW|| / ||W||.
    """
    device = torch.device(device)
    run = partial(_arm_gradients, cfg, seeds=list(seeds), dev=to_device(data, cfg, device), checkpoints=set(checkpoints))
    return pd.concat(map_arms(run, arms, workers), ignore_index=True)


def _arm_gradients(cfg, arm, *, seeds, dev, checkpoints) -> pd.DataFrame:
    rows = []
    for seed in seeds:
        model = build(arm, seed).to(dev.y_train.device)
        layers = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        optimizer = make_optimizer(cfg, list(model.parameters()))
        batches = run_batches(cfg, dev, seed)
        for step in range(max(checkpoints) + 1):
            x, y = next(batches)
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            if step in checkpoints:
                for index, (name, layer) in enumerate(layers):
                    g, w, n = layer.weight.grad.norm().item(), layer.weight.norm().item(), layer.weight.numel()
                    rows.append({"arm": arm.name, "seed": seed, "step": step, "layer": index, "name": name,
                                 "weights": n, "grad_norm": g, "grad_rms": g / math.sqrt(n),
                                 "weight_norm": w, "relative": g / w})  # fmt: skip
            if cfg.recipe == "he2015":
                for group in optimizer.param_groups:
                    group["lr"] = he_lr(step, cfg.milestones, arm.warmup_steps) * cfg.lr_scale
            optimizer.step()
    return pd.DataFrame(rows)
