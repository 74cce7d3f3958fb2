"""The data of a run: CIFAR-10's splits on the device, the data orders, and batched augmentation.

See :mod:`resclaims.kernels.cifar` for the orders and each recipe's augmentation.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from resclaims.datasets.cifar10 import Cifar10
from resclaims.kernels.cifar.config import TrainConfig
from resclaims.run.seeding import numpy_rng, torch_generator

DATA_SEED = 0  # fixed orders and splits of the data set itself, shared by every run


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
    """Put the protocol's splits on ``device`` (see :mod:`resclaims.kernels.cifar` for the orders)."""
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
