"""T fill: the Ray engine against the local one, filling CIFAR quick-tier runs on this machine (issue 13).

Source sentence: the project's own requirement (issue 13), "on the 2-core machine,
filling the K and D quick arms with ``--engine ray`` takes at most 1.3 times the
local engine, measured in the same run".

Protocol: each engine, with 2 workers, fills a fresh temporary run cache with the
same jobs, one seed (the quick tier's first K or D seed) of four quick-tier arms: K's
pair (resnet-10 and plain-10 at the quick width, ``K_TIERS["quick"].config``) and D's
shallow pair (plain-8 and resnet-8, ``D_TIERS["quick"].config``), one job per arm, as
``python -m resclaims fill`` schedules them. A reduced but representative subset of
the K and D quick arms: both CIFAR families and both kinds of net, in about 40 s per
engine on 2 cores, where all of K and D quick (50 runs) take about two minutes per
engine, too long for CI's quick tier. The time is the engine's whole fill: starting
it (``ray.init`` of a local 2-CPU cluster, the local engine's worker pool), running
the jobs, stopping it. Planning is left out (it is the same for both engines).
Each fill is one pytest-benchmark round; whichever engine is timed second checks
ray / local <= 1.3 against the first's time in the same session. Ray's workers run at
the caller's priority (``resclaims.run.engines.ray_engine``): at Ray's default niceness, 15,
any other process on the machine took their cores, and the ratio reached 1.31-1.39.
"""

from __future__ import annotations

import time

import pytest

from resclaims.datasets import cifar10
from resclaims.kernels import cifar
from resclaims.run.engines import INSTALL, EngineOptions, make_engine, make_job
from resclaims.run.runs import data_key

WORKERS = 2
MAX_RATIO = 1.3


@pytest.fixture(scope="module")
def data(dataset) -> cifar10.Cifar10:
    return dataset(cifar10.load, "cifar10")  # skipped if missing, one-line failure if broken


@pytest.fixture(scope="module")
def fill_seconds() -> dict[str, float]:
    """Each engine's fill time in this session, for the ratio."""
    return {}


def jobs(settings, data, cache_dir):  # noqa: ANN001, ANN201
    """One job per arm: K's quick pair and D's shallow quick pair, at the family's first quick seed."""
    k, d = cifar.K_TIERS["quick"].config, cifar.D_TIERS["quick"].config
    arms = {"K": (k.train, cifar.keras_arms([k.blocks], k.width)),
            "D": (d.train, [*cifar.he_arms(d.depths[:1], residual=False, widths=d.widths),
                            *cifar.he_arms(d.depths[:1], residual=True, widths=d.widths)])}
    return [make_job(cifar.CifarRuns(train, (arm,)), settings.run_seeds(family, 1), device="cpu", cache_dir=cache_dir,
                     label=family, family=family, data_key=data_key(data))
            for family, (train, family_arms) in arms.items() for arm in family_arms]


@pytest.mark.quick
@pytest.mark.parametrize("engine", ["local", "ray"])
def test_T_fill_K_D_quick_arms(engine, benchmark, report, settings, data, fill_seconds, tmp_path):
    """Fill the K and D quick arms' subset with ``engine`` (2 workers, a fresh cache); ray at most 1.3x local."""
    if engine == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            pytest.skip(f"ray is not installed: {INSTALL['ray']}")
    todo = jobs(settings, data, tmp_path / "runs")
    trained = []

    def fill() -> float:
        started = time.perf_counter()
        runner = make_engine(EngineOptions(engine, workers=WORKERS), device="cpu")
        try:
            runner.run(todo, {data_key(data): data}, lambda job, result: trained.append(result["trained"]))
        finally:
            runner.close()
        return time.perf_counter() - started

    benchmark.group = "T fill K and D quick arms, 2 workers"
    fill_seconds[engine] = benchmark.pedantic(fill, rounds=1, iterations=1)
    assert sum(trained) == len(todo)  # a fresh cache: every run trained
    extra = {}
    if {"local", "ray"} <= fill_seconds.keys():
        extra["ray_over_local"] = fill_seconds["ray"] / fill_seconds["local"]
    report.add_benchmark(benchmark, f"fill 4 K and D quick arms, 1 seed each, {engine}, 2 workers", engine=engine,
                         workers=WORKERS, runs=len(todo), **extra)
    if extra:
        ratio = extra["ray_over_local"]
        assert ratio <= MAX_RATIO, (f"ray took {ratio:.2f} times the local engine ({fill_seconds['ray']:.1f} s against "
                                    f"{fill_seconds['local']:.1f} s); at most {MAX_RATIO}")
