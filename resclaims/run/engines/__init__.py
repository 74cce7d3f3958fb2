"""Engines: train the runs the selected claims need, as independent jobs, into the shared run cache.

A :class:`FillJob` is one condition of a protocol at a group of seeds (one
entry per seed in the run cache, :mod:`resclaims.run.cache`). :func:`execute` runs
one job wherever an engine puts it: it opens the cache folder the job names and
trains through :class:`resclaims.run.runs.Runs`, so the cache's locks and atomic
writes apply however many workers fill it at once, and a run trained by any
engine is the same run (the same key, bit for bit the same frame on CPU: every
job trains with one CPU thread).

The engines are existing libraries, not a scheduler of this project's own:

- ``local`` (:mod:`resclaims.run.engines.local`): ``concurrent.futures.ProcessPoolExecutor``,
  one worker per GPU (``CUDA_VISIBLE_DEVICES`` set per worker) or per CPU core;
- ``ray`` (:mod:`resclaims.run.engines.ray_engine`, extra ``resclaims[ray]``): one Ray task per job,
  on a cluster at ``--engine-address`` or a local one;
- ``slurm`` (:mod:`resclaims.run.engines.slurm`, extra ``resclaims[slurm]``): a SLURM job array through
  submitit (``--engine-option cluster=local`` runs it with submitit's local executor).

:func:`make_engine` checks everything it can before anything trains (the engine's name, its library,
the cluster's address, the cache folder) and raises :class:`EngineError` with one line that says what to do.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Protocol

import torch

from resclaims.run.cache import CacheFolderError, RunCache, check_cache_dir, kernel_version
from resclaims.run.contract import RunProtocol, conditions, device_kind, kernel_of
from resclaims.run.runs import Runs, data_key
from resclaims.run.store import RunStore

ENGINES = ("local", "ray", "slurm")
INSTALL = {"ray": 'pip install "resclaims[ray]"  (or: pip install "ray>=2.9")',
           "slurm": 'pip install "resclaims[slurm]"  (or: pip install "submitit>=1.5")'}


class EngineError(RuntimeError):
    """Input an engine cannot run with (exit 4 before anything trains); the message says what to do."""


class KernelMismatch(RuntimeError):
    """A job reached a worker whose kernel source differs from the one it was planned with."""


@dataclass(frozen=True)
class FillJob:
    """One condition of a protocol at a group of seeds: what one worker trains into the cache at ``cache_dir``.

    ``kernel_version`` is the kernel's version where the job was made: a worker whose
    source differs (another checkout, an edit since) refuses it rather than cache runs
    under a key they do not belong to. ``data`` travels beside the job (:func:`execute`), so
    that an engine can ship one copy of a data set to many jobs.
    """

    protocol: RunProtocol  # one condition (resclaims.run.contract.conditions)
    seeds: tuple[int, ...]
    device: str  # cpu | cuda
    cache_dir: str
    kernel_version: str
    label: str = ""  # the seed name, for progress
    family: str = ""
    data_key: str | None = None  # which data set (its checksum); the data itself goes separately
    threads: int = 1  # CPU threads per job: one, so that every engine computes the same floats
    store_dir: str | None = None  # the published run store, read under the cache (None: not read, --no-store)
    publish: bool = False  # publish every run it trains into the store (fill --publish)

    @property
    def runs(self) -> int:
        return len(self.seeds)


def make_job(protocol: RunProtocol, seeds: Sequence[int], *, device: str, cache_dir: Path, label: str = "",
             family: str = "", data_key: str | None = None, store_dir: Path | None = None) -> FillJob:
    """A job for ``protocol`` (one condition) at ``seeds``, stamped with its kernel's current version."""
    return FillJob(protocol, tuple(seeds), device, str(cache_dir), kernel_version(kernel_of(protocol)), label,
                   family, data_key, store_dir=None if store_dir is None else str(store_dir))


class _Quiet:
    """Progress for a worker: the engine reports each finished job, not epochs."""

    def track(self, *args: Any):  # noqa: ANN201
        import contextlib

        return contextlib.nullcontext(lambda epoch: None)


def execute(job: FillJob, data: Any = None) -> dict[str, Any]:
    """Train ``job`` into its cache (what every engine runs on a worker); returns what it trained and how long:
    ``trained`` and ``reused`` (runs), ``seconds``, ``host``, ``trained_seeds`` (the seeds it trained) and
    ``niceness`` (the worker's scheduling priority: an engine's workers should run at their caller's).

    Runs the cache already holds are read, not trained (another worker, or a killed fill, made them).
    """
    kernel = kernel_of(job.protocol)
    if kernel_version(kernel) != job.kernel_version:
        raise KernelMismatch(f"{kernel.__name__}: this worker's kernel is version {kernel_version(kernel)}, the job "
                             f"was made with {job.kernel_version}; run the same checkout on every worker")
    if job.device == "cpu":
        torch.set_num_threads(job.threads)
    cache = RunCache(Path(job.cache_dir), None if job.store_dir is None else RunStore(Path(job.store_dir)),
                     publish=job.publish)
    device = torch.device(job.device)
    runs = Runs(SimpleNamespace(device=device), cache, _Quiet(), report=None)
    lacking = cache.missing(kernel, conditions(job.protocol), job.seeds, device_kind=device_kind(kernel, device),
                            data=data_key(data))
    started = time.perf_counter()
    runs.train(job.protocol, job.seeds, data=data, label=job.label, family=job.family)
    # the seeds it lacked were trained unless another worker trained them meanwhile (then this job trained none)
    trained_seeds = sorted({seed for seeds in lacking for seed in seeds}) if cache.trained else []
    return {"trained": cache.trained, "reused": cache.reused, "seconds": time.perf_counter() - started,
            "host": os.uname().nodename, "trained_seeds": trained_seeds, "niceness": os.nice(0)}


class Engine(Protocol):
    """Runs jobs and calls ``done(job, result)`` in the calling process as each one finishes."""

    name: str

    def run(self, jobs: Sequence[FillJob], data: dict[str | None, Any],
            done: Callable[[FillJob, dict[str, Any]], None]) -> None: ...

    def close(self) -> None: ...


@dataclass
class EngineOptions:
    """What the command line says about the engine: ``--engine``, ``--engine-address``, ``--workers``,
    ``--engine-option KEY=VALUE`` (submitit's parameters for ``slurm``, e.g. ``slurm_partition=gpu``),
    ``--seeds-per-job N`` (default: a condition's missing seeds in one job)."""

    name: str = "local"
    address: str | None = None
    workers: int | None = None
    options: dict[str, str] = field(default_factory=dict)
    seeds_per_job: int | None = None


def parse_options(pairs: Iterable[str]) -> dict[str, str]:
    """``KEY=VALUE`` strings as a dict; anything else is an :class:`EngineError`."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise EngineError(f"--engine-option {pair}: give KEY=VALUE, e.g. slurm_partition=gpu")
        options[key] = value
    return options


def check_cache(directory: Path) -> None:
    """The cache folder exists (or can be made) and a file can be written in it; else :class:`EngineError`."""
    try:
        check_cache_dir(Path(directory), workers=True)
    except CacheFolderError as error:
        raise EngineError(str(error)) from None


def make_engine(options: EngineOptions, *, device: str) -> Engine:
    """The engine ``options`` name, checked (library installed, cluster reachable), or :class:`EngineError`."""
    if options.name not in ENGINES:
        raise EngineError(f"--engine {options.name}: unknown engine; use one of {', '.join(ENGINES)}")
    if options.workers is not None and options.workers < 1:
        raise EngineError(f"--workers {options.workers}: give a positive whole number of workers")
    if options.seeds_per_job is not None and options.seeds_per_job < 1:
        raise EngineError(f"--seeds-per-job {options.seeds_per_job}: give a positive whole number of seeds")
    if options.name == "local":
        if options.address:
            raise EngineError("--engine-address: the local engine has no cluster; use --engine ray for one")
        from resclaims.run.engines.local import LocalEngine

        return LocalEngine(workers=options.workers, device=device)
    if options.name == "ray":
        from resclaims.run.engines.ray_engine import RayEngine

        return RayEngine(address=options.address, workers=options.workers, device=device)
    from resclaims.run.engines.slurm import SlurmEngine

    return SlurmEngine(options.options, workers=options.workers, device=device, address=options.address)


def require(module: str, engine: str) -> Any:
    """Import ``module`` for ``engine``, or an :class:`EngineError` with the install command."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise EngineError(f"--engine {engine}: {module} is not installed; install it with {INSTALL[engine]}") from None
