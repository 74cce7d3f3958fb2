"""Plan: which runs the selected claims need, which the cache holds, and what the rest will cost.

:func:`plan` runs pytest in this process on a selection (``-m``, ``-k``, ``--full``,
``--seeds``, paths, ...) with a :class:`Planner` plugged in. While it plans, the
``runs`` fixture trains nothing (:meth:`resclaims.runs.Runs.train`): it hands each
request to the planner, which records every condition's seeds and whether the
cache holds them; a request the cache holds in full gets its cached frame (so a
test that asks for more runs after it is still discovered), any other one skips its
test. Claims are not decided and benchmarks are not timed while planning. A test
may ask for several protocols in turn (the README's U1: one learning rate, then the
other): where the kernel can say what its frame looks like (``planned_frame(protocol,
seeds)``: the frame of those runs, every value NaN), a request the cache lacks gets
that frame instead of a skip, so the test goes on to its next requests and the plan
counts them all; its claims are skipped as always. A request that depends on runs
not yet trained is found on the next pass, which is why
:func:`resclaims.engines.fill.fill` plans again after each round of training.

The cost of what is missing comes from the cache's own measurements: each entry
records the wall time of the batch that trained it, its seeds and its steps
(:func:`resclaims.cache.entry_info`); a condition trained before is estimated
from its own time per seed, another from its kernel's time per seed-step on the
same kind of device. A CIFAR condition the cache has not measured itself, whose network
and recipe the suite's train-step benchmarks time (``test_T_keras003_train_step``,
``test_T_he_train_step``: the full tier's 10-block Keras nets, He's 20- and 56-layer
nets), is estimated from the committed baseline report's timing of that step
(``reports/baseline/summary.json``) times the condition's training steps (evaluation
left out), before its kernel's time per seed-step (which the quick tier's smaller nets
would set for the full tier's), and the line names the machine the steps were timed on.
Nothing else is guessed: a condition with none of these is counted as runs of unknown cost.

Reach: for every confirmatory claim of the selection, the plan gives the fewest runs at which its procedure can
say "supported" and "refuted" after Holm in its source's family (:func:`resclaims.procedures.reach` at alpha / m
and at alpha, :mod:`resclaims.multiplicity`) beside its planned n: the n its test hands the judge where the test
gets that far on held runs, else (a kernel's ``planned_frame`` of runs to train, whose NaN runs a test may leave
out, or a test stopped at its request) the most seeds of the requests its test or its fixtures made. A claim
whose n is below its reach for "supported" gets a warning line, the one its test would fail with
(:func:`resclaims.claims.below_reach`).
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import statistics
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from resclaims.cache import RunCache, measurements
from resclaims.claims import Claim, Judge, below_reach
from resclaims.engines import EngineError, FillJob, make_job
from resclaims.contract import Kernel, RunProtocol, conditions, device_kind, kernel_of
from resclaims.multiplicity import reach_levels
from resclaims.procedures import reach
from resclaims.runs import PLANNED, condition_name, data_key, steps
from resclaims.verdict import FULL_TIER_ONLY

PLANNING = "plan: "  # how the reasons of tests skipped by planning begin
INCOMPLETE = "incomplete: "  # how the reasons of tests skipped for lack of runs begin (--no-train)


@dataclass(frozen=True)
class Need:
    """One condition's runs that a claim asks for: its seeds, and those of them the cache lacks."""

    family: str
    label: str  # the seed name
    kernel: str
    condition: RunProtocol
    seeds: tuple[int, ...]
    missing: tuple[int, ...]
    steps: int
    device: str  # cpu | cuda: where its jobs train
    data_key: str | None
    device_kind: str = ""  # what the cache keys its runs by (resclaims.runs.device_kind): "cuda, graph steps", say
    published: int = 0  # of its seeds, those the published run store holds (resclaims.store)
    request: int = 0  # which request of the session asked for it: a fill trains requests in this order
    published_seeds: tuple[int, ...] = ()  # those seeds (a run two requests hold is counted once)

    @property
    def name(self) -> str:
        """The condition in a few words: its name, or its arms' names."""
        return condition_name(self.condition)

    @property
    def runs_of(self) -> tuple:
        """What tells its runs from another condition's: two requests of one condition share the runs of the seeds
        both ask for."""
        return self.kernel, repr(self.condition), self.data_key, self.device, self.device_kind


class Planner:
    """The pytest plugin that turns a session into a plan (see the module docstring)."""

    def __init__(self) -> None:
        self.needs: dict[tuple, Need] = {}
        self.data: dict[str | None, Any] = {}
        self.cache_dir: Path | None = None
        self.store_dir: Path | None = None
        self.tier = self.device = ""
        self.other_skips: list[str] = []
        self.timings: set[str] = set()
        self.fixturenames: dict[str, list[str]] = {}  # nodeid -> the fixtures the test uses
        self.planned_frames = 0  # frames of runs to train handed out (each test goes on with one)
        self.fed: set[str] = set()  # tests that went on with such a frame
        self.fed_fixtures: set[tuple[str, str]] = set()  # (name, baseid) of fixtures made from one
        self.named: dict[str, list[Claim]] = {}  # nodeid -> the claims the test names (resclaims.plugin.named_claims)
        self.requested: list[tuple[str | None, tuple[tuple[str, str], ...], int]] = []  # (test, fixtures, seeds)
        self.current: str | None = None  # the test running
        self.setting_up: list[tuple[str, str]] = []  # (name, baseid) of the fixtures being set up, innermost last
        self.decided: dict[str, tuple[Claim, int | None, str | None]] = {}  # claim id -> (claim, n, test): as handed
        # to the judge
        self.families: Any = lambda: None  # the session's Holm families (resclaims.plugin.FAMILIES_KEY), once made
        self._patch = pytest.MonkeyPatch()

    @pytest.hookimpl(trylast=True)  # after resclaims.plugin made the session's settings and cache
    def pytest_configure(self, config: pytest.Config) -> None:
        from resclaims.plugin import CACHE_KEY, FAMILIES_KEY, SETTINGS_KEY

        cache, settings = config.stash.get(CACHE_KEY, None), config.stash.get(SETTINGS_KEY, None)
        if cache is None:  # the selection does not load resclaims.plugin: no runs to plan
            return
        cache.planner = self
        self.cache_dir, self.tier, self.device = cache.directory, settings.tier, settings.device.type
        self.store_dir = cache.store.directory if cache.store is not None else None
        self.families = lambda: config.stash.get(FAMILIES_KEY, None)  # made at the end of collection
        planner = self

        def judged(judge: Judge, claim: Claim, *data: Any, **kwargs: Any) -> None:
            """A claim handed to the judge while planning: noted with its n (for its reach), not decided."""
            n = len(data[0]) if data and hasattr(data[0], "__len__") else None
            planner.decided.setdefault(claim.id, (claim, n, planner.current))
            if n is not None:
                judge.join(claim, n)  # into its family, or out of it (full tier only); plan warns, after the session
            _not_while_planning()

        for method in ("__call__", "record", "exact"):  # claims are decided by the session after the fill
            self._patch.setattr(Judge, method, judged)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self._patch.undo()

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        from resclaims.plugin import named_claims

        self.timings = {item.nodeid for item in items if "benchmark" in getattr(item, "fixturenames", ())}
        self.fixturenames = {item.nodeid: list(getattr(item, "fixturenames", ())) for item in items}
        self.named = {item.nodeid: named_claims(item) for item in items}

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> Any:
        self.current = item.nodeid
        try:
            return (yield)
        finally:
            self.current = None

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(self, fixturedef: pytest.FixtureDef, request: pytest.FixtureRequest) -> Any:
        handed = self.planned_frames
        self.setting_up.append((fixturedef.argname, fixturedef.baseid))
        try:
            return (yield)
        finally:
            self.setting_up.pop()
            if self.planned_frames > handed:
                self.fed_fixtures.add((fixturedef.argname, fixturedef.baseid))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Any:
        handed = self.planned_frames
        try:
            return (yield)
        finally:
            if self.planned_frames > handed:
                self.fed.add(item.nodeid)

    def _uses(self, nodeid: str, fixture: tuple[str, str]) -> bool:
        """Whether the test ``nodeid`` uses the fixture (name, baseid): it is in its closure and visible to it."""
        return fixture[0] in self.fixturenames.get(nodeid, ()) and nodeid.startswith(fixture[1])

    def _went_on_with_runs_to_train(self, nodeid: str) -> bool:
        """The test (or a fixture it uses) went on with the frame of runs to train: its outcome says nothing."""
        return nodeid in self.fed or any(self._uses(nodeid, fixture) for fixture in self.fed_fixtures)

    def seeds_of(self, nodeid: str) -> int | None:
        """The most seeds of a request the test made, or a fixture it uses made (a module's fixture asks once, in the
        first test that uses it): its claims' planned n where its test stopped before the judge."""
        counts = [n for test, fixtures, n in self.requested
                  if test == nodeid or any(self._uses(nodeid, fixture) for fixture in fixtures)]
        return max(counts, default=None)

    def reaches(self) -> list["Reach"]:
        """Every confirmatory claim of the session's Holm families (those the selected tests name, and any handed the
        judge), with its planned n and its family's size."""
        families = self.families()
        rows = []
        for claim in (families.claims.values() if families is not None else ()):
            _, n, test = self.decided.get(claim.id, (claim, None, None))
            if n is None or self._went_on_with_runs_to_train(test):  # its data came from runs not trained (NaN)
                n = max((k for k in (self.seeds_of(nodeid) for nodeid, named in self.named.items() if claim in named)
                         if k is not None), default=n)
            rows.append(Reach(claim, n, families.size(claim), families.out.get(claim.id)))
        return rows

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Tests skipped for another reason than planning (say, missing data): worth showing with the plan.

        Benchmarks are not timed while planning (they train outside the run cache); their skips are not shown, nor
        those of tests that went on with the frame of runs to train (their own skips come with those runs).
        """
        if report.skipped and isinstance(report.longrepr, tuple) and report.nodeid not in self.timings \
                and not self._went_on_with_runs_to_train(report.nodeid):
            reason = report.longrepr[2].removeprefix("Skipped: ")
            if not reason.startswith(PLANNING) and reason not in self.other_skips:
                self.other_skips.append(reason)

    def request(self, cache: RunCache, protocol: RunProtocol, seeds: Sequence[int], *, device: Any, data: Any, label: str,
                family: str, go_on: bool = True) -> pd.DataFrame | None:
        """Record a ``runs`` request; None when the cache holds all its runs. Otherwise nothing trains: the kernel's
        ``planned_frame`` of the runs (every value NaN; the test goes on to its next requests), or, for a kernel
        without one or with ``go_on=False``, the test is skipped."""
        kernel, parts, key = kernel_of(protocol), conditions(protocol), data_key(data)
        kind = device_kind(kernel, device)
        lacking = cache.missing(kernel, parts, seeds, device_kind=kind, data=key)
        request = len({need.request for need in self.needs.values()})
        self.requested.append((self.current, tuple(self.setting_up), len(seeds)))
        for part, missing in zip(parts, lacking):
            published = tuple(seed for seed in seeds if cache.published(kernel, part, seed, {"data": key}))
            need = Need(family or label, label, kernel.__name__, part, tuple(seeds), tuple(missing),
                        steps(kernel, part), device.type, key, kind, len(published), request, published)
            self.needs.setdefault((need.kernel, repr(part), key, need.seeds, need.device), need)
        if data is not None:
            self.data[key] = data
        n = sum(map(len, lacking))
        if not n:
            return None
        reason = f"{PLANNING}{n} runs of {label or family} to train"
        planned_frame = getattr(kernel, "planned_frame", None)
        if planned_frame is None or not go_on:
            pytest.skip(reason)
        frame = planned_frame(protocol, list(seeds))
        frame.attrs[PLANNED] = reason  # resclaims.runs: not a frame for the report's run table
        self.planned_frames += 1
        return frame


def _not_while_planning(*args: Any, **kwargs: Any) -> None:
    pytest.skip(f"{PLANNING}claims are decided after the fill")


@dataclass(frozen=True)
class Reach:
    """One confirmatory claim's reach: its planned n, its Holm family's size m, and why it gets no verdict (None: it
    gets one)."""

    claim: Claim
    n: int | None
    m: int
    excluded: str | None = None

    @property
    def warning(self) -> str | None:
        """The line its test fails with (:func:`resclaims.claims.below_reach`), where n is below its reach."""
        return None if self.excluded is not None or self.n is None else below_reach(self.claim, self.n, self.m)

    def row(self) -> str:
        c = self.claim
        head = f"{c.id:18s} {c.procedure.name[:34]:34s} {c.source_family:>6s}"
        if self.excluded is not None:
            why = "full tier only: not judged at this tier" if self.excluded == FULL_TIER_ONLY else \
                f"not judged in this session: {self.excluded}"
            return f"{head} {'-':>3s} {'-' if self.n is None else self.n:>5} {why}"
        levels = reach_levels(self.m)
        (sm, rm), (sa, ra) = (reach(c.procedure, level) for level in levels)
        n = "?" if self.n is None else self.n
        if c.procedure.best_p is None:
            return f"{head} {self.m:3d} {n:>5} reach not computed for this procedure"
        show = lambda k: "never" if k is None else str(k)  # noqa: E731
        return (f"{head} {self.m:3d} {n:>5} {show(sm):>11s} {show(sa):>6s} {show(rm):>11s} {show(ra):>6s}"
                + ("   BELOW REACH" if self.warning else ""))


def reach_table(reaches: Sequence[Reach]) -> str:
    """The plan's reach table: one row per confirmatory claim, then a warning line for each below its reach."""
    lines = ["reach after Holm: the fewest runs at which a confirmatory claim's procedure can say supported or "
             "refuted, at alpha/m (m: its source's family; the family's first step) and at alpha (its last step)",
             f"{'claim':18s} {'procedure':34s} {'family':>6s} {'m':>3s} {'n':>5s} {'supported':>11s} {'':>6s} "
             f"{'refuted':>11s}",
             f"{'':18s} {'':34s} {'':6s} {'':3s} {'':5s} {'at alpha/m':>11s} {'alpha':>6s} {'at alpha/m':>11s} "
             f"{'alpha':>6s}"]
    lines += [r.row() for r in reaches]
    lines += [f"warning: {r.warning}" for r in reaches if r.warning]
    return "\n".join(lines)


@dataclass
class Plan:
    """What :func:`plan` found: the needs (cached or not), the data they train on, and the session's tier and device."""

    needs: list[Need]
    data: dict[str | None, Any]
    cache_dir: Path | None
    tier: str
    device: str
    other_skips: list[str] = field(default_factory=list)
    store_dir: Path | None = None  # the published run store the session read (None: --no-store)
    reaches: list[Reach] = field(default_factory=list)  # the selection's confirmatory claims, with their reach

    @property
    def missing(self) -> list[Need]:
        return [need for need in self.needs if need.missing]

    @property
    def runs_to_train(self) -> int:
        return len(self.schedule())

    def schedule(self) -> list[tuple[tuple[bool, int, int, int], Need, int]]:
        """Every missing run once, in the order a fill trains them: (its place, the need that trains it, its seed).

        Runs come in the order the session asks for them; within a request seed by seed (a claim on paired arms
        gets whole pairs first), the conditions of a seed in the request's order. A run two requests ask for (one
        condition, one seed) is trained once, by the earlier request. A request that asks for more seeds of a
        condition than another (K1.consistency's 44 of the K1 pair, against K1's 10) extends it: its runs beyond
        the seeds of the condition's smallest request come after every other request's runs, so that a design
        larger than the rest never delays them."""
        fewest: dict[tuple, int] = {}
        for need in self.needs:
            fewest[need.runs_of] = min(fewest.get(need.runs_of, len(need.seeds)), len(need.seeds))
        first: dict[tuple, set[int]] = {}  # per condition, the seeds of its smallest requests
        for need in self.needs:
            if len(need.seeds) == fewest[need.runs_of]:
                first.setdefault(need.runs_of, set()).update(need.seeds)
        runs: dict[tuple, tuple[tuple[bool, int, int, int], Need, int]] = {}
        for k, need in enumerate(self.needs):
            for seed in need.missing:
                place = (seed not in first[need.runs_of], need.request, need.seeds.index(seed), k)
                run = (need.runs_of, seed)
                if run not in runs or place < runs[run][0]:
                    runs[run] = (place, need, seed)
        return sorted(runs.values(), key=lambda run: run[0])

    def own(self, need: Need) -> Need:
        """``need`` with only the missing runs it trains itself (none that an earlier request trains)."""
        seeds = {seed for _, owner, seed in self.schedule() if owner is need}
        return replace(need, missing=tuple(seed for seed in need.missing if seed in seeds))

    def jobs(self, seeds_per_job: int | None = None) -> list[FillJob]:
        """One job per condition and group of missing seeds: all of a request's missing seeds together, as a
        session trains them, or groups of at most ``seeds_per_job`` (more jobs for more workers); in the order of
        :meth:`schedule` (a request's extension beyond the condition's other requests in jobs of its own)."""
        if self.cache_dir is None:
            raise EngineError("--no-run-cache: a fill trains into the run cache; leave the option out")
        groups: dict[tuple[int, bool], list[tuple[tuple, Need, int]]] = {}
        for place, need, seed in self.schedule():
            groups.setdefault((id(need), place[0]), []).append((place, need, seed))
        if not groups:
            return []
        size = seeds_per_job or max(map(len, groups.values()))
        chunks = [runs[i:i + size] for runs in groups.values() for i in range(0, len(runs), size)]
        return [make_job(need.condition, tuple(seed for *_, seed in chunk), device=need.device,
                         cache_dir=self.cache_dir, label=need.label, family=need.family, data_key=need.data_key,
                         store_dir=self.store_dir)
                for chunk in sorted(chunks, key=lambda c: c[0][0]) for need in (chunk[0][1],)]

    def seconds(self, need: Need) -> float | None:
        """The estimated training time of ``need``'s missing runs (None: nothing measured to estimate from)."""
        return self.cost(need)[0]

    def cost(self, need: Need) -> tuple[float | None, str | None]:
        """The estimated training time of ``need``'s missing runs and where it comes from, the most specific first:
        ``cache`` (the condition's own entries' wall times), ``baseline`` (the baseline report's timing of its
        training step), ``cache`` (its kernel's time per seed-step on this kind of device, from entries of as many
        steps: the quick tier's tiny runs say nothing of the full tier's, nor its runs of the quick tier's), or None
        (nothing)."""
        entries = [e for e in _measured(self.cache_dir, need.kernel)
                   if e.get("device_kind") == (need.device_kind or need.device) and e.get("seeds_in_batch")]
        same = [e["wall_seconds"] / e["seeds_in_batch"] for e in entries if e.get("condition") == repr(need.condition)]
        if same:
            return len(need.missing) * statistics.fmean(same), "cache"
        step = baseline_step_seconds(need.condition, need.device)  # this very network and recipe, timed
        if step is not None:
            return len(need.missing) * need.condition.train.steps * step, "baseline"
        alike = [e for e in entries if e.get("steps") == need.steps]  # another tier's runs say nothing of this one's
        per_step = [e["wall_seconds"] / e["seeds_in_batch"] / e["steps"] for e in alike if e.get("steps")]
        if per_step:
            return len(need.missing) * need.steps * statistics.fmean(per_step), "cache"
        return None, None

    def estimate(self) -> str:
        """One line: ``Z, M quick: 1600 runs to train, about 0.02 device-hours on cpu`` (or nothing to train)."""
        families = ", ".join(dict.fromkeys(need.family for need in self.needs)) or "nothing selected"
        published = self.published
        held = f" ({published} of them published)" if published else ""
        if not self.runs_to_train:
            return f"{families} {self.tier}: every run is in the cache or the store{held}, nothing to train"
        costs = [(need, *self.cost(need)) for need in map(self.own, self.missing) if need.missing]
        known = sum(s for _, s, _ in costs if s is not None)
        unknown = [need for need, s, _ in costs if s is None]
        kernels = ", ".join(sorted({need.kernel for need in unknown}))
        line = f"{families} {self.tier}: {self.runs_to_train} runs to train" + (f" ({published} published)" if published else "") + ", "
        if len(unknown) == len(costs):
            return line + f"cost unknown on {self.device} (no measured runs of {kernels} in the cache)"
        line += f"about {_hours(known)} device-hours on {self.device}"
        baseline = sum(len(need.missing) for need, _, source in costs if source == "baseline")
        if baseline:
            line += (f" ({baseline} runs from the baseline's train-step times, measured on {_baseline()['machine']}; "
                     "training steps only)")
        if unknown:
            line += f" (plus {sum(len(need.missing) for need in unknown)} runs of {kernels}: nothing measured to estimate from)"
        return line

    @property
    def published(self) -> int:
        """The published runs the selection holds, each once (two requests of one condition share theirs)."""
        seeds = {(need.runs_of, seed) for need in self.needs for seed in need.published_seeds}
        return len(seeds) + sum(need.published for need in self.needs if not need.published_seeds)

    def table(self) -> str:
        """Every need, one line each: family, seed name, condition, seeds, steps, cached, estimate; "to train" and
        "time left" count the runs it trains itself (a run an earlier row also asks for is that row's)."""
        # as wide as the longest name: a condition's settings (the end of its name) tell two protocols apart
        width = max([34, *(len(need.name) for need in self.needs)])
        lines = [f"{'family':8s} {'seeds of':14s} {'condition':{width}s} {'seeds':>6s} {'steps':>7s} {'held':>5s} "
                 f"{'published':>9s} {'to train':>9s} {'time left':>10s}"]
        for need in self.needs:
            own = self.own(need)
            s = self.seconds(own) if own.missing else 0.0
            shared = len(need.missing) - len(own.missing)
            lines.append(f"{need.family:8s} {need.label:14s} {need.name:{width}s} {len(need.seeds):6d} "
                         f"{need.steps:7d} {len(need.seeds) - len(need.missing):5d} {need.published:9d} "
                         f"{len(own.missing):9d} {'unknown' if s is None else _duration(s):>10s}"
                         + (f"  (and {shared} to train above)" if shared else ""))
        return "\n".join(lines)


_MEASURED: dict[tuple, list[dict[str, Any]]] = {}


def _measured(directory: Path | None, kernel: str) -> list[dict[str, Any]]:
    """:func:`resclaims.cache.measurements` and the provenance of the published runs trained on this machine, read
    once per plan: the time left is at this machine's measured rate."""
    if (directory, kernel) not in _MEASURED:
        _MEASURED[directory, kernel] = measurements(directory, kernel) + published_measurements(kernel)
    return _MEASURED[directory, kernel]


def published_measurements(kernel: str) -> list[dict[str, Any]]:
    """The provenance of every published run of ``kernel`` (a module name) that trained on this machine's device."""
    import importlib

    from resclaims import store
    from resclaims.cache import device_name

    module = importlib.import_module(kernel)
    if not store.publishable(module):
        return []
    found = []
    for path in store.RunStore(store.default_directory()).entries():
        with contextlib.suppress(store.StoreError):
            meta = store.entry_metadata(path)
            if meta["key"]["kernel"] == module.NAME and \
                    meta["provenance"].get("device_name") == device_name(meta["provenance"].get("device_kind", "")):
                found.append(meta["provenance"])
    return found


def incomplete(cache: RunCache, kernel: Kernel, parts: Sequence[RunProtocol], seeds: Sequence[int],
               lacking: Sequence[Sequence[int]], *, device: Any, device_kind: str, label: str) -> str:
    """Why a session that trains nothing (``--no-train``) decides no claim of a request: ``incomplete: K: 14 of 20
    runs missing (resnet-10 x7, plain-10 x7), about 4.9 h on cpu at this machine's measured rate``."""
    needs = [Need(label, label, kernel.__name__, part, tuple(seeds), tuple(missing), steps(kernel, part),
                  device.type, None, device_kind) for part, missing in zip(parts, lacking)]
    plan = Plan(needs, {}, cache.directory, "", device.type)
    costs = [plan.cost(need) for need in plan.missing]
    n, total = plan.runs_to_train, len(parts) * len(seeds)
    which = ", ".join(f"{need.name} x{len(need.missing)}" for need in plan.missing)
    sources = {source for _, source in costs}
    cost = ("cost unknown (nothing measured to estimate from)" if None in sources
            else f"about {_duration(sum(s for s, _ in costs))} on {device.type} " + (
                "from the baseline's train-step times (training steps only)" if "baseline" in sources
                else "at this machine's measured rate"))
    return f"{INCOMPLETE}{label}: {n} of {total} runs missing ({which}), {cost}; no verdict on partial data"


BASELINE = Path(__file__).resolve().parents[2] / "reports" / "baseline" / "summary.json"


@functools.cache
def _baseline() -> dict[str, Any]:
    """The committed baseline's timings (name -> seconds per call) and the machine they were measured on."""
    try:
        document = json.loads(BASELINE.read_text())
    except (OSError, ValueError):
        return {"timings": {}, "machine": ""}
    provenance = document.get("provenance", {})
    return {"timings": {t["name"]: t["seconds_per_experiment"] for t in document.get("timings", [])},
            "machine": provenance.get("device_name") or provenance.get("device", "")}


def _timed_steps() -> dict[tuple[str, str], str]:
    """(what shapes a training step: recipe, batch, input scale; the arm) -> the baseline timing of that step, as the
    suite's train-step benchmarks name it (benchmarks/test_cifar_resnet_vs_plain.py, benchmarks/test_degradation.py)."""
    from resclaims import cifar

    timed = {}
    for arm in cifar.keras_arms([10]):
        timed[_step_key(cifar.TrainConfig(), arm)] = f"train step keras003 {arm.name}, batch 64, {{device}}"
    for depth in (20, 56):
        for arm in cifar.he_arms([depth], residual=True) + cifar.he_arms([depth], residual=False):
            timed[_step_key(cifar.HE2015, arm)] = f"train step {arm.name}, batch 128, {{device}}"
    return timed


def _step_key(train: Any, arm: Any) -> tuple[str, str]:
    return repr((train.recipe, train.batch_size, train.downsample, train.order)), repr(arm)


def baseline_step_seconds(condition: RunProtocol, device: str) -> float | None:
    """Seconds of one training step of ``condition`` (one CIFAR arm) on ``device``, as the baseline report timed it;
    None when the suite's benchmarks do not time that step (another network, recipe or input size)."""
    train, arms = getattr(condition, "train", None), getattr(condition, "arms", ())
    if train is None or len(arms) != 1 or not hasattr(train, "recipe"):
        return None
    name = _timed_steps().get(_step_key(train, arms[0]))
    return None if name is None else _baseline()["timings"].get(name.format(device=device))


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.2g}" if seconds < 100 * 3600 else f"{seconds / 3600:.0f}"


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def plan(args: Sequence[str]) -> Plan:
    """Run pytest on the selection ``args`` with a :class:`Planner`; nothing trains, no report is written.

    A usage error of the selection (a bad option) is an :class:`EngineError` with pytest's line.
    """
    planner = Planner()
    _MEASURED.clear()
    extra = ["-p", "no:cacheprovider", "--benchmark-skip", "--baseline", "none", "-q"]
    with contextlib.suppress(ImportError):
        import xdist  # noqa: F401 - one process plans: the planner lives in it

        extra += ["-n", "0"]
    with tempfile.TemporaryDirectory(prefix="resclaims-plan-") as report_dir, io.StringIO() as out:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = pytest.main([*args, *extra, "--report-dir", report_dir], plugins=[planner])
        text = out.getvalue()
    if code == pytest.ExitCode.USAGE_ERROR or code == pytest.ExitCode.INTERRUPTED or planner.cache_dir is None and code:
        lines = [line for line in text.splitlines() if line.strip()]
        message = next((line.removeprefix("ERROR: ") for line in lines if line.startswith("ERROR")), lines[-1] if lines else "")
        raise EngineError(f"the selection cannot be planned: {message}")
    return Plan(list(planner.needs.values()), planner.data, planner.cache_dir, planner.tier, planner.device,
                planner.other_skips, planner.store_dir, planner.reaches())
