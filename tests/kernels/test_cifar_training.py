"""CIFAR training kernel: optimizers, data order, augmentation, and stacked runs equal to separate ones."""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from pathlib import Path
from types import ModuleType, SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from resclaims.datasets.cifar10 import Cifar10
from resclaims.kernels import cifar
from resclaims.models.cifar import CifarNet
from resclaims.models.keras003 import Keras003
from resclaims.run.cache import RunCache
from resclaims.run.runs import Runs
from resclaims.run.seeding import derive_seeds

METRICS = ["train_loss", "train_acc", "test_loss", "test_acc", "val_loss", "val_acc", "train_eval_loss", "train_eval_acc"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(cifar_data) -> Cifar10:
    return cifar_data


KERAS = cifar.TrainConfig(steps=8, log_every=4, test_size=40)  # batches of 64, 64, 64 and 8: a partial batch
KERAS_ARM = cifar.Arm("resnet-2", partial(Keras003, 2, residual=True, width=0.125, dropout=0.0))
HE = replace(cifar.HE2015, steps=6, log_every=3, batch_size=32, val_size=20, train_eval_size=20, milestones=(4,))
HE_ARMS = [cifar.Arm("resnet-8", partial(CifarNet, 8, widths=(4, 8, 8))),
           cifar.Arm("plain-8", partial(CifarNet, 8, residual=False, widths=(4, 8, 8)), warmup_steps=2)]  # fmt: skip
SEEDS = [11, 12, 13]


# -- optimisation --------------------------------------------------------------------------
def keras_adam_reference(p0: torch.Tensor, grads: list[torch.Tensor], lr=1e-3, b1=0.9, b2=0.999, eps=1e-7):
    """Keras' Adam update, written out: eps is added to sqrt(v) before the bias correction."""
    p, m, v = p0.clone(), torch.zeros_like(p0), torch.zeros_like(p0)
    for t, g in enumerate(grads, start=1):
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        p = p - lr * math.sqrt(1 - b2**t) / (1 - b1**t) * m / (v.sqrt() + eps)
    return p


@pytest.mark.parametrize("scale", [1.0, 1e-6])  # at 1e-6 the gradient is the size of epsilon: placement matters
def test_keras_adam_matches_keras_update(scale):
    generator = torch.Generator().manual_seed(0)
    p0 = torch.randn(50, dtype=torch.float64, generator=generator)
    grads = [scale * torch.randn(50, dtype=torch.float64, generator=generator) for _ in range(20)]
    p = p0.clone().requires_grad_()
    optimizer = cifar.KerasAdam([p])
    for g in grads:
        p.grad = g.clone()
        optimizer.step()
    torch.testing.assert_close(p.detach(), keras_adam_reference(p0, grads), rtol=1e-12, atol=1e-15)
    if scale < 1:  # and torch's Adam with eps=1e-7 is measurably different there
        q = p0.clone().requires_grad_()
        torch_adam = torch.optim.Adam([q], eps=1e-7)
        for g in grads:
            q.grad = g.clone()
            torch_adam.step()
        assert not torch.allclose(q.detach(), p.detach(), rtol=1e-6, atol=1e-9)


def test_he_learning_rate_schedule():
    lr = partial(cifar.he_lr, milestones=(32_000, 48_000))
    assert [lr(s) for s in (0, 31_999, 32_000, 47_999, 48_000, 63_999)] == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
    assert [lr(s, warmup_steps=400) for s in (0, 399, 400)] == pytest.approx([0.01, 0.01, 0.1])
    assert cifar.he_arms([56, 110], residual=True)[1].warmup_steps == 400 and cifar.he_arms([56], True)[0].warmup_steps == 0


# -- data order and augmentation -------------------------------------------------------------
def take(iterator, n):
    return [next(iterator) for _ in range(n)]


def test_batch_order_shuffles_whole_batches():
    n, b = 50_000, 64
    first, second = take(cifar.batch_order(n, b, "batches", np.random.default_rng(0)), 782), None
    assert sorted(len(x) for x in first)[:2] == [16, 64]  # 781 batches of 64 and one of 16
    assert all(np.array_equal(x, np.arange(x[0], x[0] + len(x))) for x in first)  # consecutive images, never mixed
    np.testing.assert_array_equal(np.sort(np.concatenate(first)), np.arange(n))  # a pass covers every image once
    second = take(cifar.batch_order(n, b, "batches", np.random.default_rng(0)), 2 * 782)[782:]
    assert [x[0] for x in first] != [x[0] for x in second]  # the batch order is reshuffled every pass
    assert {x[0] for x in first} == {x[0] for x in second}  # but the batches themselves never change


def test_image_and_stream_orders():
    images = take(cifar.batch_order(100, 32, "images", np.random.default_rng(0)), 4)
    assert [len(x) for x in images] == [32, 32, 32, 4]
    np.testing.assert_array_equal(np.sort(np.concatenate(images)), np.arange(100))
    assert not np.array_equal(np.concatenate(images), np.arange(100))
    stream = np.concatenate(take(cifar.batch_order(100, 32, "stream", np.random.default_rng(0)), 25))  # 8 passes
    assert len(stream) == 800 and all(np.array_equal(np.sort(stream[i : i + 100]), np.arange(100)) for i in range(0, 800, 100))


def test_central_crop_and_flip_as_tensorflow():
    x = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    flip = torch.tensor([False, True, False, True])
    out = cifar.central_crop_flip(x, flip)
    crop = x[:, :, 4:28, 4:28].float() / 255  # tf.image.central_crop(x, 0.75) on 32x32 keeps rows/cols 4..27
    torch.testing.assert_close(out[~flip], crop[~flip])
    torch.testing.assert_close(out[flip], crop[flip].flip(-1))


def test_pad_crop_flip_matches_a_loop():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(16, 3, 32, 32, generator=generator)
    dy, dx = torch.randint(0, 9, (2, 16), generator=generator)
    flip = torch.rand(16, generator=generator) < 0.5
    out = cifar.pad_crop_flip(x, dy, dx, flip)
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i in range(16):
        crop = padded[i, :, dy[i] : dy[i] + 32, dx[i] : dx[i] + 32]
        torch.testing.assert_close(out[i], crop.flip(-1) if flip[i] else crop)


def test_too_few_training_images_for_a_batch_is_an_error(data):
    with pytest.raises(ValueError, match="20 training images .* 180 held out .* one batch of 32"):
        cifar.to_device(data, replace(HE, val_size=180), torch.device("cpu"))


def test_device_data_splits(data):
    dev = cifar.to_device(data, HE, "cpu")
    assert (len(dev.y_train), len(dev.y_val), len(dev.y_test), len(dev.y_train_eval)) == (180, 20, 60, 20)
    train_rows = {bytes(x.numpy()) for x in dev.x_train}
    assert not train_rows & {bytes(x.numpy()) for x in dev.x_val}  # disjoint
    assert {bytes(x.numpy()) for x in dev.x_train_eval} <= train_rows
    torch.testing.assert_close(dev.mean, dev.x_train.double().mean(0).float() / 255)
    again = cifar.to_device(data, HE, "cpu")
    assert torch.equal(dev.x_train, again.x_train) and torch.equal(dev.x_val, again.x_val)  # fixed, not per run
    official = cifar.to_device(replace(data, official_order=True), cifar.TrainConfig(test_size=10), "cpu")
    assert torch.equal(official.y_train, torch.from_numpy(data.y_train))  # the stored order is kept
    assert len(official.y_test) == 10 and len(official.y_val) == 0


# -- stacked training ------------------------------------------------------------------------
def numeric(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["arm", "seed", "epoch"]).reset_index(drop=True)


@pytest.mark.parametrize("recipe", ["keras003", "he2015"])
def test_stacked_runs_equal_separate_runs_float64(recipe, data):
    cfg, arms = (KERAS, [KERAS_ARM]) if recipe == "keras003" else (HE, HE_ARMS)
    train = partial(cifar.train, cfg, arms, data=data, dtype=torch.float64)
    alone = numeric(pd.concat([train(seeds=[seed], stack="loop") for seed in SEEDS]))
    for stack in ("loop", "grouped"):
        together = numeric(train(seeds=SEEDS, stack=stack))
        assert together[["arm", "seed", "epoch", "step"]].equals(alone[["arm", "seed", "epoch", "step"]])
        np.testing.assert_allclose(together[METRICS], alone[METRICS], rtol=1e-6, atol=1e-9, err_msg=stack)
    assert (alone.train_loss.iloc[-1], alone.epoch.max()) != (np.nan, 0)
    assert alone.groupby("seed").train_loss.nunique().min() > 1  # the runs trained


def test_grouped_and_loop_agree_in_float32(data):
    cfg = replace(KERAS, steps=4, log_every=4)
    loop, grouped = (numeric(cifar.train(cfg, [KERAS_ARM], SEEDS, data, stack=s)) for s in ("loop", "grouped"))
    np.testing.assert_allclose(loop[["train_loss", "test_loss"]], grouped[["train_loss", "test_loss"]], rtol=1e-4)


def test_same_seed_same_numbers_and_seeds_differ(data):
    arm = cifar.Arm("resnet-2", partial(Keras003, 2, residual=True, width=0.125))  # with dropout
    cfg = replace(KERAS, steps=4, log_every=2)
    first, second = (cifar.train(cfg, [arm], [5, 6], data) for _ in range(2))
    pd.testing.assert_frame_equal(first, second)
    assert first[first.seed == 5].train_loss.tolist() != first[first.seed == 6].train_loss.tolist()


def test_frame_has_a_row_per_arm_seed_and_epoch(data):
    frame = cifar.train(HE, HE_ARMS, SEEDS, data)
    assert len(frame) == len(HE_ARMS) * len(SEEDS) * HE.steps // HE.log_every
    assert list(frame.columns) == ["arm", "seed", "epoch", "step", "diverged", *METRICS] and not frame.diverged.any()
    assert frame[METRICS].notna().all().all() and frame.train_acc.between(0, 1).all()
    no_val = cifar.train(replace(HE, eval_val=False, train_eval_size=0), HE_ARMS[:1], SEEDS[:1], data)
    assert no_val.val_acc.isna().all() and no_val.train_eval_acc.isna().all() and no_val.test_acc.notna().all()


def test_cuda_code_paths_run_on_cpu(data):
    """bfloat16 autocast and channels_last, which CUDA runs use, through the same code on the CPU."""
    cfg = replace(KERAS, steps=4, log_every=4)
    frame = cifar.train(cfg, [KERAS_ARM], SEEDS, data, stack="loop", amp=True, channels_last=True)
    reference = cifar.train(cfg, [KERAS_ARM], SEEDS, data, stack="loop")
    assert np.isfinite(frame[["train_loss", "test_loss"]]).all().all()
    np.testing.assert_allclose(frame.train_loss, reference.train_loss, rtol=0.05)  # bfloat16: close, not equal
    for arms, recipe in (([KERAS_ARM], cfg), (HE_ARMS, replace(HE, steps=3, log_every=3))):
        grouped = cifar.train(recipe, arms, SEEDS, data, stack="grouped", amp=True, channels_last=True)
        expected = cifar.train(recipe, arms, SEEDS, data, stack="loop")
        np.testing.assert_allclose(grouped.train_loss, expected.train_loss, rtol=0.05)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_training_on_device_matches_cpu(device, data):
    cfg = replace(HE, steps=3, log_every=3)
    on_device = cifar.train(cfg, HE_ARMS[:1], SEEDS, data, device, amp=False, channels_last=False)
    on_cpu = cifar.train(cfg, HE_ARMS[:1], SEEDS, data, "cpu")
    np.testing.assert_allclose(on_device.train_loss, on_cpu.train_loss, rtol=1e-3)


def test_stack_module_round_trip(data):
    models = [cifar.build(HE_ARMS[0], seed) for seed in SEEDS]
    stack = cifar.ModelStack(models, grouped=True)
    x = torch.rand(5, 3, 32, 32)
    stack.train(False)
    for g, model in enumerate(models):
        torch.testing.assert_close(stack.shared(x)[g], model.eval()(x))
        copy = stack.module(g, HE_ARMS[0].build()).eval()
        torch.testing.assert_close(copy(x), model(x))


@pytest.mark.parametrize("stack", ["loop", "grouped"])
def test_step_closure_for_timing(stack):
    step = cifar.step_closure(replace(KERAS, batch_size=4), KERAS_ARM, 2, "cpu", stack=stack)
    losses = [step() for _ in range(3)]
    assert all(math.isfinite(v) for v in losses) and losses[0] != losses[-1]


def benchmark_module(name: str) -> ModuleType:
    """A module of ``benchmarks/``, imported as :func:`resclaims.report.catalogue.load_modules` imports it (once)."""
    from resclaims.report.catalogue import load_modules

    return next(m for m in load_modules(Path(__file__).resolve().parents[2] / "benchmarks")
                if m.__name__ == f"benchmarks.{name}")


def test_the_gpu_branch_of_the_step_mode_timing_runs_on_the_cpu(monkeypatch):
    """benchmarks/test_speed_cifar.py's test_T_keras003_step_modes at device_kind "cuda", its step built on the CPU (the only CUDA use):
    every name the GPU branch uses is defined (it once called torch.get_num_threads() without importing torch, and
    no CPU session ran that line), its threads are the process's own, and the report names the GPU."""
    from resclaims.kernels.cifar import timing

    built, real = [], timing.step_closure

    def on_cpu(cfg, arm, n_models, device, **options):
        built.append(str(device))
        return real(cfg, arm, n_models, "cpu", **options)

    class Benchmark:
        group = ""

        def pedantic(self, step, *, rounds, warmup_rounds, iterations):
            return step()

    class Report:
        def add_benchmark(self, benchmark, name, **fields) -> None:
            self.added = (benchmark.group, name, fields)

    monkeypatch.setattr(timing, "step_closure", on_cpu)
    report = Report()
    benchmark_module("test_speed_cifar").test_T_keras003_step_modes(
        "eager", "cuda", Benchmark(), report, cifar.K_TIERS["quick"].config)
    group, name, fields = report.added
    assert built == ["cuda"] and group.endswith("by step mode, cuda") and name.endswith("grouped, eager, cuda")
    assert fields["device"] == "cuda" and fields["cpu_threads"] is None and fields["impl"] == "eager"


def test_cpu_threads_restores_the_setting():
    before = torch.get_num_threads()
    with cifar.cpu_threads(2):
        assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == before


def cifar_runs(cache: RunCache, track=None) -> Runs:
    """The ``runs`` fixture's engine on CPU, with ``cache`` and a progress that records nothing unless ``track``."""

    @contextmanager
    def quiet(*args):
        yield lambda epoch: None

    settings = SimpleNamespace(device=torch.device("cpu"), run_seeds=lambda name, n: derive_seeds(1, name, n))
    return Runs(settings, cache, SimpleNamespace(track=track or quiet), SimpleNamespace(add_runs=lambda *a: None, add_run_sources=lambda *a: None))


def test_cached_training_trains_each_seed_once(data, tmp_path, monkeypatch):
    cache, epochs = RunCache(tmp_path), []
    monkeypatch.setattr(cifar.kernel, "default_workers", lambda device: 1)  # epochs are reported live, in order

    @contextmanager
    def track(claim, condition, seeds, n_epochs):
        assert n_epochs == len(HE_ARMS) * 2
        yield epochs.append

    runs, protocol = cifar_runs(cache, track), cifar.CifarRuns(replace(HE, steps=2, log_every=1), tuple(HE_ARMS))
    first = runs.train(protocol, [1], data=data)
    assert epochs == [1, 2, 1, 2]
    both = runs.train(protocol, [1, 2], data=data)
    assert (cache.trained, cache.reused) == (4, 2)  # (arm, seed) runs: seed 2 of both arms trained, seed 1 reused
    pd.testing.assert_frame_equal(both[both.seed == 1].reset_index(drop=True), first.reset_index(drop=True))
    monkeypatch.setattr(cifar.kernel, "train_arms", lambda *a, **k: pytest.fail("trained though every seed was cached"))
    runs.train(protocol, [2, 1], data=data)


def test_fewer_seeds_train_nothing_and_more_seeds_train_only_the_new_ones(data, tmp_path, monkeypatch):
    """--seeds 2 after --seeds 5 trains nothing; --seeds 7 after --seeds 5 trains the 2 new seeds of each arm."""
    monkeypatch.setattr(cifar.kernel, "default_workers", lambda device: 1)
    cache = RunCache(tmp_path)
    runs, protocol = cifar_runs(cache), cifar.CifarRuns(replace(HE, steps=1, log_every=1), tuple(HE_ARMS))
    five = runs(protocol, 5, seed_name="D", family="D", data=data)
    assert cache.trained == 5 * len(HE_ARMS)
    two = runs(protocol, 2, seed_name="D", family="D", data=data)
    assert cache.trained == 5 * len(HE_ARMS)  # nothing trained
    pd.testing.assert_frame_equal(two.reset_index(drop=True),
                                  five[five.seed.isin(two.seed.unique())].reset_index(drop=True))
    trained = []
    monkeypatch.setattr(cifar.kernel, "train_arms", partial(spy, cifar.kernel.train_arms, trained))
    runs(protocol, 7, seed_name="D", family="D", data=data)
    assert cache.trained == 7 * len(HE_ARMS)
    assert trained == [(tuple(a.name for a in HE_ARMS), tuple(derive_seeds(1, "D", 7)[5:]))]


def spy(train, calls, cfg, arms, seeds, *args, **kwargs):
    calls.append((tuple(a.name for a in arms), tuple(seeds)))
    return train(cfg, arms, seeds, *args, **kwargs)


def test_a_stopped_session_keeps_the_arms_it_finished(data, tmp_path, monkeypatch):
    cache, cfg = RunCache(tmp_path), replace(HE, steps=2, log_every=1)
    broken = cifar.Arm("broken", partial(CifarNet, 7))  # depth 7 is not 6n+2: fails when it starts training
    monkeypatch.setattr(cifar.kernel, "default_workers", lambda device: 1)
    with pytest.raises(ValueError, match="6n\\+2"):
        cifar_runs(cache).train(cifar.CifarRuns(cfg, (HE_ARMS[0], broken)), [1, 2], data=data)
    monkeypatch.setattr(cifar.kernel, "train_arms", lambda *a, **k: pytest.fail("retrained an arm that had finished"))
    kept = cifar_runs(cache).train(cifar.CifarRuns(cfg, (HE_ARMS[0],)), [1, 2], data=data)
    assert cache.reused == 2 and sorted(kept.seed.unique()) == [1, 2]


class Stop(Exception):
    """Stands for a session killed part-way."""


@pytest.mark.parametrize("recipe", ["keras003", "he2015"])
def test_a_resumed_arm_gives_the_numbers_of_an_uninterrupted_one(recipe, data, tmp_path):
    """Weights, optimizer state (Keras Adam's step count, SGD's momentum), data order, augmentation and dropout."""
    arm = cifar.Arm("resnet-2", partial(Keras003, 2, residual=True, width=0.125))  # with dropout
    cfg, arms = (replace(KERAS, steps=6, log_every=2), [arm]) if recipe == "keras003" else (replace(HE, steps=6, log_every=2), HE_ARMS[:1])
    folder = tmp_path / "partial"
    train = partial(cifar.train, cfg, arms, SEEDS[:2], data, checkpoints=folder, checkpoint_seconds=0)
    whole = cifar.train(cfg, arms, SEEDS[:2], data)

    def stop_at(epoch):
        if epoch == 2:
            raise Stop

    with pytest.raises(Stop):
        train(on_epoch=stop_at)
    assert len(list(folder.glob("*.pt"))) == 1  # saved at the end of epoch 2, before the session stopped
    epochs = []
    pd.testing.assert_frame_equal(train(on_epoch=epochs.append), whole, check_exact=True)
    assert epochs == [3] and not folder.exists()  # resumed after epoch 2; the checkpoint and its folder are gone


@pytest.mark.parametrize("damage", ["random bytes", "cut in half"])
def test_an_unreadable_checkpoint_is_reported_and_the_arm_starts_afresh(data, tmp_path, damage):
    cfg, folder = replace(HE, steps=4, log_every=2), tmp_path / "partial"
    train = partial(cifar.train, cfg, HE_ARMS[:1], SEEDS[:1], data, checkpoints=folder, checkpoint_seconds=0)

    def stop_at(epoch):
        if epoch == 1:
            raise Stop

    with pytest.raises(Stop):
        train(on_epoch=stop_at)
    (checkpoint,) = folder.glob("*.pt")
    assert torch.load(checkpoint, weights_only=True)["steps_done"] == 2  # plain tensors and containers only
    good = checkpoint.read_bytes()
    checkpoint.write_bytes(np.random.default_rng(0).bytes(800) if damage == "random bytes" else good[: len(good) // 2])
    epochs = []
    with pytest.warns(RuntimeWarning) as caught:
        frame = train(on_epoch=epochs.append)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and str(checkpoint) in messages[0] and "from the start" in messages[0], messages
    assert epochs == [1, 2]  # started afresh
    pd.testing.assert_frame_equal(frame, cifar.train(cfg, HE_ARMS[:1], SEEDS[:1], data), check_exact=True)


def test_checkpoints_are_written_at_most_every_so_often(data, tmp_path, monkeypatch):
    saves = []
    monkeypatch.setattr(cifar.training, "save_checkpoint", lambda path, steps, *args: saves.append(steps))
    cifar.train(replace(HE, steps=6, log_every=1), HE_ARMS[:1], SEEDS[:1], data, checkpoints=tmp_path,
                checkpoint_seconds=3600)
    assert saves == []
    cifar.train(replace(HE, steps=6, log_every=1), HE_ARMS[:1], SEEDS[:1], data, checkpoints=tmp_path,
                checkpoint_seconds=0)
    assert saves == [1, 2, 3, 4, 5]  # every logged epoch but the last (the arm's frame is stored instead)


def test_a_stopped_session_resumes_the_arm_it_was_training(data, tmp_path, monkeypatch):
    cfg = replace(HE, steps=4, log_every=1)
    monkeypatch.setattr(cifar.kernel, "default_workers", lambda device: 1)
    monkeypatch.setattr(cifar.training, "CHECKPOINT_SECONDS", 0)
    seen = []

    @contextmanager
    def track(claim, condition, seeds, n_epochs):
        def on_epoch(epoch):
            seen.append((condition, epoch))
            if len(seen) == 6:  # the second arm's second epoch
                raise Stop

        yield on_epoch

    runs, protocol = cifar_runs(RunCache(tmp_path), track), cifar.CifarRuns(cfg, tuple(HE_ARMS))
    with pytest.raises(Stop):
        runs.train(protocol, [1], data=data)
    seen.clear()
    resumed = runs.train(protocol, [1], data=data)
    assert seen == [(HE_ARMS[1].name, 3), (HE_ARMS[1].name, 4)]  # arm 1 stored; arm 2 resumed after epoch 2
    pd.testing.assert_frame_equal(resumed, cifar.train(cfg, HE_ARMS, [1], data), check_exact=True)
    assert not list(tmp_path.rglob("*.pt"))


def test_worker_processes_hand_over_finished_arms_before_raising(data):
    # fails at its first step, long before the good arm has trained its 40
    broken = cifar.Arm("broken", partial(CifarNet, 8, num_classes=3, widths=(4, 8, 8)))  # labels 3-9 out of range
    done = []
    with pytest.raises(Exception, match="out of bounds"):
        cifar.train(replace(HE, steps=40, log_every=40), [HE_ARMS[0], broken], SEEDS[:1], data, workers=2,
                    on_arm=done.append)
    assert [frame.arm.iloc[0] for frame in done] == [HE_ARMS[0].name]


# -- gradient norms (D3) ---------------------------------------------------------------------
def test_gradient_norms_per_layer(data):
    arms = [cifar.Arm(f"plain-14{s}", partial(CifarNet, 14, residual=False, batch_norm=bn, widths=(4, 8, 8)))
            for bn, s in ((True, ""), (False, "-no-bn"))]  # fmt: skip
    frame = cifar.gradient_norms(replace(HE, batch_size=16), arms, [1, 2], data, checkpoints=(0, 2))
    assert len(frame) == 2 * 2 * 2 * 14  # arms x seeds x checkpoints x (13 convs + fc)
    assert set(frame.step) == {0, 2} and frame.groupby(["arm", "seed", "step"]).layer.nunique().eq(14).all()
    assert (frame.grad_norm > 0).all()
    np.testing.assert_allclose(frame.grad_rms, frame.grad_norm / np.sqrt(frame.weights))
    first = frame[(frame.layer == 0) & (frame.step == 0)].sort_values(["arm", "seed"])
    again = cifar.gradient_norms(replace(HE, batch_size=16), arms, [1, 2], data, checkpoints=(0,))
    np.testing.assert_allclose(first.grad_norm, again[again.layer == 0].sort_values(["arm", "seed"]).grad_norm)


def test_arms_in_worker_processes_give_the_same_frame(data):
    cfg = replace(HE, steps=2, log_every=2)
    here = cifar.train(cfg, HE_ARMS, SEEDS[:2], data)  # one thread, as in the workers: oneDNN's sums depend on it
    epochs = []
    pd.testing.assert_frame_equal(cifar.train(cfg, HE_ARMS, SEEDS[:2], data, workers=2, on_epoch=epochs.append), here)
    assert sorted(epochs) == [1, 1]  # one logged epoch per arm, replayed as each worker finished
    assert cifar.default_workers(torch.device("cuda")) == 1 and cifar.default_workers(torch.device("cpu")) >= 1


class CountOps(torch.utils._python_dispatch.TorchDispatchMode):
    """Counts the aten operators dispatched: on a GPU, each is a kernel launch (or a few)."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("recipe", ["keras003", "he2015"])
def test_a_grouped_step_dispatches_one_models_operators(recipe):
    """What makes grouping pay on a GPU: G models cost one model's launches (plus G-sized loss bookkeeping)."""
    cfg, arm = (replace(KERAS, batch_size=4), KERAS_ARM) if recipe == "keras003" else (replace(HE, batch_size=4), HE_ARMS[0])
    counts = {}
    for stack in ("loop", "grouped"):
        for n in (1, 4):
            step = cifar.step_closure(cfg, arm, n, "cpu", stack=stack)
            step()  # the optimizer's state exists from here on
            with CountOps() as ops:
                step()
            counts[stack, n] = ops.count
    assert counts["loop", 4] > 2.5 * counts["loop", 1]  # the optimizer's foreach ops do not grow
    assert counts["grouped", 4] < 1.2 * counts["grouped", 1]
