"""The resclaims pytest plugin: options, tiers, collection, the report and the baseline comparison.

Loaded by the project's top-level ``conftest.py``. All options live in one
group, ``resclaims``; ``pytest --help`` shows each with its default. The fixtures are in
:mod:`resclaims.plugin.fixtures`, the stash keys in :mod:`resclaims.plugin.keys`.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

import pytest

from resclaims.datasets import cache_dir
from resclaims.decide import expected, stored
from resclaims.decide.claims import Claim
from resclaims.decide.multiplicity import Families
from resclaims.plugin import sequential, xdist
from resclaims.plugin.keys import (
    BASELINE_KEY,
    CACHE_KEY,
    CALIBRATED_KEY,
    DESELECTED_KEY,
    FAMILIES_KEY,
    REPORT_KEY,
    SETTINGS_KEY,
    STORED_KEY,
)
from resclaims.plugin.costs import INCOMPLETE, PLANNING
from resclaims.plugin.settings import (
    DATA_ENV,
    MAX_SEEDS,
    Settings,
    SettingsError,
    check_report_dir,
    check_step_mode,
    parse_base_seed,
    parse_seeds,
    parse_tier,
    resolve_data_dir,
    resolve_device,
)
from resclaims.report import compare, validation, validation_sequential, validation_sweep
from resclaims.report.catalogue import declared_claims, unique_ids
from resclaims.report.report import Report, ReportWriteError
from resclaims.run.cache import CacheFolderError, RunCache, check_cache_dir
from resclaims.run.contract import ContractError
from resclaims.run.provenance import git_commit
from resclaims.run.seeding import DEFAULT_BASE_SEED
from resclaims.run.store import RunStore
from resclaims.run.store import default_directory as store_directory

pytest_plugins = ("resclaims.plugin.fixtures",)  # the fixtures, registered with these hooks
TIER_MARKERS = ("quick", "full")
MARKERS = {
    "quick": "the claim at reduced scale; runs on a laptop CPU in minutes (the default tier)",
    "full": "the claim under the source's own protocol at full scale; runs only with --full",
    "gpu": "needs CUDA; skipped unless the session's device is cuda",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("resclaims", "resclaims: claims about residual networks")
    group.addoption("--full", action="store_true", help="run the full tier: the sources' own protocols at full scale (default: off, quick tier)")
    group.addoption("--tier", default=None, metavar="NAME", help="tier to run, quick or full (default: quick; --full is short for --tier full)")
    group.addoption("--device", default="auto", metavar="cpu|cuda|auto", help="device to train on (default: auto, cuda when available)")
    group.addoption("--seeds", default=None, metavar="N", help="seeds per condition, overriding each tier's count (default: the tier's)")
    group.addoption("--seeds-budget", default=None, metavar="N", help="with --seeds auto: the most seeds per arm; each module's runs train in stages (doubling from a quarter of its tier's seeds up to N) until its claims are decided (resclaims.plugin.sequential)")
    group.addoption("--seeds-after", default=None, metavar="PATH", help="with --seeds auto: the previous stage's report folder; modules with a claim still undecided go on to their next look, decided claims keep their look")
    group.addoption("--max-seeds", default=None, metavar="N", help=f"the most --seeds a session takes (default: {MAX_SEEDS:,}; a guard against typos)")
    group.addoption("--base-seed", default=str(DEFAULT_BASE_SEED), metavar="S", help=f"base seed every run's seed derives from (default: {DEFAULT_BASE_SEED})")
    group.addoption("--data-dir", default=None, metavar="PATH", help=f"folder holding the data sets (default: ${DATA_ENV}, then the download cache data/)")
    group.addoption("--report-dir", default=None, metavar="PATH", help="where the report is written (default: reports/<run-id>/, linked as reports/latest)")
    group.addoption("--no-run-cache", action="store_true", help="train every run again instead of reusing cached runs (default: reuse, from the run cache, $RESCLAIMS_CACHE/runs/, else data/runs/)")
    group.addoption("--no-store", action="store_true", help="ignore the published run store and train its runs again into the run cache (default: read it, from results/runs/)")
    group.addoption("--no-train", action="store_true", help="train nothing: a claim whose runs are not all cached or published is reported incomplete, with what its runs cost (default: train what is missing)")
    group.addoption("--baseline", default=None, metavar="PATH", help="report folder to compare with, or none for no comparison (default: reports/baseline/ when it exists)")
    group.addoption("--fail-on-change", action="store_true", help="fail the session if anything changed against the baseline (for CI; default: report only)")
    group.addoption("--slowdown", default=compare.DEFAULT_SLOWDOWN, metavar="EXPR", help=f"a benchmark counts as slower when its time over a reference timed in the same session grows past this percentage of the baseline's same ratio, in pytest-benchmark's compare-fail syntax; absolute times are listed, never judged (default: {compare.DEFAULT_SLOWDOWN.replace('%', '%%')})")


def _settings(config: pytest.Config) -> Settings:
    opt = config.option
    tier = parse_tier(opt.tier or ("full" if opt.full else "quick"))
    if opt.full and tier != "full":
        raise SettingsError(f"--full and --tier {tier} disagree: give one of them")
    if hasattr(config, "workerinput") and "resclaims_report_dir" in config.workerinput:
        report_dir = Path(config.workerinput["resclaims_report_dir"])  # the controller's, timestamp included
    elif opt.report_dir:
        report_dir = Path(opt.report_dir).expanduser().resolve()
    else:
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        report_dir = config.rootpath / "reports" / f"{stamp}-{git_commit(config.rootpath).replace('+', '-')}"
    device = resolve_device(opt.device)
    check_step_mode(device)
    return Settings(
        tier=tier,
        device=device,
        base_seed=parse_base_seed(opt.base_seed),
        seeds=None if opt.seeds == sequential.AUTO else parse_seeds(opt.seeds, opt.max_seeds),
        data_dir=resolve_data_dir(opt.data_dir),
        report_dir=check_report_dir(report_dir, "--report-dir" if opt.report_dir else "report folder"),
        no_train=opt.no_train,
        auto=sequential.parse(opt.seeds, opt.seeds_budget, opt.seeds_after, opt.max_seeds),
    )


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    try:
        settings = _settings(config)
    except SettingsError as error:
        raise pytest.UsageError(str(error)) from None
    config.stash[SETTINGS_KEY] = settings
    config.stash[REPORT_KEY] = Report(
        settings.report_dir, tier=settings.tier, device=str(settings.device), base_seed=settings.base_seed
    )
    store = None if config.option.no_store else RunStore(store_directory())
    try:
        runs_dir = None if config.option.no_run_cache else check_cache_dir(cache_dir() / "runs")
    except CacheFolderError as error:
        raise pytest.UsageError(str(error)) from None
    config.stash[CACHE_KEY] = RunCache(runs_dir, store)
    config.stash[BASELINE_KEY] = _baseline(config)
    config.stash[CALIBRATED_KEY] = {}
    config.stash[STORED_KEY] = stored.Stored(None if runs_dir is None else cache_dir() / "calibrations")
    if hasattr(config, "workerinput"):
        config.stash[REPORT_KEY].journal = []  # sent to the controller with each test's report
    elif _xdist_controller(config):
        config.pluginmanager.register(xdist.Controller(config, config.stash[REPORT_KEY], config.stash[CACHE_KEY],
                                                       config.stash[SETTINGS_KEY].report_dir), "resclaims-xdist")
        if config.option.dist == "load" and not xdist.dist_given(config):
            config.option.dist = "loadfile"  # a module's fixtures (its runs) set up once, as in a serial session


def _xdist_controller(config: pytest.Config) -> bool:
    return config.getoption("dist", "no") != "no" and not hasattr(config, "workerinput")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A protocol, kernel or frame that breaks the kernel contract fails its tests with the contract's one line;
    xdist worker: what the report gained in this phase goes to the controller (:mod:`resclaims.plugin.xdist`)."""
    test_report = yield
    if test_report.failed and call.excinfo is not None and call.excinfo.errisinstance(ContractError):
        test_report.longrepr = f"kernel contract: {call.excinfo.value}"
    report = item.config.stash.get(REPORT_KEY, None)
    if report is not None and test_report.skipped and isinstance(test_report.longrepr, tuple):
        reason = test_report.longrepr[2].removeprefix("Skipped: ")
        families = item.config.stash.get(FAMILIES_KEY, None)
        if families is not None and not reason.startswith(PLANNING):  # its claims get no verdict in this session
            for claim in named_claims(item):
                families.exclude(claim, reason)
        if reason.startswith(INCOMPLETE):  # --no-train: the claims this test decides lack runs
            missing, total = (int(n) for n in re.search(r"(\d+) of (\d+) runs missing", reason).groups())
            for claim_id in claims_of(item) or [item.nodeid]:
                report.add_incomplete(claim_id, reason.removeprefix(INCOMPLETE), missing, total)
    if report is not None and report.journal is not None:
        xdist.send(report, item.config.stash[CACHE_KEY], test_report)
    return test_report


def claims_of(item: pytest.Item) -> list[str]:
    """The ids of the claims a test decides: the module's :class:`Claim` declarations its function names."""
    return [claim.id for claim in named_claims(item, parameters=False)]


def named_claims(item: pytest.Item, *, parameters: bool = True) -> list[Claim]:
    """The claims a test decides: the module's :class:`Claim` declarations its function names, and (``parameters``)
    the claims among its parameters (``@pytest.mark.parametrize("claim", [Z1_MAGNITUDE, ...])``)."""
    function, module = getattr(item, "function", None), getattr(item, "module", None)
    if function is None or module is None:
        return []
    named = [value for name in function.__code__.co_names if isinstance(value := getattr(module, name, None), Claim)]
    callspec = getattr(item, "callspec", None) if parameters else None
    return named + [value for value in (callspec.params.values() if callspec else ()) if isinstance(value, Claim)]


def _baseline(config: pytest.Config) -> Path | None:
    """The baseline to compare with: --baseline (which must be readable; none: no comparison), else reports/baseline if present."""
    try:
        compare.slowdown_check(config.option.slowdown)
    except ValueError as error:
        raise pytest.UsageError(f"--slowdown {config.option.slowdown}: {error}") from None
    if config.option.baseline == "none":
        return None
    if config.option.baseline:
        path = Path(config.option.baseline).expanduser().resolve()
        try:
            compare.load(path)
        except compare.ReportError as error:
            raise pytest.UsageError(f"--baseline: {error}") from None
        return path
    default = config.rootpath / "reports" / "baseline"
    return default if default.is_dir() else None


def pytest_report_header(config: pytest.Config) -> list[str]:
    s = config.stash[SETTINGS_KEY]
    return [
        f"resclaims: tier {s.tier}, device {s.device}, base seed {s.base_seed} (--base-seed), "
        f"seeds {s.seeds or 'per tier'}, data dir {s.data_dir or 'download cache'}"
    ]


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    """A bad claim declaration stops collection with its one line (which names the claim and the field)."""
    report = yield
    if report.failed and "ClaimError: " in str(report.longrepr):
        report.longrepr = str(report.longrepr).split("ClaimError: ")[-1].splitlines()[0]
    return report


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    s = config.stash[SETTINGS_KEY]
    modules = {item.module for item in items if getattr(item, "module", None) is not None}
    try:
        unique_ids(modules)
        for module in sorted(modules, key=lambda m: m.__name__):  # a claim module's expected outcomes, checked
            expected.check(expected.load(module.__file__), [c.id for c in declared_claims(module)], module.__file__)
    except ValueError as error:  # ExpectedError too: one line, before anything trains
        raise pytest.UsageError(str(error)) from None
    for item in items:
        tiers = {m.name for m in item.iter_markers() if m.name in TIER_MARKERS}
        if tiers and s.tier not in tiers:
            reason = "full tier only: run with --full" if s.tier == "quick" else "quick tier only: run without --full"
            item.add_marker(pytest.mark.skip(reason=reason))
        if item.get_closest_marker("gpu") and s.device.type != "cuda":
            item.add_marker(pytest.mark.skip(reason="needs CUDA: run with --device cuda on a GPU machine"))


def pytest_deselected(items: list[pytest.Item]) -> None:
    if items:
        items[0].config.stash.setdefault(DESELECTED_KEY, []).extend(item.nodeid for item in items)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Record what the session runs, so the baseline comparison is limited to it (:func:`resclaims.report.compare.ran`).

    ``modules``: the test modules it runs whole (given as files or folders);
    ``deselected``: the tests deselected in them (``-k``, ``-m``, ``--deselect``);
    ``tests``: the tests it runs from modules named by node id (``file.py::test``);
    ``whole``: it was given folders only, without ``-k`` or ``--deselect``
    (``-m`` picks tiers, and a baseline is of one tier).
    """
    config = session.config
    report = config.stash.get(REPORT_KEY, None)
    if report is None:
        return
    families = config.stash[FAMILIES_KEY] = Families()
    for item in session.items:  # a test skipped at collection (another tier's, a GPU's) decides nothing here
        if item.get_closest_marker("skip") is None:
            for claim in named_claims(item):
                families.add(claim, item.module.__name__)
    auto = config.stash[SETTINGS_KEY].auto
    if auto is not None:  # --seeds auto: a budget no look of a claim's design can reach is refused before training
        refused = sequential.check_budget(session.items, auto, families, config.stash[SETTINGS_KEY].tier, named_claims)
        if refused is not None:
            raise pytest.UsageError(refused)
        report.set_provenance("sequential", {"budget": auto.budget, "looks": {}, "seeds": {}, "stages": {}})
    module = lambda nodeid: nodeid.split("::")[0]  # noqa: E731
    named = {(config.invocation_params.dir / module(arg)).resolve() for arg in config.args if "::" in arg}
    partial = {module(item.nodeid) for item in session.items if item.path.resolve() in named}
    modules = {module(item.nodeid) for item in session.items} - partial
    report.set_provenance("selection", {
        "modules": sorted(modules),
        "deselected": sorted(n for n in config.stash.get(DESELECTED_KEY, []) if module(n) in modules),
        "tests": sorted(item.nodeid for item in session.items if module(item.nodeid) in partial),
        "whole": all((config.invocation_params.dir / arg).is_dir() for arg in config.args)
        and not config.option.keyword and not config.option.deselect,
    })


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    """Tell the report which test is running: each claim records the node id of the test that recorded it."""
    report = item.config.stash.get(REPORT_KEY, None)
    if report is not None:
        report.running = item.nodeid
    try:
        return (yield)
    finally:
        if report is not None:
            report.running = None


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    report = config.stash.get(REPORT_KEY, None)
    if report is None or hasattr(config, "workerinput"):
        return  # not configured, or an xdist worker (its results went to the controller with each test's report)
    cache = config.stash[CACHE_KEY]  # under xdist: the workers' counts, sent with the tests' reports
    report.provenance["runs_trained"], report.provenance["runs_from_cache"] = cache.trained, cache.reused
    stored = config.stash[STORED_KEY]  # under xdist: this process's only (each worker keeps its own count)
    report.provenance["calibrations_computed"], report.provenance["calibrations_read"] = stored.computed, stored.read
    if _xdist_controller(config):
        report.provenance["timings"] = xdist.TIMINGS_UNDER_XDIST
    report.benchmarks = _benchmark_json(config)
    if any(c.ci_level < 1 for c in report.claims):  # sampled verdicts: show the validation table they rest on
        kept = None if config.option.no_run_cache else cache_dir()
        table = validation.cached(kept)
        if table:  # then its sequential cells (kept by content too) and the committed mean-curve sweep (stale if so)
            table = {**table, "sequential": validation_sequential.cached(kept), "mean_curves": validation_sweep.load()}
        report.validation = table
    problem = _compare_with_baseline(config, report)
    try:
        written = report.write()
    except ReportWriteError as error:
        written, problem = None, str(error)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if written is not None and not config.option.report_dir:
        latest = written.parent / "latest"
        if latest.is_symlink() or not latest.exists():
            tmp = written.parent / f".latest.{os.getpid()}"
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(written.name)
            os.replace(tmp, latest)
    config.stash[_WRITTEN_KEY] = written
    config.stash[_PROBLEM_KEY] = problem
    changed = report.comparison is not None and compare.counted([compare.Change(**c) for c in report.comparison["changes"]])
    if config.option.fail_on_change and (changed or problem) and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _benchmark_json(config: pytest.Config) -> dict | None:
    """pytest-benchmark's JSON for this session (raw rounds included), through its own hook."""
    session = getattr(config, "_benchmarksession", None)
    if session is None or not session.benchmarks:
        return None
    return config.hook.pytest_benchmark_generate_json(
        config=config, benchmarks=session.benchmarks, include_data=True, machine_info={}, commit_info={},
    )


def _compare_with_baseline(config: pytest.Config, report: Report) -> str | None:
    """Put the comparison with the baseline in the report; return a problem to show, if any."""
    baseline = config.stash[BASELINE_KEY]
    if baseline is None or not (report.claims or report.timings):
        return None
    try:
        document, benchmarks = compare.load(baseline)
    except compare.ReportError as error:
        return f"baseline not compared: {error}"
    if document["provenance"]["tier"] != report.provenance["tier"]:
        return None  # the baseline is of another tier: nothing comparable
    changes = compare.compare_claims(report.to_json(), document)
    changes += compare.compare_timings(report.benchmarks, benchmarks, config.option.slowdown)
    report.comparison = compare.as_json(changes, baseline)
    return None


_PROBLEM_KEY = pytest.StashKey["str | None"]()
_WRITTEN_KEY = pytest.StashKey["Path | None"]()


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    written = config.stash.get(_WRITTEN_KEY, None)
    report = config.stash.get(REPORT_KEY, None)
    problem = config.stash.get(_PROBLEM_KEY, None)
    if written is None and problem:  # the report could not be written
        terminalreporter.line(f"resclaims: {problem}", red=True)
    if written is None or report is None:
        return
    terminalreporter.section("resclaims")
    for claim in report.claims:
        terminalreporter.line(claim.summary())
    cache = config.stash[CACHE_KEY]
    terminalreporter.line(f"runs trained: {cache.trained}, from the cache: {cache.reused}")
    terminalreporter.line(f"report: {written / 'summary.md'}")
    problem = config.stash.get(_PROBLEM_KEY, None)
    if problem:
        terminalreporter.line(problem, red=True)
    if report.comparison is not None:
        changes = [compare.Change(**c) for c in report.comparison["changes"]]
        for change in changes:
            terminalreporter.line(f"  {change.kind}: {change.message}", yellow=True)
        terminalreporter.line(compare.summary_line(changes, Path(report.comparison["baseline"])),
                              red=bool(compare.counted(changes)) and config.option.fail_on_change)
