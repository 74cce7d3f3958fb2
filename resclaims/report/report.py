"""The session's report: claims, timings, figures and provenance, written to disk.

One :class:`Report` lives for a pytest session (the ``report`` fixture). Claim
tests add :class:`~resclaims.decide.verdict.ClaimResult` rows, the per-run data behind
them and figures; benchmarks add timings. At the end of the session the plugin
writes the report folder:

- ``summary.json``: the contract other tools read (claims, timings, provenance, comparison);
- ``summary.md`` and ``summary.html`` (figures inline, opens offline): for people;
- ``results.csv``: the tidy per-run data behind every claim;
- ``benchmarks.json``: pytest-benchmark's own JSON, raw rounds included;
- ``figures/``.

Everything is written into a hidden staging folder beside the destination and
renamed into place at the end, so a run that is killed leaves no half-written
report that looks finished, and an earlier report in the same place survives.

Under pytest-xdist each worker has a :class:`Report` that keeps a journal of
what its tests added (:meth:`Report.sent`); the plugin sends it to the
controller on each test's report, and the controller's report replays it
(:meth:`Report.replay`) and writes the one report. Workers save figures into
the controller's staging folder (the same destination gives the same folder).
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from resclaims.decide import multiplicity
from resclaims.decide.verdict import ClaimResult, require_supported
from resclaims.run.provenance import arithmetic, cpu_name, git_commit

SCHEMA_VERSION = 1


def cifar_steps(device: str) -> str:
    """How CIFAR training steps run on ``device`` (:mod:`resclaims.kernels.cifar.steps`): eager, compiled or captured."""
    from resclaims.kernels.cifar.steps import resolve_mode

    try:
        return resolve_mode("auto", torch.device(device))
    except (ValueError, RuntimeError) as error:
        return f"unknown ({error})"


class ReportWriteError(OSError):
    """The report could not be written; an earlier report in its place is unchanged."""


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


def portable_paths(text: str) -> str:
    """``text`` with every absolute path in it made relative to the working directory."""
    return re.sub(r"(?<![\w.])/[^\s,;]+", lambda m: os.path.relpath(m.group(0)), text)


class Report:
    """Collects a session's results and writes them under ``directory``."""

    def __init__(self, destination: Path, *, tier: str, device: str, base_seed: int) -> None:
        self.destination = Path(destination)
        self.directory = self.destination.parent / f".{self.destination.name}.partial"  # staging
        self.claims: list[ClaimResult] = []
        self.running: str | None = None  # node id of the test running now (set by the plugin)
        self.nodeids: dict[str, str | None] = {}  # claim id -> node id of the test that recorded it
        self.runs: list[pd.DataFrame] = []
        self.benchmarks: dict[str, Any] | None = None  # pytest-benchmark's JSON
        self.comparison: dict[str, Any] | None = None
        self.timings: list[Timing] = []
        self.figures: dict[str, list[str]] = {}
        self.notes: dict[str, list[str]] = {}
        self.data: dict[str, dict[str, Any]] = {}
        self.calibrations: list[Any] = []  # resclaims.decide.calibration.Calibration, one per claim
        self.validation: dict[str, Any] | None = None  # resclaims.report.validation.run(): procedure x world x both errors
        self.run_counts: dict[str, dict[str, Any]] = {}  # family -> runs, diverged runs (and per arm, if any)
        self.run_sources: dict[str, dict[str, Any]] = {}  # family -> runs trained, from the cache, from the store
        self.incomplete: dict[str, dict[str, Any]] = {}  # claim id -> the runs it lacks (--no-train)
        self.journal: list[dict[str, Any]] | None = None  # a list on an xdist worker: what to send (see sent())
        self.run_keys: list[tuple] = []  # on the xdist controller: the serial order of each frame in runs
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
            "cifar_steps": cifar_steps(device),
            "arithmetic": arithmetic(device),
        }

    # -- adding results -------------------------------------------------
    def record(self, result: ClaimResult) -> ClaimResult:
        """Add a claim result, replacing an earlier one with the same id; the running test is recorded with it."""
        self.claims = [c for c in self.claims if c.id != result.id] + [result]
        self.nodeids[result.id] = self.running
        self._log("claim", result=asdict(result), nodeid=self.running)
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
        self._log("figure", claim_id=claim_id, path=self.figures[claim_id][-1])
        return path

    def note(self, claim_id: str, text: str) -> None:
        """A sentence for a claim's section of the report (a scale, a caveat)."""
        self.notes.setdefault(claim_id, []).append(text)
        self._log("note", claim_id=claim_id, text=text)

    def add_timing(self, timing: Timing) -> None:
        self.timings.append(timing)
        self._log("timing", timing=asdict(timing))

    def add_benchmark(self, benchmark, name: str, group: str | None = None, experiments: int = 1,
                      images: int | None = None, **extra: Any) -> None:
        """Record a pytest-benchmark fixture's result (nothing under ``--benchmark-disable``).

        ``group`` defaults to the benchmark's; ``images`` (per call) adds ``images_per_s``.
        """
        if benchmark.stats is None:  # --benchmark-disable
            return
        stats = benchmark.stats.stats
        if images is not None:
            extra["images_per_s"] = images / stats.mean
        self.add_timing(Timing(name, group or benchmark.group, stats.mean, stats.rounds, experiments, extra=extra))

    def add_data(self, name: str, **info: Any) -> None:
        """Record a data set that was used: its source, path and checksum.

        Absolute paths in the values are written relative to the working
        directory, so a report (and the committed baseline) names no machine's paths.
        """
        self.data[name] = {k: portable_paths(v) if isinstance(v, str) else v for k, v in info.items()}
        self._log("data", name=name, info=self.data[name])

    def add_runs(self, family: str, frame: pd.DataFrame) -> None:
        """The tidy per-run data behind a family's claims (written to results.csv).

        A frame with a boolean ``diverged`` column (the run's loss became NaN or
        inf, :mod:`resclaims.run.contract`) also adds to the family's count of runs and
        diverged runs, and, where a run diverged, to ``diverged_by_arm`` (the diverged
        runs of each arm that has any); a run is one row, or with an ``epoch`` column
        one row of its first epoch.
        """
        self.runs.append(frame.assign(family=family))
        self._log("runs", family=family, columns=list(frame.columns), dtypes=[str(t) for t in frame.dtypes],
                  rows=frame.to_numpy(dtype=object).tolist())
        if "diverged" in frame.columns:
            first = frame[frame.epoch == frame.epoch.min()] if "epoch" in frame.columns else frame
            counts = self.run_counts.setdefault(family, {"runs": 0, "diverged": 0})
            counts["runs"] += len(first)
            counts["diverged"] += int(first.diverged.sum())
            by_arm = first.groupby("arm", sort=False).diverged.sum() if "arm" in first else {}
            for arm, diverged in by_arm.items():
                if diverged:
                    arms = counts.setdefault("diverged_by_arm", {})
                    arms[str(arm)] = arms.get(str(arm), 0) + int(diverged)

    def add_run_sources(self, family: str, trained: int, cached: int, published: list[dict[str, Any]]) -> None:
        """Where a family's runs came from: trained in this session, read from the local run cache, or read from
        the published run store (``published``: each such run's provenance; the report names their revisions
        and devices)."""
        counts = self.run_sources.setdefault(family, {"trained": 0, "from_cache": 0, "from_store": 0,
                                                      "store_revisions": [], "store_devices": []})
        counts["trained"] += trained
        counts["from_cache"] += cached
        counts["from_store"] += len(published)
        for key, values in (("store_revisions", [p["revision"] for p in published]),
                            ("store_devices", [p["device_name"] for p in published])):
            counts[key] = sorted(set(counts[key]) | set(values))
        self._log("sources", family=family, trained=trained, cached=cached, published=published)

    def add_incomplete(self, claim_id: str, reason: str, missing: int, total: int) -> None:
        """A claim not decided because ``missing`` of its ``total`` runs are neither cached nor published
        (a session that trains nothing, ``--no-train``); ``reason`` says which runs and what they cost."""
        self.incomplete[claim_id] = {"missing": missing, "runs": total, "reason": reason}
        self._log("incomplete", claim_id=claim_id, reason=reason, missing=missing, total=total)

    def add_calibration(self, calibration: Any) -> None:
        """A claim's calibration (:class:`resclaims.decide.calibration.Calibration`), replacing an earlier one."""
        self.calibrations = [c for c in self.calibrations if c.claim_id != calibration.claim_id] + [calibration]
        self._log("calibration", calibration=asdict(calibration))

    def set_provenance(self, key: str, value: Any) -> None:
        """A provenance field that a worker's collection knows (the selection), sent like a result."""
        self.provenance[key] = value
        self._log("provenance", key=key, value=value)

    # -- xdist: from the workers to the controller ----------------------
    def _log(self, kind: str, **entry: Any) -> None:
        if self.journal is not None:
            self.journal.append({"kind": kind, **entry})

    def sent(self) -> list[dict[str, Any]]:
        """What was added since the last call (encode it with :func:`to_json_text`), and the journal emptied."""
        entries, self.journal = self.journal or [], [] if self.journal is not None else None
        return entries

    def replay(self, sent: list[dict[str, Any]], key: tuple = ()) -> None:
        """Add what a worker :meth:`sent`; ``key`` (the test's place in a serial session) orders the run table."""
        from resclaims.decide.calibration import Calibration, Rate  # local: calibration imports the stats stack

        for seq, entry in enumerate(sent):
            kind = entry["kind"]
            if kind == "claim":
                self.running = entry["nodeid"]
                self.record(ClaimResult(**{**entry["result"], "ci": tuple(entry["result"]["ci"])}))
                self.running = None
            elif kind == "figure":
                self.figures.setdefault(entry["claim_id"], []).append(entry["path"])
            elif kind == "note":
                self.note(entry["claim_id"], entry["text"])
            elif kind == "timing":
                self.add_timing(Timing(**entry["timing"]))
            elif kind == "data":
                self.data[entry["name"]] = entry["info"]
            elif kind == "runs":
                frame = pd.DataFrame(entry["rows"], columns=entry["columns"])
                frame = frame.astype(dict(zip(entry["columns"], entry["dtypes"])))
                self.add_runs(entry["family"], frame)
                at = sum(1 for k in self.run_keys if k <= (*key, seq))  # after every frame that came before it
                self.runs.insert(at, self.runs.pop())
                self.run_keys.insert(at, (*key, seq))
            elif kind == "incomplete":
                self.add_incomplete(entry["claim_id"], entry["reason"], entry["missing"], entry["total"])
            elif kind == "sources":
                self.add_run_sources(entry["family"], entry["trained"], entry["cached"], entry["published"])
            elif kind == "calibration":
                fields = entry["calibration"]
                rates = {k: None if fields[k] is None else Rate(**fields[k]) for k in ("type_one", "test_size", "power")}
                self.add_calibration(Calibration(**{**fields, **rates, "grid": tuple(fields["grid"])}))
            elif kind == "provenance":
                self.provenance[entry["key"]] = entry["value"]

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
        claims, family_wise = multiplicity.adjust(self.claims)
        return {
            "schema": SCHEMA_VERSION,
            "claims": [{**c.to_json(), "nodeid": self.nodeids.get(c.id)}
                       for c in sorted(claims, key=lambda c: _claim_order(c.id))],
            "multiplicity": family_wise,
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
            "comparison": self.comparison,
            "calibration": [c.to_json() for c in sorted(self.calibrations, key=lambda c: _claim_order(c.claim_id))],
            "validation": self.validation,
            "runs": self.run_counts,
            "run_sources": self.run_sources,
            "incomplete": self.incomplete,
        }

    def write(self) -> Path | None:
        """Write the report and move it into place; nothing if the session recorded nothing."""
        if not (self.claims or self.timings or self.incomplete):
            shutil.rmtree(self.directory, ignore_errors=True)
            return None
        try:
            self._write()
        except OSError as error:
            shutil.rmtree(self.directory, ignore_errors=True)
            raise ReportWriteError(f"could not write the report to {self.destination} ({error.strerror or error}); "
                                   "an earlier report there is unchanged") from error
        return self.destination

    def _write(self) -> None:
        from resclaims.report.forest import forest_plots  # local: only needed when writing
        from resclaims.report.html import render_html
        from resclaims.report.render import render_markdown

        self.directory.mkdir(parents=True, exist_ok=True)
        document = self.to_json()
        document["figures"] = forest_plots(document, self.directory)  # drawn now: the renderers only read
        (self.directory / "summary.json").write_text(json.dumps(document, indent=2, allow_nan=False))
        (self.directory / "summary.md").write_text(render_markdown(document), encoding="utf-8")
        (self.directory / "summary.html").write_text(render_html(document, self.directory), encoding="utf-8")
        if self.runs:
            pd.concat(self.runs, ignore_index=True).to_csv(self.directory / "results.csv", index=False)
        if self.benchmarks is not None:
            (self.directory / "benchmarks.json").write_text(json.dumps(self.benchmarks, indent=2, default=str))
        _replace_folder(self.directory, self.destination)


def to_json_text(value: Any) -> str:
    """``value`` as JSON text, numpy values as Python ones and NaN kept (a worker's journal, for the controller)."""
    return json.dumps(value, default=_plain)


def _plain(value: Any) -> Any:
    """numpy scalars and arrays as Python values, for json.dumps."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (pd.Timestamp, pd.Timedelta)):
        return str(value)
    raise TypeError(f"cannot send {type(value).__name__} from a worker: {value!r}")


def _replace_folder(staging: Path, destination: Path) -> None:
    """Swap ``staging`` into ``destination``; an earlier folder there is removed only after the swap (or put back)."""
    old = destination.parent / f".{destination.name}.old-{os.getpid()}"
    if destination.exists():
        os.replace(destination, old)
    try:
        os.replace(staging, destination)
    except OSError:
        if old.exists():
            os.replace(old, destination)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _claim_order(claim_id: str) -> tuple[str, int, str]:
    """Sort Z1 < Z2 < Z10, and parts after their claim."""
    head, _, part = claim_id.partition(".")
    letters = head.rstrip("0123456789")
    digits = head[len(letters) :]
    return (letters, int(digits) if digits else 0, part)
