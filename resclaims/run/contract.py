"""The kernel contract: what a run protocol and a kernel promise the run cache, the engines and the claims.

The runs code (:mod:`resclaims.run.runs`) checks a protocol and its kernel where it first meets them
(:func:`kernel_of`, before anything trains or is planned) and every frame a kernel hands over
(:func:`check_frame`, before the frame is cached and before the next condition trains). A break is a
:class:`ContractError` whose message is one line saying what is missing; the pytest plugin shows that line alone.

**The frame.** One row per run (seed) and logged epoch (or any finer unit), tidy. Required: ``seed`` (the run
cache stores each seed's rows on its own, by this column) and, for a protocol with several conditions, ``arm``
(the conditions' frames are concatenated: ``arm`` tells their rows apart). A run is one ``seed`` of one ``arm``
(the whole frame where there is no ``arm``). Optional: ``epoch`` (the report counts a run once, at its first
epoch), ``loss`` and ``diverged`` (below), and whatever the claims read: a claim names the columns it reads,
``runs(protocol, n, family=..., columns=("epoch", "loss"))``, and a frame without one of them is refused on the
first frame the kernel hands over, and on the frame ``runs`` returns (cached runs), before any claim reads it.
A NaN is a value not recorded on that row (membrane's final state sits on a run's last row only); a float
column NaN on every row, a metric the protocol does not measure (003's validation split).

**Diverged runs.** A run diverged when its loss became NaN or inf. Its mark is a boolean ``diverged`` column,
True on the run's rows; a kernel without that column is marked from its ``loss`` column (a run with a NaN or
inf loss is diverged), at one place, :func:`mark_diverged`, on the frame ``runs`` returns. In a run not marked
diverged, a NaN in a loss (``loss``, ``*_loss``) or an inf anywhere is refused (:func:`unmarked_nonfinite`).
The rule, for every claim: **a diverged run is left out**.
:func:`mark_diverged` makes every float value of a diverged run NaN, so any statistic read from it is NaN
(the statistics helpers keep NaN: a diverged run is never a run censored at its budget), and ``judge`` leaves
out each row of a claim's data (a run, or a pair of runs) that holds a NaN or inf, and counts it in the
claim's ``diverged_pairs_excluded``; the report's run table gives each family's diverged runs per arm. No
claim's sentence reads a diverged run as a failure today; one that did would say so in its own statistic.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from pathlib import Path

    import torch

SEED, ARM, LOSS, DIVERGED = "seed", "arm", "loss", "diverged"  # the columns the contract reads
IMPORTABLE = ("a kernel must be a module that every engine worker imports by that name: a module of an installed "
              "package or of a folder on PYTHONPATH (not a benchmarks/ test file: pytest puts benchmarks/ on its own "
              "sys.path, which Ray's and SLURM's workers lack)")


class ContractError(TypeError):
    """A protocol, kernel or frame that breaks the contract; the message is one line saying what is missing."""


@runtime_checkable
class RunProtocol(Protocol):
    """How to train, not how many times: a frozen dataclass without the number of seeds (its ``repr`` keys the
    run cache, its fields the published run store), naming its kernel in a class attribute,
    ``kernel = "resclaims.kernels.zero_identity"``. Progress: an ``epochs`` field, the number of ``on_epoch`` calls per
    training, unless the kernel defines ``progress_total``. Several conditions: :class:`Conditions`."""

    kernel: ClassVar[str]


@runtime_checkable
class Conditions(RunProtocol, Protocol):
    """A protocol whose runs train as separate conditions (CIFAR's arms): each (condition, seed) is cached on its
    own, as soon as its condition finishes. ``conditions()`` lists them (each a protocol), ``select(conditions)``
    rebuilds the protocol of a subset; a protocol has both or neither. Its frames carry ``arm``."""

    def conditions(self) -> Sequence[RunProtocol]: ...

    def select(self, conditions: Sequence[RunProtocol]) -> RunProtocol: ...


class Kernel(Protocol):
    """A module (PEP 544: a module can implement a Protocol) with one pure function, ``train``, that returns the
    frame (module docstring) for ``seeds``; ``data`` is the loaded data set (with a ``checksum``) or None, ``on_epoch(i)``
    reports progress, ``on_condition(condition, frame)`` hands over each finished condition (a one-condition
    kernel returns its frame instead), ``checkpoints`` is a folder for partial state.

    Named by its module's name, which the protocol's ``kernel`` holds and every engine worker imports: the local
    engine's spawned workers inherit the caller's ``sys.path``, Ray's and SLURM's do not, so a kernel lives in an
    importable package (``resclaims/``, yours, or a folder on PYTHONPATH), never in a ``benchmarks/`` test file.

    Optional module attributes, each with its default: ``progress_total(protocol, n_seeds) -> int``, the
    ``on_epoch`` calls of one training (``protocol.epochs``); ``device_kind(device) -> str``, what the cache keys
    runs by besides the protocol (``device.type``; CIFAR adds its GPU step mode); ``VERSION``, the cache's
    version of the code (a hash of the module's source); ``NAME`` and ``NUMERICS``, the published run store's
    key (not publishable without); ``validate(condition, frame) -> str | None``, why a published frame cannot
    have come from its condition (none).
    """

    __name__: str

    def train(self, protocol: RunProtocol, seeds: list[int], device: torch.device, *, data: Any,
              on_epoch: Callable[[int], None] | None = None,
              on_condition: Callable[[RunProtocol, pd.DataFrame], None] | None = None,
              checkpoints: Path | None = None) -> pd.DataFrame: ...


# -- protocols and kernels ------------------------------------------------------------------
def kernel_of(protocol: RunProtocol) -> Kernel:
    """The kernel module ``protocol`` names, once both are checked against the contract: else a ContractError."""
    what, name = type(protocol).__name__, getattr(type(protocol), "kernel", None)
    if not isinstance(name, str):
        raise ContractError(f"{what} names no kernel: give it a class attribute kernel = 'package.module'")
    try:
        kernel = importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name is None or not (name == error.name or name.startswith(f"{error.name}.")):
            raise  # the kernel's own import of something else failed: its traceback is the message
        raise ContractError(f"{what}: its kernel {name!r} cannot be imported ({error}); {IMPORTABLE}") from None
    if not callable(getattr(kernel, "train", None)):
        raise ContractError(f"kernel {name} has no train(protocol, seeds, device, *, data, on_epoch, on_condition, "
                            "checkpoints) function")
    if not callable(getattr(kernel, "progress_total", None)) and not isinstance(getattr(protocol, "epochs", None), int):
        raise ContractError(f"{what} has no epochs and its kernel {name} no progress_total(protocol, n_seeds): "
                            "give it one of them, for progress")
    has = {method: callable(getattr(protocol, method, None)) for method in ("conditions", "select")}
    if len(set(has.values())) > 1:
        given, lacking = sorted(has, key=has.get, reverse=True)
        raise ContractError(f"{what} has {given}() but no {lacking}(): a protocol with several conditions needs both")
    return kernel


def conditions(protocol: RunProtocol) -> list[RunProtocol]:
    """The protocol's conditions, each cached on its own (one: the protocol itself)."""
    return list(protocol.conditions()) if isinstance(protocol, Conditions) else [protocol]


def progress_total(kernel: Kernel, protocol: RunProtocol, n_seeds: int) -> int:
    """``on_epoch`` calls of one training of ``protocol`` at ``n_seeds`` seeds: the kernel's count, else ``epochs``."""
    count = getattr(kernel, "progress_total", None)
    return int(count(protocol, n_seeds) if count is not None else protocol.epochs)  # type: ignore[attr-defined]


def device_kind(kernel: Kernel, device: torch.device) -> str:
    """What the cache keys a kernel's runs by besides their protocol: the device type, and how the kernel trains on
    it where that changes the numbers (a kernel's own ``device_kind(device)``: CIFAR's step mode on a GPU)."""
    kind = getattr(kernel, "device_kind", None)
    return kind(device) if kind is not None else device.type


# -- frames -------------------------------------------------------------------------------------
def check_frame(frame: pd.DataFrame, kernel: Kernel, protocol: RunProtocol, *, columns: Sequence[str] = (),
                several: bool = False, finite: bool = True) -> None:
    """Refuse, in one line, a frame that breaks the contract: no ``seed``; no ``arm`` where ``several``
    conditions are concatenated; none of a column the claim reads (``columns``); and (``finite``) a NaN or inf in
    a run not marked diverged."""
    where = f"kernel {kernel.__name__}, {type(protocol).__name__}"
    has = ", ".join(map(str, frame.columns)) or "no columns"
    required = [SEED, *([ARM] if several else []), *(c for c in columns if c not in (SEED, ARM))]
    for column in required:
        if column not in frame.columns:
            why = {SEED: "every row names the seed of its run", ARM: "the frames of several conditions are "
                   "concatenated, and arm tells their rows apart"}.get(column, "which the claim reads")
            raise ContractError(f"{where}: its frame has no {column} column ({why}); it has {has}")
    problem = unmarked_nonfinite(frame) if finite else None
    if problem:
        raise ContractError(f"{where}: {problem}, in a run not marked diverged: mark a diverged run with "
                            f"{DIVERGED}=True on its rows (or a NaN or inf {LOSS})")


def _run_keys(frame: pd.DataFrame) -> list[str]:
    return [c for c in (SEED, ARM) if c in frame.columns]


def diverged_rows(frame: pd.DataFrame) -> np.ndarray | None:
    """Per row, whether its run diverged: ``diverged`` on any of the run's rows, else a NaN or inf ``loss`` on any
    of them; None where the frame has neither (no run can be marked)."""
    if DIVERGED in frame.columns:
        marked = frame[DIVERGED].to_numpy(bool)
    elif LOSS in frame.columns and pd.api.types.is_float_dtype(frame[LOSS]):
        marked = ~np.isfinite(frame[LOSS].to_numpy(float))
    else:
        return None
    if not marked.any():
        return marked
    runs = pd.Series(marked, index=frame.index).groupby([frame[k] for k in _run_keys(frame)])
    return runs.transform("any").to_numpy(bool)


def unmarked_nonfinite(frame: pd.DataFrame) -> str | None:
    """The first value, in a run not marked diverged, that only divergence explains, in words (None: there is none):
    an inf in a float column, or a NaN in a loss (``loss`` or ``*_loss``). A NaN elsewhere is a value not recorded
    on that row (membrane's final state, on a run's last row only); a column NaN on every row, a metric the
    protocol does not measure (003's validation split)."""
    gone = diverged_rows(frame)
    for column in frame.columns:
        if not pd.api.types.is_float_dtype(frame[column]):
            continue
        values = frame[column].to_numpy(float)
        loss = column == LOSS or str(column).endswith(f"_{LOSS}")
        bad = np.isinf(values) | (np.isnan(values) & loss)
        if gone is not None:
            bad &= ~gone
        if bad.any() and not np.isnan(values).all():
            row = frame.iloc[int(np.argmax(bad))]
            run = ", ".join(f"{k} {row[k]}" for k in _run_keys(frame))
            return f"{column} is {values[bad][0]} in run {run}"
    return None


def mark_diverged(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with the contract's mark: a ``diverged`` column (added from ``loss`` where the kernel gave none)
    and every float value of a diverged run NaN, so that no statistic can count it. A frame without a diverged run
    comes back as it is (a frame without ``diverged`` or ``loss`` too: no run can be marked)."""
    gone = diverged_rows(frame)
    if gone is None or (DIVERGED in frame.columns and not gone.any()):
        return frame
    frame = frame.assign(**{DIVERGED: gone})
    floats = [c for c in frame.columns if pd.api.types.is_float_dtype(frame[c])]
    frame.loc[gone, floats] = np.nan
    return frame
