"""Data sets: where they are looked for, and what happens when they are missing.

Each data set is looked for, in order, under the user's data directory
(``--data-dir`` or ``RESCLAIMS_DATA``), then in the project's download cache
(``data/`` at the project root, or ``RESCLAIMS_CACHE``), and is downloaded into
the cache only when neither has it. A data set that cannot be found or fetched
raises :class:`DataUnavailable` (claims that need it are skipped with its
message); one that is present but corrupt raises :class:`DataError` (an error:
the message names the file).
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "RESCLAIMS_CACHE"

# name -> "module:function" that downloads the data set into a cache directory;
# `python -m resclaims fetch-data NAME` calls it.
FETCHERS = {
    "membrane": "resclaims.datasets.membrane:fetch",
    "cifar10": "resclaims.datasets.cifar10:fetch",
}


class DataUnavailable(RuntimeError):
    """The data set is not on disk and could not be downloaded; the message says how to get it."""


class DataError(RuntimeError):
    """The data set is on disk but broken (corrupt, wrong checksum, wrong layout); the message names the file."""


def cache_dir() -> Path:
    """The download cache: ``$RESCLAIMS_CACHE``, else ``data/`` in the project checkout."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(__file__).resolve().parents[2] / "data"


def unavailable_message(name: str, what: str) -> str:
    """The skip reason for a missing data set: the option, the variable and the download command."""
    return (
        f"{name} data not found ({what}): pass --data-dir PATH or set RESCLAIMS_DATA to a folder that "
        f"holds it, or download it with `python -m resclaims fetch-data {name}`"
    )
