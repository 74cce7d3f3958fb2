"""Seeds for every run, derived from one base seed.

All randomness in the suite flows from ``numpy.random.SeedSequence``: a base seed
(``--base-seed``) and a seed name (a claim family, say ``"Z"``) give a
sequence whose children are the per-run seeds. Child ``i`` depends only on the
base seed, the name and ``i``, so asking for more seeds never changes the
earlier ones, and two names never share a state.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch

DEFAULT_BASE_SEED = 20190403  # the date of sources 000 and 001, fixed before any run


def name_key(name: str) -> int:
    """A stable integer for a seed name or purpose (``hash()`` is salted per process)."""
    return zlib.crc32(name.encode("utf-8"))


def derive_seeds(base_seed: int, name: str, n: int) -> list[int]:
    """Return ``n`` independent 32-bit run seeds named ``name``."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    root = np.random.SeedSequence(base_seed, spawn_key=(name_key(name),))
    return [int(child.generate_state(1)[0]) for child in root.spawn(n)]


def numpy_rng(seed: int, *purpose: str) -> np.random.Generator:
    """A numpy generator for one purpose of one run (``"data"``, ``"init"``, ...)."""
    key = tuple(name_key(p) for p in purpose)
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def torch_generator(seed: int, *purpose: str) -> torch.Generator:
    """A CPU ``torch.Generator`` for one purpose of one run."""
    key = tuple(name_key(p) for p in purpose)
    state = np.random.SeedSequence(seed, spawn_key=key).generate_state(2, dtype=np.uint32)
    generator = torch.Generator()
    generator.manual_seed(int(state[0]) << 32 | int(state[1]))
    return generator
