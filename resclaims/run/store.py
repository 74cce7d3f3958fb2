"""The published run store: finished runs of the full tier, kept in the repository (``results/runs/``).

A trained run is expensive (about 21 minutes of one CPU core for one resnet-10 run of
source 003), so the full tier's runs are trained once, in the background, over many
sessions, and published here; every ``pytest --full``, ``plan`` and ``fill`` reads them
as a read-only layer under the local run cache (:class:`resclaims.run.cache.RunCache`).

**Keys are content, never code.** A run is keyed by its kernel's declared name
(``NAME``), the kernel's declared numerics version (``NUMERICS``, an integer that a
change bumps when it changes the numbers a run produces), the content of its condition
(:func:`content`: a dataclass's fields, an arm's name and its builder's arguments), the
data set's checksum and the seed. No module path, class name or hash of source code is
in a key, so moving or editing the code keeps every published run; the spot check
(``tests/system/test_store_spot_check.py``) retrains published runs' first epochs and is what
catches a change to the numbers that forgot to bump ``NUMERICS``. Device, arithmetic
and versions are provenance, not key: a run of the protocol at a seed is that run,
wherever it trained, and its provenance says where.

**Entries.** One Parquet file per run (its per-epoch rows, with a ``seed`` column) at
``<NAME>/<digest[:2]>/<digest>.parquet``, the digest being that of the key. The file's
metadata holds the key itself and the run's provenance (:data:`PROVENANCE`: code
revision, torch and numpy versions, device kind and name, arithmetic, CPU threads, wall
time, ...). Only finished runs are published, never checkpoints.

**What is never used.** An entry that cannot be read, is truncated, has no provenance,
holds a key other than its place says (a valid file copied into another run's place), or
whose numbers cannot come from its protocol (the kernel's ``validate``: accuracies outside
[0, 1], a wrong number of epochs) is reported in one line naming the file and ignored: the
run is trained as if it were absent (and, by a publishing fill, published in its place).

**Writes** go through a temporary file and a hard link, which fails if the entry
exists: two fills never overwrite each other, and a killed one leaves no partial
entry. A publishing fill trains under locks in the store's ``.locks/`` folder (not
committed), so two fills on one store never train the same run twice.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from resclaims.run.contract import Kernel, RunProtocol

STORE_ENV = "RESCLAIMS_STORE"
METADATA_KEY = b"resclaims-store"
# what every published run records about how it was trained
# (group: the seeds that trained together, in order: dropout masks come from one generator per group, so a run's
# numbers depend on its group; a publishing fill trains one seed per group)
PROVENANCE = ("revision", "torch", "numpy", "device_kind", "device_name", "arithmetic", "threads", "wall_seconds",
              "seeds_in_batch", "group", "written", "condition")


PUBLISHED = Path(__file__).resolve().parents[2] / "results" / "runs"  # the project's store, in the repository


def default_directory() -> Path:
    """The store: ``$RESCLAIMS_STORE``, else :data:`PUBLISHED`, ``results/runs/`` in the project checkout."""
    if os.environ.get(STORE_ENV):
        return Path(os.environ[STORE_ENV]).expanduser()
    return PUBLISHED


def content(value: Any) -> Any:
    """``value`` as plain JSON data that says what it is, not where its code lives.

    Dataclasses become their fields by name, :func:`functools.partial` (an arm's
    builder) its arguments, tuples lists; numbers, strings, booleans and None stay.
    Anything else (a function, an object) has no content to key by: a TypeError.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: content(getattr(value, f.name)) for f in dataclasses.fields(value) if f.compare}
    if isinstance(value, functools.partial):
        return {"args": content(list(value.args)), "keywords": content(dict(value.keywords))}
    if isinstance(value, (list, tuple)):
        return [content(v) for v in value]
    if isinstance(value, dict):
        return {str(k): content(v) for k, v in sorted(value.items())}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"{type(value).__name__} has no content to key a published run by")


def publishable(kernel: Kernel) -> bool:
    """Whether ``kernel`` declares what the store keys by: a string ``NAME`` and an integer ``NUMERICS``."""
    return isinstance(getattr(kernel, "NAME", None), str) and isinstance(getattr(kernel, "NUMERICS", None), int)


def key(kernel: Kernel, condition: RunProtocol, seed: int, data: str | None) -> dict[str, Any]:
    """What identifies one published run: the kernel's name and numerics version, the condition, data and seed."""
    return {"kernel": kernel.NAME, "numerics": kernel.NUMERICS, "condition": content(condition), "data": data,
            "seed": int(seed)}


def digest(run_key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(run_key, sort_keys=True).encode()).hexdigest()


class StoreError(ValueError):
    """A store entry that must not be used; the message names the file and what is wrong."""


class RunStore:
    """Published runs under ``directory`` (read-only unless a fill publishes into it)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._reported: set[Path] = set()

    def path(self, run_key: dict[str, Any]) -> Path:
        d = digest(run_key)
        return self.directory / run_key["kernel"] / d[:2] / f"{d}.parquet"

    def lock_path(self, run_key: dict[str, Any]) -> Path:
        """Where a publishing fill locks the training of this run (``.locks/`` is not committed)."""
        return self.directory / ".locks" / f"{digest(run_key)[:32]}.lock"

    def read(self, kernel: Kernel, condition: RunProtocol, seed: int, data: str | None, *, provenance: bool = False
             ) -> Any:
        """The published frame of this run (with ``provenance``: the frame and the run's provenance); None when none
        is published or the entry must not be used (said in one line, once per file)."""
        if not publishable(kernel):
            return None
        run_key = key(kernel, condition, seed, data)
        path = self.path(run_key)
        if not path.is_file():
            return None
        try:
            frame, meta = check_entry(path, kernel, condition, run_key)
        except StoreError as error:
            if path not in self._reported:
                self._reported.add(path)
                warnings.warn(f"run store: {error}; not used, this run is trained as if unpublished",
                              RuntimeWarning, stacklevel=2)
            return None
        return (frame, meta["provenance"]) if provenance else frame

    def holds(self, kernel: Kernel, condition: RunProtocol, seed: int, data: str | None) -> bool:
        """Whether an entry exists for this run (not read: one that turns out unusable is trained when read)."""
        return publishable(kernel) and self.path(key(kernel, condition, seed, data)).is_file()

    def publish(self, kernel: Kernel, condition: RunProtocol, seed: int, data: str | None, frame: pd.DataFrame,
                provenance: dict[str, Any]) -> Path | None:
        """Publish one finished run; the entry's path, or None when a usable entry is there already.

        The frame and provenance are checked as a reader checks them, before anything is written. An unusable
        entry in its place is replaced (it was never used); a usable one is never touched.
        """
        run_key = key(kernel, condition, seed, data)
        lacking = [field for field in PROVENANCE if field not in provenance]
        if lacking:
            raise StoreError(f"a run of {provenance.get('condition', condition)!r} lacks provenance: {lacking}")
        problem = _frame_problem(kernel, condition, frame, seed)
        if problem:
            raise StoreError(f"a run of {provenance['condition']!r} at seed {seed} cannot be published: {problem}")
        path = self.path(run_key)
        path.parent.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pandas(frame, preserve_index=False)
        meta = json.dumps({"key": run_key, "provenance": provenance}, sort_keys=True).encode()
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), METADATA_KEY: meta})
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        os.close(fd)
        try:
            pq.write_table(table, tmp)
            check_entry(Path(tmp), kernel, condition, run_key, place=path)  # what a reader will see
            try:
                os.link(tmp, path)  # atomic, and fails where an entry exists
            except FileExistsError:
                try:
                    check_entry(path, kernel, condition, run_key)
                    return None  # published meanwhile, usable: never replaced
                except StoreError:
                    os.replace(tmp, path)
            return path
        finally:
            Path(tmp).unlink(missing_ok=True)

    def entries(self) -> Iterator[Path]:
        """Every entry file, in a fixed order."""
        yield from sorted(self.directory.glob("*/??/*.parquet"))


def entry_metadata(path: Path) -> dict[str, Any]:
    """An entry's key and provenance as written, or :class:`StoreError` naming the file."""
    try:
        raw = (pq.read_schema(path).metadata or {}).get(METADATA_KEY)
    except Exception as error:  # noqa: BLE001 - whatever a damaged file raises
        raise StoreError(f"{path} is unreadable ({_first_line(error)})") from None
    if raw is None:
        raise StoreError(f"{path} has no key or provenance")
    try:
        meta = json.loads(raw)
        meta["key"], meta["provenance"]  # noqa: B018
    except (ValueError, KeyError, TypeError):
        raise StoreError(f"{path} has no key or provenance") from None
    return meta


def check_entry(path: Path, kernel: Kernel | None, condition: RunProtocol | None, run_key: dict[str, Any] | None,
                place: Path | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The entry's frame and metadata, checked: readable, whole, its provenance complete, its key the one its place
    (``place``, default ``path``) says and ``run_key`` when given, its numbers possible under its protocol
    (``kernel.validate``)."""
    meta = entry_metadata(path)
    lacking = [field for field in PROVENANCE if field not in meta["provenance"]]
    if lacking:
        raise StoreError(f"{path} has no provenance for {', '.join(lacking)}")
    if (place or path).stem != digest(meta["key"]) or (run_key is not None and meta["key"] != run_key):
        raise StoreError(f"{path} holds another run than its place says ({meta['provenance'].get('condition')}, "
                         f"seed {meta['key'].get('seed')})")
    try:
        frame = pq.read_table(path).to_pandas()
    except Exception as error:  # noqa: BLE001
        raise StoreError(f"{path} is unreadable ({_first_line(error)})") from None
    if kernel is not None:
        problem = _frame_problem(kernel, condition, frame, meta["key"]["seed"])
        if problem:
            raise StoreError(f"{path}: {problem}")
    return frame, meta


def _frame_problem(kernel: Kernel, condition: RunProtocol, frame: pd.DataFrame, seed: int) -> str | None:
    if "seed" not in frame or set(frame["seed"]) != {seed}:
        return f"its rows are not all of seed {seed}"
    validate = getattr(kernel, "validate", None)
    return validate(condition, frame) if validate is not None else None


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


# On other arithmetic (another CPU's vector width, a GPU's bfloat16 autocast) a first epoch's steps round differently:
# the same run agrees to within these, accuracies in their own units, losses relative.
TOLERANCE = {"acc": 0.03, "loss": 0.03}


def differences(retrained: pd.DataFrame, published: pd.DataFrame, *, exact: bool) -> list[str]:
    """How a run trained again differs from its published rows (none: it is the same run): every value bit for bit
    where ``exact`` (the same arithmetic), else its accuracies within ``TOLERANCE["acc"]`` and losses within
    ``TOLERANCE["loss"]`` relative, other columns equal."""
    if list(retrained.columns) != list(published.columns) or len(retrained) != len(published):
        return [f"columns or rows differ: {list(retrained.columns)} x {len(retrained)} against "
                f"{list(published.columns)} x {len(published)}"]
    found = []
    for column in published:
        a, b = retrained[column].to_numpy(), published[column].to_numpy()
        numeric = column.endswith(("_acc", "_loss")) and not exact
        if numeric:
            a, b = a.astype(float), b.astype(float)
            bound = TOLERANCE["acc"] if column.endswith("_acc") else TOLERANCE["loss"] * np.abs(b)
            same = (np.abs(a - b) <= bound) | (np.isnan(a) & np.isnan(b))
        else:
            same = np.array([x == y or (x != x and y != y) for x, y in zip(a, b)])
        if not same.all():
            found.append(f"{column}: {a[~same][:3].tolist()} retrained, {b[~same][:3].tolist()} published")
    return found
