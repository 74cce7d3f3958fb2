"""The session's report: claims, timings, figures and provenance, written to disk.

One :class:`Report` lives for a pytest session (the ``report`` fixture). Claim
tests add :class:`~resclaims.verdict.ClaimResult` rows, benchmarks add timings,
and at the end of the session the plugin writes ``summary.json`` (the contract
other tools read) and ``summary.md`` (the table people read).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from resclaims.verdict import ClaimResult, require_supported

SCHEMA_VERSION = 1


@dataclass
class Timing:
    """One pytest-benchmark measurement, normalised per experiment where that applies."""

    name: str
    group: str
    seconds: float  # mean wall time of one call
    rounds: int
    experiments: int = 1  # experiments (independent models) one call trains
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def per_experiment(self) -> float:
        return self.seconds / self.experiments


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


class Report:
    """Collects a session's results and writes them under ``directory``."""

    def __init__(self, directory: Path, *, tier: str, device: str, base_seed: int) -> None:
        self.directory = Path(directory)
        self.claims: list[ClaimResult] = []
        self.timings: list[Timing] = []
        self.figures: dict[str, list[str]] = {}
        self.notes: dict[str, list[str]] = {}
        self.data: dict[str, dict[str, Any]] = {}
        self.provenance: dict[str, Any] = {
            "git_commit": git_commit(),
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpu_threads": torch.get_num_threads(),
            "device": device,
            "device_name": torch.cuda.get_device_name(0) if device.startswith("cuda") else cpu_name(),
            "base_seed": base_seed,
            "tier": tier,
        }

    # -- adding results -------------------------------------------------
    def record(self, result: ClaimResult) -> ClaimResult:
        """Add a claim result, replacing an earlier one with the same id."""
        self.claims = [c for c in self.claims if c.id != result.id] + [result]
        return result

    def verify(self, result: ClaimResult) -> None:
        """Record ``result``, then fail the test unless the claim is supported."""
        self.record(result)
        require_supported(result)

    def figure_path(self, claim_id: str, name: str) -> Path:
        """Where to save a figure for ``claim_id``; the report links it."""
        path = self.directory / "figures" / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.figures.setdefault(claim_id, []).append(path.relative_to(self.directory).as_posix())
        return path

    def note(self, claim_id: str, text: str) -> None:
        """A sentence for a claim's section of the report (a scale, a caveat)."""
        self.notes.setdefault(claim_id, []).append(text)

    def add_timing(self, timing: Timing) -> None:
        self.timings.append(timing)

    def add_data(self, name: str, **info: Any) -> None:
        """Record a data set that was used: its source, path and checksum."""
        self.data[name] = info

    # -- writing ---------------------------------------------------------
    def speedups(self) -> list[dict[str, Any]]:
        """Per group: sequential time per experiment over batched time per experiment."""
        rows = []
        for group in sorted({t.group for t in self.timings}):
            timed = [t for t in self.timings if t.group == group]
            sequential = [t for t in timed if t.extra.get("impl") == "sequential"]
            batched = [t for t in timed if t.extra.get("impl") == "batched"]
            if sequential and batched:
                seq = min(sequential, key=lambda t: t.per_experiment)
                for b in sorted(batched, key=lambda t: t.experiments):
                    rows.append(
                        {
                            "group": group,
                            "experiments": b.experiments,
                            "batched_s_per_experiment": b.per_experiment,
                            "sequential_s_per_experiment": seq.per_experiment,
                            "speedup": seq.per_experiment / b.per_experiment,
                        }
                    )
        return rows

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "claims": [c.to_json() for c in sorted(self.claims, key=lambda c: _claim_order(c.id))],
            "timings": [
                {
                    "name": t.name,
                    "group": t.group,
                    "seconds": t.seconds,
                    "rounds": t.rounds,
                    "experiments": t.experiments,
                    "seconds_per_experiment": t.per_experiment,
                    **t.extra,
                }
                for t in self.timings
            ],
            "speedups": self.speedups(),
            "figures": self.figures,
            "notes": self.notes,
            "provenance": {**self.provenance, "data": self.data},
        }

    def write(self) -> Path | None:
        """Write ``summary.json`` and ``summary.md``; nothing if the session recorded nothing."""
        if not (self.claims or self.timings):
            return None
        self.directory.mkdir(parents=True, exist_ok=True)
        document = self.to_json()
        _atomic_write(self.directory / "summary.json", json.dumps(document, indent=2, allow_nan=False))
        from resclaims.markdown import render_summary  # local: only needed when writing

        _atomic_write(self.directory / "summary.md", render_summary(document))
        return self.directory


def _claim_order(claim_id: str) -> tuple[str, int, str]:
    """Sort Z1 < Z2 < Z10, and parts after their claim."""
    head, _, part = claim_id.partition(".")
    letters = head.rstrip("0123456789")
    digits = head[len(letters) :]
    return (letters, int(digits) if digits else 0, part)


def _atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
