"""A cache of trained runs, so that nothing is trained twice.

A run is one seed of one kernel under one config. Its key is the kernel's name,
a hash of the kernel's source (a changed kernel changes every key; for a package,
a change to any of its modules), the config, the other arguments that shape the
training, the seed, the device kind and the torch and numpy versions (another
version may give other numbers). Asking for seeds trains only the missing ones,
in one batch, and stores each seed's rows on its own, so adding seeds reuses the
earlier ones. Kernels whose conditions train one after the other (CIFAR's arms)
store each (condition, seed) as the condition finishes, so a long session
stopped part-way keeps its work. Entries are written through a temporary file
and a rename, so a killed run leaves no half-written entry.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import torch


def kernel_version(module: ModuleType) -> str:
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

    def __init__(self, directory: Path | None) -> None:
        self.directory = Path(directory) if directory is not None else None
        self.trained = 0  # runs (seeds x conditions calls) trained in this session
        self.reused = 0  # runs read from the cache

    def runs(
        self,
        kernel: ModuleType,
        train: Callable[[list[int]], Any],
        seeds: Sequence[int],
        *,
        device_kind: str,
        split: Callable[[Any], dict[int, Any]] | None = None,
        merge: Callable[[list[Any]], Any] | None = None,
        **key: Any,
    ) -> Any:
        """The result of ``train(seeds)``, trained only for seeds not in the cache.

        ``train`` takes a list of seeds and returns, by default, a tidy frame with
        a ``seed`` column; for any other result, ``split`` cuts it into one part
        per seed and ``merge`` joins parts in the order given. ``key`` holds
        everything else that shapes the result (config, tasks, ...); values are
        keyed by their ``repr``.
        """
        seeds = list(seeds)
        split = split or by_seed
        merge = merge or (lambda frames: pd.concat(frames, ignore_index=True))
        if self.directory is None:
            self.trained += len(seeds)
            return train(seeds)
        paths = self._paths(kernel, seeds, device_kind, key)
        missing = [seed for seed, path in paths.items() if not path.exists()]
        if missing:
            self._store(split(train(missing)), paths)
            self.trained += len(missing)
        self.reused += len(seeds) - len(missing)
        return merge([pd.read_pickle(paths[seed]) for seed in seeds])

    def runs_per_condition(
        self,
        kernel: ModuleType,
        train: Callable[[list[Any], list[int], Callable[[Any, pd.DataFrame], None]], pd.DataFrame],
        conditions: Sequence[Any],
        seeds: Sequence[int],
        *,
        device_kind: str,
        **key: Any,
    ) -> pd.DataFrame:
        """Like :meth:`runs`, with one entry per (condition, seed), stored as each condition finishes.

        ``train(todo, missing, keep)`` trains the conditions ``todo`` at the seeds
        ``missing`` and calls ``keep(condition, frame)`` with each condition's
        frame (a ``seed`` column) as soon as it has it, so that a session stopped
        part-way keeps the conditions it finished. The result holds every
        condition at every seed, condition by condition.
        """
        seeds, conditions = list(seeds), list(conditions)
        if self.directory is None:
            self.trained += len(seeds) * len(conditions)
            return train(conditions, seeds, lambda condition, frame: None)
        paths = [self._paths(kernel, seeds, device_kind, {**key, "condition": c}) for c in conditions]
        todo = [i for i, p in enumerate(paths) if not all(path.exists() for path in p.values())]
        missing = [seed for seed in seeds if any(not paths[i][seed].exists() for i in todo)]
        stored = []

        def keep(condition: Any, frame: pd.DataFrame) -> None:
            i = next(i for i in todo if conditions[i] == condition)
            self._store(by_seed(frame), paths[i])
            stored.append(i)

        if todo:
            train([conditions[i] for i in todo], missing, keep)
            if sorted(stored) != todo:
                raise RuntimeError(f"{kernel.__name__}: training returned without handing over every condition")
        self.trained += len(todo) * len(missing)
        self.reused += len(conditions) * len(seeds) - len(todo) * len(missing)
        return pd.concat([pd.read_pickle(p[seed]) for p in paths for seed in seeds], ignore_index=True)

    def scratch(self, kernel: ModuleType, *, device_kind: str, **key: Any) -> Path | None:
        """A folder for the partial state of training under this key (None when caching is off).

        Kernels write checkpoints there and resume from them; the key (including
        the seeds being trained) makes sure a checkpoint is only ever resumed by
        the same training.
        """
        if self.directory is None:
            return None
        digest = hashlib.sha256(json.dumps(_base(kernel, device_kind, key), sort_keys=True).encode()).hexdigest()
        return self.directory / kernel.__name__ / "partial" / digest[:32]

    def _paths(self, kernel: ModuleType, seeds: list[int], device_kind: str, key: dict[str, Any]) -> dict[int, Path]:
        base = _base(kernel, device_kind, key)
        return {seed: self._path(base, seed) for seed in seeds}

    @staticmethod
    def _store(parts: dict[int, Any], paths: dict[int, Path]) -> None:
        for seed, part in parts.items():
            if seed in paths:
                _atomic_pickle(part, paths[seed])

    def _path(self, base: dict[str, str], seed: int) -> Path:
        digest = hashlib.sha256(json.dumps({**base, "seed": seed}, sort_keys=True).encode()).hexdigest()
        return self.directory / base["kernel"] / digest[:2] / f"{digest}.pkl"


def _base(kernel: ModuleType, device_kind: str, key: dict[str, Any]) -> dict[str, str]:
    """What identifies a kernel's results, less the seed."""
    return {"kernel": kernel.__name__, "version": kernel_version(kernel), "device": device_kind,
            "torch": torch.__version__, "numpy": np.__version__, **{k: repr(v) for k, v in sorted(key.items())}}


def by_seed(frame: pd.DataFrame) -> dict[int, pd.DataFrame]:
    """A tidy frame's rows, one part per value of its ``seed`` column."""
    return {int(s): rows.reset_index(drop=True) for s, rows in frame.groupby("seed", sort=False)}


def _atomic_pickle(value: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        pd.to_pickle(value, tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
