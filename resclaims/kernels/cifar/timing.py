"""One training step, timed: the CPU threads it runs on, and the step itself on fixed random batches."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager, nullcontext

import torch

from resclaims.kernels.cifar.config import STACKS, Arm, TrainConfig
from resclaims.kernels.cifar.stack import ModelStack, build
from resclaims.kernels.cifar.steps import GroupStep, group_step
from resclaims.run.seeding import torch_generator


@contextmanager
def cpu_threads(n: int):
    """Run the block with ``n`` intra-op CPU threads (timings: comparable, and safe on a shared CPU)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)


def fixed_batches_step(cfg: TrainConfig, arm: Arm, n_models: int, device: torch.device | str, *, stack: str = "loop",
                       mode: str = "eager", channels_last: bool | None = None) -> tuple[GroupStep, list, list]:
    """The step :func:`train` takes for ``n_models`` copies of ``arm`` (same stack, optimizer, autocast and, on CUDA,
    memory format; step ``mode``: see :mod:`resclaims.kernels.cifar.steps`), and fixed random batches for it: for timing."""
    device = torch.device(device)
    cuda = device.type == "cuda"
    if stack not in STACKS[1:]:
        raise ValueError(f"stack must be one of {STACKS[1:]}, got {stack!r}")
    side = 24 if cfg.recipe == "keras003" else 32 // cfg.downsample
    generator = torch_generator(0, "timing", arm.name)
    xs = [torch.rand(cfg.batch_size, 3, side, side, generator=generator).to(device) for _ in range(n_models)]
    ys = [torch.randint(0, 10, (cfg.batch_size,), generator=generator).to(device) for _ in range(n_models)]
    models = ModelStack([build(arm, seed).to(device) for seed in range(n_models)], stack == "grouped",
                        cuda if channels_last is None else channels_last)
    return group_step(cfg, models, mode, autocast=cuda), xs, ys


def step_closure(cfg: TrainConfig, arm: Arm, n_models: int, device: torch.device | str, *, stack: str = "loop",
                 mode: str = "eager") -> Callable[[], float]:
    """One training step of :func:`fixed_batches_step`, as a closure that returns the summed loss (which waits for
    the device). A compiled or captured step compiles on its first call (a timing's warm-up round)."""
    cuda = torch.device(device).type == "cuda"
    train_step, xs, ys = fixed_batches_step(cfg, arm, n_models, device, stack=stack, mode=mode)

    def step() -> float:
        with torch.backends.cudnn.flags(enabled=True, benchmark=True) if cuda else nullcontext():
            losses, _ = train_step(xs, ys)
        return losses.sum().item()

    step.group_step = train_step  # its compile or capture time: step.group_step.setup_seconds
    return step


def timing_threads(device_kind: str) -> int | None:
    """CPU threads a timed step runs on (:func:`time_step`); None on a GPU."""
    return 1 if device_kind == "cpu" else None


def time_step(benchmark, cfg: TrainConfig, arm: Arm, n_models: int, device_kind: str, *, stack: str = "loop",
              mode: str = "eager", rounds: int = 5) -> float:
    """Time one :func:`step_closure` step with pytest-benchmark's ``pedantic`` (one warm-up); returns the last loss.

    On CPU the step runs on :func:`timing_threads` threads: comparable across
    machines with more cores, and not stalled by other work on a shared CPU.
    """
    return timed_step(benchmark, cfg, arm, n_models, device_kind, stack=stack, mode=mode, rounds=rounds)[0]


def timed_step(benchmark, cfg: TrainConfig, arm: Arm, n_models: int, device_kind: str, *, stack: str = "loop",
               mode: str = "eager", rounds: int = 5) -> tuple[float, Callable[[], float]]:
    """:func:`time_step`, and the timed step itself (``step.group_step``: its mode and its compile or capture time).

    Every device's timing runs this code, a GPU's included (on a GPU, the step on the process's own CPU threads):
    ``tests/kernels/test_cifar_training.py`` runs a GPU timing's code with its step built on the CPU.
    """
    with cpu_threads(timing_threads(device_kind) or torch.get_num_threads()):
        step = step_closure(cfg, arm, n_models, device_kind, stack=stack, mode=mode)
        return benchmark.pedantic(step, rounds=rounds, warmup_rounds=1, iterations=1), step
