"""T rate: the CPU run against this CPU's own limit (issue 23, item 5).

Source sentence: the project's own question (issue 23), how close a CIFAR run on
the CPU comes to what the CPU can do: "the 003 step's FLOP rate as a ratio of a
large sgemm's rate on the same threads, at 1 and 2 threads, and a whole epoch's
rate (steps, evaluation, data) as a ratio of the step's".

What one session measures (CPU only; a CUDA session skips the module):

``sgemm``
    a 2048 x 2048 float32 matmul, 2 * 2048^3 FLOPs a call, at 1 and 2 threads:
    the rate the CPU's best-tuned kernel reaches on those threads.
``step``
    one training step of 003's resnet-10 at full width (batch 64, Keras Adam,
    float32, eager, one model in the loop stack: the step :func:`resclaims.kernels.cifar.train`
    takes on CPU), at 1 and 2 threads, on fixed random batches
    (:func:`resclaims.kernels.cifar.step_closure`). Its FLOPs are counted once with
    ``torch.utils.flop_counter`` on one ordinary model, forward and backward
    (13.36 GFLOP; the counter overcounts grouped convolutions, so never on a
    stack). Reported: GFLOP/s, and step / sgemm at the same threads.
``epoch``
    :func:`resclaims.kernels.cifar.train` on 003's protocol, 1 thread, 1 seed, for two
    logged stretches of S steps, each followed by the evaluation of S/195 of the
    10,000 test images: the same evaluation per step as a whole epoch (195 steps,
    then the test set). Steps, data (batch order, crop and flip) and evaluation
    count; the second stretch is timed from one logged epoch to the next, so the
    one-off costs (data to the device, the models, the first steps) stay out.
    Reported: the stretch's steps per second over the timed step's (epoch / step).
    Quick tier: S = 39, a fifth of an epoch (2,000 test images); full: S = 195,
    one epoch (all 10,000).

Each ratio is of medians: the benchmark's rounds against its reference (sgemm for
the step, the step for the stretch) timed 3 times just before and 3 times just
after, so that other load on a shared CPU weighs on both alike. Two threads need two cores this process
may use; with fewer (a pinned process, ``taskset -c 0``) those tests skip, since
they would measure the oversubscription. Assertions are ratios measured in the
same session only, with loose bounds that a working step and timer always meet
(step / sgemm in (0, 1.5), epoch / step in (0, 1.25)); never an absolute time. The
reference's seconds go into the benchmark's ``extra_info`` (``reference_s``): the
baseline comparison judges the step's time over sgemm's, and the training call's over
the step's, against the baseline's same ratios (``resclaims.report.compare``).

Cost (2-core CPU, 1 thread at about 150 GFLOP/s sgemm): quick about 30 s, full
about 100 s.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from resclaims.datasets import cifar10
from resclaims.kernels import cifar

SGEMM_N = 2048  # matrix side: large enough for the BLAS kernel's full rate
THREADS = [1, 2]
MAX_STEP_RATIO = 1.5  # a step faster than 1.5x the CPU's sgemm: a broken FLOP count or timer
MAX_EPOCH_RATIO = 1.25  # whole training faster than its steps alone: a broken timer
EPOCH_STEPS = {"quick": 39, "full": 195}  # S: a fifth of 003's epoch, or all of it
ARM = cifar.keras_arms([10])[0]  # 003's resnet-10 at full width
PROTOCOL = cifar.TrainConfig()  # 003's protocol


@pytest.fixture(scope="module", autouse=True)
def cpu_session(device) -> None:
    if device.type != "cpu":
        pytest.skip("the CPU's own limit: CPU sessions only")


@pytest.fixture(scope="module")
def data(dataset) -> cifar10.Cifar10:
    return dataset(cifar10.load, "cifar10")  # skipped if missing, one-line failure if broken


def need_cores(threads: int) -> None:
    if len(os.sched_getaffinity(0)) < threads:
        pytest.skip(f"{threads} threads on {len(os.sched_getaffinity(0))} usable core(s) measure oversubscription")


def call_seconds(fn, rounds: int) -> list[float]:
    """Wall times of ``rounds`` calls of ``fn`` after one warm-up (a reference taken outside pytest-benchmark)."""
    fn()
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return times


def sgemm_call():
    generator = torch.Generator().manual_seed(0)
    a, b = (torch.randn(SGEMM_N, SGEMM_N, generator=generator) for _ in range(2))
    return lambda: torch.mm(a, b)


def step_flops(cfg: cifar.TrainConfig, arm: cifar.Arm) -> int:
    """FLOPs of one training step's forward and backward, counted on one ordinary (ungrouped) model."""
    model = cifar.build(arm, 0)
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(cfg.batch_size, 3, 24, 24, generator=generator)
    y = torch.randint(0, 10, (cfg.batch_size,), generator=generator)
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    return counter.get_total_flops()


@pytest.mark.quick
@pytest.mark.full
@pytest.mark.parametrize("threads", THREADS)
def test_T_sgemm_rate(threads, benchmark, report, settings):
    """A 2048 x 2048 float32 matmul on ``threads`` threads: the CPU's reachable GFLOP/s."""
    need_cores(threads)
    benchmark.group = "T rate: the CPU's limit and 003's step, cpu"
    with cifar.cpu_threads(threads):
        benchmark.pedantic(sgemm_call(), rounds=5 if settings.tier == "quick" else 20, warmup_rounds=1, iterations=1)
    gflops = 2 * SGEMM_N**3 / benchmark.stats.stats.median / 1e9
    benchmark.extra_info.update(gflops=gflops, cpu_threads=threads)
    report.add_benchmark(benchmark, f"sgemm {SGEMM_N}, float32, {threads} thread(s), cpu", impl="sgemm", device="cpu",
                         cpu_threads=threads, gflops=gflops)
    assert gflops > 0


@pytest.mark.quick
@pytest.mark.full
@pytest.mark.parametrize("threads", THREADS)
def test_T_step_flop_rate(threads, benchmark, report, settings):
    """003's resnet-10 step (full width, batch 64) on ``threads`` threads: GFLOP/s, and step / sgemm."""
    need_cores(threads)
    flops = step_flops(PROTOCOL, ARM)
    benchmark.group = "T rate: the CPU's limit and 003's step, cpu"
    with cifar.cpu_threads(threads):
        step, sgemm = cifar.step_closure(PROTOCOL, ARM, 1, "cpu"), sgemm_call()
        before = call_seconds(sgemm, rounds=3)
        loss = benchmark.pedantic(step, rounds=5 if settings.tier == "quick" else 20, warmup_rounds=1, iterations=1)
        sgemm_s = statistics.median(before + call_seconds(sgemm, rounds=3))  # just before and after
    gflops, sgemm = flops / benchmark.stats.stats.median / 1e9, 2 * SGEMM_N**3 / sgemm_s / 1e9
    ratio = gflops / sgemm
    info = {"step_gflop": flops / 1e9, "gflops": gflops, "sgemm_gflops": sgemm, "step_over_sgemm": ratio,
            "reference": f"sgemm {SGEMM_N} on {threads} thread(s)", "reference_s": sgemm_s}  # the baseline compares x/sgemm
    benchmark.extra_info.update(cpu_threads=threads, **info)
    report.add_benchmark(benchmark, f"train step keras003 {ARM.name}, batch 64, {threads} thread(s), cpu",
                         impl="sequential", images=PROTOCOL.batch_size, device="cpu", cpu_threads=threads, **info)
    assert math.isfinite(loss)
    assert 0 < ratio < MAX_STEP_RATIO, (f"step {gflops:.1f} GFLOP/s against sgemm {sgemm:.1f} GFLOP/s on {threads} "
                                        f"thread(s): ratio {ratio:.2f}, outside (0, {MAX_STEP_RATIO})")


@pytest.mark.quick
@pytest.mark.full
def test_T_epoch_rate(benchmark, report, settings, data):
    """003's training through cifar.train, a stretch of S steps and S/195 of the test set: epoch / step rate."""
    stretch = EPOCH_STEPS[settings.tier]
    cfg = replace(PROTOCOL, steps=2 * stretch, log_every=stretch, test_size=round(10_000 * stretch / 195))
    logged: list[float] = []

    def train():
        logged.clear()
        return cifar.train(cfg, [ARM], [0], data, "cpu", on_epoch=lambda epoch: logged.append(time.perf_counter()))

    benchmark.group = "T rate: 003's training against its step, cpu, 1 thread"
    with cifar.cpu_threads(1):
        step = cifar.step_closure(PROTOCOL, ARM, 1, "cpu")
        before = call_seconds(step, rounds=3)
        frame = benchmark.pedantic(train, rounds=1, iterations=1)
        step = statistics.median(before + call_seconds(step, rounds=3))  # the step just before and after
    seconds = logged[1] - logged[0]  # the second stretch: S steps, their data and their evaluation
    ratio = stretch * step / seconds
    info = {"stretch_steps": stretch, "test_images": cfg.test_size, "stretch_s": seconds, "step_s": step,
            "epoch_over_step": ratio, "call_over_step": 2 * stretch * step / benchmark.stats.stats.median,
            "reference": "003's step", "reference_s": step}  # the baseline compares the call's time over the step's
    benchmark.extra_info.update(cpu_threads=1, **info)
    report.add_benchmark(benchmark, f"train keras003 {ARM.name}, 2 x {stretch} steps + {cfg.test_size} test images, "
                                    f"1 thread, cpu", impl="sequential", device="cpu", cpu_threads=1, **info)
    assert len(frame) == 2 and frame.train_loss.notna().all()
    assert 0 < ratio < MAX_EPOCH_RATIO, (f"{stretch} steps with data and evaluation took {seconds:.2f} s, "
                                         f"{stretch} timed steps {stretch * step:.2f} s: ratio {ratio:.2f}, "
                                         f"outside (0, {MAX_EPOCH_RATIO})")
