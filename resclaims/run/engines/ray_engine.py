"""The Ray engine (extra ``resclaims[ray]``): one ``ray.remote`` task per job.

``--engine-address HOST:PORT`` (or ``ray://HOST:PORT``) connects to a running
cluster (``ray start --head`` on one machine, ``ray start --address HEAD:6379``
on the others); without it ``ray.init`` starts a local one with ``--workers``
CPUs (default: all), whose workers run at this process's priority: Ray's default
worker niceness, 15, lets any other process on a busy machine (Ray's own daemons,
another fill) take the cores from them, which made a 2-core fill 1.3 times the local
engine's time; start a cluster's nodes with ``RAY_worker_niceness=0 ray start ...``
for the same. Each task asks for one CPU, or one GPU on CUDA; a data set
is put in Ray's object store once and shared by every job that needs it. Every
worker must import the same resclaims checkout and reach the cache folder.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from typing import Any

from resclaims.run.engines import EngineError, FillJob, execute, require

CONNECT_TIMEOUT_S = 5.0


def check_address(address: str) -> None:
    """A TCP connection to ``address`` (``[ray://]HOST[:PORT]``, default port 6379) opens, else :class:`EngineError`."""
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":") if ":" in hostport else (hostport, "", "")
    try:
        port_number = int(port) if port else (10001 if address.startswith("ray://") else 6379)
        with socket.create_connection((host, port_number), timeout=CONNECT_TIMEOUT_S):
            pass
    except (OSError, ValueError) as error:
        raise EngineError(f"--engine-address {address}: cannot reach a Ray cluster there ({error}); start one with "
                          "`ray start --head` or leave the option out for a local cluster") from None


class RayEngine:
    """Jobs as Ray tasks, on a cluster (``address``) or a local one this engine starts and stops."""

    name = "ray"

    def __init__(self, *, address: str | None = None, workers: int | None = None, device: str = "cpu") -> None:
        self.ray = require("ray", "ray")
        if address and address != "auto":
            check_address(address)
        self.address, self.workers, self.device = address, workers, device
        self.started = False

    def _init(self) -> None:
        if self.ray.is_initialized():
            return
        if self.address:
            self.ray.init(address=self.address, log_to_driver=False, configure_logging=False)
        else:
            self.ray.init(num_cpus=self.workers, include_dashboard=False, log_to_driver=False,
                          configure_logging=False, _system_config={"worker_niceness": 0})
        self.started = True

    def run(self, jobs: Sequence[FillJob], data: dict[str | None, Any],
            done: Callable[[FillJob, dict[str, Any]], None]) -> None:
        """Every job as a task; ``done`` as each finishes (the first failure is raised, the rest cancelled)."""
        ray = self.ray
        self._init()
        task = ray.remote(num_cpus=0 if self.device == "cuda" else 1, num_gpus=1 if self.device == "cuda" else 0,
                          max_retries=0)(execute)
        shared = {key: ray.put(value) for key, value in data.items() if value is not None}
        pending = {task.remote(job, shared.get(job.data_key)): job for job in jobs}
        try:
            while pending:
                finished, _ = ray.wait(list(pending), num_returns=1)
                for ref in finished:
                    done(pending.pop(ref), ray.get(ref))
        except BaseException:
            for ref in pending:
                ray.cancel(ref)
            raise

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()
            self.started = False
