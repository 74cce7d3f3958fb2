"""Fill: plan, train what is missing with an engine, plan again, until the selection needs nothing new.

Every pass schedules all the selected claims' missing runs together, one job per
condition and group of seeds (:meth:`resclaims.plugin.plan.Plan.jobs`), and the
engine runs them as independent jobs that write into the shared run cache. A
fill that is killed keeps every entry written before (entries are written
atomically as each condition finishes, a dead worker's locks go with it) and the
next fill trains only the rest.
"""

from __future__ import annotations

import importlib
import itertools
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any, TextIO

from tqdm.auto import tqdm

from resclaims.plugin.plan import plan
from resclaims.run.engines import EngineError, EngineOptions, FillJob, check_cache, make_engine
from resclaims.run.runs import condition_name
from resclaims.run.store import publishable

MAX_PASSES = 10


class FillProgress:
    """One bar over all runs of a pass on a terminal; otherwise one line per finished run.

    A job's runs (one condition, a group of seeds) finish together: each gets its line as its job reports, e.g.
    ``resclaims: fill: K: resnet-10, seed 123: trained (job of 3 runs, 41.2 s on node1) 3/12 runs``.
    """

    def __init__(self, jobs: Sequence[FillJob], out: TextIO, engine: str) -> None:
        self.total, self.done_runs = sum(j.runs for j in jobs), 0
        self.trained = 0  # runs the jobs trained (not read from the cache)
        self.out, self.started = out, time.perf_counter()
        interactive = getattr(out, "isatty", lambda: False)() and not os.environ.get("CI")
        self.bar = tqdm(total=self.total, unit="run", desc=f"fill ({engine})", file=out) if interactive else None

    def __call__(self, job: FillJob, result: dict[str, Any]) -> None:
        self.trained += result["trained"]
        if self.bar is not None:
            self.done_runs += job.runs
            self.bar.update(job.runs)
            return
        trained = set(result.get("trained_seeds", job.seeds if result["trained"] else ()))
        for seed in job.seeds:
            self.done_runs += 1
            how = "trained" if seed in trained else "from the cache"
            print(f"resclaims: fill: {job.label or job.family}: {condition_name(job.protocol)}, seed {seed}: {how} "
                  f"(job of {job.runs} runs, {result['seconds']:.1f} s on {result['host']}) "
                  f"{self.done_runs}/{self.total} runs", file=self.out, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def device_of(args: Sequence[str]) -> str:
    """The device the selection trains on (``--device``, as the session resolves it) for the engine's workers."""
    import torch

    value = "auto"
    for i, arg in enumerate(args):
        if arg == "--device" and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith("--device="):
            value = arg.split("=", 1)[1]
    return "cuda" if value == "cuda" or value == "auto" and torch.cuda.is_available() else "cpu"


def parse_budget(text: str) -> float:
    """``150m``, ``2.5h``, ``90s`` or plain seconds, as seconds; anything else is an :class:`EngineError`."""
    units = {"s": 1, "m": 60, "h": 3600}
    number, unit = (text[:-1], units[text[-1]]) if text and text[-1] in units else (text, 1)
    try:
        seconds = float(number) * unit
    except ValueError:
        seconds = 0.0
    if not seconds > 0 or seconds != seconds or seconds == float("inf"):
        raise EngineError(f"--budget {text}: give a positive duration, e.g. 150m, 2.5h or 5400 (seconds)")
    return seconds


def fill(args: Sequence[str], options: EngineOptions, *, out: TextIO = sys.stdout, publish: bool = False,
         budget: float | None = None) -> int:
    """Train every run the selection ``args`` needs with the engine ``options`` name; the runs trained.

    ``publish``: every run it trains goes into the published run store (:mod:`resclaims.run.store`) as it finishes,
    one seed per job (a run's dropout masks depend on the seeds it trains beside), and so do runs the local cache
    already holds with full provenance. ``budget`` (seconds): a job starts only if it fits in what is left at the
    measured rate (a job of unknown cost always starts); the fill stops when the next one does not fit. Bad input
    (:class:`~resclaims.run.engines.EngineError`) is raised before anything trains, a budget that cannot hold one run
    included.
    """
    from resclaims.datasets import cache_dir

    check_cache(cache_dir() / "runs")
    limit = None if budget is None else Budget(time.monotonic() + budget)
    engine = make_engine(options, device=device_of(args))
    trained, seen = 0, set()
    try:
        current = plan(args)
        if publish and current.store_dir is None:
            raise EngineError("--publish with --no-store: a publishing fill writes into the store; leave --no-store out")
        print(f"resclaims: {current.estimate()}", file=out, flush=True)
        if publish:
            for kernel in sorted({need.kernel for need in current.needs if not publishable(importlib.import_module(need.kernel))}):
                print(f"resclaims: fill: {kernel} declares no NAME and NUMERICS (resclaims.run.store): its runs go into "
                      "the run cache only, unpublished", file=out)
        for reason in current.other_skips:
            print(f"resclaims: skipped, not planned: {reason}", file=out)
        for _ in range(MAX_PASSES):
            jobs = [replace(job, publish=publish) for job in current.jobs(1 if publish else options.seeds_per_job)]
            if not jobs:
                return trained
            todo = {(job.protocol.__class__.__name__, repr(job.protocol), job.seeds) for job in jobs}
            if todo <= seen:
                raise RuntimeError(f"fill: the engine finished, but the run cache {current.cache_dir} still lacks "
                                   "runs it trained: do all workers write to that folder (the same RESCLAIMS_CACHE)?")
            seen |= todo
            workers = max(1, getattr(engine, "workers", None) or 1)
            batches = [jobs] if limit is None else limit.batches(jobs, current, workers, trained, out)
            for batch in batches:
                progress = FillProgress(batch, out, engine.name)
                try:
                    engine.run(batch, current.data, progress)
                finally:
                    progress.close()
                trained += progress.trained
            if limit is not None and limit.stopped:
                return trained
            current = plan(args)  # requests that needed this pass's runs show up now
        raise RuntimeError(f"fill: still runs to train after {MAX_PASSES} passes")
    finally:
        engine.close()


class Budget:
    """A fill's deadline: which jobs may start now, at the plan's measured rate; ``stopped`` once one did not fit."""

    def __init__(self, deadline: float) -> None:
        self.deadline, self.stopped = deadline, False

    def batches(self, jobs: list[FillJob], current: Any, workers: int, trained: int,
                out: TextIO) -> Iterator[list[FillJob]]:
        """The jobs in batches of at most one per worker, each started only if its jobs fit in the time left (a job
        of unknown cost always fits); a budget that cannot hold the first run is an :class:`EngineError`."""
        per_run = {}
        for need in current.missing:
            seconds = current.seconds(need)
            per_run[repr(need.condition), need.data_key] = None if seconds is None else seconds / len(need.missing)
        cost = lambda job: (per_run.get((repr(job.protocol), job.data_key)) or 0.0) * job.runs  # noqa: E731
        i = 0
        while i < len(jobs):
            left = self.deadline - time.monotonic()
            batch = list(itertools.takewhile(lambda job: cost(job) <= left, jobs[i:i + workers]))
            if not batch:
                what = f"the next ({condition_name(jobs[i].protocol)}, seed {jobs[i].seeds[0]}) takes about " \
                       f"{_minutes(cost(jobs[i]))} at the measured rate"
                if i == 0 and trained == 0:
                    raise EngineError(f"--budget: {_minutes(left)} cannot hold one run: {what}; nothing trained")
                print(f"resclaims: fill: budget: stopping with {sum(j.runs for j in jobs[i:])} runs left; {what}, "
                      f"{_minutes(left)} left", file=out, flush=True)
                self.stopped = True
                return
            i += len(batch)
            yield batch


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"
