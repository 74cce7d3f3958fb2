"""Plan: which runs the selected claims need, which the cache holds, and what the rest will cost.

:func:`plan` runs pytest in this process on a selection (``-m``, ``-k``, ``--full``,
``--seeds``, paths, ...) with a :class:`Planner` plugged in. While it plans, the
``runs`` fixture trains nothing (:meth:`resclaims.run.runs.Runs.train`): it hands each
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
:func:`resclaims.plugin.fill.fill` plans again after each round of training.

What the missing runs cost, and the order a fill trains them in: :mod:`resclaims.plugin.costs`.

Reach: for every confirmatory claim of the selection, the plan gives the fewest runs at which its procedure can
say "supported" and "refuted" after Holm in its source's family (:func:`resclaims.decide.procedures.reach` at alpha / m
and at alpha, :mod:`resclaims.decide.multiplicity`) beside its planned n: the n its test hands the judge where the test
gets that far on held runs, else (a kernel's ``planned_frame`` of runs to train, whose NaN runs a test may leave
out, or a test stopped at its request) the most seeds of the requests its test or its fixtures made. A claim
whose n is below its reach for "supported" gets a warning line, the one its test would fail with
(:func:`resclaims.decide.claims.below_reach`).
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from resclaims.decide.claims import Claim, Judge, below_reach
from resclaims.decide.multiplicity import reach_levels
from resclaims.decide.procedures import reach
from resclaims.decide.verdict import FULL_TIER_ONLY
from resclaims.run.cache import RunCache
from resclaims.run.contract import RunProtocol, conditions, device_kind, kernel_of
from resclaims.run.engines import EngineError
from resclaims.plugin import costs
from resclaims.plugin.costs import PLANNING, Need, Plan
from resclaims.run.runs import PLANNED, data_key, steps




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
        from resclaims.plugin.keys import CACHE_KEY, FAMILIES_KEY, SETTINGS_KEY

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
        from resclaims.plugin.keys import REPORT_KEY

        report = config.stash.get(REPORT_KEY, None)
        self.stages = None if report is None else report.provenance.get("sequential")  # --seeds auto's looks
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
        frame.attrs[PLANNED] = reason  # resclaims.run.runs: not a frame for the report's run table
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
        """The line its test fails with (:func:`resclaims.decide.claims.below_reach`), where n is below its reach."""
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


def plan(args: Sequence[str]) -> Plan:
    """Run pytest on the selection ``args`` with a :class:`Planner`; nothing trains, no report is written.

    A usage error of the selection (a bad option) is an :class:`EngineError` with pytest's line.
    """
    planner = Planner()
    costs._MEASURED.clear()
    extra = ["-p", "no:cacheprovider", "--benchmark-skip", "--baseline", "none", "-q"]
    xdist_off = any(a.replace(" ", "") in ("no:xdist", "-pno:xdist") for a in args)  # then -n is no option
    with contextlib.suppress(ImportError):
        import xdist  # noqa: F401 - one process plans: the planner lives in it

        extra += [] if xdist_off else ["-n", "0"]
    with tempfile.TemporaryDirectory(prefix="resclaims-plan-") as report_dir, io.StringIO() as out:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            # one argument: pytest takes a separate option value that names a folder for a path when it finds the
            # rootdir, and a module's node id (--seeds-after's key for its look) would then differ from its session's
            code = pytest.main([*args, *extra, f"--report-dir={report_dir}"], plugins=[planner])
        text = out.getvalue()
    if code == pytest.ExitCode.USAGE_ERROR or code == pytest.ExitCode.INTERRUPTED or planner.cache_dir is None and code:
        lines = [line for line in text.splitlines() if line.strip()]
        message = next((line.removeprefix("ERROR: ") for line in lines if line.startswith("ERROR")), lines[-1] if lines else "")
        raise EngineError(f"the selection cannot be planned: {message}")
    return Plan(list(planner.needs.values()), planner.data, planner.cache_dir, planner.tier, planner.device,
                planner.other_skips, planner.store_dir, planner.reaches(), getattr(planner, "stages", None))
