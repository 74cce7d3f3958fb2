"""Calibrations kept by content: a session on runs it has already judged computes none again.

A calibration's numbers depend on the claim's data, the deciding code and the module declaring the claim; the key
is a digest of all three (:func:`code_digest`), so an edit anywhere in the decision path recomputes, and nothing else
does.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy

from resclaims.decide.calibration import Calibration

# The code a calibration's numbers depend on: the decision path (this package: procedures, their tests and rule, the
# worlds, the calibration) and the families' own procedures, as folders of the resclaims package. The module that
# declares a claim is added per claim (its constants are the procedure's parameters).
DECIDING = ("decide", "families")


def code_digest(*extra: Path) -> str:
    """A digest of the deciding code (``DECIDING`` under ``resclaims/``), numpy's and scipy's versions and ``extra``."""
    root = Path(__file__).resolve().parents[1]
    files = [path for name in DECIDING for path in sorted((root / name).rglob("*.py"))]
    digest = hashlib.sha256(f"{np.__version__} {scipy.__version__}".encode())
    for path in (*files, *extra):
        digest.update(str(path.name).encode() + b"\0" + Path(path).read_bytes())
    return digest.hexdigest()


def keep_json(path: Path, value: Any) -> None:
    """Write ``value`` to ``path`` as JSON, whole or not at all (a temporary file renamed into place); a folder that
    cannot be written keeps nothing (the session still has the value)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as tmp:
            json.dump(value, tmp)
        os.replace(tmp.name, path)
    except OSError:
        pass


class Stored:
    """Calibrations (and ``seeds_for_power`` answers) kept in a folder by content, so that a session on runs it has
    already judged computes none again.

    A key is a digest of everything the numbers depend on: the deciding code and the claim's module
    (:func:`code_digest`), the claim's id, the number of simulations, the calibration seed and every data array's
    dtype, shape and bytes. An entry is a JSON file written whole (a temporary file renamed into place); one that
    cannot be read is computed again and replaced. ``directory`` None keeps nothing (``--no-run-cache``).
    """

    def __init__(self, directory: Path | None) -> None:
        self.directory = None if directory is None else Path(directory)
        self.computed = self.read = 0

    @staticmethod
    def key(code: str, claim_id: str, data: Sequence[np.ndarray], *parts: Any) -> str:
        digest = hashlib.sha256(f"{code} {claim_id} {parts!r}".encode())
        for x in data:
            x = np.ascontiguousarray(x)
            digest.update(f"{x.dtype.str} {x.shape}".encode())
            digest.update(x.tobytes())
        return digest.hexdigest()[:32]

    def _path(self, kind: str, key: str) -> Path | None:
        return None if self.directory is None else self.directory / f"{kind}-{key}.json"

    def _get(self, kind: str, key: str) -> Any:
        path = self._path(kind, key)
        if path is None or not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None  # unreadable: computed again and replaced

    def _put(self, kind: str, key: str, value: Any) -> None:
        path = self._path(kind, key)
        if path is not None:
            keep_json(path, value)

    def calibration(self, key: str, compute: Callable[[], Calibration]) -> Calibration:
        """The calibration under ``key``, computed (and kept) only where none is kept."""
        kept = self._get("calibration", key)
        if kept is not None:
            try:
                result = Calibration.from_json(kept)
            except (KeyError, TypeError, ValueError):
                result = None
            if result is not None:
                self.read += 1
                return result
        result = compute()
        self.computed += 1
        self._put("calibration", key, result.to_json())
        return result

    def seeds_for_power(self, key: str, compute: Callable[[], tuple[int | None, str]]) -> tuple[int | None, str]:
        """``seeds_for_power``'s answer under ``key``, computed (and kept) only where none is kept."""
        kept = self._get("seeds", key)
        if isinstance(kept, list) and len(kept) == 2 and (kept[0] is None or isinstance(kept[0], int)):
            self.read += 1
            return kept[0], str(kept[1])
        n, how = compute()
        self.computed += 1
        self._put("seeds", key, [n, how])
        return n, how
