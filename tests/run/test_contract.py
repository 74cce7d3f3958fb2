"""The kernel contract (resclaims.run.contract): a protocol, kernel or frame that breaks it stops in one line before
anything (more) trains or is cached; a diverged run is marked, left out of every claim and counted per arm.

Tiny fake kernels only: a module made in the test, registered in sys.modules under its name (as an engine worker
would import it), whose ``train`` writes a few rows.
"""

from __future__ import annotations

import json
import sys
import types
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
import torch

from resclaims.decide.claims import finite_rows
from resclaims.families.zero_identity import censored_crossings, mean_crossing
from resclaims.plugin.settings import Settings
from resclaims.report.report import Report
from resclaims.run.cache import RunCache
from resclaims.run.contract import ContractError, kernel_of
from resclaims.run.runs import Runs


@dataclass(frozen=True)
class Fake:
    """A fake protocol: ``rows(seed, arm)`` gives a run's losses; several arms are several conditions."""

    arms: tuple[str, ...] = ("a",)
    epochs: int = 3
    kernel: ClassVar[str] = "fake_kernel"

    def conditions(self) -> list[Fake]:
        return [Fake((arm,), self.epochs) for arm in self.arms]

    def select(self, conditions) -> Fake:
        return Fake(tuple(arm for c in conditions for arm in c.arms), self.epochs)


def fake_kernel(monkeypatch, frame_of, name: str = "fake_kernel") -> list[tuple[str, ...]]:
    """Register a kernel module whose frame for one arm at ``seeds`` is ``frame_of(arm, seeds)``; it hands each arm
    over as it finishes. Returns the arms it trained, in order."""
    trained = []

    def train(protocol, seeds, device, *, data=None, on_epoch=None, on_condition=None, checkpoints=None):
        frames = []
        for arm in protocol.arms:
            trained.append(arm)
            frames.append(frame_of(arm, list(seeds)))
            if on_condition is not None:
                on_condition(Fake((arm,), protocol.epochs), frames[-1])
        return pd.concat(frames, ignore_index=True)

    module = types.ModuleType(name)
    module.train, module.VERSION = train, "fake"  # the cache's version of a kernel without source
    monkeypatch.setitem(sys.modules, name, module)
    return trained


def losses(arm: str, seeds: list[int], *, nan_at: dict[int, int] | None = None, diverged: bool | None = None,
           drop: tuple[str, ...] = ()) -> pd.DataFrame:
    """Three epochs of a falling loss per seed; ``nan_at``: seed -> the epoch its loss turns NaN from."""
    rows = [{"seed": seed, "arm": arm, "epoch": epoch, "loss": 1.0 / (epoch + 1 + seed % 7) + (arm == "b"),
             "acc": 0.1 * epoch} for seed in seeds for epoch in range(3)]
    frame = pd.DataFrame(rows)
    for seed, epoch in (nan_at or {}).items():
        frame.loc[(frame.seed == seed) & (frame.epoch >= epoch), "loss"] = np.nan
    if diverged is not None:
        frame["diverged"] = diverged
    return frame.drop(columns=list(drop))


def runs_in(tmp_path) -> tuple[Runs, RunCache, Report]:
    settings = Settings(tier="quick", device=torch.device("cpu"), base_seed=1, seeds=None, data_dir=None,
                        report_dir=tmp_path / "report")
    cache, report = RunCache(tmp_path / "runs"), Report(tmp_path / "report", tier="quick", device="cpu", base_seed=1)

    class Quiet:
        def track(self, *args):
            import contextlib

            return contextlib.nullcontext(lambda epoch: None)

    return Runs(settings, cache, Quiet(), report), cache, report


def cached(tmp_path) -> list:
    return sorted((tmp_path / "runs").rglob("*.parquet"))


# -- protocols and kernels: checked before anything trains -------------------------------------
@dataclass(frozen=True)
class NoKernel:
    epochs: int = 3


@dataclass(frozen=True)
class Elsewhere:
    epochs: int = 3
    kernel: ClassVar[str] = "benchmarks_only.kernel"


@dataclass(frozen=True)
class NoEpochs:
    kernel: ClassVar[str] = "fake_kernel"


@dataclass(frozen=True)
class HalfConditions:
    epochs: int = 3
    kernel: ClassVar[str] = "fake_kernel"

    def conditions(self):
        return [self]


@pytest.mark.parametrize("protocol, says", [
    (NoKernel(), "NoKernel names no kernel: give it a class attribute kernel = 'package.module'"),
    (Elsewhere(), "Elsewhere: its kernel 'benchmarks_only.kernel' cannot be imported (No module named "
                  "'benchmarks_only'); a kernel must be a module that every engine worker imports by that name"),
    (NoEpochs(), "NoEpochs has no epochs and its kernel fake_kernel no progress_total(protocol, n_seeds)"),
    (HalfConditions(), "HalfConditions has conditions() but no select(): a protocol with several conditions needs"),
], ids=["no kernel", "not importable", "no progress", "conditions without select"])
def test_a_protocol_that_breaks_the_contract_stops_in_one_line_before_anything_trains(tmp_path, monkeypatch,
                                                                                      protocol, says):
    trained = fake_kernel(monkeypatch, losses)
    runs, cache, _ = runs_in(tmp_path)
    with pytest.raises(ContractError) as error:
        runs(protocol, 2, family="U")
    assert str(error.value).startswith(says) and "\n" not in str(error.value)
    assert trained == [] and cache.trained == 0 and not cached(tmp_path)


def test_a_kernel_without_train_is_refused_by_name(monkeypatch):
    monkeypatch.setitem(sys.modules, "fake_kernel", types.ModuleType("fake_kernel"))
    with pytest.raises(ContractError, match=r"^kernel fake_kernel has no train\(protocol, seeds, device"):
        kernel_of(Fake())


# -- frames: checked as the kernel hands each over, before it is cached ----------------------
def test_a_frame_without_seed_stops_at_the_first_frame_and_nothing_is_cached(tmp_path, monkeypatch):
    trained = fake_kernel(monkeypatch, lambda arm, seeds: losses(arm, seeds, drop=("seed",)))
    runs, _, _ = runs_in(tmp_path)
    with pytest.raises(ContractError, match="^kernel fake_kernel, Fake: its frame has no seed column "
                                            r"\(every row names the seed of its run\); it has arm, epoch, loss, acc$"):
        runs(Fake(("a", "b")), 2, family="U")
    assert trained == ["a"] and not cached(tmp_path)  # arm b never trained


def test_a_frame_without_the_column_a_claim_reads_stops_before_the_next_condition_trains(tmp_path, monkeypatch):
    trained = fake_kernel(monkeypatch, lambda arm, seeds: losses(arm, seeds, drop=("loss",)))
    runs, cache, _ = runs_in(tmp_path)
    with pytest.raises(ContractError, match="its frame has no loss column \\(which the claim reads\\); it has seed"):
        runs(Fake(("a", "b")), 2, family="U", columns=("epoch", "loss"))
    assert trained == ["a"] and not cached(tmp_path)
    runs(Fake(("a", "b")), 2, family="U")  # a claim that reads no loss: trained and cached
    with pytest.raises(ContractError, match="no loss column"):  # ... and a later one that does, from the cache
        runs(Fake(("a", "b")), 2, family="U", columns=("loss",))
    assert cache.trained == 4 and cache.reused == 4


def test_a_frame_of_several_conditions_needs_arm(tmp_path, monkeypatch):
    fake_kernel(monkeypatch, lambda arm, seeds: losses(arm, seeds, drop=("arm",)))
    runs, _, _ = runs_in(tmp_path)
    with pytest.raises(ContractError, match="its frame has no arm column \\(the frames of several conditions"):
        runs(Fake(("a", "b")), 2, family="U")


@pytest.mark.parametrize("spoil, says", [
    (lambda f: f.assign(diverged=False, loss=f.loss.where(f.epoch < 2)), "loss is nan in run seed"),
    (lambda f: f.assign(acc=f.acc.where(f.epoch < 2, np.inf)), "acc is inf in run seed"),
], ids=["NaN loss, diverged False", "inf accuracy"])
def test_nan_or_inf_outside_a_diverged_run_is_refused(tmp_path, monkeypatch, spoil, says):
    fake_kernel(monkeypatch, lambda arm, seeds: spoil(losses(arm, seeds)))
    runs, _, _ = runs_in(tmp_path)
    with pytest.raises(ContractError, match=f"{says} .*, arm a, in a run not marked diverged: mark a diverged run "
                                            "with diverged=True on its rows"):
        runs(Fake(), 2, family="U")
    assert not cached(tmp_path)


def test_nan_where_a_value_is_not_recorded_is_no_break(tmp_path, monkeypatch):
    """membrane's final state sits on a run's last row, NaN on the others; 003's validation split is NaN throughout."""
    fake_kernel(monkeypatch, lambda arm, seeds: losses(arm, seeds).assign(
        final=lambda f: np.where(f.epoch == 2, 1.0, np.nan), val_loss=np.nan))
    runs, _, _ = runs_in(tmp_path)
    assert len(runs(Fake(), 2, family="U")) == 6


# -- diverged runs: marked at one place, left out, counted per arm -----------------------------
def test_a_kernel_without_a_diverged_column_is_marked_from_its_loss(tmp_path, monkeypatch):
    """Its NaN run gets diverged=True and no value left (epoch 0's finite loss included), so no statistic counts it;
    the report counts it under its arm."""
    seeds = Settings(tier="quick", device=torch.device("cpu"), base_seed=1, seeds=None, data_dir=None,
                     report_dir=tmp_path).run_seeds("U", 3)
    fake_kernel(monkeypatch, lambda arm, s: losses(arm, s, nan_at={seeds[1]: 1} if arm == "b" else {}))
    runs, cache, report = runs_in(tmp_path)
    frame = runs(Fake(("a", "b")), 3, family="U")
    gone = frame[frame.diverged]
    assert set(zip(gone.arm, gone.seed)) == {("b", seeds[1])} and gone[["loss", "acc"]].isna().all().all()
    assert frame[~frame.diverged][["loss", "acc"]].notna().all().all()
    assert report.run_counts == {"U": {"runs": 6, "diverged": 1, "diverged_by_arm": {"b": 1}}}
    entry = pd.read_parquet(cached(tmp_path)[0])
    assert "diverged" not in entry  # the cache holds the kernel's frame as it was handed over


def test_a_diverged_run_is_never_a_censored_success():
    """censored_crossings counted a run whose loss turned NaN as one that reached the budget: now NaN, which judge
    leaves out and counts; a run that crossed before it diverged is left out too."""
    curves = np.array([[1.0, 0.5, 0.005, 0.001],  # crosses 0.01
                       [1.0, 0.5, 0.2, 0.1],  # never: censored at the budget, 4
                       [1.0, np.nan, np.nan, np.nan],  # diverged before crossing
                       [1.0, 0.005, np.inf, np.nan]])  # crossed, then diverged
    epochs = censored_crossings(curves, 0.01)
    assert epochs[1] == 4 and np.isnan(epochs[2:]).all() and 1 < epochs[0] < 2
    (kept,), dropped = finite_rows(epochs)
    assert dropped == 2 and len(kept) == 2
    assert np.isnan(mean_crossing(curves.mean(axis=0), 0.01, 4))  # a diverged run in the mean curve
    assert mean_crossing(curves[:2].mean(axis=0), 0.01, 4) == 4  # without it: censored at the budget


FAKE_KERNEL = '''
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Fake:
    arm: str
    drop: str = ""
    epochs: int = 4
    kernel: ClassVar[str] = "{name}"


def train(protocol, seeds, device, *, data=None, on_epoch=None, on_condition=None, checkpoints=None):
    rows = [{{"seed": s, "arm": protocol.arm, "epoch": e, "acc": e / 10,
              "loss": np.nan if protocol.arm == "slow" and s == seeds[2] and e >= 2 else
              (1.0 if protocol.arm == "slow" else 0.5) / (e + 1) + (s % 5) / 100}}
            for s in seeds for e in range(protocol.epochs)]
    return pd.DataFrame(rows).drop(columns=[protocol.drop] if protocol.drop else [])
'''
CLAIM = '''
import pytest
from resclaims.decide import procedures
from resclaims.decide.claims import Claim
from resclaims.run.tiers import Tier
TIERS = Tier.everywhere(seeds=5, fidelity="source protocol", protocol="toy")
from resclaims.families.zero_identity import censored_crossings
from {name} import Fake

U1 = Claim("U1", source="mine", claim="fast reaches 0.2 sooner than slow", statistic="epochs, slow - fast",
           procedure=procedures.exceeds_paired())


@pytest.mark.quick
def test_U1(runs, judge):
    epochs = {{}}
    for arm in ("slow", "fast"):
        frame = runs(Fake(arm, drop="{drop}"), 12, seed_name="U1", family="U", columns=("epoch", "loss"))
        epochs[arm] = censored_crossings(frame.pivot(index="seed", columns="epoch", values="loss").to_numpy(), 0.2)
    judge(U1, epochs["slow"], epochs["fast"], protocol="fake")
'''


def session(pytester, monkeypatch, tmp_path, name: str, drop: str = ""):
    monkeypatch.setenv("RESCLAIMS_CACHE", str(tmp_path / "cache"))
    pytester.makepyfile(**{name: FAKE_KERNEL.format(name=name),
                           "test_fake_claim": CLAIM.format(name=name, drop=drop)})
    pytester.syspathinsert()
    return pytester.runpytest("-p", "resclaims.plugin", "-p", "no:cacheprovider", "--report-dir", "r",
                              "--baseline", "none")


@pytest.mark.usefixtures("validation_tables")
def test_in_a_session_a_diverged_run_is_left_out_of_the_claim_and_counted_per_arm(pytester, monkeypatch, tmp_path):
    result = session(pytester, monkeypatch, tmp_path, "fake_session_kernel")
    result.assert_outcomes(passed=1)
    document = json.loads((pytester.path / "r" / "summary.json").read_text())
    (claim,) = document["claims"]
    assert claim["n"] == 11 and claim["details"]["diverged_pairs_excluded"] == 1
    assert document["runs"] == {"U": {"runs": 24, "diverged": 1, "diverged_by_arm": {"slow": 1}}}
    assert "| U | 24 | 1 | slow: 1 |" in (pytester.path / "r" / "summary.md").read_text()


@pytest.mark.usefixtures("validation_tables")
def test_in_a_session_a_missing_column_is_one_line_not_a_pandas_traceback(pytester, monkeypatch, tmp_path):
    result = session(pytester, monkeypatch, tmp_path, "fake_broken_kernel", drop="loss")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert ("kernel contract: kernel fake_broken_kernel, Fake: its frame has no loss column (which the claim "
            "reads); it has seed, arm, epoch, acc") in out.splitlines()
    assert "Traceback" not in out and "KeyError" not in out
    assert not list((tmp_path / "cache").rglob("*.parquet"))  # nothing cached


def test_an_engine_job_reports_only_the_seeds_it_trained_under_the_kernels_device_kind(monkeypatch, tmp_path):
    """execute looked for the job's runs under the device's type, not the kernel's device kind (CIFAR's on a GPU:
    "cuda, captured steps"), so a fill named every seed of a job trained, cached ones too."""
    from resclaims.run.engines import execute, make_job

    fake_kernel(monkeypatch, losses)
    sys.modules["fake_kernel"].device_kind = lambda device: f"{device.type}, special steps"
    execute(make_job(Fake(), [1, 2], device="cpu", cache_dir=tmp_path))
    result = execute(make_job(Fake(), [1, 2, 3], device="cpu", cache_dir=tmp_path))
    assert (result["trained"], result["reused"], result["trained_seeds"]) == (1, 2, [3])
