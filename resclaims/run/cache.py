"""A cache of trained runs, so that nothing is trained twice; a safe contract between training and verdicts.

A run is one seed of one kernel under one config. Its key is the kernel's name,
a hash of the kernel's source (a changed kernel changes every key; for a package,
a change to any of its modules), the config, the other arguments that shape the
training, the seed, the device kind and the torch and numpy versions (another
version may give other numbers). Asking for seeds trains only the missing ones,
in one batch, and stores each seed's rows on its own, so adding seeds reuses the
earlier ones. Kernels whose conditions train one after the other (CIFAR's arms)
store each (condition, seed) as the condition finishes, so a long session
stopped part-way keeps its work.

Entries are tidy frames (a ``seed`` column) stored as Parquet, never pickle:
reading a pickle from shared storage would run whatever code it holds. A
frame's round trip is checked when it is written (exactly equal, dtypes and
index included), and it is written through a temporary file and a rename, so a
killed run leaves no half-written entry. Each entry's Parquet metadata
(:func:`entry_info`) records what it is (the key), the wall time of the
training that made it, how many seeds trained together in it, and the device
(kind and name), for planning what a session will cost. An entry that cannot
be read (random bytes, a truncated file, another format) is reported in one
warning naming the file, removed, and trained again; old ``.pkl`` entries are
ignored (they train again once).

Two sessions may fill the same cache at once (pytest-xdist workers, two
terminals, two machines on a shared folder): a group of entries (a condition's
seeds) is trained under a lock, a ``filelock.FileLock`` in ``locks/`` next to
the entries, and the cache is read again once the lock is held, so a run
another session trained meanwhile is read, not trained again. A session that
waits says so in one warning. The locks are the operating system's
(``fcntl``/``LockFileEx``), released by the OS when the process holding them
dies, however it dies: a killed session leaves no lock to expire, which is
what a heartbeat or a timeout would otherwise have to guess (on network file
systems this needs working ``fcntl`` locks, as NFSv4 has).
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from filelock import FileLock, Timeout

from resclaims.datasets import CACHE_ENV
from resclaims.run import store as run_store
from resclaims.run.contract import Kernel, RunProtocol
from resclaims.run.provenance import provenance
from resclaims.run.store import RunStore

METADATA_KEY = b"resclaims"  # the Parquet key-value metadata entry_info reads

class CacheFolderError(ValueError):
    """The run cache's folder cannot be used; the message says what to do."""


def check_cache_dir(path: Path, *, workers: bool = False) -> Path:
    """Fail now, before anything is announced or trained, if the run cache cannot be used: the folder exists (or
    can be made) and a file can be written in it. ``workers``: an engine's (plan, fill, ``--engine``), which trains
    into the run cache only, so the line offers no ``--no-run-cache``."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-check."):
            pass
    except OSError as error:
        advice = ("a folder every worker can write (the run cache is its runs/ folder)" if workers else
                  "a folder you can write (the run cache is its runs/ folder), or run with --no-run-cache")
        raise CacheFolderError(f"run cache {path}: cannot write in it ({error.strerror or error}); point {CACHE_ENV} at "
                            f"{advice}") from None
    return path


def kernel_version(module: ModuleType | Kernel) -> str:
    """A short hash of a kernel's source code: a module's, or that of every module of a package.

    A package's modules are hashed in the order of their paths inside it, each
    with that path, so that a change to any of them changes the version, wherever
    the package lies. A kernel module that defines a string ``VERSION`` (say, the
    version of the whole package it belongs to and of the models it trains) is
    versioned by that instead.
    """
    if isinstance(getattr(module, "VERSION", None), str):
        return module.VERSION
    if not hasattr(module, "__path__"):  # a module
        return hashlib.sha256(inspect.getsource(module).encode()).hexdigest()[:16]
    digest = hashlib.sha256()
    for folder in map(Path, module.__path__):
        for path in sorted(folder.rglob("*.py"), key=lambda p: p.relative_to(folder).as_posix()):
            digest.update(f"{path.relative_to(folder).as_posix()}\n".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


class RunCache:
    """Trained runs under ``directory``; ``directory=None`` turns caching off."""

    def __init__(self, directory: Path | None, store: RunStore | None = None, *, publish: bool = False) -> None:
        self.directory = Path(directory) if directory is not None else None
        self.store = store  # the published run store, read under the cache (resclaims.run.store); None: not read
        self.publish = publish  # a publishing fill: every run it trains, or finds in the cache, goes into the store
        self.trained = 0  # runs (seeds x conditions calls) trained in this session
        self.reused = 0  # runs read from the cache or the store
        self.from_store: list[dict[str, Any]] = []  # the provenance of every run read from the store
        self.sent = (0, 0)  # (trained, reused) as last sent to an xdist controller (resclaims.plugin.xdist)
        self.planner: Any = None  # while a session plans (resclaims.plugin.plan.Planner): the runs fixture trains nothing
        # called once by the runs fixture before the session first trains (resclaims.plugin.engine: the estimate line)
        self.before_training: Callable[[], None] | None = None

    def runs(
        self,
        kernel: Kernel,
        train: Callable[[list[int]], pd.DataFrame],
        seeds: Sequence[int],
        *,
        device_kind: str,
        **key: Any,
    ) -> pd.DataFrame:
        """``train(seeds)``'s tidy frame (a ``seed`` column), trained only for seeds not in the cache.

        ``key`` holds everything else that shapes the result (config, tasks, ...);
        values are keyed by their ``repr``.
        """
        seeds = list(seeds)
        if self.directory is None:
            self.trained += len(seeds)
            return train(seeds)
        groups = [self._group(kernel, seeds, device_kind, key)]
        return self._fill(kernel, [None], groups, seeds, lambda todo, missing, keep: keep(None, train(missing)),
                          device_kind, None)

    def runs_per_condition(
        self,
        kernel: Kernel,
        train: Callable[[list[RunProtocol], list[int], Callable[[RunProtocol, pd.DataFrame], None]], pd.DataFrame],
        conditions: Sequence[RunProtocol],
        seeds: Sequence[int],
        *,
        device_kind: str,
        describe: Callable[[RunProtocol], dict[str, Any]] | None = None,
        **key: Any,
    ) -> pd.DataFrame:
        """Like :meth:`runs`, with one entry per (condition, seed), stored as each condition finishes.

        ``train(todo, missing, keep)`` trains the conditions ``todo`` at the seeds
        ``missing`` and calls ``keep(condition, frame)`` with each condition's
        frame (a ``seed`` column) as soon as it has it, so that a session stopped
        part-way keeps the conditions it finished. The result holds every
        condition at every seed, condition by condition. ``describe(condition)``
        adds to each entry's metadata (:func:`entry_info`), say its steps, for planning.
        """
        seeds, conditions = list(seeds), list(conditions)
        if self.directory is None:
            self.trained += len(seeds) * len(conditions)
            return train(conditions, seeds, lambda condition, frame: None)
        groups = [self._group(kernel, seeds, device_kind, {**key, "condition": c}) for c in conditions]
        return self._fill(kernel, conditions, groups, seeds, train, device_kind, key.get("data"), describe)

    def missing(self, kernel: Kernel, conditions: Sequence[RunProtocol], seeds: Sequence[int], *, device_kind: str,
                **key: Any) -> list[list[int]]:
        """Per condition, the seeds the cache does not hold (all of them when caching is off); reads no frame.

        An entry that exists is counted as held; one that turns out unreadable is
        trained again when it is read (:meth:`runs_per_condition`).
        """
        if self.directory is None:
            return [list(seeds) for _ in conditions]
        groups = [self._group(kernel, list(seeds), device_kind, {**key, "condition": c}) for c in conditions]
        return [[seed for seed, path in paths.items() if not path.is_file() and not self.published(kernel, c, seed, key)]
                for c, (_, paths) in zip(conditions, groups)]

    def published(self, kernel: Kernel, condition: RunProtocol | None, seed: int, key: dict[str, Any]) -> bool:
        """Whether the store holds this run (not read: an unusable entry is trained when it is read)."""
        return self.store is not None and condition is not None and self.store.holds(kernel, condition, seed,
                                                                                        key.get("data"))

    def scratch(self, kernel: Kernel, *, device_kind: str, **key: Any) -> Path | None:
        """A folder for the partial state of training under this key (None when caching is off).

        Kernels write checkpoints there and resume from them; the key (including
        the seeds being trained) makes sure a checkpoint is only ever resumed by
        the same training. Training runs under the lock of its entries, so two
        sessions never write the same checkpoint.
        """
        if self.directory is None:
            return None
        digest = hashlib.sha256(json.dumps(_base(kernel, device_kind, key), sort_keys=True).encode()).hexdigest()
        return self.directory / kernel.__name__ / "partial" / digest[:32]

    def _fill(self, kernel: Kernel, conditions: list[RunProtocol | None],
              groups: list[tuple[dict[int, Path], dict[int, Path]]], seeds: list[int], train: Callable[..., Any],
              device_kind: str, data: str | None,
              describe: Callable[[RunProtocol], dict[str, Any]] | None = None) -> pd.DataFrame:
        """Every group's entries at ``seeds``: read where the cache (or the store) holds them, trained (under the
        locks of the missing seeds' entries) where not."""
        frames: dict[Path, pd.DataFrame] = {}
        published: dict[Path, dict[str, Any]] = {}  # entries read from the store: their provenance

        def pending() -> tuple[list[int], list[int]]:
            for condition, (_, paths) in zip(conditions, groups):
                for seed, path in paths.items():
                    if path in frames:
                        continue
                    if (frame := _read_entry(path, seed)) is not None:
                        frames[path] = frame
                        self._publish_cached(kernel, condition, seed, data, frame, path)
                    elif self.store is not None and condition is not None:
                        found = self.store.read(kernel, condition, seed, data, provenance=True)
                        if found is not None:
                            frames[path], published[path] = found
            todo = [i for i, (_, paths) in enumerate(groups) if any(path not in frames for path in paths.values())]
            return todo, [seed for seed in seeds if any(groups[i][1][seed] not in frames for i in todo)]

        todo, missing = pending()
        if todo:
            with _locked(sorted({groups[i][0][seed] for i in todo for seed in missing})):
                todo, missing = pending()  # another session may have trained them while this one waited
                if todo:
                    self._train(kernel, conditions, groups, todo, missing, train, device_kind, frames, data,
                                describe)
        self.trained += len(todo) * len(missing)
        self.reused += len(conditions) * len(seeds) - len(todo) * len(missing)
        self.from_store += list(published.values())
        return pd.concat([frames[paths[seed]] for _, paths in groups for seed in seeds], ignore_index=True)

    def _train(self, kernel, conditions, groups, todo, missing, train, device_kind, frames, data,  # noqa: ANN001
               describe) -> None:
        stored, started = [], [time.perf_counter()]

        def keep(condition: RunProtocol | None, frame: pd.DataFrame) -> None:
            i = next(i for i in todo if conditions[i] == condition)
            wall, started[0] = time.perf_counter() - started[0], time.perf_counter()
            parts, paths = by_seed(frame), groups[i][1]
            if set(missing) - set(parts):
                raise RuntimeError(f"{kernel.__name__}: training handed over no rows for seeds "
                                   f"{sorted(set(missing) - set(parts))}")  # fmt: skip
            info = {"wall_seconds": wall, "seeds_in_batch": len(missing), "group": list(missing),
                    **provenance(device_kind), **(describe(condition) if describe is not None else {})}
            for seed in missing:
                _write_entry(parts[seed], paths[seed], {**info, "seed": seed})
                frames[paths[seed]] = parts[seed]
                if self.publish and self.store is not None and condition is not None:
                    self.store.publish(kernel, condition, seed, data, parts[seed], {**info, "seed": seed})
            stored.append(i)

        train([conditions[i] for i in todo], missing, keep)
        if sorted(stored) != todo:
            raise RuntimeError(f"{kernel.__name__}: training returned without handing over every condition")

    def _publish_cached(self, kernel: Kernel, condition: RunProtocol | None, seed: int, data: str | None,
                        frame: pd.DataFrame, path: Path) -> None:
        """A publishing fill publishes a run an earlier session trained into the cache, if its entry records the
        provenance the store needs (entries written before the store existed do not: they are left alone)."""
        if not (self.publish and self.store is not None and condition is not None and run_store.publishable(kernel)):
            return
        if self.store.holds(kernel, condition, seed, data):
            return
        info = entry_info(path)
        if all(field in info for field in run_store.PROVENANCE):
            self.store.publish(kernel, condition, seed, data, frame, info)

    def _group(self, kernel: Kernel, seeds: list[int], device_kind: str,
               key: dict[str, Any]) -> tuple[dict[int, Path], dict[int, Path]]:
        """A group's lock files and its entries' paths, by seed: one lock per run, so that two sessions can train
        other seeds of one condition at once. A publishing fill locks in the store, so that two fills on one store
        never train the same run, whatever their caches."""
        base = _base(kernel, device_kind, key)
        paths = {seed: self._path(base, seed) for seed in seeds}
        condition = key.get("condition")
        if self.publish and self.store is not None and condition is not None and run_store.publishable(kernel):
            locks = {seed: self.store.lock_path(run_store.key(kernel, condition, seed, key.get("data")))
                     for seed in seeds}
        else:
            locks = {seed: self.directory / base["kernel"] / "locks" / f"{paths[seed].stem[:32]}.lock" for seed in seeds}
        return locks, paths

    def _path(self, base: dict[str, str], seed: int) -> Path:
        digest = _digest({**base, "seed": seed})
        return self.directory / base["kernel"] / digest[:2] / f"{digest}.parquet"


def _digest(value: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def _base(kernel: Kernel, device_kind: str, key: dict[str, Any]) -> dict[str, str]:
    """What identifies a kernel's results, less the seed."""
    return {"kernel": kernel.__name__, "version": kernel_version(kernel), "device": device_kind,
            "torch": torch.__version__, "numpy": np.__version__, **{k: repr(v) for k, v in sorted(key.items())}}


def by_seed(frame: pd.DataFrame) -> dict[int, pd.DataFrame]:
    """A tidy frame's rows, one part per value of its ``seed`` column."""
    return {int(s): rows.reset_index(drop=True) for s, rows in frame.groupby("seed", sort=False)}


def entry_info(path: Path) -> dict[str, Any]:
    """What a cache entry records about its training: wall_seconds (of the batch that trained it: every seed in
    seeds_in_batch, one condition), device_kind, device_name, written (UTC), seed, and what the trainer's
    ``describe`` added (the runs fixture: ``steps``, the condition's progress steps, and ``condition``, its repr).
    A resumed training counts only the time of the session that finished it."""
    return json.loads(pq.read_schema(path).metadata[METADATA_KEY])


def measurements(directory: Path | None, kernel: str) -> list[dict[str, Any]]:
    """:func:`entry_info` of every readable entry of ``kernel`` in a cache folder (none when it has none)."""
    if directory is None or not (Path(directory) / kernel).is_dir():
        return []
    found = []
    for path in sorted((Path(directory) / kernel).glob("??/*.parquet")):
        with contextlib.suppress(Exception):  # an unreadable entry measures nothing; it is retrained when read
            found.append(entry_info(path))
    return found


def _write_entry(frame: pd.DataFrame, path: Path, info: dict[str, Any]) -> None:
    """``frame`` as Parquet at ``path``, with ``info`` in its metadata; written atomically, its round trip checked."""
    try:
        table = pa.Table.from_pandas(frame)
    except (pa.ArrowException, ValueError) as error:
        raise TypeError(f"a run frame cannot be stored as Parquet: {error}") from None
    table = table.replace_schema_metadata({**table.schema.metadata, METADATA_KEY: json.dumps(info).encode()})
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        try:
            pd.testing.assert_frame_equal(pq.read_table(tmp).to_pandas(), frame, check_exact=True)
        except AssertionError as error:
            raise TypeError(f"a run frame does not come back from Parquet as it went in: {error}") from None
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _read_entry(path: Path, seed: int) -> pd.DataFrame | None:
    """The entry at ``path`` (None: there is none); an unreadable one is reported in one line and removed."""
    try:
        frame = pq.read_table(path).to_pandas()
        if "seed" not in frame or set(frame["seed"]) != {seed}:
            raise ValueError(f"it does not hold the rows of seed {seed}")
        return frame
    except FileNotFoundError:
        return None
    except Exception as error:  # noqa: BLE001 - whatever a damaged file raises, the run is trained again
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        warnings.warn(f"run cache: {path} is unreadable ({reason}); removed, this run will be trained again",
                      RuntimeWarning, stacklevel=4)  # fmt: skip
        path.unlink(missing_ok=True)
        return None


@contextlib.contextmanager
def _locked(locks: list[Path]) -> Iterator[None]:
    """Hold every lock in ``locks`` (taken in sorted order, so two sessions cannot deadlock)."""
    with contextlib.ExitStack() as held:
        for path in locks:
            path.parent.mkdir(parents=True, exist_ok=True)
            lock = FileLock(path)
            try:
                lock.acquire(timeout=0)
            except Timeout:
                warnings.warn(f"run cache: waiting for another session training these runs (lock {path})",
                              RuntimeWarning, stacklevel=4)  # fmt: skip
                lock.acquire()
            held.callback(lock.release)
        yield
