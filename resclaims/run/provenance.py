"""Where and how a run or a report was made: the code's commit, the device, the arithmetic that decides last bits.

Recorded with every cache entry and published run (:mod:`resclaims.run.cache`, :mod:`resclaims.run.store`) and in
every report's provenance (:mod:`resclaims.report.report`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch


def git_commit(cwd: Path | None = None) -> str:
    """The checkout's commit, with "+dirty" if it has uncommitted changes; "unknown" outside git."""
    try:
        run = lambda *args: subprocess.run(  # noqa: E731
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        commit = run("rev-parse", "--short=12", "HEAD")
        dirty = run("status", "--porcelain", "--untracked-files=no")
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo where there is one, else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device_kind: str) -> str:
    """The device a run trains on, in words: the GPU's name, or the CPU's model."""
    if device_kind == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def arithmetic(device: str) -> str:
    """What decides a trained run's last bits besides the code: torch, the device and the kernels it dispatches to
    (a CPU's vector capability: AVX2 and AVX-512 machines of one name sum in different orders)."""
    if device.startswith("cuda"):
        return f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}"
    return f"torch {torch.__version__}, {cpu_name()}, {torch.backends.cpu.get_cpu_capability()}"


@functools.cache
def _revision() -> str:
    return git_commit(Path(__file__).resolve().parents[2])


def provenance(device_kind: str) -> dict[str, Any]:
    """How a run trained, as a cache entry and a published run record it (besides its wall time and group)."""
    return {"revision": _revision(), "torch": torch.__version__, "numpy": np.__version__, "device_kind": device_kind,
            "device_name": device_name(device_kind), "arithmetic": arithmetic(device_kind),
            "threads": torch.get_num_threads(), "written": datetime.now(timezone.utc).isoformat()}
