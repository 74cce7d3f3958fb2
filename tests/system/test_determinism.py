"""Same base seed, same machine: bit-identical tidy results; versions recorded with them."""

import json
import sys
import types
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from resclaims.datasets.cifar10 import Cifar10
from resclaims.datasets.membrane import Membrane
from resclaims.kernels import cifar, membrane
from resclaims.kernels.zero_identity import ZeroIdentityProtocol
from resclaims.kernels.zero_identity import train as train_zero_identity
from resclaims.report.report import Report, Timing
from resclaims.run.cache import RunCache, kernel_version


def membrane_runs(seeds):
    images = (np.random.default_rng(0).random((4, 1, 12, 12)) < 0.5).astype(np.float32)
    data = Membrane(images, Path("synthetic"), "generated", "synthetic")
    return membrane.train(membrane.MembraneProtocol(arms=membrane.ARMS + membrane.FIXED_ARMS, epochs=2), seeds, data=data)


def cifar_runs(seeds):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (80, 32, 32, 3), dtype=np.uint8)
    data = Cifar10(x, rng.integers(0, 10, 80), x[:16], rng.integers(0, 10, 16), "synthetic", "memory", "none", "",
                   official_order=False)
    keras = cifar.TrainConfig(steps=2, log_every=1, test_size=16)
    he = replace(cifar.HE2015, steps=2, log_every=1, batch_size=16, val_size=8, milestones=())
    with cifar.cpu_threads(1):
        return pd.concat([cifar.train(keras, cifar.keras_arms([1], width=0.125), seeds, data),
                          cifar.train(he, cifar.he_arms([8], residual=True, widths=(4, 4, 4)), seeds, data)])


# Every training kernel, on a problem small enough to run twice in a second or two.
KERNELS = {
    "zero_identity": lambda seeds: train_zero_identity(
        ZeroIdentityProtocol(arms=("identity", "zero", "residual_identity"), n_samples=20, epochs=4), seeds),
    "membrane": membrane_runs,
    "cifar": cifar_runs,
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


def test_a_package_kernel_is_versioned_by_every_module_of_it(tmp_path):
    """resclaims.kernels.cifar is a package: a change to any of its modules must retrain its cached runs."""
    folder = tmp_path / "kernel"
    (folder / "sub").mkdir(parents=True)
    for name in ("__init__.py", "a.py", "sub/b.py"):
        (folder / name).write_text(f"# {name}\n")
    package = types.ModuleType("kernel")
    package.__path__ = [str(folder)]
    versions = {kernel_version(package)}
    for name in ("__init__.py", "a.py", "sub/b.py"):
        (folder / name).write_text("# changed\n")
        versions.add(kernel_version(package))
    assert len(versions) == 4
