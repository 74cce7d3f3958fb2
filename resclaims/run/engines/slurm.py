"""The SLURM engine (extra ``resclaims[slurm]``): the jobs as one SLURM job array, through submitit.

``submitit.AutoExecutor`` submits the array (``sbatch``) and collects each job's
result; its logs and pickled jobs go to ``--engine-option folder=PATH`` (default:
``submitit/`` next to the cache folder, on the storage every node reaches). Any other
``--engine-option KEY=VALUE`` is one of submitit's parameters (``slurm_partition=gpu``,
``timeout_min=600``, ``slurm_array_parallelism=16``, ...). ``cluster=local`` runs
the array with submitit's local executor (one process per job on this machine),
which is how the tests run it. A job checks on its node that the kernel it runs is
the version it was made with (:func:`resclaims.run.engines.execute`).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from resclaims.run.engines import EngineError, FillJob, execute, require

DEFAULTS = {"timeout_min": 24 * 60, "cpus_per_task": 1}


def _numeric(value: str) -> Any:
    """An option's value as submitit wants it: a whole number where it is one."""
    try:
        return int(value)
    except ValueError:
        return value


class SlurmEngine:
    """Jobs as a SLURM job array (or submitit's local executor, ``cluster=local``)."""

    name = "slurm"

    def __init__(self, options: dict[str, str], *, workers: int | None = None, device: str = "cpu",
                 address: str | None = None) -> None:
        self.submitit = require("submitit", "slurm")
        if address:
            raise EngineError("--engine-address: the slurm engine submits with sbatch on this machine; leave it out")
        options = dict(options)
        self.cluster = options.pop("cluster", "slurm")
        if self.cluster not in ("slurm", "local"):
            raise EngineError(f"--engine-option cluster={self.cluster}: use slurm (the default) or local")
        if self.cluster == "slurm" and shutil.which("sbatch") is None:
            raise EngineError("--engine slurm: sbatch is not on PATH (not a SLURM login node); run it there, or use "
                              "--engine-option cluster=local to run the array on this machine")
        self.folder = options.pop("folder", None)
        self.parameters = {**DEFAULTS, **{k: _numeric(v) for k, v in options.items()}}
        if workers:
            self.parameters.setdefault("slurm_array_parallelism", workers)
        if device == "cuda":
            self.parameters.setdefault("gpus_per_node", 1)

    def run(self, jobs: Sequence[FillJob], data: dict[str | None, Any],
            done: Callable[[FillJob, dict[str, Any]], None]) -> None:
        """The jobs as one array; ``done`` as each finishes (the first failure is raised, the rest cancelled)."""
        if not jobs:
            return
        folder = Path(self.folder or Path(jobs[0].cache_dir).parent / "submitit") / "%j"
        executor = self.submitit.AutoExecutor(folder=folder, cluster=self.cluster)
        parameters = dict(self.parameters)
        if self.cluster == "local":  # the local executor knows no SLURM parameters
            parameters = {k: v for k, v in parameters.items() if not k.startswith("slurm_")}
        executor.update_parameters(**parameters)
        submitted = executor.map_array(execute, list(jobs), [data.get(job.data_key) for job in jobs])
        by_id = {id(s): job for s, job in zip(submitted, jobs)}
        try:
            for finished in self.submitit.helpers.as_completed(submitted, poll_frequency=1):
                done(by_id[id(finished)], finished.result())
        except BaseException:
            for job in submitted:
                if not job.done():
                    job.cancel(check=False)
            raise

    def close(self) -> None:
        pass
