"""pytest options for engines, and the estimate line every session that trains prints first.

A session with ``--engine NAME`` fills the run cache first, then decides. The fill
runs as ``python -m resclaims fill`` on the session's own arguments
(:mod:`resclaims.plugin.fill`), in a child process before the first test: it
prints the estimate line (``Z, M quick: 1600 runs to train, about 0.02
device-hours on cpu``), trains what the selection lacks with the engine, and the
session then reads every run from the cache. Bad engine input stops the session
with one line and exit 4 before anything trains.

A session without ``--engine`` trains in its tests, as a claim asks for runs. It
prints the same estimate line before its first training (:class:`Estimate`), so
that a user who starts the full tier on a laptop learns the cost at once. What a
session needs is known only by running its fixtures (a claim's runs depend on its
tier, seeds and data), so the line comes from planning the session's own
arguments, ``python -m resclaims plan --estimate-only ARGS``, in a child process
(a nested ``pytest.main`` here would share this session's modules, capture and
plugins). Planning loads the data sets and runs the fixtures (seconds to half a
minute), so it runs only when training is about to start: the ``runs`` fixture
calls the cache's ``before_training`` once, on the first request the cache lacks
(:meth:`resclaims.run.runs.Runs.train`); a session whose runs are all cached checks
for missing entries as it always did (file names, no planning) and prints
nothing. Under pytest-xdist the controller hands its arguments to the workers
(``pytest_configure_node``), and the first worker that must train (a file made
with ``O_EXCL`` in a folder of the controller's) plans and writes the line to the
terminal; the others print nothing. A failed plan prints one line saying there is
no estimate, and the session goes on.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from resclaims.plugin.settings import names_a_path
from resclaims.run.engines import ENGINES, EngineError, EngineOptions, make_engine, parse_options


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


def _planning(config: pytest.Config) -> bool:
    return any(type(p).__name__ == "Planner" for p in config.pluginmanager.get_plugins())


def _fills(config: pytest.Config) -> bool:
    """This process should fill: an engine was named, and it is neither an xdist worker nor a planning session."""
    return bool(config.option.engine) and not hasattr(config, "workerinput") and not _planning(config)


def session_args(config: pytest.Config) -> list[str]:
    """The session's arguments, as a child process runs them (plan, fill): with the paths it collects when it named none."""
    args = list(config.invocation_params.args)
    if not names_a_path(args, config.invocation_params.dir):
        args += config.args  # what the session collects without paths: testpaths, or the current folder
    return args


ESTIMATE_TIMEOUT_S = 600
ONCE_KEY = pytest.StashKey[str]()  # xdist controller: the folder in which the first worker to train makes its file


class Estimate:
    """The cache's ``before_training`` in a session without ``--engine``: print the plan's line, once (module docstring)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        given = getattr(config, "workerinput", None)
        if given is not None and "resclaims_args" in given:  # an xdist worker: the controller's session
            self.args, self.folder, self.once = given["resclaims_args"], given["resclaims_dir"], given["resclaims_once"]
        else:
            self.args, self.folder, self.once = session_args(config), str(config.invocation_params.dir), None

    def first(self) -> bool:
        """This process is the session's first to train (always, outside xdist)."""
        if self.once is None:
            return True
        try:
            os.close(os.open(Path(self.once) / "estimated", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except OSError:  # another worker made it (or the controller's folder is gone: say nothing rather than twice)
            return False
        return True

    def line(self) -> str:
        command = [sys.executable, "-m", "resclaims", "plan", "--estimate-only", *self.args]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_XDIST", "PYTEST_CURRENT"))}
        try:
            done = subprocess.run(command, cwd=self.folder, env=env, capture_output=True, text=True,
                                  timeout=ESTIMATE_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            return f"no estimate of this session's cost (planning took over {ESTIMATE_TIMEOUT_S} s)"
        said = [line for line in done.stdout.splitlines() if line.strip()]
        if done.returncode or not said:
            said = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
            reason = said[-1].removeprefix("resclaims: ").removeprefix("ERROR: ") if said else f"exit {done.returncode}"
            return f"no estimate of this session's cost ({reason})"
        return said[-1]

    def __call__(self) -> None:
        if not self.first():
            return
        text = f"resclaims: {self.line()}"
        capture = self.config.pluginmanager.getplugin("capturemanager")
        terminal = self.config.pluginmanager.getplugin("terminalreporter")
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            if terminal is not None and not hasattr(self.config, "workerinput"):
                terminal.write_line(text)
            else:  # an xdist worker's own stdout is its channel to the controller; stderr is the terminal's
                print(text, file=sys.__stderr__, flush=True)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:  # noqa: ANN001 - xdist's WorkerController
    """xdist controller: the session's arguments and a folder of its own for the first worker to train."""
    config = node.config
    if ONCE_KEY not in config.stash:
        config.stash[ONCE_KEY] = tempfile.mkdtemp(prefix="resclaims-estimate-")
    node.workerinput.update(resclaims_args=session_args(config), resclaims_dir=str(config.invocation_params.dir),
                            resclaims_once=config.stash[ONCE_KEY])


def pytest_unconfigure(config: pytest.Config) -> None:
    if ONCE_KEY in config.stash:
        shutil.rmtree(config.stash[ONCE_KEY], ignore_errors=True)


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    """Check the engine's input (name, library, cluster address, cache folder) before anything trains; without an
    engine, arrange the estimate line before the session's first training."""
    from resclaims.plugin.keys import CACHE_KEY

    cache = config.stash.get(CACHE_KEY, None)
    if cache is not None and not config.option.engine and not _planning(config):
        cache.before_training = Estimate(config)
    if not _fills(config):
        return
    from resclaims.datasets import cache_dir
    from resclaims.plugin.fill import device_of
    from resclaims.run.engines import check_cache

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
    args = session_args(config)
    capture = config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        sys.stdout.flush()
        command = [sys.executable, "-m", "resclaims", "fill", *args]
        code = subprocess.run(command, cwd=config.invocation_params.dir, check=False).returncode
    if code == 4:
        raise pytest.UsageError(f"--engine {config.option.engine}: the fill stopped on bad input (the line above)")
    if code:
        raise pytest.UsageError(f"--engine {config.option.engine}: the fill failed (exit {code}); see above")

