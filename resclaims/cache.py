"""A cache of trained runs, so that nothing is trained twice.

A run is one seed of one kernel under one config. Its key is the kernel's name,
a hash of the kernel module's source (a changed kernel changes every key), the
config, the other arguments that shape the training, the seed and the device
kind. Asking for seeds trains only the missing ones, in one batch, and stores
each seed's rows on its own, so adding seeds reuses the earlier ones. Entries
are written through a temporary file and a rename, so a killed run leaves no
half-written entry.
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

import pandas as pd


def kernel_version(module: ModuleType) -> str:
    """A short hash of a kernel module's source code."""
    return hashlib.sha256(inspect.getsource(module).encode()).hexdigest()[:16]


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
        split = split or (lambda frame: {int(s): rows.reset_index(drop=True) for s, rows in frame.groupby("seed", sort=False)})
        merge = merge or (lambda frames: pd.concat(frames, ignore_index=True))
        if self.directory is None:
            self.trained += len(seeds)
            return train(seeds)
        base = {"kernel": kernel.__name__, "version": kernel_version(kernel), "device": device_kind,
                **{k: repr(v) for k, v in sorted(key.items())}}
        paths = {seed: self._path(base, seed) for seed in seeds}
        missing = [seed for seed, path in paths.items() if not path.exists()]
        if missing:
            for seed, part in split(train(missing)).items():
                _atomic_pickle(part, paths[seed])
            self.trained += len(missing)
        self.reused += len(seeds) - len(missing)
        return merge([pd.read_pickle(paths[seed]) for seed in seeds])

    def _path(self, base: dict[str, str], seed: int) -> Path:
        digest = hashlib.sha256(json.dumps({**base, "seed": seed}, sort_keys=True).encode()).hexdigest()
        return self.directory / base["kernel"] / digest[:2] / f"{digest}.pkl"


def _atomic_pickle(value: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        pd.to_pickle(value, tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
