"""Engines (issue 13): plan, fill, the local, ray and slurm engines, bad input, a killed fill.

Tiny protocols only: the zero/identity kernel at 10 images and 2 epochs, and a toy
kernel (in a temporary folder) whose runs take a set time, for the fill killed part-way.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

import resclaims
from resclaims.__main__ import main
from resclaims.kernels.zero_identity import ZeroIdentityProtocol
from resclaims.plugin.fill import FillProgress
from resclaims.plugin.costs import Need, Plan
from resclaims.run.engines import EngineOptions, execute, make_engine, make_job
from resclaims.run.seeding import DEFAULT_BASE_SEED, derive_seeds

ROOT = Path(resclaims.__file__).resolve().parents[1]
TINY = [ZeroIdentityProtocol(n_samples=10, epochs=2, lr=lr) for lr in (1e-3, 3e-3)]
SEEDS = (11, 12, 13)


def entries(cache: Path) -> dict[Path, pd.DataFrame]:
    """Every entry of a run cache folder, by its path inside it."""
    return {p.relative_to(cache): pq.read_table(p).to_pandas() for p in sorted(cache.glob("*/??/*.parquet"))}


def assert_same_entries(a: Path, b: Path) -> None:
    ours, theirs = entries(a), entries(b)
    assert ours and ours.keys() == theirs.keys()
    for key, frame in ours.items():
        pd.testing.assert_frame_equal(frame, theirs[key], check_exact=True)


def fill_all(engine_name: str, cache: Path, **options) -> list[dict]:
    jobs = [make_job(p, SEEDS, device="cpu", cache_dir=cache, label="T") for p in TINY]
    engine = make_engine(EngineOptions(engine_name, workers=1, options=options), device="cpu")
    results = []
    try:
        engine.run(jobs, {}, lambda job, result: results.append(result))
    finally:
        engine.close()
    return results


@pytest.mark.slow  # starts a Ray cluster and submitit's executor: CI's slow step runs it, beside its engine fills
def test_every_engine_caches_the_same_frames(tmp_path):
    """local, ray and submitit's local executor train the same runs, bit for bit, as execute in this process, in
    workers at this process's priority (Ray's default worker niceness, 15, starved its workers on a busy machine)."""
    for protocol in TINY:
        execute(make_job(protocol, SEEDS, device="cpu", cache_dir=tmp_path / "here", label="T"))
    engines = {"local": {}}
    for name, module, options in (("ray", "ray", {}), ("slurm", "submitit", {"cluster": "local"})):
        pytest.importorskip(module)
        engines[name] = options
    for name, options in engines.items():
        results = fill_all(name, tmp_path / name, **options)
        assert sorted(r["trained"] for r in results) == [len(SEEDS)] * len(TINY), name
        assert {r["niceness"] for r in results} == {os.nice(0)}, name
        assert_same_entries(tmp_path / "here", tmp_path / name)
    again = execute(make_job(TINY[0], SEEDS, device="cpu", cache_dir=tmp_path / "local", label="T"))
    assert (again["trained"], again["reused"], again["trained_seeds"]) == (0, len(SEEDS), [])  # a cached run is read, not trained


def test_seed_groups_train_the_same_runs(tmp_path):
    """--seeds-per-job: a condition's seeds split over jobs give the frames one job gives (seeds train apart)."""
    cache = tmp_path / "runs"
    need = Need("T", "T", "resclaims.kernels.zero_identity", TINY[1], SEEDS, SEEDS, 2, "cpu", None)
    jobs = Plan([need], {}, cache, "quick", "cpu").jobs(seeds_per_job=2)
    assert [job.seeds for job in jobs] == [SEEDS[:2], SEEDS[2:]]
    for job in jobs:
        execute(job)
    execute(make_job(TINY[1], SEEDS, device="cpu", cache_dir=tmp_path / "whole"))
    assert_same_entries(cache, tmp_path / "whole")


def test_fill_progress_is_one_bar_on_a_terminal_and_one_line_per_run_in_logs(tmp_path, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("CI", raising=False)
    jobs = [make_job(p, SEEDS, device="cpu", cache_dir=tmp_path, label="T") for p in TINY]
    results = [{"trained": 3, "reused": 0, "seconds": 0.5, "host": "node1", "trained_seeds": list(SEEDS)},
               {"trained": 2, "reused": 1, "seconds": 0.25, "host": "node2", "trained_seeds": list(SEEDS[1:])}]
    for out in (Terminal(), io.StringIO()):
        progress = FillProgress(jobs, out, "ray")
        for job, result in zip(jobs, results):
            progress(job, result)
        progress.close()
        text = out.getvalue()
        assert progress.trained == 5
        if isinstance(out, Terminal):
            assert "fill (ray)" in text and "6/6 [" in text and "resclaims: fill:" not in text  # a bar, no lines
        else:
            first, second = "identity, zero (n_samples=10, epochs=2)", "identity, zero (n_samples=10, epochs=2, lr=0.003)"
            assert text.splitlines() == [
                f"resclaims: fill: T: {first}, seed 11: trained (job of 3 runs, 0.5 s on node1) 1/6 runs",
                f"resclaims: fill: T: {first}, seed 12: trained (job of 3 runs, 0.5 s on node1) 2/6 runs",
                f"resclaims: fill: T: {first}, seed 13: trained (job of 3 runs, 0.5 s on node1) 3/6 runs",
                f"resclaims: fill: T: {second}, seed 11: from the cache (job of 3 runs, 0.2 s on node2) 4/6 runs",
                f"resclaims: fill: T: {second}, seed 12: trained (job of 3 runs, 0.2 s on node2) 5/6 runs",
                f"resclaims: fill: T: {second}, seed 13: trained (job of 3 runs, 0.2 s on node2) 6/6 runs"]


def test_two_protocols_of_one_kernel_read_apart_in_plans_and_fills(tmp_path):
    """The README's U1 trains the identity arm at two learning rates: its plan rows, fill lines and progress named
    both "identity". A condition's name now ends with the settings in which it differs from its protocol's
    defaults; a protocol at its defaults (001's) and CIFAR's arms keep their names."""
    from resclaims.kernels import cifar
    from resclaims.kernels.zero_identity import SOURCE_PROTOCOL
    from resclaims.run.runs import condition_name

    slow, fast = (ZeroIdentityProtocol(arms=("identity",), lr=lr) for lr in (1e-4, 1e-3))
    assert (condition_name(slow), condition_name(fast)) == ("identity (lr=0.0001)", "identity")
    assert condition_name(SOURCE_PROTOCOL) == "identity, zero"
    config = cifar.K_TIERS["quick"].config
    assert condition_name(cifar.CifarRuns(config.train, tuple(cifar.keras_arms([10], config.width)))) == \
        "resnet-10, plain-10"
    needs = [Need("U", "U1", "resclaims.kernels.zero_identity", p, (1, 2), (1, 2), 20, "cpu", None) for p in (slow, fast)]
    table = Plan(needs, {}, tmp_path, "quick", "cpu").table().splitlines()
    assert "U1             identity (lr=0.0001)  " in table[1] and "U1             identity              " in table[2]
    assert len({len(row) for row in table}) == 1  # the columns stay aligned
    out = io.StringIO()
    jobs = [make_job(p, (7,), device="cpu", cache_dir=tmp_path, label="U1") for p in (slow, fast)]
    progress = FillProgress(jobs, out, "local")
    for job in jobs:
        progress(job, {"trained": 1, "seconds": 1.0, "host": "node1", "trained_seeds": [7]})
    assert [line.split(", seed")[0] for line in out.getvalue().splitlines()] == [
        "resclaims: fill: U1: identity (lr=0.0001)", "resclaims: fill: U1: identity"]


def test_a_job_refuses_another_kernel_version(tmp_path):
    job = make_job(TINY[0], SEEDS, device="cpu", cache_dir=tmp_path)
    stale = type(job)(**{**job.__dict__, "kernel_version": "0123456789abcdef"})
    with pytest.raises(RuntimeError, match="kernel is version"):
        execute(stale)
    assert not entries(tmp_path)


def test_the_plan_estimates_from_measured_runs(tmp_path):
    cache = tmp_path / "runs"
    execute(make_job(TINY[0], SEEDS, device="cpu", cache_dir=cache, label="T"))
    need = lambda protocol, seeds, missing: Need("T", "T", "resclaims.kernels.zero_identity", protocol, seeds, missing,  # noqa: E731
                                                 2, "cpu", None)
    plan = Plan([need(TINY[0], SEEDS, ()), need(TINY[1], (1, 2), (1, 2))], {}, cache, "quick", "cpu")
    assert plan.runs_to_train == 2 and len(plan.jobs()) == 1 and plan.jobs()[0].seeds == (1, 2)
    assert plan.seconds(plan.needs[1]) > 0
    assert plan.estimate().startswith("T quick: 2 runs to train, about ")
    assert plan.estimate().endswith(" device-hours on cpu")
    table = plan.table().splitlines()
    assert len(table) == 3 and table[1].split()[-5:-2] == ["3", "0", "0"]  # held, published, to train
    empty = Plan([need(TINY[1], (1,), (1,))], {}, tmp_path / "empty", "full", "cpu")
    assert "cost unknown on cpu" in empty.estimate()


def test_runs_of_another_length_do_not_estimate_a_condition(tmp_path):
    """A kernel's time per seed-step comes from runs of as many steps: the full tier's runs never price the quick
    tier's (a quick-tier CI session once read "1.5 device-hours" for a few minutes' training)."""
    cache = tmp_path / "runs"
    execute(make_job(TINY[0], SEEDS, device="cpu", cache_dir=cache, label="T"))  # 2 epochs
    need = lambda steps: Need("T", "T", "resclaims.kernels.zero_identity", TINY[1], (1,), (1,), steps, "cpu", None)  # noqa: E731
    assert Plan([need(2)], {}, cache, "quick", "cpu").cost(need(2))[1] == "cache"
    assert Plan([need(20)], {}, cache, "quick", "cpu").cost(need(20)) == (None, None)


def test_without_measured_runs_cifar_steps_are_estimated_from_the_baseline_timings(tmp_path):
    """An empty cache: K's full-tier 10-block arms from the baseline's train-step times (named, with the machine);
    an arm the benchmarks do not time stays unknown."""
    from resclaims.kernels import cifar
    from resclaims.plugin.costs import BASELINE

    config = cifar.K_TIERS["full"].config
    arms = {arm.name: arm for arm in cifar.keras_arms([5, 10], config.width)}
    need = lambda name: Need("K", "K", "resclaims.kernels.cifar.kernel", cifar.CifarRuns(config.train, (arms[name],)),  # noqa: E731
                             (1, 2), (1, 2), 30, "cpu", None)
    plan = Plan([need("resnet-10"), need("resnet-5")], {}, tmp_path / "empty", "full", "cpu")
    baseline = json.loads(BASELINE.read_text())
    step = next(t["seconds"] for t in baseline["timings"] if t["name"] == "train step keras003 resnet-10, batch 64, cpu")
    assert plan.cost(plan.needs[0]) == (pytest.approx(2 * config.train.steps * step), "baseline")
    assert plan.cost(plan.needs[1]) == (None, None)
    assert plan.estimate() == (
        f"K full: 4 runs to train, about {2 * config.train.steps * step / 3600:.2g} device-hours on cpu (2 runs from "
        f"the baseline's train-step times, measured on {baseline['provenance']['device_name']}; training steps only) "
        "(plus 2 runs of resclaims.kernels.cifar.kernel: nothing measured to estimate from)")
    assert plan.seconds(Need("K", "K", "resclaims.kernels.cifar.kernel", plan.needs[0].condition, (1,), (1,), 30, "cuda",
                             None)) is None  # no CUDA step in a CPU baseline


@pytest.mark.parametrize("args, env, message", [
    (["--engine", "spark"], {}, "--engine spark: unknown engine; use one of local, ray, slurm"),
    (["--engine", "ray", "--engine-address", "127.0.0.1:9"], {}, "--engine-address 127.0.0.1:9: cannot reach"),
    (["--engine", "local"], {"RESCLAIMS_CACHE": "FILE/inside"}, "cannot write in it"),
    (["--engine", "slurm", "--engine-option", "partition"], {}, "--engine-option partition: give KEY=VALUE"),
], ids=["unknown-engine", "unreachable-address", "unwritable-cache", "bad-option"])
def test_bad_input_is_one_line_and_exit_4(tmp_path, monkeypatch, capsys, args, env, message):
    """Before anything plans or trains: one line on stderr, exit 4."""
    (tmp_path / "FILE").write_text("not a folder")
    monkeypatch.setenv("RESCLAIMS_CACHE", str(tmp_path / "cache"))
    for key, value in env.items():
        monkeypatch.setenv(key, str(tmp_path / value))
    if args[1] == "ray":
        pytest.importorskip("ray")
    monkeypatch.setattr("resclaims.plugin.fill.plan", lambda *a: pytest.fail("planned despite bad input"))
    assert main(["fill", *args, "tests"]) == 4
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("resclaims: ERROR: ") and message in err


def test_a_session_with_a_bad_engine_stops_before_its_tests(pytester, monkeypatch, tmp_path):
    monkeypatch.setenv("RESCLAIMS_CACHE", str(tmp_path))
    pytester.makepyfile(test_x="def test_x(): raise AssertionError('ran')")
    result = pytester.runpytest("-p", "resclaims.plugin", "-p", "resclaims.plugin.engine", "--engine", "spark")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    lines = [line for line in result.stderr.lines if line.strip()]
    assert lines == ["ERROR: --engine spark: unknown engine; use one of local, ray, slurm"]
    assert "ran" not in result.stdout.str()


@pytest.mark.parametrize("command", ["plan", "fill"])
def test_the_selection_keeps_its_own_options(command):
    """`fill --seeds 2` is the selection's --seeds, not an abbreviation of --seeds-per-job."""
    from resclaims.__main__ import build_parser

    args, rest = build_parser().parse_known_args([command, "--seeds", "2", "-m", "quick"])
    assert rest == ["--seeds", "2", "-m", "quick"] and getattr(args, "seeds_per_job", None) is None


def test_a_fill_names_the_run_cache_it_cannot_use_and_offers_no_run_cache_it_refuses(tmp_path, monkeypatch, capsys):
    """RESCLAIMS_CACHE at a file: the fill's line names that run cache and says every worker must write it; it
    offered --no-run-cache, which a fill refuses (it trains into the run cache)."""
    (tmp_path / "FILE").write_text("not a folder")
    monkeypatch.setenv("RESCLAIMS_CACHE", str(tmp_path / "FILE"))
    monkeypatch.setattr("resclaims.plugin.fill.plan", lambda *a: pytest.fail("planned despite bad input"))
    assert main(["fill", "tests"]) == 4
    assert capsys.readouterr().err.strip() == (
        f"resclaims: ERROR: run cache {tmp_path / 'FILE' / 'runs'}: cannot write in it (Not a directory); point "
        "RESCLAIMS_CACHE at a folder every worker can write (the run cache is its runs/ folder)")


def test_a_fill_whose_workers_write_elsewhere_names_its_run_cache(tmp_path, monkeypatch):
    """Jobs that finish without the fill's cache gaining their runs: the error names the run cache the fill reads."""
    from resclaims.plugin.fill import fill

    cache = tmp_path / "mine" / "runs"
    monkeypatch.setenv("RESCLAIMS_CACHE", str(cache.parent))
    need = Need("T", "T", "resclaims.kernels.zero_identity", TINY[0], SEEDS, SEEDS, 2, "cpu", None)
    monkeypatch.setattr("resclaims.plugin.fill.plan", lambda args: Plan([need], {}, cache, "quick", "cpu"))

    class Elsewhere:  # an engine whose workers write into another cache
        name, workers = "local", 1

        def run(self, jobs, data, done) -> None:
            pass

        def close(self) -> None:
            pass

    monkeypatch.setattr("resclaims.plugin.fill.make_engine", lambda options, device: Elsewhere())
    with pytest.raises(RuntimeError, match=re.escape(f"the run cache {cache} still lacks runs it trained")):
        fill(["tests"], EngineOptions(), out=io.StringIO())


@pytest.mark.parametrize("engine, module", [("ray", "ray"), ("slurm", "submitit")])
def test_a_missing_library_names_its_install_command(monkeypatch, capsys, engine, module):
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if it were not installed
    assert main(["fill", "--engine", engine, "tests"]) == 4
    err = capsys.readouterr().err.strip()
    assert err.endswith(f'pip install "resclaims[{engine}]"  (or: pip install "{"ray>=2.9" if engine == "ray" else "submitit>=1.5"}")')
    assert f"{module} is not installed" in err


TOY_KERNEL = '''
import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Toy:
    name: str
    pause: float = 0.0
    epochs: int = 3
    started: str = ""
    kernel: ClassVar[str] = "toy_kernel"


def train(protocol, seeds, device, *, data=None, on_epoch=None, on_condition=None, checkpoints=None):
    if protocol.started:
        open(protocol.started, "w").close()  # the run has begun (a test waits for it)
    time.sleep(protocol.pause)
    for epoch in range(protocol.epochs if on_epoch else 0):
        on_epoch(epoch)
    return pd.DataFrame([{"seed": s, "epoch": e, "loss": float(np.random.default_rng(s).normal(size=9)[e])}
                         for s in seeds for e in range(protocol.epochs)])
'''
PLANNED_FRAME = '''

def planned_frame(protocol, seeds):
    return pd.DataFrame([{"seed": s, "epoch": e, "loss": np.nan} for s in seeds for e in range(protocol.epochs)])
'''
PLANNED_TESTS = '''
import pytest
from toy_kernel import Toy


@pytest.fixture(scope="module")
def c_runs(runs):
    return runs(Toy("c"), 2, family="X")


def test_two_in_turn(runs):
    losses = {name: runs(Toy(name), 2, family="X").loss.to_numpy() for name in ("a", "b")}
    assert (losses["a"] < losses["b"]).sum() >= 0


def test_converged(c_runs):
    if c_runs.loss.isna().all():
        pytest.skip("no run converged")


def test_without_runs():
    pytest.skip("no data here")
'''
TOY_TESTS = '''
import pytest
from toy_kernel import Toy


@pytest.mark.parametrize("name", ["a", "b", "c", "d"])
def test_toy(runs, name):
    assert len(runs(Toy(name, pause=0.5), 2, family="X")) == 6


def test_the_session_trained_nothing(run_cache):
    assert run_cache.trained == 0 and run_cache.reused == 8
'''


@pytest.mark.usefixtures("validation_tables")
def test_a_plan_counts_every_request_of_a_test_and_shows_no_skip_of_runs_it_plans(pytester, monkeypatch, tmp_path):
    """A kernel with planned_frame: a test that asks for two protocols in turn counts both (planning stopped at the
    first missing one); a test that skips on its NaN runs (as it might skip on runs that did not converge) is not
    shown as "skipped, not planned", for its runs are; a test without runs still is."""
    from resclaims.plugin.plan import plan

    monkeypatch.setenv("RESCLAIMS_CACHE", str(tmp_path / "cache"))
    pytester.syspathinsert()
    pytester.makeconftest('pytest_plugins = ("resclaims.plugin",)\n')
    pytester.makepyfile(toy_kernel=TOY_KERNEL + PLANNED_FRAME, test_toy=PLANNED_TESTS)
    found = plan(["test_toy.py"])
    assert [(need.name, need.missing) for need in found.needs] == [
        ("a", found.needs[0].seeds), ("b", found.needs[0].seeds), ("c", found.needs[0].seeds)]
    assert found.estimate().startswith("X quick: 6 runs to train") and found.other_skips == ["no data here"]
    assert not (tmp_path / "cache" / "runs" / "toy_kernel").exists()


def toy_project(tmp_path: Path, tests: str) -> tuple[Path, dict[str, str]]:
    """A folder with the toy kernel and ``tests`` (the resclaims plugins loaded), and the environment to run it in."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "conftest.py").write_text('pytest_plugins = ("resclaims.plugin", "resclaims.plugin.engine")\n')
    (project / "toy_kernel.py").write_text(TOY_KERNEL)
    (project / "test_toy.py").write_text(tests)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(project), str(ROOT)]), "RESCLAIMS_CACHE": str(tmp_path),
           "CI": "1"}
    return project, env


@pytest.mark.slow  # a fill killed, then a session with its engine: four processes, CI's slow step runs it
def test_a_killed_fill_resumes_and_a_session_with_engine_decides_from_the_cache(tmp_path, monkeypatch):
    """SIGKILL part-way: no corrupt entry, finished runs kept; `pytest --engine local` then trains only the rest in
    its fill, and its tests read every run from the cache; the entries equal an uninterrupted fill's."""
    project, env = toy_project(tmp_path, TOY_TESTS)
    cache = tmp_path / "runs"
    killed = subprocess.Popen([sys.executable, "-m", "resclaims", "fill", "--engine", "local", "--workers", "1",
                               "test_toy.py"], cwd=project, env=env, start_new_session=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    # a job writes its two entries one after the other: wait for two, so that a loaded machine does not kill between
    while len(list(cache.glob("toy_kernel/??/*.parquet"))) < 2 and time.monotonic() < deadline and killed.poll() is None:
        time.sleep(0.1)
    os.killpg(killed.pid, signal.SIGKILL)  # the fill and its worker
    killed.wait()
    kept = entries(cache)  # every entry left is readable
    assert 2 <= len(kept) < 8, killed.stdout.read().decode()

    session = subprocess.run([sys.executable, "-m", "pytest", "--engine", "local", "--engine-workers", "1",
                              "-p", "no:cacheprovider", "--report-dir", str(tmp_path / "report")],
                             cwd=project, env=env, capture_output=True, text=True)
    out = session.stdout + session.stderr
    assert session.returncode == 0, out
    assert f"X quick: {8 - len(kept)} runs to train" in out
    assert "5 passed" in out
    for path, frame in kept.items():  # the finished runs were kept, not trained again
        pd.testing.assert_frame_equal(entries(cache)[path], frame, check_exact=True)

    monkeypatch.syspath_prepend(str(project))
    from toy_kernel import Toy

    for name in "abcd":  # uninterrupted, in this process
        seeds = derive_seeds(DEFAULT_BASE_SEED, "X", 2)
        execute(make_job(Toy(name, pause=0.5), seeds, device="cpu", cache_dir=tmp_path / "whole", label="X"))
    assert_same_entries(cache, tmp_path / "whole")


LONG_TEST = '''
from toy_kernel import Toy


def test_long(runs):
    runs(Toy("a", pause=300, started="STARTED"), 1, family="X")
'''


def process_group(pgid: int) -> list[int]:
    """The live processes of process group ``pgid`` (Linux: read from /proc)."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getpgid(int(entry)) == pgid and "Z" not in Path(f"/proc/{entry}/stat").read_text().split()[2]:
                    members.append(int(entry))
            except (ProcessLookupError, FileNotFoundError, PermissionError):
                pass
    return members


@pytest.mark.slow  # a fill in processes of its own
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process table from /proc")
@pytest.mark.parametrize("sig, code, word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")],
                         ids=["SIGINT", "SIGTERM"])
def test_a_fill_sent_a_signal_alone_stops_its_workers_at_once(tmp_path, sig, code, word):
    """`kill -INT` of the fill alone (not its process group, as a terminal's Ctrl-C is), or `kill` (SIGTERM, as a
    batch system's time limit sends): the fill stops in one line with exit 130 or 143 and takes its workers with it,
    rather than wait for their runs (it waited 20 minutes for a CIFAR run on SIGINT; on SIGTERM it ended alone and
    its worker trained on); the unfinished run resumes from its checkpoint next time."""
    project, env = toy_project(tmp_path, LONG_TEST)
    # SIGINT as a terminal leaves it: a session started in the background (`nohup ... &`, as CI may be) ignores it,
    # and its children inherit that
    fill = subprocess.Popen([sys.executable, "-m", "resclaims", "fill", "--engine", "local", "--workers", "1",
                             "test_toy.py"], cwd=project, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while not (project / "STARTED").exists() and time.monotonic() < deadline and fill.poll() is None:
            time.sleep(0.2)  # until the worker is in its run (a 300 s pause)
        assert fill.poll() is None and (project / "STARTED").exists(), fill.stdout.read()
        os.kill(fill.pid, sig)
        out, _ = fill.communicate(timeout=60)
        assert fill.returncode == code, out
        assert word in out.strip().splitlines()[-1] and "Traceback" not in out, out
        deadline = time.monotonic() + 30
        while process_group(fill.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert process_group(fill.pid) == [], "a worker outlived its fill"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(fill.pid, signal.SIGKILL)


TOY_SESSION = '''
import pytest
from toy_kernel import Toy


@pytest.mark.parametrize("name", ["a", "b", "c"])
def test_toy(runs, name):
    assert len(runs(Toy(name), 2, family="X")) == 6
'''


def run_toy_session(project: Path, env: dict[str, str], *args: str) -> list[str]:
    """A plain session (no --engine) in the toy project: its output's lines (it must pass)."""
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--baseline", "none",
                           "--report-dir", str(project.parent / "report"), *args], cwd=project, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return (done.stdout + done.stderr).splitlines()


def test_a_session_that_trains_prints_the_estimate_first_and_a_cached_one_prints_nothing(tmp_path):
    """A plain session (no --engine) plans its own arguments once, before its first training, and prints the line;
    run again on the filled cache it prints no estimate (and plans nothing)."""
    project, env = toy_project(tmp_path, TOY_SESSION)
    lines = run_toy_session(project, env)
    estimates = [i for i, line in enumerate(lines) if line.startswith("resclaims: X quick: ")]
    trained = [i for i, line in enumerate(lines) if line.startswith("resclaims: X: trained ")]
    assert len(estimates) == 1 and len(trained) == 3 and estimates[0] < trained[0], "\n".join(lines)
    assert lines[estimates[0]] == ("resclaims: X quick: 6 runs to train, cost unknown on cpu "
                                   "(no measured runs of toy_kernel in the cache)")
    assert not [line for line in run_toy_session(project, env, "-q") if "quick: " in line or "estimate" in line]


@pytest.mark.slow  # a session of two xdist workers in processes of their own: CI's slow step runs it
def test_under_xdist_one_worker_prints_the_estimate(tmp_path):
    pytest.importorskip("xdist")
    project, env = toy_project(tmp_path, TOY_SESSION)
    lines = run_toy_session(project, env, "-n", "2")
    assert [line for line in lines if "quick: " in line] == [
        "resclaims: X quick: 6 runs to train, cost unknown on cpu (no measured runs of toy_kernel in the cache)"], lines
