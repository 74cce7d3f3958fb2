"""The run cache as a safe contract between training and verdicts (issue 13, point 4).

Entries are Parquet (no pickle), come back exactly as trained, record their
wall time and device; an unreadable entry is reported, removed and trained
again; two processes filling the same cache train each run once.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from resclaims.kernels.zero_identity import ZeroIdentityProtocol
from resclaims.plugin.settings import Settings
from resclaims.report.report import Report
from resclaims.run.cache import RunCache, entry_info
from resclaims.run.runs import Runs

TINY = ZeroIdentityProtocol(n_samples=10, epochs=2)
KERNEL = sys.modules[__name__]  # a module as the kernel: its source is the version


def awkward(seeds):
    """A frame with the columns trained frames have: strings, bools, NaN-heavy floats, an all-NaN and a None one."""
    rows = []
    for seed in seeds:
        for epoch in range(3):
            rows.append({"seed": seed, "arm": f"arm-{epoch % 2}", "epoch": epoch, "diverged": epoch == 2,
                         "loss": 1.0 / (seed + epoch + 1), "final.w": np.nan if epoch < 2 else -0.0,
                         "gone": np.nan, "note": None if epoch else "first"})  # fmt: skip
    return pd.DataFrame(rows)


class Quiet:
    """A progress stub; ``pause`` seconds inside each training (so that two processes overlap)."""

    def __init__(self, pause: float = 0.0) -> None:
        self.pause = pause

    @contextlib.contextmanager
    def track(self, *args):
        import time

        time.sleep(self.pause)
        yield lambda epoch: None


def z_runs(folder, pause: float = 0.0) -> tuple[Runs, RunCache]:
    settings = Settings(tier="quick", device=torch.device("cpu"), base_seed=1, seeds=None, data_dir=None,
                        report_dir=folder / "report")
    cache = RunCache(folder / "runs")
    report = Report(folder / "report", tier="quick", device="cpu", base_seed=1)
    return Runs(settings, cache, Quiet(pause), report), cache


def entries(folder):
    return sorted(p for p in folder.rglob("*.parquet"))


def test_entries_are_parquet_and_come_back_exactly_as_trained(tmp_path):
    cache = RunCache(tmp_path)
    trained = cache.runs(KERNEL, awkward, [3, 1, 2], device_kind="cpu")
    pd.testing.assert_frame_equal(trained, awkward([3, 1, 2]), check_exact=True)
    read = cache.runs(KERNEL, awkward, [3, 1, 2], device_kind="cpu")
    assert (cache.trained, cache.reused) == (3, 3)
    pd.testing.assert_frame_equal(read, trained, check_exact=True)
    files = entries(tmp_path)
    assert len(files) == 3 and all(f.read_bytes()[:4] == b"PAR1" for f in files)
    assert not list(tmp_path.rglob("*.pkl"))


def test_z_frames_come_back_exactly_and_old_pickles_are_ignored(tmp_path):
    runs, cache = z_runs(tmp_path)
    trained = runs(TINY, 3, family="Z")
    for entry in entries(tmp_path / "runs"):  # what the cache held before: a pickle, never read
        pd.to_pickle(pd.DataFrame({"seed": [0]}), entry.with_suffix(".pkl"))
    read = runs(TINY, 3, family="Z")
    assert (cache.trained, cache.reused) == (3, 3)
    pd.testing.assert_frame_equal(read, trained, check_exact=True)


def test_each_entry_records_its_wall_time_and_device(tmp_path):
    cache = RunCache(tmp_path)
    cache.runs(KERNEL, awkward, [1, 2], device_kind="cpu")
    infos = [entry_info(path) for path in entries(tmp_path)]
    assert sorted(info["seed"] for info in infos) == [1, 2]
    for info in infos:
        assert info["wall_seconds"] >= 0 and info["seeds_in_batch"] == 2
        assert info["device_kind"] == "cpu" and isinstance(info["device_name"], str) and info["device_name"]
        assert "written" in info


@pytest.mark.parametrize("damage", ["random bytes", "cut in half", "another seed's rows"])
def test_an_unreadable_entry_is_reported_removed_and_trained_again(tmp_path, damage):
    cache = RunCache(tmp_path)
    first = cache.runs(KERNEL, awkward, [1, 2], device_kind="cpu")
    bad, other = entries(tmp_path)
    if damage == "random bytes":
        bad.write_bytes(np.random.default_rng(0).bytes(500))
    elif damage == "cut in half":
        bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    else:
        bad.write_bytes(other.read_bytes())
    with pytest.warns(RuntimeWarning) as caught:
        again = cache.runs(KERNEL, awkward, [1, 2], device_kind="cpu")
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and str(bad) in messages[0] and "trained again" in messages[0], messages
    assert "\n" not in messages[0]
    assert (cache.trained, cache.reused) == (3, 1)  # the damaged run trained again, the other read
    pd.testing.assert_frame_equal(again, first, check_exact=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cache.runs(KERNEL, awkward, [1, 2], device_kind="cpu")  # the entry was replaced by a good one
    assert cache.trained == 3


@pytest.mark.parametrize("values", [[(1, 2)], [1, "a"]], ids=["tuples come back as arrays", "mixed types"])
def test_a_frame_that_would_not_come_back_exactly_is_refused(tmp_path, values):
    cache = RunCache(tmp_path)
    with pytest.raises(TypeError, match="Parquet"):
        cache.runs(KERNEL, lambda seeds: pd.DataFrame({"seed": [1] * len(values), "x": values}), [1], device_kind="cpu")
    assert not list(tmp_path.rglob("*.parquet*"))


def fill(folder, barrier, results) -> None:
    """One process: wait for the other, then fill the Z runs (training pauses, so that the two overlap)."""
    torch.set_num_threads(1)
    runs, cache = z_runs(folder, pause=2.0)
    barrier.wait()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = runs(TINY, 4, family="Z")
    waited = any("waiting for another session" in str(w.message) for w in caught)
    results.put((cache.trained, cache.reused, frame, waited))


def test_two_processes_filling_one_cache_train_each_run_once(tmp_path):
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    workers = [context.Process(target=fill, args=(tmp_path, barrier, results)) for _ in range(2)]
    for worker in workers:
        worker.start()
    got = [results.get(timeout=300) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert sum(trained for trained, *_ in got) == 4  # every seed trained once, by one of the two
    assert sorted(trained for trained, *_ in got) == [0, 4]  # the second found them all, once it held the lock
    assert sorted(waited for *_, waited in got) in ([False, True], [False, False])  # at most one waited (on a
    # loaded machine the second may even start after the first has finished: then it waited for nothing)
    pd.testing.assert_frame_equal(got[0][2], got[1][2], check_exact=True)
    assert len(entries(tmp_path / "runs")) == 4
