"""The resclaims pytest plugin: options, tiers, fixtures and the report.

Loaded by the project's top-level ``conftest.py``. All options live in one
group, ``resclaims``; ``pytest --help`` shows each with its default.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from resclaims.report import Report, git_commit
from resclaims.seeding import DEFAULT_BASE_SEED
from resclaims.settings import (
    DATA_ENV,
    Settings,
    SettingsError,
    parse_base_seed,
    parse_seeds,
    parse_tier,
    resolve_data_dir,
    resolve_device,
)

SETTINGS_KEY = pytest.StashKey[Settings]()
REPORT_KEY = pytest.StashKey[Report]()
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
    group.addoption("--base-seed", default=str(DEFAULT_BASE_SEED), metavar="S", help=f"base seed every run's seed derives from (default: {DEFAULT_BASE_SEED})")
    group.addoption("--data-dir", default=None, metavar="PATH", help=f"folder holding the data sets (default: ${DATA_ENV}, then the download cache data/)")
    group.addoption("--report-dir", default=None, metavar="PATH", help="where the report is written (default: reports/<run-id>/, linked as reports/latest)")


def _settings(config: pytest.Config) -> Settings:
    opt = config.option
    tier = parse_tier(opt.tier or ("full" if opt.full else "quick"))
    if opt.full and tier != "full":
        raise SettingsError(f"--full and --tier {tier} disagree: give one of them")
    if opt.report_dir:
        report_dir = Path(opt.report_dir).expanduser().resolve()
    else:
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        report_dir = config.rootpath / "reports" / f"{stamp}-{git_commit(config.rootpath).replace('+', '-')}"
    return Settings(
        tier=tier,
        device=resolve_device(opt.device),
        base_seed=parse_base_seed(opt.base_seed),
        seeds=parse_seeds(opt.seeds),
        data_dir=resolve_data_dir(opt.data_dir),
        report_dir=report_dir,
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


def pytest_report_header(config: pytest.Config) -> list[str]:
    s = config.stash[SETTINGS_KEY]
    return [
        f"resclaims: tier {s.tier}, device {s.device}, base seed {s.base_seed} (--base-seed), "
        f"seeds {s.seeds or 'per tier'}, data dir {s.data_dir or 'download cache'}"
    ]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    s = config.stash[SETTINGS_KEY]
    for item in items:
        tiers = {m.name for m in item.iter_markers() if m.name in TIER_MARKERS}
        if tiers and s.tier not in tiers:
            reason = "full tier only: run with --full" if s.tier == "quick" else "quick tier only: run without --full"
            item.add_marker(pytest.mark.skip(reason=reason))
        if item.get_closest_marker("gpu") and s.device.type != "cuda":
            item.add_marker(pytest.mark.skip(reason="needs CUDA: run with --device cuda on a GPU machine"))


@pytest.fixture(scope="session")
def settings(pytestconfig: pytest.Config) -> Settings:
    """The session's validated settings (tier, device, seeds, data and report dirs)."""
    return pytestconfig.stash[SETTINGS_KEY]


@pytest.fixture(scope="session")
def report(pytestconfig: pytest.Config) -> Report:
    """The session's report; claim tests ``report.verify(result)``."""
    return pytestconfig.stash[REPORT_KEY]


@pytest.fixture(scope="session")
def device(settings: Settings):
    """The torch device the session trains on."""
    return settings.device


def pytest_sessionfinish(session: pytest.Session) -> None:
    report = session.config.stash.get(REPORT_KEY, None)
    if report is None or hasattr(session.config, "workerinput"):
        return  # not configured, or an xdist worker (the controller writes nothing either: see README)
    written = report.write()
    if written is not None and not session.config.option.report_dir:
        latest = written.parent / "latest"
        if latest.is_symlink() or not latest.exists():
            tmp = written.parent / f".latest.{os.getpid()}"
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(written.name)
            os.replace(tmp, latest)
    session.config.stash[_WRITTEN_KEY] = written


_WRITTEN_KEY = pytest.StashKey["Path | None"]()


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    written = config.stash.get(_WRITTEN_KEY, None)
    report = config.stash.get(REPORT_KEY, None)
    if written is None or report is None:
        return
    terminalreporter.section("resclaims")
    for claim in report.claims:
        terminalreporter.line(claim.summary())
    terminalreporter.line(f"report: {written / 'summary.md'}")
