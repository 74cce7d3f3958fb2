"""Compiled and captured training steps (resclaims.kernels.cifar.steps) give the eager step's numbers.

On CPU the compiled step runs inductor's C++ backend; the CUDA-graph modes are
tested on a GPU (``gpu`` marker: ``pytest tests/kernels/test_compiled_steps.py --device cuda``).
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial

import numpy as np
import pandas as pd
import pytest
import torch

from resclaims.datasets.cifar10 import Cifar10
from resclaims.kernels import cifar
from resclaims.kernels.cifar import steps
from resclaims.kernels.cifar.optim import KerasAdam
from resclaims.models.cifar import CifarNet
from resclaims.models.keras003 import Keras003

KERAS_ARM = cifar.Arm("resnet-1", partial(Keras003, 1, residual=True, width=0.125))  # with dropout
HE_ARM = cifar.Arm("resnet-8", partial(CifarNet, 8, widths=(4, 8, 8)))
KERAS = cifar.TrainConfig(steps=8, log_every=4, test_size=40)  # batches of 64, 64, 64 and 8: a partial batch
HE = replace(cifar.HE2015, steps=6, log_every=3, batch_size=32, val_size=20, milestones=(4,))
SEEDS = [11, 12, 13]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(cifar_data) -> Cifar10:
    return cifar_data


def close_frames(a: pd.DataFrame, b: pd.DataFrame, rtol: float) -> None:
    """Same rows; every metric equal to ``rtol``."""
    assert a[["arm", "seed", "epoch", "step"]].equals(b[["arm", "seed", "epoch", "step"]])
    metrics = [c for c in a.columns if c.endswith(("_loss", "_acc"))]
    np.testing.assert_allclose(a[metrics], b[metrics], rtol=rtol, atol=rtol / 100)


# -- the capturable optimizers equal PyTorch's and Keras' ----------------------------------
def _steps(optimizer_of, n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    params = [torch.randn(7, 3, generator=g).requires_grad_(), torch.randn(5, generator=g).requires_grad_()]
    optimizer = optimizer_of(params)
    for step in range(n):
        for p in params:
            p.grad = torch.randn(p.shape, generator=g)
        if hasattr(optimizer, "set_lr"):
            optimizer.set_lr(0.1 / (step + 1))
        else:
            for group in optimizer.param_groups:
                group["lr"] = 0.1 / (step + 1)
        optimizer.step()
    return [p.detach() for p in params]


def test_capturable_sgd_equals_pytorch_sgd():
    ours = _steps(lambda p: steps.CapturableSGD(p, lr=0.1, momentum=0.9, weight_decay=1e-4))
    theirs = _steps(lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-4))
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_capturable_keras_adam_equals_keras_adam():
    ours = _steps(lambda p: steps.CapturableKerasAdam(p))
    theirs = _steps(lambda p: KerasAdam(p))
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_capturable_optimizer_state_round_trips_for_checkpoints():
    params = [torch.randn(4, requires_grad=True)]
    adam = steps.CapturableKerasAdam(params)
    params[0].grad = torch.ones(4)
    adam.step()
    adam.step()
    other = steps.CapturableKerasAdam([torch.randn(4, requires_grad=True)])
    other.load_state_dict(adam.state_dict())
    other.iterations = adam.iterations
    assert other.iterations == 2
    torch.testing.assert_close(other.state[other.param_groups[0]["params"][0]]["exp_avg"],
                               adam.state[params[0]]["exp_avg"])  # fmt: skip


# -- modes -------------------------------------------------------------------------------------
def test_auto_is_eager_on_cpu_and_the_environment_overrides_it(monkeypatch):
    monkeypatch.delenv(steps.ENVIRONMENT, raising=False)
    assert steps.resolve_mode("auto", "cpu") == "eager" and steps.resolve_mode("auto", "cuda") == steps.AUTO["cuda"]
    monkeypatch.setenv(steps.ENVIRONMENT, "compile")
    assert steps.resolve_mode("auto", "cpu") == "compile"
    monkeypatch.setenv(steps.ENVIRONMENT, "fast")
    with pytest.raises(ValueError, match="step mode must be auto or one of eager, compile, graph"):
        steps.resolve_mode("auto", "cpu")
    with pytest.raises(ValueError, match="needs --device cuda"):
        steps.resolve_mode("graph", "cpu")


# -- a compiled step (inductor's CPU backend) equals the eager step --------------------------------
@pytest.mark.parametrize(("recipe", "dtype", "rtol"), [("keras003", torch.float32, 1e-4), ("he2015", torch.float64, 1e-6)])
def test_compiled_training_equals_eager_training(recipe, dtype, rtol, data):
    """Whole runs: dropout and Keras' Adam (float32: equal to rounding), He's SGD, its learning-rate schedule
    (0.1, then 0.01 at step 4: no recompile) and BatchNorm's running statistics (float64: equal to 1e-6; in float32
    these 6 steps at lr 0.1 amplify rounding to 1e-3; the losses are float32 in both), 003's partial last batch (eager path), evaluation."""
    cfg, arm = (KERAS, KERAS_ARM) if recipe == "keras003" else (HE, HE_ARM)
    eager = cifar.train(cfg, [arm], SEEDS, data, stack="grouped", step="eager", dtype=dtype)
    compiled = cifar.train(cfg, [arm], SEEDS, data, stack="grouped", step="compile", dtype=dtype)
    close_frames(compiled, eager, rtol)


def test_a_schedule_change_and_a_partial_batch_do_not_recompile():
    stack = cifar.ModelStack([cifar.build(HE_ARM, s).double() for s in SEEDS], grouped=True)  # the graphs above
    step = steps.GroupStep(stack, steps.capturable_optimizer("he2015", stack.parameters()), "compile")
    g = torch.Generator().manual_seed(0)
    batch = lambda n: ([torch.rand(n, 3, 32, 32, generator=g, dtype=torch.float64) for _ in SEEDS],  # noqa: E731
                       [torch.randint(0, 10, (n,), generator=g) for _ in SEEDS])
    from torch._dynamo.utils import counters

    step(*batch(HE.batch_size), lr=0.1)
    compiled = dict(counters["stats"])
    step(*batch(HE.batch_size), lr=0.01)  # a new learning rate: the same graphs
    xs, ys = batch(HE.batch_size)
    step([xs[0][:3], *xs[1:]], [ys[0][:3], *ys[1:]])  # one seed's partial batch: the eager path
    step(*batch(5))  # every seed's batch partial (one seed per group, say): eager too
    step(*batch(HE.batch_size), lr=0.001)
    assert dict(counters["stats"]) == compiled, "a schedule change or a partial batch recompiled the step"
    assert (step.fast_steps, step.eager_steps, step.mode) == (3, 2, "compile") and step.setup_seconds > 0


def test_a_compiled_run_resumed_from_a_checkpoint_equals_an_uninterrupted_one(data, tmp_path):
    cfg = replace(HE, steps=6, log_every=2)  # the graphs above: float64, 3 seeds
    train = partial(cifar.train, cfg, [HE_ARM], SEEDS, data, step="compile", dtype=torch.float64)
    whole = train()

    def stop_at(epoch):
        if epoch == 2:
            raise KeyboardInterrupt

    folder = tmp_path / "partial"
    with pytest.raises(KeyboardInterrupt):
        train(on_epoch=stop_at, checkpoints=folder, checkpoint_seconds=0)
    pd.testing.assert_frame_equal(train(checkpoints=folder, checkpoint_seconds=0), whole, check_exact=True)


def test_a_step_that_fails_to_compile_trains_eagerly_with_one_warning(data, monkeypatch):
    def broken(fn, **kwargs):
        def call(*args, **kw):
            raise RuntimeError("no C++ compiler\nsecond line")
        return call

    monkeypatch.setattr(torch, "compile", broken)
    cfg = replace(HE, steps=3, log_every=3)
    with pytest.warns(RuntimeWarning, match=r"step mode 'compile' failed to set up \(RuntimeError: no C\+\+ compiler\)"):
        fallen = cifar.train(cfg, [HE_ARM], SEEDS, data, stack="grouped", step="compile")
    close_frames(fallen, cifar.train(cfg, [HE_ARM], SEEDS, data, stack="grouped", step="eager"), rtol=1e-6)


# -- CUDA graphs (a GPU) -----------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize("mode", ["compile", "graph", "compile+graph"])
@pytest.mark.parametrize("recipe", ["keras003", "he2015"])
def test_captured_training_is_close_to_eager_on_cuda(mode, recipe, data):
    """float32, no autocast: the captured step's numbers within float32 tolerance of the eager step's
    (Keras: no dropout, whose captured masks come from another stream of random numbers)."""
    arm = cifar.Arm("resnet-1", partial(Keras003, 1, residual=True, width=0.125, dropout=0.0))
    cfg, arm = (KERAS, arm) if recipe == "keras003" else (HE, HE_ARM)
    run = partial(cifar.train, cfg, [arm], SEEDS, data, "cuda", stack="grouped", amp=False, channels_last=False)
    close_frames(run(step=mode), run(step="eager"), rtol=1e-3)


def test_the_cache_keeps_the_runs_of_each_step_mode_apart(monkeypatch):
    """A compiled or captured run's numbers are not the eager run's: the cache keys them by the step mode too."""
    from resclaims.kernels.cifar import kernel
    from resclaims.run.runs import device_kind

    monkeypatch.delenv(steps.ENVIRONMENT, raising=False)
    assert device_kind(kernel, torch.device("cpu")) == "cpu"  # eager: the CPU cache is unchanged
    assert device_kind(kernel, torch.device("cuda")) == f"cuda, {steps.AUTO['cuda']} steps"
    monkeypatch.setenv(steps.ENVIRONMENT, "compile")
    assert device_kind(kernel, torch.device("cpu")) == "cpu, compile steps"


def test_arms_at_once_on_a_gpu_come_from_the_environment(monkeypatch):
    from resclaims.kernels.cifar.workers import GPU_ARMS, default_workers

    monkeypatch.delenv(GPU_ARMS, raising=False)
    assert default_workers(torch.device("cuda")) == 1
    monkeypatch.setenv(GPU_ARMS, "3")
    assert default_workers(torch.device("cuda")) == 3
    monkeypatch.setenv(GPU_ARMS, "two")
    with pytest.raises(ValueError, match="RESCLAIMS_GPU_ARMS=two: give a positive whole number"):
        default_workers(torch.device("cuda"))
