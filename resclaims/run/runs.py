"""Runs: a protocol and seeds in, a tidy frame out; one interface for every training kernel.

A *protocol* (:class:`resclaims.run.contract.RunProtocol`) is a frozen dataclass that says how to train, but not
how many times: the sample size is not part of it. It names its kernel in a class attribute,
``kernel = "resclaims.kernels.zero_identity"``. A protocol whose runs train as separate conditions (CIFAR's arms,
:class:`resclaims.run.contract.Conditions`) lists them with ``conditions()`` and rebuilds itself from a subset with
``select(conditions)``; each (condition, seed) is then cached on its own, as soon as its condition finishes.

A *kernel* (:class:`resclaims.run.contract.Kernel`) is a module with one pure function::

    train(protocol, seeds, device, *, data=None, on_epoch=None, on_condition=None, checkpoints=None)
        -> pd.DataFrame  # tidy: one row per run (seed) and epoch, with a ``seed`` column

``data`` is the loaded data set (with a ``checksum``) for kernels that need one;
the hooks are optional: ``on_epoch(epoch)`` for progress, ``on_condition(condition,
frame)`` to hand over a finished condition, ``checkpoints`` a folder to save and
resume partial state in. :mod:`resclaims.run.contract` says what the frame holds, how a
diverged run is marked and left out, and the kernel's optional attributes; a protocol,
kernel or frame that breaks it stops in one line before anything (more) trains.
A kernel may define ``planned_frame(protocol, seeds)``: the frame ``train`` would return, every value
NaN, which a plan hands a test for runs not trained yet so that the test goes on to
its next requests (:mod:`resclaims.plugin.plan`; without it the test is skipped there).

A :class:`Job` (a protocol, seeds and a device) is the unit any engine can
execute. The ``runs`` fixture (:class:`Runs`) gives a claim its runs: seeds
derived from the base seed and a seed name, the run cache (keyed by the protocol, never by how
many seeds were asked for), progress, and the report's run table.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch

from resclaims.run.contract import (
    Kernel,
    RunProtocol,
    check_frame,
    conditions,
    device_kind,
    kernel_of,
    mark_diverged,
    progress_total,
)

PLANNED = "resclaims_planned"  # marks (in its attrs) a kernel's planned_frame, handed out while planning


__all__ = ["Job", "Runs", "condition_name", "conditions", "data_key", "describe", "device_kind", "family_of", "kernel_of",
           "steps"]


def family_of(seed_name: str) -> str:
    """The family a seed name's runs are reported under: its leading capitals (``"Z4"`` -> ``"Z"``, as the report
    groups claim ids), or the whole name where it has none."""
    found = re.match(r"[A-Z]+", seed_name)
    return found.group(0) if found else seed_name


def data_key(data: Any) -> str | None:
    """What identifies a data set in the cache key: its checksum (None: the kernel needs no data)."""
    if data is None:
        return None
    checksum = getattr(data, "checksum", None)
    if not isinstance(checksum, str):
        raise TypeError(f"{type(data).__name__} has no checksum: the run cache cannot key runs on it")
    return checksum


def condition_name(condition: Any) -> str:
    """A condition in a few words, for progress lines and plans: its name, or the names of its arms, then the settings
    in which it differs from its protocol's defaults, so that two protocols of one kernel read apart (``identity
    (lr=0.0001)`` and ``identity``)."""
    if hasattr(condition, "name"):
        name = str(condition.name)
    else:
        arms = getattr(condition, "arms", ())
        name = ", ".join(getattr(a, "name", str(a)) for a in arms) or type(condition).__name__
    settings = ", ".join(f"{key}={value!r}" for key, value in changed_settings(condition))
    return f"{name} ({settings})" if settings else name


def changed_settings(condition: Any) -> list[tuple[str, Any]]:
    """A dataclass protocol's fields (its arms aside) whose values differ from their defaults, in declaration order."""
    if not dataclasses.is_dataclass(condition):
        return []
    changed = []
    for field in dataclasses.fields(condition):
        if field.name == "arms" or not field.init:
            continue
        if field.default is not dataclasses.MISSING:
            default = field.default
        elif field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        else:
            continue  # no default: a setting every such protocol states (CIFAR's recipe)
        value = getattr(condition, field.name)
        try:
            same = bool(value == default)
        except (TypeError, ValueError, RuntimeError):  # an array or tensor compared element-wise
            same = value is default
        if not same:
            changed.append((field.name, value))
    return changed


@dataclass(frozen=True)
class Job:
    """A protocol, seeds and a device: one unit of training that any engine can execute."""

    protocol: RunProtocol
    seeds: tuple[int, ...]
    device: str = "cpu"

    def run(self, data: Any = None, **hooks: Any) -> pd.DataFrame:
        """The kernel's frame for these seeds (``hooks``: on_epoch, on_condition, checkpoints)."""
        kernel = kernel_of(self.protocol)
        return kernel.train(self.protocol, list(self.seeds), torch.device(self.device), data=data, **hooks)


class Runs:
    """Trained runs for claims: ``runs(protocol, n, seed_name=..., data=None, columns=())`` -> a tidy frame.

    The ``n`` seeds come from the base seed and ``seed_name`` (``--seeds 2`` gives the first two of ``--seeds 5``);
    runs the cache holds are read, the others trained; the frame is added to the report's run table under its
    family: the seed name's leading capitals (``"Z4"`` and ``"Z-source-100"`` are family Z's), or ``family=`` where
    a request is to stand apart (given alone, it is the seed name too). ``columns`` names those the caller reads: a
    kernel whose frame lacks one stops at its first frame, in one line (:mod:`resclaims.run.contract`).
    """

    def __init__(self, settings: Any, cache: Any, progress: Any, report: Any,
                 incomplete: Callable[..., str] | None = None) -> None:
        self.settings, self.cache, self.progress, self.report = settings, cache, progress, report
        self.incomplete = incomplete  # --no-train: why a request's claims get no verdict (resclaims.plugin.plan)

    def __call__(self, protocol: RunProtocol, n: int, seed_name: str | None = None, *, family: str | None = None,
                 data: Any = None, label: str | None = None, columns: Sequence[str] = ()) -> pd.DataFrame:
        seed_name = seed_name or family
        if not seed_name:
            raise TypeError("runs(protocol, n, seed_name=...): name the seeds (e.g. seed_name='U1'): they derive "
                            "from the base seed and that name")
        family = family or family_of(seed_name)
        seeds = self.settings.run_seeds(seed_name, n)
        frame = self.train(protocol, seeds, data=data, label=label or seed_name, family=family, columns=columns)
        if PLANNED not in frame.attrs:  # not a frame of runs to train, handed out while planning
            self.report.add_runs(family, frame if "seed_name" in frame else frame.assign(seed_name=seed_name))
        return frame

    def train(self, protocol: RunProtocol, seeds: Sequence[int], *, data: Any = None, label: str = "",
              family: str = "", columns: Sequence[str] = ()) -> pd.DataFrame:
        """The frame of ``protocol`` at ``seeds``, from the cache where it holds them, with the contract's mark on its
        diverged runs (:func:`resclaims.run.contract.mark_diverged`).

        ``columns``: those the caller reads. Each frame the kernel hands over is checked against the contract
        (:func:`resclaims.run.contract.check_frame`) before it is cached, so a broken one stops training at its first
        condition; the frame returned (cached runs too) must hold ``seed`` and ``columns``.

        While a session plans (the cache has a ``planner``, :mod:`resclaims.plugin.plan`), nothing trains:
        the planner records the request and, when any run is missing, hands back the kernel's ``planned_frame``
        (every value NaN, so that the test goes on to its next requests) or skips the test. Otherwise, the first
        request the cache lacks calls the cache's ``before_training`` first, once (the session's estimate line).
        """
        kernel, parts, device = kernel_of(protocol), conditions(protocol), self.settings.device
        kind, key = device_kind(kernel, device), {"data": data_key(data)}
        planner = self.cache.planner
        if planner is not None:
            planned = planner.request(self.cache, protocol, seeds, device=device, data=data, label=label,
                                      family=family)
            if planned is not None:
                return planned
        elif getattr(self.settings, "no_train", False):  # engines' workers have bare settings
            lacking = self.cache.missing(kernel, parts, seeds, device_kind=kind, **key)
            if any(lacking):  # the claims of this request are incomplete: what they need, and what it costs
                import pytest

                missing = sum(map(len, lacking))
                pytest.skip(f"incomplete: {label or family}: {missing} runs missing; no verdict on partial data"
                            if self.incomplete is None else
                            self.incomplete(self.cache, kernel, parts, seeds, lacking, device=device, device_kind=kind,
                                            label=label or family))
        elif self.cache.before_training is not None and any(
                self.cache.missing(kernel, parts, seeds, device_kind=kind, **key)):
            announce, self.cache.before_training = self.cache.before_training, None
            announce()  # the session's first training: its estimate line first (resclaims.plugin.engine)
        before = (self.cache.trained, self.cache.reused, len(self.cache.from_store))

        def fit(todo: list[RunProtocol], missing: list[int],
                keep: Callable[[RunProtocol, pd.DataFrame], None]) -> pd.DataFrame:
            if planner is not None:  # an entry went missing since (it was unreadable): recorded, and skipped
                planner.request(self.cache, protocol, seeds, device=device, data=data, label=label, family=family,
                                go_on=False)
            job = protocol.select(todo) if len(parts) > 1 else protocol
            handed = []
            total = progress_total(kernel, job, len(missing))

            def checked(condition: RunProtocol, frame: pd.DataFrame) -> None:  # before it is cached
                check_frame(frame, kernel, condition, columns=columns, several=len(parts) > 1)
                keep(condition, frame)

            names = ", ".join(condition_name(c) for c in todo)
            # keyed by the whole protocol, not by the conditions left to train: a session stopped part-way leaves
            # fewer of them, and the next one must find the partial state of the condition it was training
            scratch = self.cache.scratch(kernel, device_kind=kind, seeds=missing, protocol=protocol, **key)
            with self.progress.track(label, names, len(missing), total) as on_epoch:
                frame = kernel.train(job, missing, device, data=data, on_epoch=on_epoch, checkpoints=scratch,
                                     on_condition=lambda c, f: (handed.append(c), checked(c, f)))
            if not handed:  # a one-condition kernel hands its frame over by returning it
                checked(todo[0], frame)
            return frame

        frame = self.cache.runs_per_condition(kernel, fit, parts, seeds, device_kind=kind,
                                              describe=lambda condition: describe(kernel, condition), **key)
        check_frame(frame, kernel, protocol, columns=columns, several=len(parts) > 1, finite=False)  # cached runs
        if self.report is not None:
            published = self.cache.from_store[before[2]:]
            self.report.add_run_sources(family or label, self.cache.trained - before[0],
                                        self.cache.reused - before[1] - len(published), published)
        return mark_diverged(frame)


def steps(kernel: Kernel, condition: RunProtocol) -> int:
    """A condition's training steps, as its kernel counts progress for one seed (what planning scales by)."""
    return progress_total(kernel, condition, 1)


def describe(kernel: Kernel, condition: RunProtocol) -> dict[str, Any]:
    """What a cache entry records about its condition, for planning: its steps and its repr."""
    return {"steps": steps(kernel, condition), "condition": repr(condition)}
