"""A 2-layer ResNet block learns the identity on the membrane labels, with and without shortcut (source 000).

The source (Martyn, "How do residual shortcuts affect image-to-image mapping in a
minimal setting?", 2019) trains ``resnet_block(1)``: conv3x3 (no bias), BN, ReLU,
conv3x3 (no bias), BN, [+ x], ReLU, Kaiming-normal (fan_out, relu) kernels, BN
weight 1 and bias 0. The prediction is ``sigmoid(block(x))``, trained with
``nn.L1Loss`` against x itself, Adam at PyTorch defaults, batch size 1, over the
30 binary 512x512 ISBI membrane labels, shuffled every epoch, for 50 epochs. A
shortcut model and a no-shortcut model train side by side: one DataLoader, and
for every image one step of each. It records per epoch the *sum* of the 30
per-image losses, and at the end of each epoch runs both models once more on the
epoch's last image to show a sample (in training mode, so BN's running
statistics move; they never feed back into training, which is all in training
mode).

This module holds the source's block and loop (:func:`train_sequential`, the
reference) and a seed-batched kernel (:func:`train`, a :mod:`resclaims.run.runs`
kernel: a :class:`MembraneProtocol`, seeds and the labels in, a tidy frame out)
that trains many models as one tensor program: model m is channel m of a (1, M, H, W) tensor, each conv is a
grouped 3x3 convolution (groups = M), and BN over a batch of one image computes
per-channel, that is per-model, statistics. Adam is elementwise and each model's
loss depends only on its own channel, so this is the source's computation, model
by model (``tests/kernels/test_membrane_kernel.py`` shows it in float64).

The grouped convolution is written as nine shifted multiply-adds (:func:`conv3x3`),
which ``torch.compile`` fuses with the BN and loss arithmetic around it; oneDNN's
depthwise convolution was several times slower on a 2-core CPU. On CPU the
models train in programs of at most ``program_elements`` model-pixels, so that a
program's tensors stay in cache; models are independent, so this changes nothing
but the speed.

Beyond the source (claim M3): ``sigmoid(relu(z)) >= 0.5``, so a black target pixel
always costs at least 0.5 and the per-pixel loss cannot fall below half the
fraction of black pixels (:func:`loss_floor`). The *fixed head* drops the block's
final ReLU, predicting ``sigmoid(z)``; that is the only change.
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

BN_MOMENTUM, BN_EPS = 0.1, 1e-5  # nn.BatchNorm2d defaults, as the source uses them


@dataclass(frozen=True)
class Arm:
    """One model of a seed: with or without the shortcut, with the source's or the fixed head."""

    name: str
    shortcut: bool  # z = bn2(conv2(...)) + x before the final ReLU
    head: str = "source"  # "source": sigmoid(relu(z)); "fixed": sigmoid(z), the final ReLU dropped

    @property
    def final_relu(self) -> bool:
        return self.head == "source"


ARMS = (Arm("no_shortcut", shortcut=False), Arm("shortcut", shortcut=True))  # the source's pair, in its order
FIXED_ARMS = (Arm("no_shortcut_fixed", shortcut=False, head="fixed"), Arm("shortcut_fixed", shortcut=True, head="fixed"))


@dataclass(frozen=True)
class MembraneProtocol:
    """How every seed trains its models (the number of seeds is not part of it): 000's protocol by default."""

    kernel: ClassVar[str] = __name__
    arms: tuple[Arm, ...] = ARMS  # the models each seed trains, in lockstep on the seed's image order
    epochs: int = 50  # passes over the 30 images (source: 50)
    crop: int | None = None  # central crop side in pixels; None: the full 512x512 images (source)
    dtype: torch.dtype = torch.float32  # the source trains in float32
    compile: bool = False  # torch.compile the step (pays off on large images; costs seconds to compile)
    program_elements: int = 1 << 20  # on CPU, at most this many model-pixels per tensor program (cache-sized)
    lr: float = 1e-3  # Adam's learning rate (the source: PyTorch's default, 1e-3)

    @property
    def name(self) -> str:
        return ", ".join(arm.name for arm in self.arms)

    def describe(self, n_seeds: int) -> str:
        size = "full 512x512 images" if self.crop is None else f"central {self.crop}x{self.crop} crops of the 512x512 images"
        return f"{n_seeds} seeds, {size}, {self.epochs} epochs, batch 1, reshuffled every epoch, {str(self.dtype)[6:]}"


TIERS = {
    # quick: 64x64 central crops keep the images binary and the block's 5x5 receptive field unchanged; the
    # source's 50 epochs and 30 images; 16 seeds x 4 arms train in ~1/64 of the full tier's pixel-steps.
    "quick": MembraneProtocol(arms=ARMS + FIXED_ARMS, crop=64),
    "full": MembraneProtocol(arms=ARMS + FIXED_ARMS, compile=True),  # the source's protocol, both heads
}
SEEDS = {"quick": 16, "full": 16}


# -- the tidy frame: one row per run and epoch; the last epoch's row also holds the run's final state
BN_STATE = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
STATE = {key: shape for i in (1, 2)  # resnet_block's state_dict entries and each model's shape, in its order
         for key, shape in ((f"conv{i}.weight", (1, 3, 3)), *((f"bn{i}.{entry}", ()) for entry in BN_STATE))}
STATE_PREFIX = "final."  # state columns: "final.conv1.weight.0" ... "final.conv1.weight.8", "final.bn1.weight", ...


def state_columns(key: str) -> list[str]:
    """The frame's columns for one state entry: one per value, in ``reshape(-1)`` order."""
    size = int(np.prod(STATE[key]))
    return [f"{STATE_PREFIX}{key}"] if size == 1 else [f"{STATE_PREFIX}{key}.{i}" for i in range(size)]


def tidy(sums: np.ndarray, models: Sequence[tuple[int, Arm]], state: dict[str, torch.Tensor],
         n_images: int) -> pd.DataFrame:
    """(epochs, M) loss sums and the stacked final state to a long frame: seed, arm, shortcut, head, epoch,
    loss_sum (source scale), loss (per-pixel mean), diverged (a NaN or inf loss: its epochs from there are NaN,
    so no statistic averages them), and the final state (:data:`STATE`) on a run's last row, NaN on the others."""
    epochs, m = sums.shape
    after_divergence = np.cumsum(~np.isfinite(sums), axis=0) > 0
    sums = np.where(after_divergence, np.nan, sums)
    repeat = lambda values: np.repeat(np.asarray(values), epochs)  # noqa: E731
    frame = pd.DataFrame({
        "seed": repeat([seed for seed, _ in models]), "arm": repeat([arm.name for _, arm in models]),
        "shortcut": repeat([arm.shortcut for _, arm in models]), "head": repeat([arm.head for _, arm in models]),
        "epoch": np.tile(np.arange(epochs), m), "loss_sum": sums.T.reshape(-1), "loss": sums.T.reshape(-1) / n_images,
        "diverged": repeat(after_divergence.any(axis=0)),
    })
    final = np.full((m * epochs, sum(len(state_columns(key)) for key in STATE)), np.nan)
    final[np.arange(m) * epochs + epochs - 1] = np.concatenate(  # (M, 28): each run's last row
        [state[key].detach().cpu().double().reshape(m, -1).numpy() for key in STATE], axis=1)
    return pd.concat([frame, pd.DataFrame(final, columns=[c for key in STATE for c in state_columns(key)])], axis=1)


def final_state(frame: pd.DataFrame) -> tuple[list[tuple[int, str]], dict[str, torch.Tensor]]:
    """The (seed, arm) of each run in ``frame`` and their final state, stacked as :func:`train` holds it."""
    last = frame[frame.epoch == frame.epoch.max()]
    state = {key: torch.tensor(last[state_columns(key)].to_numpy()).reshape(len(last), *STATE[key]) for key in STATE}
    state |= {key: value.long() for key, value in state.items() if key.endswith("num_batches_tracked")}
    return list(zip(last.seed.tolist(), last.arm.tolist())), state


# -- the source's model and loop --------------------------------------------------------
class resnet_block(nn.Module):  # noqa: N801 (the source's name)
    """The source's block (its code, plus ``final_relu`` for the fixed head; True is the source)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels, track_running_stats=True)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels, track_running_stats=True)
        self.relu2 = nn.ReLU()
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def forward(self, x: torch.Tensor, shortcuts: bool = False, final_relu: bool = True) -> torch.Tensor:
        z = self.relu1(self.bn1(self.conv1(x)))  # (B, C, H, W)
        z = self.bn2(self.conv2(z))
        if shortcuts:
            z = z + x
        return self.relu2(z) if final_relu else z


def initial_weights(seed: int, arm: Arm) -> tuple[torch.Tensor, torch.Tensor]:
    """conv1's and conv2's initial kernels, (1, 1, 3, 3) each, drawn as the source draws them.

    Each of a seed's two architectures draws its own kernels (the source builds
    two models); an arm with the fixed head starts from the same kernels as its
    source-head twin, so the fix is the only difference between them.
    """
    generator = torch_generator(seed, "init", "shortcut" if arm.shortcut else "no_shortcut")
    kernels = [torch.empty(1, 1, 3, 3) for _ in range(2)]
    for kernel in kernels:
        nn.init.kaiming_normal_(kernel, mode="fan_out", nonlinearity="relu", generator=generator)
    return kernels[0], kernels[1]


def epoch_orders(seed: int, epochs: int, n_images: int) -> np.ndarray:
    """The seed's image order, a fresh permutation per epoch (``shuffle=True``): (epochs, n_images)."""
    rng = numpy_rng(seed, "order")
    return np.stack([rng.permutation(n_images) for _ in range(epochs)])


def train_sequential(images: torch.Tensor, seeds: Sequence[int], arms: Sequence[Arm] = ARMS,
                     epochs: int = 50) -> pd.DataFrame:
    """The source's loop, one module and one Adam per model; the reference for :func:`train` (the same frame).

    ``images`` is (N, 1, H, W) in {0, 1}; its dtype and device are the models'.
    """
    n = images.shape[0]
    criterion = nn.L1Loss()
    sums, states = [], []
    for seed in seeds:
        nets, optimizers = [], []
        for arm in arms:
            with torch.random.fork_rng(devices=[]):  # the constructor's own draws are overwritten below
                net = resnet_block(1).to(device=images.device, dtype=images.dtype)
            with torch.no_grad():
                for conv, kernel in zip((net.conv1, net.conv2), initial_weights(seed, arm)):
                    conv.weight.copy_(kernel)
            nets.append(net)
            optimizers.append(torch.optim.Adam(net.parameters()))
        running = np.zeros((epochs, len(arms)))
        for epoch, order in enumerate(epoch_orders(seed, epochs, n)):
            for i in order:
                x = images[i : i + 1]  # (1, 1, H, W), the DataLoader's batch
                for k, (arm, net, optimizer) in enumerate(zip(arms, nets, optimizers)):
                    optimizer.zero_grad()
                    z = torch.sigmoid(net(x, shortcuts=arm.shortcut, final_relu=arm.final_relu))
                    loss = criterion(z, x)
                    loss.backward()
                    optimizer.step()
                    running[epoch, k] += loss.item()
            for arm, net in zip(arms, nets):  # the source's end-of-epoch sample: moves BN's running stats
                torch.sigmoid(net(x, shortcuts=arm.shortcut, final_relu=arm.final_relu))
        sums.append(running)
        states += [net.state_dict() for net in nets]
    state = {key: torch.stack([s[key].reshape(STATE[key]) for s in states]) for key in STATE}
    return tidy(np.concatenate(sums, axis=1), [(seed, arm) for seed in seeds for arm in arms], state, n)


# -- the seed-batched kernel ---------------------------------------------------------------
def conv3x3(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Grouped 3x3 convolution, stride 1, zero padding 1: ``F.conv2d(x, weight, padding=1, groups=M)``.

    x (1, M, H, W), weight (M, 1, 3, 3) -> (1, M, H, W), as nine shifted multiply-adds.
    """
    h, w = x.shape[-2:]
    padded = F.pad(x, (1, 1, 1, 1))  # (1, M, H+2, W+2)
    taps = weight.reshape(1, -1, 9, 1, 1)  # (1, M, 9, 1, 1)
    out = padded[:, :, 0:h, 0:w] * taps[:, :, 0]
    for k in range(1, 9):
        i, j = divmod(k, 3)
        out = out + padded[:, :, i : i + h, j : j + w] * taps[:, :, k]
    return out


def block(x: torch.Tensor, p: dict[str, torch.Tensor], shortcut: torch.Tensor, final_relu: torch.Tensor,
          update_stats: bool = True) -> torch.Tensor:
    """M blocks at once, in training mode: x (1, M, H, W) -> z (1, M, H, W).

    ``p`` holds resnet_block's state entries stacked over models; ``shortcut`` is
    (1, M, 1, 1) in {0, 1} and ``final_relu`` (1, M, 1, 1) bool. With
    ``update_stats`` BN updates its running statistics, as ``nn.BatchNorm2d``
    does in training mode.
    """

    def bn(z: torch.Tensor, i: int) -> torch.Tensor:
        running = (p[f"bn{i}.running_mean"], p[f"bn{i}.running_var"]) if update_stats else (None, None)
        return F.batch_norm(z, *running, p[f"bn{i}.weight"], p[f"bn{i}.bias"], True, BN_MOMENTUM, BN_EPS)

    z = bn(conv3x3(x, p["conv1.weight"]), 1).relu()
    z = bn(conv3x3(z, p["conv2.weight"]), 2)
    z = z + shortcut * x
    return torch.where(final_relu, z.relu(), z)


def step_losses(x: torch.Tensor, p: dict[str, torch.Tensor], shortcut: torch.Tensor, final_relu: torch.Tensor) -> torch.Tensor:
    """Each model's ``nn.L1Loss()(sigmoid(block(x)), x)``: (M,)."""
    return (torch.sigmoid(block(x, p, shortcut, final_relu)) - x).abs().mean(dim=(0, 2, 3))


PARAMETERS = ("conv1.weight", "bn1.weight", "bn1.bias", "conv2.weight", "bn2.weight", "bn2.bias")  # the source's order


def _initial_state(models: Sequence[tuple[int, Arm]], device, dtype) -> dict[str, torch.Tensor]:
    m = len(models)
    kernels = [initial_weights(seed, arm) for seed, arm in models]
    ones = lambda: torch.ones(m, device=device, dtype=dtype)  # noqa: E731
    zeros = lambda: torch.zeros(m, device=device, dtype=dtype)  # noqa: E731
    state = {
        "conv1.weight": torch.cat([k[0] for k in kernels]).to(device, dtype),  # (M, 1, 3, 3)
        "bn1.weight": ones(), "bn1.bias": zeros(), "bn1.running_mean": zeros(), "bn1.running_var": ones(),
        "conv2.weight": torch.cat([k[1] for k in kernels]).to(device, dtype),
        "bn2.weight": ones(), "bn2.bias": zeros(), "bn2.running_mean": zeros(), "bn2.running_var": ones(),
    }
    for key in PARAMETERS:
        state[key].requires_grad_(True)
    return state


def _train_program(images: torch.Tensor, models: Sequence[tuple[int, Arm]], epochs: int, compile: bool,
                   on_epoch: Callable[[int], None] | None = None, lr: float = 1e-3,
                   ) -> tuple[np.ndarray, dict[str, torch.Tensor]]:
    """Train ``models`` as one program; returns per-epoch loss sums (epochs, M) and the final state.

    A model whose loss becomes NaN or inf has diverged; it cannot touch the other
    models (each has its own channel and Adam state), and the program stops early
    once every model has diverged (the remaining epochs' sums stay NaN).
    """
    n = images.shape[0]
    device, dtype, m = images.device, images.dtype, len(models)
    p = _initial_state(models, device, dtype)
    shortcut = torch.tensor([arm.shortcut for _, arm in models], device=device, dtype=dtype).view(1, m, 1, 1)
    final_relu = torch.tensor([arm.final_relu for _, arm in models], device=device).view(1, m, 1, 1)
    orders = torch.as_tensor(np.stack([epoch_orders(seed, epochs, n) for seed, _ in models]), device=device)  # (M, E, N)
    pixels = images[:, 0]  # (N, H, W)
    optimizer = torch.optim.Adam([p[key] for key in PARAMETERS], lr=lr)
    losses = torch.compile(step_losses, dynamic=False) if compile else step_losses
    sums = torch.full((epochs, m), torch.nan, dtype=torch.float64, device=device)
    for epoch in range(epochs):
        sums[epoch] = 0.0
        for t in range(n):
            x = pixels[orders[:, epoch, t]].unsqueeze(0)  # (1, M, H, W): each model's image at this step
            optimizer.zero_grad(set_to_none=True)
            loss = losses(x, p, shortcut, final_relu)  # (M,)
            loss.sum().backward()  # model m's gradient is that of its own loss
            optimizer.step()
            sums[epoch] += loss.detach()
        with torch.no_grad():  # the source's end-of-epoch sample of the last image: moves BN's running stats
            block(x, p, shortcut, final_relu)
        if on_epoch is not None:
            on_epoch(epoch)
        if not torch.isfinite(sums[epoch]).any():
            break  # every model diverged
    state = {key: value.detach() for key, value in p.items()}
    tracked = torch.full((m,), epochs * (n + 1), dtype=torch.long, device=device)
    state |= {"bn1.num_batches_tracked": tracked, "bn2.num_batches_tracked": tracked.clone()}
    return sums.cpu().numpy(), state


def program_size(images: torch.Tensor, n_models: int, protocol: MembraneProtocol) -> int:
    """Models per program: all on a GPU; on CPU at most ``protocol.program_elements`` model-pixels."""
    h, w = images.shape[-2:]
    return n_models if images.device.type != "cpu" else max(1, protocol.program_elements // (h * w))


def progress_total(protocol: MembraneProtocol, n_seeds: int) -> int:
    """``on_epoch`` calls of :func:`train`: one per ``1 / epochs`` of the model-epochs, whatever the programs."""
    return protocol.epochs


def train(protocol: MembraneProtocol, seeds: Sequence[int], device: torch.device | str = "cpu", *, data: Any = None,
          on_epoch: Callable[[int], None] | None = None, on_condition: Any = None,
          checkpoints: Path | None = None) -> pd.DataFrame:
    """Every arm for every seed, seed-batched: the frame of :func:`train_sequential` (columns: :func:`tidy`).

    ``data``: the labels (:class:`~resclaims.datasets.membrane.Membrane`), cropped by :func:`prepare`. Models
    (seed-major: seed 0's arms, then seed 1's, ...) train on CPU in programs of at most ``program_elements``
    model-pixels, on a GPU in one; ``on_epoch`` runs :func:`progress_total` times, evenly over the programs.
    One condition, returned (``on_condition`` unused); no checkpoints (``checkpoints`` unused).
    """
    if data is None:
        raise ValueError("the membrane kernel trains on the labels: pass data=resclaims.datasets.membrane.load(...)")
    images = prepare(data.images, protocol, device)
    models = [(seed, arm) for seed in seeds for arm in protocol.arms]
    size = program_size(images, len(models), protocol)
    programs, done = -(-len(models) // size), [0]

    def tick(epoch: int) -> None:  # `programs` program-epochs make one of the `epochs` steps of progress
        done[0] += 1
        if on_epoch is not None and done[0] % programs == 0:
            on_epoch(done[0] // programs - 1)

    parts = [_train_program(images, models[start : start + size], protocol.epochs, protocol.compile, tick, lr=protocol.lr)
             for start in range(0, len(models), size)]  # (sums (epochs, models), state) per program
    state = {key: torch.cat([s[key] for _, s in parts]) for key in parts[0][1]}
    return tidy(np.concatenate([sums for sums, _ in parts], axis=1), models, state, images.shape[0])


def prepare(images: np.ndarray, protocol: MembraneProtocol, device: torch.device | str = "cpu") -> torch.Tensor:
    """The protocol's training images: (N, 1, H, W) labels, centrally cropped, as a tensor of ``protocol.dtype``."""
    if protocol.crop is not None:
        h, w = images.shape[-2:]
        top, left = (h - protocol.crop) // 2, (w - protocol.crop) // 2
        images = images[..., top : top + protocol.crop, left : left + protocol.crop]
    return torch.tensor(np.ascontiguousarray(images), dtype=protocol.dtype, device=device)


def loss_floor(images: torch.Tensor | np.ndarray) -> float:
    """The least per-pixel L1 loss ``sigmoid(relu(z))`` can reach: 0.5 x the fraction of black pixels.

    Every output is >= sigmoid(0) = 0.5, so a black (0) pixel costs >= 0.5 and a
    white (1) one >= 0; the bound is reached when every white pixel is predicted
    1 and every black one 0.5. Multiply by the number of images for the source's scale.
    """
    return 0.5 * float((np.asarray(images) == 0).mean())


def reconstruct(frame: pd.DataFrame, image: torch.Tensor, seed: int) -> dict[str, np.ndarray]:
    """Each of the seed's final models applied to ``image`` (1, 1, H, W) as the source samples: (H, W) per arm."""
    models, state = final_state(frame[frame.seed == seed])
    arms = {arm.name: arm for arm in ARMS + FIXED_ARMS}
    names = [name for _, name in models]
    p = {key: value.to(image.device, image.dtype) for key, value in state.items()}
    m = len(names)
    shortcut = torch.tensor([arms[a].shortcut for a in names], dtype=image.dtype, device=image.device).view(1, m, 1, 1)
    final_relu = torch.tensor([arms[a].final_relu for a in names], device=image.device).view(1, m, 1, 1)
    with torch.no_grad():
        out = torch.sigmoid(block(image.expand(1, m, *image.shape[-2:]), p, shortcut, final_relu, update_stats=False))
    return {name: out[0, k].cpu().numpy() for k, name in enumerate(names)}
