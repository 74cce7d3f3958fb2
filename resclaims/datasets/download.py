"""Verified, atomic downloads.

A file is streamed into a temporary file beside its destination, checked against
a pinned checksum, and only then renamed into place. Whatever goes wrong (a
dropped connection, a wrong checksum, Ctrl-C), no partial file is left behind.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

CHUNK = 1 << 16


class DownloadError(RuntimeError):
    """A download failed or did not match its pinned checksum."""


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """The hex digest of a file, read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(
    url: str,
    dest: Path,
    *,
    checksum: str,
    algorithm: str = "sha256",
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``dest`` if it is not already there and verified.

    ``checksum`` is the expected hex digest under ``algorithm`` (``sha256`` or
    ``md5``). An existing ``dest`` with the right digest is kept; one with the
    wrong digest is replaced. Raises :class:`DownloadError` with a message that
    names the URL and what to do.
    """
    dest = Path(dest)
    if dest.exists() and file_digest(dest, algorithm) == checksum:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        digest, received = hashlib.new(algorithm), 0
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(
                total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress, leave=False
            ) as bar:
                for chunk in iter(lambda: response.read(CHUNK), b""):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            if total is not None and received != total:
                raise DownloadError(f"{url}: connection closed after {received} of {total} bytes; try again")
        if digest.hexdigest() != checksum:
            raise DownloadError(
                f"{url}: {algorithm} {digest.hexdigest()} does not match the pinned {checksum}; "
                "the file was not saved (the source may have changed or the transfer was corrupted)"
            )
        os.replace(tmp, dest)
        return dest
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as error:
        raise DownloadError(f"{url}: download failed ({error}); check the network or use --data-dir") from error
    finally:
        tmp.unlink(missing_ok=True)
