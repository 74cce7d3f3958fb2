"""The published run store (issue 23): content keys, provenance, entries never used when broken, the cache reading
the store, publishing fills (two at once), the fill's order and budget, and a session that trains nothing."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
import types
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_engines import ROOT  # noqa: F401 - the project root

from resclaims.datasets.cifar10 import JPEG_COPY_SHA256
from resclaims.kernels import cifar
from resclaims.kernels.cifar import kernel as cifar_kernel
from resclaims.plugin.fill import Budget, parse_budget
from resclaims.plugin.costs import Need, Plan
from resclaims.run import store
from resclaims.run.cache import RunCache
from resclaims.run.engines import EngineError
from resclaims.run.provenance import provenance
from resclaims.run.store import RunStore, StoreError


# -- a kernel that declares what the store keys by -----------------------------------------------------------------
@dataclass(frozen=True)
class Toy:
    name: str
    epochs: int = 3
    kernel: ClassVar[str] = "toy_store_kernel"


toy = types.ModuleType("toy_store_kernel")
toy.NAME, toy.NUMERICS, toy.VERSION = "toy", 1, "1"
toy.validate = lambda condition, frame: (None if frame["acc"].between(0, 1).all() else "acc outside [0, 1]")
toy.train = lambda protocol, seeds, device, **hooks: pd.concat([toy_frame(protocol.name, s) for s in seeds])
sys.modules[toy.__name__] = toy


def toy_frame(name: str, seed: int, epochs: int = 3) -> pd.DataFrame:
    acc = np.random.default_rng(seed).uniform(size=epochs)
    return pd.DataFrame({"arm": name, "seed": seed, "epoch": np.arange(1, epochs + 1), "acc": acc})


def publish(where: RunStore, name: str, seed: int) -> Path:
    info = {**provenance("cpu"), "wall_seconds": 1.0, "seeds_in_batch": 1, "group": [seed], "condition": name}
    return where.publish(toy, Toy(name), seed, "data", toy_frame(name, seed), info)


# -- keys --------------------------------------------------------------------------------------------------------
K1_KEYS = {  # the published runs of K1's pair at its first seed: a refactor must keep them (numerics version 1)
    "resnet-10": "be027908da783becdd0881d071890dfd50d727b6af15b1b4670d01c4446fc41a",
    "plain-10": "be80698684b4fbfdd10498891562b4f67d56470dfe52ac09431245cb8a33711d",
}


def k1_key(arm: cifar.Arm) -> dict:
    from resclaims.run.seeding import DEFAULT_BASE_SEED, derive_seeds

    seed = derive_seeds(DEFAULT_BASE_SEED, "K", 1)[0]
    return store.key(cifar_kernel, cifar.CifarRuns(cifar.K_TIERS["full"].config.train, (arm,)), seed, JPEG_COPY_SHA256)


def test_keys_hold_content_not_code():
    """No module path, class name or source hash in a key; the K1 pair's keys are the ones its runs were published
    under (moving or editing the code must not change them; a change to the numbers bumps NUMERICS instead)."""
    for arm in cifar.keras_arms([10]):
        text = json.dumps(k1_key(arm))
        assert "resclaims" not in text and "Keras003" not in text and "partial" not in text
        assert store.digest(k1_key(arm)) == K1_KEYS[arm.name], arm.name


def test_a_cifar_condition_comes_back_from_its_content():
    for train, arms in ((cifar.K_TIERS["full"].config.train, cifar.keras_arms([5, 10, 20], suffix="-images")),
                        (cifar.HE2015, cifar.he_arms([20, 110], residual=False))):
        for arm in arms:
            condition = cifar.CifarRuns(train, (arm,))
            again = cifar_kernel.from_content(store.content(condition))
            assert store.content(again) == store.content(condition)
            assert type(again.arms[0].build()) is type(arm.build())  # noqa: E721


def test_content_refuses_what_has_no_content():
    with pytest.raises(TypeError, match="no content"):
        store.content(lambda: 1)


# -- publishing and reading ------------------------------------------------------------------------------------------
def test_a_published_run_reads_back_exactly_with_its_provenance(tmp_path):
    where = RunStore(tmp_path)
    path = publish(where, "a", 3)
    frame, prov = where.read(toy, Toy("a"), 3, "data", provenance=True)
    pd.testing.assert_frame_equal(frame, toy_frame("a", 3), check_exact=True)
    assert set(store.PROVENANCE) <= set(prov) and prov["group"] == [3]
    assert path.parent.parent.name == "toy" and not list(tmp_path.rglob(".*.parquet.*"))  # no temporary left
    assert where.read(toy, Toy("a"), 4, "data") is None and where.read(toy, Toy("b"), 3, "data") is None


def test_a_usable_entry_is_never_replaced(tmp_path):
    where = RunStore(tmp_path)
    path = publish(where, "a", 3)
    before = path.read_bytes()
    assert publish(where, "a", 3) is None and path.read_bytes() == before


def test_what_cannot_be_published_is_refused(tmp_path):
    where = RunStore(tmp_path)
    with pytest.raises(StoreError, match="lacks provenance"):
        where.publish(toy, Toy("a"), 1, "data", toy_frame("a", 1), {"condition": "a"})
    bad = toy_frame("a", 1).assign(acc=1.5)
    with pytest.raises(StoreError, match="acc outside"):
        where.publish(toy, Toy("a"), 1, "data", bad, {**provenance("cpu"), "wall_seconds": 1.0, "seeds_in_batch": 1,
                                                      "group": [1], "condition": "a"})
    assert not list(tmp_path.rglob("*.parquet"))


def _random_bytes(path: Path, other: Path) -> None:
    path.write_bytes(os.urandom(300))


def _truncated(path: Path, other: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _no_provenance(path: Path, other: Path) -> None:
    pq.write_table(pa.Table.from_pandas(toy_frame("a", 3)), path)


def _swapped(path: Path, other: Path) -> None:
    shutil.copyfile(other, path)  # a valid entry of another run, in this run's place


def _impossible(path: Path, other: Path) -> None:
    table = pq.read_table(path)
    frame = table.to_pandas().assign(acc=2.0)
    pq.write_table(pa.Table.from_pandas(frame).replace_schema_metadata(table.schema.metadata), path)


@pytest.mark.parametrize("damage, says", [(_random_bytes, "is unreadable"), (_truncated, "is unreadable"),
                                          (_no_provenance, "has no key or provenance"),
                                          (_swapped, "holds another run than its place says"),
                                          (_impossible, "acc outside [0, 1]")])
def test_a_broken_entry_is_reported_in_one_line_and_trained_as_if_absent(tmp_path, damage, says):
    where = RunStore(tmp_path / "store")
    path, other = publish(where, "a", 3), publish(where, "a", 4)
    damage(path, other)
    trained = []

    def train(todo, missing, keep):
        trained.extend(missing)
        for condition in todo:
            keep(condition, toy_frame(condition.name, missing[0]))

    with pytest.warns(RuntimeWarning) as caught:
        frame = RunCache(tmp_path / "cache", where).runs_per_condition(toy, train, [Toy("a")], [3], device_kind="cpu",
                                                                        data="data")
    messages = [str(w.message) for w in caught if "run store" in str(w.message)]
    assert len(messages) == 1 and str(path) in messages[0] and says in messages[0], messages
    assert "\n" not in messages[0] and trained == [3]
    pd.testing.assert_frame_equal(frame, toy_frame("a", 3), check_exact=True)


def test_the_cache_reads_published_runs_and_no_store_trains_them(tmp_path):
    where = RunStore(tmp_path / "store")
    publish(where, "a", 3)
    trained = []

    def train(todo, missing, keep):
        trained.extend((c.name, s) for c in todo for s in missing)
        for condition in todo:
            keep(condition, pd.concat([toy_frame(condition.name, s) for s in missing], ignore_index=True))

    cache = RunCache(tmp_path / "cache", where)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frame = cache.runs_per_condition(toy, train, [Toy("a"), Toy("b")], [3], device_kind="cpu", data="data")
    assert trained == [("b", 3)] and len(cache.from_store) == 1 and cache.trained == 1
    assert cache.missing(toy, [Toy("a"), Toy("b"), Toy("c")], [3, 4], device_kind="cpu", data="data") == [[4], [4], [3, 4]]
    pd.testing.assert_frame_equal(frame.iloc[:3].reset_index(drop=True), toy_frame("a", 3), check_exact=True)
    unread = RunCache(tmp_path / "cache2")  # --no-store
    unread.runs_per_condition(toy, train, [Toy("a")], [3], device_kind="cpu", data="data")
    assert trained[-1] == ("a", 3) and not unread.from_store


def test_a_publishing_cache_publishes_what_it_trains_with_its_group(tmp_path):
    where = RunStore(tmp_path / "store")

    def train(todo, missing, keep):
        for condition in todo:
            keep(condition, pd.concat([toy_frame(condition.name, s) for s in missing], ignore_index=True))

    RunCache(tmp_path / "cache", where, publish=True).runs_per_condition(
        toy, train, [Toy("a")], [5, 6], device_kind="cpu", data="data", describe=lambda c: {"condition": c.name})
    for seed in (5, 6):
        frame, prov = where.read(toy, Toy("a"), seed, "data", provenance=True)
        pd.testing.assert_frame_equal(frame, toy_frame("a", seed), check_exact=True)
        assert prov["group"] == [5, 6] and prov["seeds_in_batch"] == 2 and prov["threads"] >= 1


def test_a_retrained_run_differs_from_its_published_rows_when_a_number_does():
    published = toy_frame("a", 3).assign(test_loss=[2.0, 1.5, 1.2], test_acc=[0.1, 0.2, 0.3])
    assert store.differences(published.copy(), published, exact=True) == []
    nudged = published.assign(test_acc=published.test_acc + [0, 1e-9, 0])
    assert store.differences(nudged, published, exact=True) == ["test_acc: [0.200000001] retrained, [0.2] published"]
    assert store.differences(nudged, published, exact=False) == []  # other arithmetic: within the tolerance
    assert store.differences(published.assign(test_acc=published.test_acc + 0.05), published, exact=False)
    assert store.differences(published.assign(test_loss=published.test_loss * 1.05), published, exact=False)
    assert store.differences(published.assign(epoch=published.epoch + 1), published, exact=False)
    assert store.differences(published.iloc[:2], published, exact=True)


def _train_seed(directory: Path, seed: int, log: Path) -> None:
    def train(todo, missing, keep):
        started = time.monotonic()
        time.sleep(1.0)
        with log.open("a") as out:
            out.write(f"{seed} {started} {time.monotonic()}\n")
        for condition in todo:
            keep(condition, toy_frame(condition.name, missing[0]))

    RunCache(directory).runs_per_condition(toy, train, [Toy("a")], [seed], device_kind="cpu", data="data")


def test_two_workers_fill_one_condition_at_once(tmp_path):
    """One lock per run, not per condition: two processes training other seeds of one arm overlap in time."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_train_seed, args=(tmp_path / "cache", seed, tmp_path / "log")) for seed in (1, 2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    (_, a0, a1), (_, b0, b1) = (map(float, line.split()) for line in (tmp_path / "log").read_text().splitlines())
    assert max(a0, b0) < min(a1, b1), "the two seeds trained one after the other"


# -- fills -----------------------------------------------------------------------------------------------------
def test_a_fill_trains_a_request_seed_by_seed():
    seeds = (1, 2, 3)
    needs = [Need("K", "K", "toy_store_kernel", Toy(n), seeds, seeds[1:] if n == "b" else seeds, 3, "cpu", None,
                  request=0) for n in ("a", "b")]
    needs.append(Need("K", "K3", "toy_store_kernel", Toy("c"), seeds, seeds, 3, "cpu", None, request=1))
    jobs = Plan(needs, {}, Path("cache"), "full", "cpu").jobs(1)
    assert [(j.protocol.name, j.seeds[0]) for j in jobs] == [("a", 1), ("a", 2), ("b", 2), ("a", 3), ("b", 3),
                                                               ("c", 1), ("c", 2), ("c", 3)]


class _Plan:
    def __init__(self, seconds_per_run: float) -> None:
        self.missing = [Need("K", "K", "toy_store_kernel", Toy("a"), (1, 2), (1, 2), 3, "cpu", None)]
        self.per_run = seconds_per_run

    def seconds(self, need: Need) -> float:
        return self.per_run * len(need.missing)


def test_a_budget_starts_only_what_fits_and_refuses_one_that_cannot_hold_a_run():
    jobs = Plan(_Plan(1).missing, {}, Path("cache"), "full", "cpu").jobs(1)
    out = io.StringIO()
    assert [len(b) for b in Budget(time.monotonic() + 100).batches(jobs, _Plan(60.0), 1, 0, out)] == [1, 1]
    budget = Budget(time.monotonic() + 100)
    batches = budget.batches(jobs, _Plan(60.0), 1, 0, out)
    assert next(batches) == jobs[:1]
    budget.deadline -= 50  # the first run took longer than measured: the second no longer fits
    assert list(batches) == [] and budget.stopped
    assert "budget: stopping with 1 runs left; the next (a, seed 2) takes about 1 min at the measured rate" in out.getvalue()
    with pytest.raises(EngineError, match=r"cannot hold one run: the next \(a, seed 1\) takes about 2 min"):
        list(Budget(time.monotonic() + 60).batches(jobs, _Plan(120.0), 1, 0, out))


@pytest.mark.parametrize("text, seconds", [("150m", 9000), ("2.5h", 9000), ("90s", 90), ("3600", 3600)])
def test_budgets_read_as_durations(text, seconds):
    assert parse_budget(text) == seconds


@pytest.mark.parametrize("text", ["", "-5m", "abc", "0", "nanh"])
def test_a_bad_budget_is_one_line(text):
    with pytest.raises(EngineError, match="give a positive duration"):
        parse_budget(text)


def test_fill_says_a_bad_budget_in_one_line_before_anything(capsys):
    from resclaims.__main__ import main

    assert main(["fill", "--budget", "soon", "tests/run/test_store.py"]) == 4
    err = capsys.readouterr().err.strip()
    assert err == "resclaims: ERROR: --budget soon: give a positive duration, e.g. 150m, 2.5h or 5400 (seconds)"


TOY_KERNEL = '''
import os
import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

NAME, NUMERICS = "toy", 1


@dataclass(frozen=True)
class Toy:
    name: str
    epochs: int = 3
    kernel: ClassVar[str] = "toy_kernel"


def validate(condition, frame):
    return None


def train(protocol, seeds, device, *, data=None, on_epoch=None, on_condition=None, checkpoints=None):
    with open(os.environ["TOY_LOG"], "a") as log:
        log.write("".join(f"{protocol.name} {s}\\n" for s in seeds))
    time.sleep(0.3)
    return pd.DataFrame([{"seed": s, "epoch": e, "loss": float(np.random.default_rng(s).normal(size=3)[e])}
                         for s in seeds for e in range(3)])
'''
TOY_TESTS = '''
import pytest
from resclaims.decide.claims import Claim
from resclaims.run.tiers import Tier
TIERS = Tier.everywhere(seeds=5, fidelity="source protocol", protocol="toy")
from resclaims.decide import procedures
from toy_kernel import Toy

U1 = Claim("U1", source="toy", claim="toy", statistic="toy", procedure=procedures.exceeds_paired())


@pytest.mark.parametrize("name", ["a", "b", "c"])
def test_toy(runs, judge, name):
    frame = runs(Toy(name), 3, family="U")
    judge(U1, frame.loss.to_numpy()[:3], frame.loss.to_numpy()[3:6])
'''


def toy_project(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    project = tmp_path / "project"
    project.mkdir()
    (project / "conftest.py").write_text('pytest_plugins = ("resclaims.plugin", "resclaims.plugin.engine")\n')
    (project / "toy_kernel.py").write_text(TOY_KERNEL)
    (project / "test_toy.py").write_text(TOY_TESTS)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(project), str(ROOT)]), "CI": "1",
           "RESCLAIMS_STORE": str(tmp_path / "store"), "TOY_LOG": str(tmp_path / "trained.log")}
    return project, env


@pytest.mark.slow  # two fills at once, each a process with a worker: CI's slow step runs it
def test_two_publishing_fills_on_one_store_train_each_run_once(tmp_path):
    """Two fills at once, each with a cache of its own, one store: every run trained once, and published."""
    project, env = toy_project(tmp_path)
    fills = [subprocess.Popen([sys.executable, "-m", "resclaims", "fill", "--publish", "--workers", "1", "test_toy.py"],
                              cwd=project, env={**env, "RESCLAIMS_CACHE": str(tmp_path / f"cache{i}")},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
    outs = [f.communicate(timeout=300)[0] for f in fills]
    assert all(f.returncode == 0 for f in fills), outs
    trained = (tmp_path / "trained.log").read_text().splitlines()
    assert sorted(trained) == sorted(set(trained)) and len(trained) == 9, (trained, outs)
    assert len(list(RunStore(tmp_path / "store").entries())) == 9
    assert any("published" in line or "runs to train" in line for out in outs for line in out.splitlines())


def test_a_session_that_trains_nothing_reports_its_claims_incomplete(tmp_path):
    project, env = toy_project(tmp_path)
    env["RESCLAIMS_CACHE"] = str(tmp_path / "cache")
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--baseline", "none", "--no-train",
                           "--report-dir", str(tmp_path / "report"), "-rs"], cwd=project, env=env, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "incomplete: U: 3 of 3 runs missing (a x3), cost unknown" in done.stdout
    assert not (tmp_path / "trained.log").exists()
    document = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert document["incomplete"]["U1"]["missing"] == 3 and document["incomplete"]["U1"]["runs"] == 3
    assert "Incomplete: no verdict on partial data" in (tmp_path / "report" / "summary.md").read_text()


# -- the CIFAR kernel's side of the contract -------------------------------------------------------------------------
def test_cifar_frames_that_cannot_come_from_their_protocol_are_named(cifar_data, one_thread):
    config = cifar.TrainConfig(steps=4, log_every=2, test_size=20)
    arm = cifar.keras_arms([1], width=0.125)[0]
    frame = cifar.train(config, [arm], [7], cifar_data)
    condition = cifar.CifarRuns(config, (arm,))
    assert cifar_kernel.validate(condition, frame) is None
    assert "2 logged epochs" in cifar_kernel.validate(condition, frame.iloc[:1])
    assert "not an accuracy" in cifar_kernel.validate(condition, frame.assign(train_acc=1.01))
    assert "arm" in cifar_kernel.validate(cifar.CifarRuns(config, (cifar.keras_arms([2], 0.125)[0],)), frame)


def test_a_runs_first_epoch_is_the_first_epoch_of_its_whole_run(cifar_data, one_thread):
    """What the spot check rests on: training only the first logged epoch gives that epoch's row bit for bit."""
    arm = cifar.keras_arms([1], width=0.125)[0]
    whole = cifar.train(cifar.TrainConfig(steps=6, log_every=3, test_size=20), [arm], [7], cifar_data)
    first = cifar.train(cifar.TrainConfig(steps=3, log_every=3, test_size=20), [arm], [7], cifar_data)
    pd.testing.assert_frame_equal(first, whole.iloc[:1], check_exact=True)
