"""Fill: plan, train what is missing with an engine, plan again, until the selection needs nothing new.

Every pass schedules all the selected claims' missing runs together, one job per
condition and group of seeds (:meth:`resclaims.engines.plan.Plan.jobs`), and the
engine runs them as independent jobs that write into the shared run cache. A
fill that is killed keeps every entry written before (entries are written
atomically as each condition finishes, a dead worker's locks go with it) and the
next fill trains only the rest.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

from tqdm.auto import tqdm

from resclaims.engines import EngineOptions, FillJob, check_cache, make_engine
from resclaims.engines.plan import plan
from resclaims.runs import condition_name

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


def fill(args: Sequence[str], options: EngineOptions, *, out: TextIO = sys.stdout) -> int:
    """Train every run the selection ``args`` needs with the engine ``options`` name; the runs trained.

    Bad input (:class:`~resclaims.engines.EngineError`) is raised before anything trains.
    """
    from resclaims.datasets import cache_dir

    check_cache(cache_dir() / "runs")
    engine = make_engine(options, device=device_of(args))
    trained, seen = 0, set()
    try:
        current = plan(args)
        print(f"resclaims: {current.estimate()}", file=out, flush=True)
        for reason in current.other_skips:
            print(f"resclaims: skipped, not planned: {reason}", file=out)
        for _ in range(MAX_PASSES):
            jobs = current.jobs(options.seeds_per_job)
            if not jobs:
                return trained
            todo = {(job.protocol.__class__.__name__, repr(job.protocol), job.seeds) for job in jobs}
            if todo <= seen:
                raise RuntimeError("fill: the engine finished, but the cache still lacks runs it trained: "
                                   "do all workers write to the same cache folder?")
            seen |= todo
            progress = FillProgress(jobs, out, engine.name)
            try:
                engine.run(jobs, current.data, progress)
            finally:
                progress.close()
            trained += progress.trained
            current = plan(args)  # requests that needed this pass's runs show up now
        raise RuntimeError(f"fill: still runs to train after {MAX_PASSES} passes")
    finally:
        engine.close()
