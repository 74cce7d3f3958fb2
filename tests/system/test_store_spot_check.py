"""The spot check: the published runs (results/runs/) are real runs of their protocols (issue 23).

Every entry is checked whole: readable, its provenance complete, its key the one its file name says, its condition
one the kernel can rebuild, its numbers possible under that protocol (one row per logged epoch, accuracies in
[0, 1]), no run published twice. Then entries picked at random, seeded by the commit, are trained again for their
first logged epoch from their protocol, seed and group (the seeds that trained together, whose order sets the
dropout masks), on this CPU, and compared with the store: bit for bit where the arithmetic matches the entry's
(``provenance.arithmetic``: torch, the device and the CPU's vector capability), else within
:data:`resclaims.run.store.TOLERANCE` (:func:`resclaims.run.store.differences`).
A mismatch means the code no longer computes what the published runs computed: bump the kernel's ``NUMERICS``.
"""

from __future__ import annotations

import importlib
import random
from pathlib import Path

import pytest
import torch

from resclaims.run import store
from resclaims.run.provenance import git_commit, provenance

KERNELS = {"cifar": "resclaims.kernels.cifar.kernel"}  # a published kernel's NAME -> its module
CHECKED = 1  # entries retrained per session: a resnet-10 first epoch is about 40 s on one core

ENTRIES = list(store.RunStore(store.PUBLISHED).entries())  # the repository's (the other tests see an empty store)


def kernel_of(meta: dict) -> object:
    name = meta["key"]["kernel"]
    assert name in KERNELS, f"a published run of an unknown kernel {name!r}: add it to KERNELS"
    return importlib.import_module(KERNELS[name])


def test_every_published_run_is_whole_and_published_once():
    if not ENTRIES:
        pytest.skip("the store holds no runs yet")
    keys = set()
    for path in ENTRIES:
        meta = store.entry_metadata(path)  # unreadable, or no key: StoreError naming the file
        kernel = kernel_of(meta)
        condition = kernel.from_content(meta["key"]["condition"])
        assert store.content(condition) == meta["key"]["condition"], f"{path}: its condition does not rebuild"
        store.check_entry(path, kernel, condition, None)  # provenance, its place, its numbers
        run = (meta["key"]["kernel"], meta["key"]["numerics"], str(meta["key"]["condition"]), meta["key"]["data"],
               meta["key"]["seed"])
        assert run not in keys, f"{path}: seed {meta['key']['seed']} of this protocol is published twice"
        keys.add(run)
        assert meta["provenance"]["seed"] == meta["key"]["seed"] and meta["key"]["seed"] in meta["provenance"]["group"]


def picked() -> list[Path]:
    """Entries to retrain on this CPU, chosen by the commit: every commit checks others, and a rerun checks the same.
    Only runs trained on a CPU: a GPU's dropout masks come from another generator (another sample of the same
    protocol), so a GPU session spot-checks its own (run this module with --device cuda there)."""
    cpu = [path for path in ENTRIES if store.entry_metadata(path)["provenance"]["device_kind"] == "cpu"]
    return random.Random(git_commit(Path(__file__).parent).removesuffix("+dirty")).sample(cpu, min(CHECKED, len(cpu)))


@pytest.mark.slow  # a resnet-10 epoch on one core: CI runs it in its step of slow system checks
@pytest.mark.parametrize("index", range(CHECKED))
def test_a_published_runs_first_epoch_trains_again_to_its_numbers(index, settings, one_thread):
    if index >= len(picked()):
        pytest.skip("the store holds fewer CPU runs than the spot check retrains")
    path = picked()[index]
    meta = store.entry_metadata(path)
    kernel = kernel_of(meta)
    condition = kernel.from_content(meta["key"]["condition"])
    frame, _ = store.check_entry(path, kernel, condition, None)
    data = load_data(kernel, meta, settings)
    first = kernel.first_epoch(condition, meta["provenance"]["group"], data)
    ours = first[first.seed == meta["key"]["seed"]].reset_index(drop=True)
    theirs = frame[frame.epoch == frame.epoch.min()].reset_index(drop=True)
    here = provenance("cpu")
    exact = meta["provenance"]["arithmetic"] == here["arithmetic"]
    assert not store.differences(ours, theirs, exact=exact), (
        f"{path}: its first epoch retrained on {here['arithmetic']} is not the published run's "
        f"({meta['provenance']['arithmetic']}): {store.differences(ours, theirs, exact=exact)}; if the code's numbers "
        "changed on purpose, bump the kernel's NUMERICS")


def load_data(kernel, meta: dict, settings):  # noqa: ANN001, ANN201
    """The data set the entry trained on, found through --data-dir / RESCLAIMS_DATA (skips when it is not there)."""
    from resclaims.datasets import DataUnavailable

    try:
        data = kernel.load_data(settings.data_dir)
    except DataUnavailable as error:
        pytest.skip(str(error))
    assert data.checksum == meta["key"]["data"], f"the entry trained on data {meta['key']['data']}, not {data.checksum}"
    torch.set_num_threads(1)
    return data
