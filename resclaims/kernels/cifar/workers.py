"""Arms trained in parallel: one single-threaded worker process per CPU core."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed

import pandas as pd
import torch

from resclaims.kernels.cifar.config import Arm
from resclaims.kernels.cifar.stack import build

GPU_ARMS = "RESCLAIMS_GPU_ARMS"  # arms that train at once on one GPU, each in its own process (default 1)


def default_workers(device: torch.device) -> int:
    """Processes to train arms in: one per CPU core this process may use on CPU; on CUDA, $RESCLAIMS_GPU_ARMS (1).

    Not ``torch.get_num_threads()``: CI sets ``OMP_NUM_THREADS=1``, which would leave one core idle. On a GPU,
    several processes can share the device when one arm's group leaves it idle (ResNet-20 with 5 seeds, say):
    ``python -m resclaims gpu-check`` measures 1, 2 and 4 at once ("sharing"); set the variable from that table.
    """
    if torch.device(device).type != "cpu":
        value = os.environ.get(GPU_ARMS, "1")
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"{GPU_ARMS}={value}: give a positive whole number of arms to train at once on a GPU")
        return int(value)
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
