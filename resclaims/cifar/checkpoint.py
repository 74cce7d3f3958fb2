"""An arm's whole training state in a file, so that a stopped training resumes with the numbers of an unstopped one."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from resclaims.cifar.config import Arm


def checkpoint_path(folder: Path, arm: Arm) -> Path:
    """The file ``arm``'s checkpoint is kept in, in ``folder``: named by everything that defines the arm."""
    digest = hashlib.sha256(repr(arm).encode()).hexdigest()[:12]  # the arm's name, model and warm-up
    return Path(folder) / f"{arm.name}-{digest}.pt"


def save_checkpoint(path: Path, steps_done: int, rows, stack, optimizer, diverged, device) -> None:
    """An arm's whole training state after ``steps_done`` steps (a logged epoch's end), written atomically."""
    rng = torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state()
    state = {"steps_done": steps_done, "rows": rows, "net": stack.net.state_dict(),
             "optimizer": optimizer.state_dict(), "iterations": getattr(optimizer, "iterations", None),
             "diverged": diverged.cpu(), "rng": rng}  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".tmp{os.getpid()}")
    try:
        torch.save(state, temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def resume(path: Path, stack, optimizer, diverged, device) -> tuple[list[dict], int]:
    """Load :func:`save_checkpoint`'s state into the arm's objects; returns the rows so far and the steps done."""
    state = torch.load(path, map_location=device, weights_only=False)
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
