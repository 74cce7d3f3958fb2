"""Same base seed, same machine: bit-identical tidy results; versions recorded with them."""

import json
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from resclaims.cache import RunCache
from resclaims.report import Report, Timing
from resclaims.zero_identity import ZeroIdentityConfig
from resclaims.zero_identity import train as train_zero_identity

# Every training kernel, on a problem small enough to run twice in a second or two.
KERNELS = {
    "zero_identity": lambda seeds: train_zero_identity(ZeroIdentityConfig(n_seeds=3, n_samples=20, epochs=4), seeds,
                                                       tasks=("identity", "zero", "residual_identity")),
}


@pytest.mark.parametrize("kernel", sorted(KERNELS))
def test_a_kernel_run_twice_gives_bit_identical_frames(kernel):
    first, second = KERNELS[kernel]([5, 6, 7]), KERNELS[kernel]([5, 6, 7])
    pd.testing.assert_frame_equal(first, second, check_exact=True)


def test_results_record_the_torch_and_numpy_versions(tmp_path):
    report = Report(tmp_path / "r", tier="quick", device="cpu", base_seed=0)
    report.add_timing(Timing("t", "g", 1.0, 1))
    provenance = json.loads((report.write() / "summary.json").read_text())["provenance"]
    assert provenance["torch"] == torch.__version__ and provenance["numpy"] == np.__version__
    assert {"python", "base_seed", "git_commit"} <= set(provenance)


def test_cached_runs_are_keyed_by_the_torch_version(tmp_path, monkeypatch):
    kernel = sys.modules[__name__]
    cache = RunCache(tmp_path)
    train = lambda seeds: pd.DataFrame({"seed": seeds, "loss": [0.5] * len(seeds)})  # noqa: E731
    cache.runs(kernel, train, [1, 2], device_kind="cpu")
    cache.runs(kernel, train, [1, 2], device_kind="cpu")
    assert (cache.trained, cache.reused) == (2, 2)
    monkeypatch.setattr("torch.__version__", "0.0.0-other")
    cache.runs(kernel, train, [1, 2], device_kind="cpu")
    assert cache.trained == 4  # runs from another torch are not reused
