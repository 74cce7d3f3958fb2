"""The plugin's fixtures: the session's settings, report, device, data sets, the module's tier, runs and judge.

Registered with the plugin (``resclaims.plugin``'s ``pytest_plugins``); a claim module uses ``runs``, ``judge``,
``dataset`` and ``report``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from resclaims.datasets import DataError, DataUnavailable
from resclaims.datasets.download import DownloadError
from resclaims.decide import calibration, expected, stored
from resclaims.decide.claims import Judge
from resclaims.decide.verdict import SOURCE_PROTOCOL
from resclaims.plugin import sequential
from resclaims.plugin.costs import incomplete
from resclaims.plugin.keys import CACHE_KEY, CALIBRATED_KEY, FAMILIES_KEY, REPORT_KEY, SETTINGS_KEY, STORED_KEY
from resclaims.plugin.settings import Settings
from resclaims.report.report import Report
from resclaims.run.cache import RunCache
from resclaims.run.progress import Progress
from resclaims.run.runs import Runs
from resclaims.run.seeding import DEFAULT_BASE_SEED
from resclaims.run.tiers import Tier, TierError, declared

T = TypeVar("T")


@pytest.fixture(scope="session")
def settings(pytestconfig: pytest.Config) -> Settings:
    """The session's validated settings (tier, device, seeds, data and report dirs)."""
    return pytestconfig.stash[SETTINGS_KEY]


@pytest.fixture(scope="session")
def report(pytestconfig: pytest.Config) -> Report:
    """The session's report: notes (``report.note``) and figures (``report.figure_path``); claims go through ``judge``."""
    return pytestconfig.stash[REPORT_KEY]


@pytest.fixture(scope="session")
def device(settings: Settings):
    """The torch device the session trains on."""
    return settings.device


@pytest.fixture(scope="session")
def dataset(settings: Settings, report: Report) -> Callable[..., T]:
    """``dataset(load, name)``: ``load(data_dir)``, recorded in the report, or one line for the user when it is not usable.

    Loaded: ``report.add_data(name, **data.provenance())`` (which file, its checksum).
    Missing (not on disk and not downloadable): the test is skipped with the
    reason, which names --data-dir, RESCLAIMS_DATA and the fetch command.
    Broken (a file missing from its folder, corrupt, a wrong checksum, a failed
    download): the test fails with the message naming the file, no traceback.
    """

    def get(load: Callable[[Path | None], T], name: str | None = None) -> T:
        try:
            data = load(settings.data_dir)
        except DataUnavailable as error:
            missing, reason = True, str(error)
        except (DataError, DownloadError) as error:
            missing, reason = False, str(error)
        else:
            if name is not None:
                report.add_data(name, **data.provenance())
            return data
        if missing:  # outside the except blocks: no chained traceback
            pytest.skip(reason)
        pytest.fail(reason, pytrace=False)

    return get


@pytest.fixture(scope="session")
def runs(settings: Settings, run_cache: RunCache, progress: Progress, report: Report) -> Runs:
    """``runs(protocol, n, seed_name=..., data=None, columns=())``: a tidy frame of ``n`` seeds' runs.

    Seeds derive from the base seed and ``seed_name``; runs in the cache are read, the rest trained (with progress);
    the frame joins the report's run table under the seed name's family (its leading capitals).
    See :mod:`resclaims.run.runs`.
    """
    return Runs(settings, run_cache, progress, report, incomplete=incomplete)


@pytest.fixture(scope="module")
def tier(request: pytest.FixtureRequest, settings: Settings) -> Tier:
    """The module's ``TIERS`` at the session's tier (:class:`~resclaims.run.tiers.Tier`): its seeds per condition
    (``--seeds`` overrides them), fidelity, protocol line and the family's configuration. A module without ``TIERS``
    stops with one line; a tier it does not declare skips its tests."""
    where = request.path.name
    try:
        tiers = declared(getattr(request.module, "TIERS", None), where)
    except TierError as error:
        pytest.fail(str(error), pytrace=False)
    if settings.tier not in tiers:
        pytest.skip(f"{where} declares no {settings.tier} tier (its TIERS: {', '.join(tiers)})")
    if settings.auto is not None:  # --seeds auto: this session's stage of the module (resclaims.plugin.sequential)
        return tiers[settings.tier].at(stage_seeds(request, settings, tiers[settings.tier].seeds))
    return tiers[settings.tier].at(settings.seeds)


@pytest.fixture(scope="module")
def config(tier: Tier) -> Any:
    """The module's family configuration at this session's tier: ``tier.config`` (the protocol its runs train)."""
    return tier.config


@pytest.fixture
def judge(request: pytest.FixtureRequest, settings: Settings, report: Report) -> Judge:
    """``judge(claim, *data)``: decide a :class:`~resclaims.decide.claims.Claim` on its runs, record it, pass or fail.

    The fidelity and the protocol line come from the module's ``tier`` (its ``TIERS``); ``protocol=...`` replaces the
    line for one claim; the outcomes expected at the tier where a claim is not supported from the module's
    ``expected/<module>.toml`` (:mod:`resclaims.decide.expected`, checked at collection). See
    :mod:`resclaims.decide.claims` for every step.
    """
    declared_tier: Tier = request.getfixturevalue("tier")
    families = request.config.stash.get(FAMILIES_KEY, None)
    if families is not None:  # the module's protocol-bound claims get no verdict at a reduced protocol
        families.protocol(request.module.__name__, declared_tier.fidelity == SOURCE_PROTOCOL)

    def expect(reason: str, raises: type[Exception]) -> None:
        request.applymarker(pytest.mark.xfail(strict=True, raises=raises, reason=reason))

    return Judge(
        tier=settings.tier, report=report, expect=expect, protocol=declared_tier.protocol,
        fidelity=declared_tier.fidelity, skip=lambda reason: pytest.skip(reason),
        calibration_seed=lambda claim_id: settings.run_seeds(f"calibration {claim_id}", 1)[0],
        default_seeds=settings.seeds is None and settings.auto is None and settings.base_seed == DEFAULT_BASE_SEED,
        n_sims=calibration.N_SIMS[settings.tier], calibrated=request.config.stash[CALIBRATED_KEY],
        stored=request.config.stash[STORED_KEY], code=_code_digest(request.path),
        families=families, refuse=lambda line: pytest.fail(line, pytrace=False),
        expected=expected.load(request.path).get(settings.tier, {}),
        decide=None if settings.auto is None else sequential.decider(
            settings.auto, request.node.nodeid.split("::")[0], getattr(request.module, "TIERS")[settings.tier].seeds,
            families),
    )


def stage_seeds(request: pytest.FixtureRequest, settings: Settings, tier_seeds: int) -> int:
    """The module's seeds at this session's look, recorded in the report's provenance (``sequential``)."""
    module = request.node.nodeid.split("::")[0]
    seeds, look = settings.auto.seeds(module, tier_seeds), settings.auto.look(module, tier_seeds)
    stage = request.config.stash[REPORT_KEY].provenance.setdefault("sequential", {"budget": settings.auto.budget})
    stage.setdefault("looks", {})[module] = look
    stage.setdefault("seeds", {})[module] = seeds
    stage.setdefault("stages", {})[module] = list(settings.auto.stages(tier_seeds))
    return seeds


@functools.cache
def _code_digest(module: Path) -> str:
    """What a claim's calibration depends on besides its data: the deciding code and the module declaring it."""
    return stored.code_digest(module)


@pytest.fixture(scope="session")
def run_cache(pytestconfig: pytest.Config) -> RunCache:
    """Trained runs, reused across sessions and claims (off with --no-run-cache)."""
    return pytestconfig.stash[CACHE_KEY]


@pytest.fixture(scope="session")
def progress(pytestconfig: pytest.Config) -> Progress:
    """``with progress.track(claim, condition, seeds, epochs) as on_epoch: train(..., on_epoch=on_epoch)``."""
    return Progress(pytestconfig)
