"""pytest options for engines: a session with ``--engine NAME`` fills the run cache first, then decides.

The fill runs as ``python -m resclaims fill`` on the session's own arguments
(:mod:`resclaims.engines.fill`), in a child process before the first test: it
prints the estimate line (``Z, M quick: 1600 runs to train, about 0.02
device-hours on cpu``), trains what the selection lacks with the engine, and the
session then reads every run from the cache. Bad engine input stops the session
with one line and exit 4 before anything trains.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from resclaims.engines import ENGINES, EngineError, EngineOptions, make_engine, parse_options


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("resclaims")
    group.addoption("--engine", default=None, metavar="NAME", help=f"fill the run cache first with this engine ({', '.join(ENGINES)}), then decide (default: train in the session)")
    group.addoption("--engine-address", default=None, metavar="HOST:PORT", help="ray: the cluster to connect to (default: start a local one)")
    group.addoption("--engine-workers", default=None, type=int, metavar="N", help="engine workers (default: one per GPU, else per CPU core)")
    group.addoption("--seeds-per-job", default=None, type=int, metavar="N", help="engine jobs train at most N seeds of a condition each (default: all its missing seeds)")
    group.addoption("--engine-option", action="append", default=[], metavar="KEY=VALUE", help="slurm: a submitit parameter, e.g. slurm_partition=gpu or cluster=local")


def _options(config: pytest.Config) -> EngineOptions:
    opt = config.option
    return EngineOptions(opt.engine, opt.engine_address, opt.engine_workers, parse_options(opt.engine_option),
                         opt.seeds_per_job)


def _fills(config: pytest.Config) -> bool:
    """This process should fill: an engine was named, and it is neither an xdist worker nor a planning session."""
    return bool(config.option.engine) and not hasattr(config, "workerinput") and not any(
        type(p).__name__ == "Planner" for p in config.pluginmanager.get_plugins())


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    """Check the engine's input (name, library, cluster address, cache folder) before anything trains."""
    if not _fills(config):
        return
    from resclaims.datasets import cache_dir
    from resclaims.engines import check_cache
    from resclaims.engines.fill import device_of

    try:
        check_cache(cache_dir() / "runs")
        make_engine(_options(config), device=device_of(config.invocation_params.args)).close()
    except EngineError as error:
        raise pytest.UsageError(str(error)) from None


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Fill the cache with the engine (a child process on the session's own arguments) before the first test."""
    config = session.config
    if not _fills(config):
        return
    from resclaims.__main__ import names_a_path

    args = list(config.invocation_params.args)
    if not names_a_path(args, config.invocation_params.dir):
        args += config.args  # what the session collects without paths: testpaths, or the current folder
    capture = config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else _nothing():
        sys.stdout.flush()
        command = [sys.executable, "-m", "resclaims", "fill", *args]
        code = subprocess.run(command, cwd=config.invocation_params.dir, check=False).returncode
    if code == 4:
        raise pytest.UsageError(f"--engine {config.option.engine}: the fill stopped on bad input (the line above)")
    if code:
        raise pytest.UsageError(f"--engine {config.option.engine}: the fill failed (exit {code}); see above")


def _nothing():
    import contextlib

    return contextlib.nullcontext()
