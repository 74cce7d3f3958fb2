"""A session's settings: tier, device, seeds, data and report locations.

Options come from the command line (see :mod:`resclaims.plugin`); this module
validates them and turns bad values into :class:`SettingsError` with a message
that says what to do.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from resclaims.run.seeding import derive_seeds

TIERS = ("quick", "full")
DEVICES = ("auto", "cpu", "cuda")
DATA_ENV = "RESCLAIMS_DATA"


class SettingsError(ValueError):
    """An option value the suite cannot run with; the message says what to do."""


@dataclass(frozen=True)
class Settings:
    tier: str  # quick | full
    device: torch.device  # resolved: cpu or cuda
    base_seed: int  # every run's seed derives from it
    seeds: int | None  # overrides each tier's seed count
    data_dir: Path | None  # user-supplied data root (--data-dir or RESCLAIMS_DATA)
    report_dir: Path  # where this session's report goes
    no_train: bool = False  # --no-train: claims lacking runs are reported incomplete, nothing trains
    auto: Any = None  # --seeds auto: resclaims.plugin.sequential.Auto (the budget, the previous stage), else None

    def n_seeds(self, per_tier: Mapping[str, int]) -> int:
        """Seeds per condition: --seeds, else this tier's count from ``{"quick": ..., "full": ...}``."""
        return self.seeds or per_tier[self.tier]

    def run_seeds(self, name: str, n: int) -> list[int]:
        """``n`` run seeds named ``name``, derived from the base seed."""
        return derive_seeds(self.base_seed, name, n)


def parse_tier(value: str) -> str:
    if value not in TIERS:
        raise SettingsError(f"unknown tier {value!r}: use --tier quick (the default) or --tier full (or --full)")
    return value


MAX_SEEDS = 10_000  # seeds per condition a session takes without --max-seeds (the largest tier asks 2,000)


def parse_seeds(value: str | None, limit: str | None = None) -> int | None:
    """--seeds as a number; past ``limit`` (--max-seeds, default :data:`MAX_SEEDS`) refused in one line: a typo's
    hundred million seeds would otherwise derive seeds and grow memory for minutes before any cost is shown."""
    if value is None:
        return None
    try:
        seeds = int(value)
    except ValueError:
        seeds = 0
    if seeds < 1:
        raise SettingsError(f"--seeds {value}: give a positive whole number of seeds, or leave it out for the tier's count")
    try:
        most = MAX_SEEDS if limit is None else int(limit)
    except ValueError:
        raise SettingsError(f"--max-seeds {limit}: give a whole number of seeds") from None
    if seeds > most:
        raise SettingsError(f"--seeds {value}: more than {most:,} seeds per condition; check the number, or pass "
                            f"--max-seeds {seeds} to allow it")
    return seeds


def parse_base_seed(value: str) -> int:
    try:
        seed = int(value)
    except ValueError:
        seed = -1
    if not 0 <= seed < 2**63:
        raise SettingsError(f"--base-seed {value}: give a whole number from 0 to 2**63 - 1")
    return seed


def resolve_device(value: str) -> torch.device:
    """``auto`` is cuda when CUDA is available, else cpu; ``cuda`` without CUDA is an error."""
    if value not in DEVICES:
        raise SettingsError(f"--device {value}: use cpu, cuda or auto (the default)")
    if value == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if value == "cuda" and not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}, but no GPU is visible"
        raise SettingsError(f"--device cuda: CUDA is not available (torch {torch.__version__}, {build}); use --device cpu or auto")
    return torch.device(value)


def check_step_mode(device: torch.device) -> None:
    """Fail now if $RESCLAIMS_STEP names no step mode, or one the device cannot run (:mod:`resclaims.kernels.cifar.steps`),
    or $RESCLAIMS_GPU_ARMS is not a positive number (:func:`resclaims.kernels.cifar.workers.default_workers`)."""
    from resclaims.kernels.cifar.steps import resolve_mode
    from resclaims.kernels.cifar.workers import default_workers

    try:
        resolve_mode("auto", device)
        default_workers(device)
    except ValueError as error:
        raise SettingsError(str(error)) from None


def resolve_data_dir(value: str | None) -> Path | None:
    """--data-dir, else $RESCLAIMS_DATA, else None (the download cache is used)."""
    source = "--data-dir" if value else DATA_ENV
    value = value or os.environ.get(DATA_ENV) or None
    if value is None:
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        raise SettingsError(f"{source} {value}: no such directory; point it at the folder that holds the data sets")
    return path.resolve()


def check_report_dir(path: Path, option: str = "--report-dir") -> Path:
    """Fail now, before any training, if the report cannot be written to ``path``.

    The report is staged beside ``path`` and renamed into place, so both the
    folder it goes into and ``path`` itself (when it exists) must be writable.
    Each is probed by creating and removing an empty folder: permission bits
    alone do not tell (root, read-only mounts, immutable folders).
    """
    if path.exists() and not path.is_dir():
        raise SettingsError(f"{option} {path}: a file is in the way; give a folder for the report")
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    for folder in ([path] if path.is_dir() else []) + [parent]:
        try:
            Path(tempfile.mkdtemp(prefix=".resclaims-probe-", dir=folder)).rmdir()
        except OSError as error:
            raise SettingsError(f"{option} {path}: cannot write in {folder} ({error.strerror}); nothing was changed "
                                "there; pass --report-dir with a folder you can write to") from None
    return path


# options of the selection whose value may be an existing path, which must not be read as the selection's own path
PATH_OPTIONS = ("--data-dir", "--report-dir", "--baseline", "--rootdir", "--basetemp", "-c", "--confcutdir",
                "--ignore", "--ignore-glob", "--deselect", "--benchmark-storage", "--benchmark-save-data")


def names_a_path(args: list[str], folder: Path = Path()) -> bool:
    """Whether pytest arguments name a test path (a file, a folder or a node id) relative to ``folder``; the value of
    an option such as ``--data-dir D`` is not one."""
    values = {i + 1 for i, arg in enumerate(args) if arg in PATH_OPTIONS}
    return any(i not in values and not arg.startswith("-") and (folder / arg.split("::")[0]).exists()
               for i, arg in enumerate(args))
