"""T CIFAR: one training step of the CIFAR nets the claims train, timed (pytest-benchmark).

What one session times, on the session's device (``--device``; the CUDA cases are marked
``gpu`` and skip without one):

``test_T_keras003_*``
    003's Keras net (K1-K3, ``resclaims.kernels.cifar``): one step at full width
    (residual and plain); 5 seeds of the K1 arm at the tier's width, one after the
    other against one grouped pass; and the grouped step eager, compiled or captured
    (:mod:`resclaims.kernels.cifar.steps`).
``test_T_he_*``
    He et al.'s CIFAR nets (D1-D3, H1): one step at 20 and 56 layers, and 5 seeds of
    ResNet-20 at the tier's widths, loop against grouped.
``test_T_cifar_train_step``
    ResNet-20 and its plain twin of :mod:`resclaims.models.cifar` (A1, A3), one SGD step
    on 32 random images, one thread.

Nothing here asserts an absolute time. The baseline comparison judges each benchmark
against the others of its pytest-benchmark group timed in the same session (loop against
grouped, eager against compiled, residual against plain): a ratio, never a time taken at
another moment (``resclaims.report.compare``; docs/baseline.md).
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from resclaims.kernels import cifar
from resclaims.models import cifar as models
from resclaims.run.seeding import torch_generator

pytestmark = [pytest.mark.quick, pytest.mark.full]
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]
SEEDS = 5  # models in a stacked step
STEP_MODES = ["eager", "compile", *(pytest.param(m, marks=pytest.mark.gpu) for m in ("graph", "compile+graph"))]


@pytest.fixture(scope="module")
def k_config(settings) -> cifar.KerasFamily:
    return cifar.K_TIERS[settings.tier].config  # the K claims' tier: its width and training


@pytest.fixture(scope="module")
def d_config(settings) -> cifar.HeFamily:
    return cifar.D_TIERS[settings.tier].config  # the D claims' tier: its widths and image size


# -- 003's Keras net (K) -----------------------------------------------------------------------------
@pytest.mark.parametrize("device_kind", DEVICES)
@pytest.mark.parametrize("kind", ["resnet", "plain"])
def test_T_keras003_train_step(kind, device_kind, benchmark, report):
    """One training step of 003's network (10 blocks, full width, batch 64, Keras Adam)."""
    arm = next(a for a in cifar.keras_arms([10]) if a.name.startswith(kind))
    cfg = cifar.TrainConfig()
    benchmark.group = f"T keras003 train step, {device_kind}"
    loss = cifar.time_step(benchmark, cfg, arm, 1, device_kind)
    assert math.isfinite(loss)
    report.add_benchmark(benchmark, f"train step keras003 {arm.name}, batch 64, {device_kind}", impl="sequential",
                         images=cfg.batch_size, device=device_kind, cpu_threads=cifar.timing_threads(device_kind))


@pytest.mark.parametrize("device_kind", DEVICES)
@pytest.mark.parametrize("stack", ["loop", "grouped"])
def test_T_keras003_stacked_step(stack, device_kind, benchmark, report, k_config):
    """One step of 5 seeds of the K1 arm at this tier's width: one after the other, or in one grouped pass."""
    arm = cifar.keras_arms([k_config.blocks], k_config.width)[0]
    benchmark.group = f"T keras003 x{k_config.width:g} step of {SEEDS} seeds, {device_kind}"
    loss = cifar.time_step(benchmark, k_config.train, arm, SEEDS, device_kind, stack=stack)
    assert math.isfinite(loss)
    report.add_benchmark(benchmark, f"{SEEDS} x keras003 {arm.name} x{k_config.width:g}, {stack}, {device_kind}",
                         experiments=SEEDS, impl="batched" if stack == "grouped" else "sequential",
                         images=SEEDS * k_config.train.batch_size, device=device_kind,
                         cpu_threads=cifar.timing_threads(device_kind))


@pytest.mark.parametrize("device_kind", DEVICES)
@pytest.mark.parametrize("mode", STEP_MODES)
def test_T_keras003_step_modes(mode, device_kind, benchmark, report, k_config):
    """One grouped step of 5 seeds of the K1 arm at this tier's width, eager, compiled or captured: the baseline
    comparison catches a compiled step slower against the eager one timed beside it. The compile or capture happens
    in the warm-up round and is recorded as ``setup_s``; on a CPU training stays eager
    (``resclaims.kernels.cifar.steps.AUTO``), so this compile is the only one the quick tier pays for."""
    if "graph" in mode and device_kind != "cuda":
        pytest.skip("CUDA graphs need a GPU")
    arm = cifar.keras_arms([k_config.blocks], k_config.width)[0]
    benchmark.group = f"T keras003 x{k_config.width:g} grouped step of {SEEDS} seeds by step mode, {device_kind}"
    loss, step = cifar.timed_step(benchmark, k_config.train, arm, SEEDS, device_kind, stack="grouped", mode=mode)
    assert math.isfinite(loss) and step.group_step.mode == mode, f"{mode} fell back to {step.group_step.mode}"
    report.add_benchmark(benchmark, f"{SEEDS} x keras003 {arm.name} x{k_config.width:g}, grouped, {mode}, {device_kind}",
                         experiments=SEEDS, impl=mode, images=SEEDS * k_config.train.batch_size, device=device_kind,
                         cpu_threads=cifar.timing_threads(device_kind), setup_s=step.group_step.setup_seconds)


# -- He et al.'s CIFAR nets (D) ------------------------------------------------------------------------
@pytest.mark.parametrize("device_kind", DEVICES)
@pytest.mark.parametrize("name", ["resnet-20", "plain-20", "resnet-56", "plain-56"])
def test_T_he_train_step(name, device_kind, benchmark, report):
    """One training step of He's CIFAR net (batch 128, SGD, 32x32) at full width."""
    kind, depth = name.split("-")
    arm = cifar.he_arms([int(depth)], residual=kind == "resnet")[0]
    cfg = cifar.HE2015
    benchmark.group = f"T He CIFAR train step, batch 128, {device_kind}"
    loss = cifar.time_step(benchmark, cfg, arm, 1, device_kind, rounds=2 if device_kind == "cpu" else 20)
    assert math.isfinite(loss)
    report.add_benchmark(benchmark, f"train step {name}, batch 128, {device_kind}", impl="sequential",
                         images=cfg.batch_size, device=device_kind, cpu_threads=cifar.timing_threads(device_kind))


@pytest.mark.parametrize("device_kind", DEVICES)
@pytest.mark.parametrize("stack", ["loop", "grouped"])
def test_T_he_stacked_step(stack, device_kind, benchmark, report, d_config):
    """One step of 5 seeds of ResNet-20 at this tier's widths and image size: one after the other, or grouped."""
    arm = cifar.he_arms([20], residual=True, widths=d_config.widths)[0]
    cfg, widths = d_config.train, "-".join(map(str, d_config.widths))
    benchmark.group = f"T He ResNet-20 {widths} step of {SEEDS} seeds, {device_kind}"
    loss = cifar.time_step(benchmark, cfg, arm, SEEDS, device_kind, stack=stack)
    assert math.isfinite(loss)
    report.add_benchmark(benchmark, f"{SEEDS} x he resnet-20 {widths}, {stack}, {device_kind}", experiments=SEEDS,
                         impl="batched" if stack == "grouped" else "sequential", images=SEEDS * cfg.batch_size,
                         device=device_kind, cpu_threads=cifar.timing_threads(device_kind))


# -- the counted models (A) ------------------------------------------------------------------------------
@pytest.fixture
def one_cpu_thread():
    """Time CPU steps on one thread: comparable across machines, and free of oversubscription on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield 1
    torch.set_num_threads(threads)


@pytest.mark.parametrize("device_kind", DEVICES)
@pytest.mark.parametrize("model_name", ["resnet20", "plain20"])
def test_T_cifar_train_step(model_name, device_kind, settings, report, benchmark, one_cpu_thread):
    """One SGD step (He's lr 0.1, momentum 0.9, weight decay 1e-4) on 32 random 32x32 images, ``model_name`` on ``device_kind``."""
    device = torch.device(device_kind)
    seed = settings.run_seeds("T", 1)[0]
    torch.manual_seed(seed)
    model = (models.resnet if model_name.startswith("resnet") else models.plain)(20).to(device)
    generator = torch_generator(seed, "batch")
    x = torch.randn(32, 3, 32, 32, generator=generator).to(device)
    y = torch.randint(0, 10, (32,), generator=generator).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        return loss.item()  # .item() waits for the device, so CUDA steps are timed whole

    benchmark.group = "T CIFAR-20 train step"
    loss = benchmark.pedantic(step, rounds=5, warmup_rounds=1, iterations=1)
    assert math.isfinite(loss)
    report.add_benchmark(benchmark, f"train step {model_name}, batch 32, {device_kind}", model=model_name,
                         device=device_kind, batch=32, cpu_threads=one_cpu_thread if device.type == "cpu" else None)
