"""The local engine: a ``concurrent.futures.ProcessPoolExecutor`` on this machine (no dependency).

One worker per GPU when training on CUDA (each worker sees only its own GPU:
``CUDA_VISIBLE_DEVICES`` is set before it touches CUDA), else one per CPU core;
``--workers N`` overrides. Workers are spawned, not forked, so that none inherits
a parent's torch threads or CUDA state.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any

from resclaims.run.engines import FillJob, execute


def _claim_device(devices: Any) -> None:
    """Worker initializer: take one GPU from the queue and make it the only one this worker sees."""
    if devices is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(devices.get())


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Stop a pool's workers now, their runs unfinished (each resumes from its checkpoint in the next fill), where
    leaving the ``with`` block would wait for them: a SIGINT sent to this process alone (``kill -INT``, not a
    terminal's Ctrl-C, which reaches the whole process group) leaves the workers training, for hours on a CPU."""
    if hasattr(pool, "terminate_workers"):  # Python 3.14
        pool.terminate_workers()
        return
    workers = list((getattr(pool, "_processes", None) or {}).values())  # no public way before 3.14
    pool.shutdown(wait=False, cancel_futures=True)
    for worker in workers:
        worker.terminate()


class LocalEngine:
    """Jobs in worker processes on this machine."""

    name = "local"

    def __init__(self, *, workers: int | None = None, device: str = "cpu") -> None:
        import torch

        gpus = torch.cuda.device_count() if device == "cuda" else 0
        self.workers = workers or gpus or os.cpu_count() or 1
        self.device = device
        self.gpus = gpus

    def run(self, jobs: Sequence[FillJob], data: dict[str | None, Any],
            done: Callable[[FillJob, dict[str, Any]], None]) -> None:
        """Every job, at most ``workers`` at once; ``done`` as each finishes (the first failure is raised)."""
        context = multiprocessing.get_context("spawn")
        devices = None
        if self.gpus:
            devices = context.Manager().Queue()
            for i in range(self.workers):
                devices.put(i % self.gpus)
        with ProcessPoolExecutor(min(self.workers, len(jobs)) or 1, mp_context=context, initializer=_claim_device,
                                 initargs=(devices,)) as pool:
            pending: dict = {}
            try:  # submitting included: a job submitted starts at once, and leaving the block would wait for it
                for job in jobs:
                    pending[pool.submit(execute, job, data.get(job.data_key))] = job
                while pending:
                    finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in finished:
                        done(pending.pop(future), future.result())
            except BaseException as error:
                for future in pending:
                    future.cancel()
                if isinstance(error, KeyboardInterrupt):
                    _stop_workers(pool)
                raise

    def close(self) -> None:
        pass
