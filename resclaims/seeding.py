"""Seeds for every run, derived from one base seed.

All randomness in the suite flows from ``numpy.random.SeedSequence``: a base seed
(``--base-seed``) and a stream name (a claim family, say ``"Z"``) give a
sequence whose children are the per-run seeds. Child ``i`` depends only on the
base seed, the stream and ``i``, so asking for more seeds never changes the
earlier ones, and two streams never share a state.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch

DEFAULT_BASE_SEED = 20190403  # the date of sources 000 and 001, fixed before any run


def stream_key(stream: str) -> int:
    """A stable integer for a stream name (``hash()`` is salted per process)."""
    return zlib.crc32(stream.encode("utf-8"))


def derive_seeds(base_seed: int, stream: str, n: int) -> list[int]:
    """Return ``n`` independent 32-bit run seeds for ``stream``."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    root = np.random.SeedSequence(base_seed, spawn_key=(stream_key(stream),))
    return [int(child.generate_state(1)[0]) for child in root.spawn(n)]


def numpy_rng(seed: int, *purpose: str) -> np.random.Generator:
    """A numpy generator for one purpose of one run (``"data"``, ``"init"``, ...)."""
    key = tuple(stream_key(p) for p in purpose)
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def torch_generator(seed: int, *purpose: str) -> torch.Generator:
    """A CPU ``torch.Generator`` for one purpose of one run."""
    key = tuple(stream_key(p) for p in purpose)
    state = np.random.SeedSequence(seed, spawn_key=key).generate_state(2, dtype=np.uint32)
    generator = torch.Generator()
    generator.manual_seed(int(state[0]) << 32 | int(state[1]))
    return generator
