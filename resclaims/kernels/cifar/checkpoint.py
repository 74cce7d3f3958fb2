"""An arm's whole training state in a file, so that a stopped training resumes with the numbers of an unstopped one.

A checkpoint holds only tensors and plain containers of str/int/float/bool/None
(rows, optimizer state, the RNG state as a byte tensor), so it is read with
``torch.load(weights_only=True)``: reading it cannot run code. One that cannot
be read (truncated, random bytes) is reported in one warning and removed, and
the arm starts afresh.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from resclaims.kernels.cifar.config import Arm


def checkpoint_path(folder: Path, arm: Arm) -> Path:
    """The file ``arm``'s checkpoint is kept in, in ``folder``: named by everything that defines the arm."""
    digest = hashlib.sha256(repr(arm).encode()).hexdigest()[:12]  # the arm's name, model and warm-up
    return Path(folder) / f"{arm.name}-{digest}.pt"


def save_checkpoint(path: Path, steps_done: int, rows, stack, optimizer, diverged, device) -> None:
    """An arm's whole training state after ``steps_done`` steps (a logged epoch's end), written atomically."""
    rng = torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state()
    state = {"steps_done": steps_done, "rows": [_plain(row) for row in rows], "net": stack.net.state_dict(),
             "optimizer": optimizer.state_dict(), "iterations": getattr(optimizer, "iterations", None),
             "diverged": diverged.cpu(), "rng": rng}  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".tmp{os.getpid()}")
    try:
        torch.save(state, temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _plain(value):
    """``value`` with numpy scalars as Python ones, containers as dicts and lists: what ``weights_only`` loads."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"a checkpoint row holds a {type(value).__name__}; rows hold str, int, float, bool or None")


def resume(path: Path, stack, optimizer, diverged, device) -> tuple[list[dict], int] | None:
    """Load :func:`save_checkpoint`'s state into the arm's objects; returns the rows so far and the steps done.

    None when the checkpoint cannot be read: it is reported in one line and removed, and the arm starts afresh.
    """
    try:
        state = torch.load(path, map_location=device, weights_only=True)
        if not isinstance(state, dict) or not {"steps_done", "rows", "net", "optimizer", "rng"} <= set(state):
            raise ValueError("it is not an arm's training state")
    except Exception as error:  # noqa: BLE001 - whatever a damaged file raises, the arm trains again
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        warnings.warn(f"checkpoint {path} is unreadable ({reason}); removed, this arm will be trained from the start",
                      RuntimeWarning, stacklevel=2)  # fmt: skip
        Path(path).unlink(missing_ok=True)
        return None
    stack.net.load_state_dict(state["net"])
    optimizer.load_state_dict(state["optimizer"])
    if state["iterations"] is not None:
        optimizer.iterations = state["iterations"]
    diverged.copy_(state["diverged"])
    if device.type == "cuda":
        torch.cuda.set_rng_state(state["rng"].cpu(), device)
    else:
        torch.set_rng_state(state["rng"].cpu())
    return state["rows"], state["steps_done"]
