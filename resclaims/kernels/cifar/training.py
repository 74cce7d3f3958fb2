"""Training: every arm at every seed, one logged row per (arm, seed, epoch); and claim D3's gradient norms."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from functools import partial
from pathlib import Path

import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

from resclaims.datasets.cifar10 import Cifar10
from resclaims.kernels.cifar.checkpoint import checkpoint_path, resume, save_checkpoint
from resclaims.kernels.cifar.config import STACKS, Arm, TrainConfig
from resclaims.kernels.cifar.data import run_batches, test_transform, to_device
from resclaims.kernels.cifar.optim import he_lr, make_optimizer
from resclaims.kernels.cifar.stack import ModelStack, build, run_seed, seeded_device
from resclaims.kernels.cifar.steps import group_step, resolve_mode
from resclaims.kernels.cifar.workers import map_arms

EVAL_CHUNK = 1000  # images per evaluation forward pass
CHECKPOINT_SECONDS = 120.0  # an arm in training saves its state at most this often (train's checkpoints)


@torch.no_grad()
def _evaluate(cfg, stack, dev, x, y, autocast, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean loss and accuracy of every model on (x, y) in eval mode: two (G,) tensors (nan if empty)."""
    if len(y) == 0:
        return (torch.full((stack.size,), math.nan),) * 2
    stack.train(False)
    loss_sum = torch.zeros(stack.size, dtype=torch.float64, device=y.device)
    correct = torch.zeros_like(loss_sum)
    for start in range(0, len(y), EVAL_CHUNK):
        xb, yb = test_transform(cfg, dev, x[start : start + EVAL_CHUNK]).to(dtype), y[start : start + EVAL_CHUNK]
        with autocast:
            logits = stack.shared(xb).float()  # (G, b, 10)
        loss_sum += F.cross_entropy(logits.transpose(1, 2), yb.expand(stack.size, -1), reduction="none").sum(1).double()
        correct += (logits.argmax(2) == yb).sum(1).double()
    stack.train(True)
    return loss_sum / len(y), correct / len(y)


def _train_arm(cfg, arm, *, seeds, dev, device, grouped, amp, channels_last, dtype, mode="eager", checkpoints=None,
               checkpoint_seconds=CHECKPOINT_SECONDS, on_epoch=None) -> pd.DataFrame:  # fmt: skip
    models = [build(arm, seed).to(device=device, dtype=dtype) for seed in seeds]
    stack = ModelStack(models, grouped, channels_last)
    train_step = group_step(cfg, stack, mode, autocast=amp)
    optimizer = train_step.optimizer
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if amp else nullcontext()
    cudnn = torch.backends.cudnn.flags(enabled=True, benchmark=True) if device.type == "cuda" else nullcontext()
    rows, losses, hits, sizes = [], [], [], []  # per step of the current epoch: (G,) tensors, G sizes
    diverged = torch.zeros(len(seeds), dtype=torch.bool, device=device)  # (G,): a loss was NaN or inf
    checkpoint = checkpoint_path(checkpoints, arm) if checkpoints is not None else None
    with seeded_device(device, run_seed("dropout", seeds[0], arm.name)), cudnn:
        first = 0
        if checkpoint is not None and checkpoint.exists():
            rows, first = resume(checkpoint, stack, optimizer, diverged, device) or (rows, first)
        batches = [run_batches(cfg, dev, seed, skip=first // cfg.log_every) for seed in seeds]
        saved = time.monotonic()
        for step in range(first, cfg.steps):
            xs, ys = zip(*(next(b) for b in batches))
            lr = he_lr(step, cfg.milestones, arm.warmup_steps) * cfg.lr_scale if cfg.recipe == "he2015" else None
            loss, hit = train_step([x.to(dtype) for x in xs], ys, lr)  # (G,), (G,)
            diverged |= ~torch.isfinite(loss)
            losses.append(loss.double())
            hits.append(hit.double())
            sizes.append([len(y) for y in ys])
            if (step + 1) % cfg.log_every:
                continue
            n = torch.tensor(sizes, dtype=torch.float64, device=device)  # (S, G)
            metrics = {
                "train_loss": (torch.stack(losses) * n).sum(0) / n.sum(0),  # sample-weighted, as Keras averages
                "train_acc": torch.stack(hits).sum(0) / n.sum(0),
            }
            for split in ("test", "val", "train_eval"):
                x, y = getattr(dev, f"x_{split}"), getattr(dev, f"y_{split}")
                if split == "val" and not cfg.eval_val:
                    y = y[:0]
                metrics[f"{split}_loss"], metrics[f"{split}_acc"] = _evaluate(cfg, stack, dev, x, y, autocast, dtype)
            metrics = {k: v.cpu().numpy() for k, v in metrics.items()}
            gone = diverged.cpu().numpy()
            epoch = (step + 1) // cfg.log_every
            for g, seed in enumerate(seeds):
                rows.append({"arm": arm.name, "seed": seed, "epoch": epoch, "step": step + 1, "diverged": bool(gone[g]),
                             **{k: math.nan if gone[g] else float(v[g]) for k, v in metrics.items()}})  # fmt: skip
            losses, hits, sizes = [], [], []
            if checkpoint is not None and time.monotonic() - saved >= checkpoint_seconds and step + 1 < cfg.steps:
                save_checkpoint(checkpoint, step + 1, rows, stack, optimizer, diverged, device)
                saved = time.monotonic()
            if on_epoch is not None:
                on_epoch(epoch)
            if gone.all():  # every run of the arm diverged: stop, and log the epochs left as NaN
                rows += [{**row, "epoch": later, "step": later * cfg.log_every}
                         for later in range(epoch + 1, cfg.steps // cfg.log_every + 1) for row in rows[-len(seeds):]]
                break
    frame = pd.DataFrame(rows)
    frame["diverged"] = frame.groupby("seed").diverged.transform("any")  # a run is diverged on every row
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # the folder, once no arm of this training has a checkpoint left
            checkpoint.parent.rmdir()
    return frame


def train(
    cfg: TrainConfig,
    arms: Sequence[Arm],
    seeds: Sequence[int],
    data: Cifar10,
    device: torch.device | str = "cpu",
    *,
    stack: str = "auto",
    amp: bool | None = None,
    channels_last: bool | None = None,
    dtype: torch.dtype = torch.float32,
    step: str = "auto",
    workers: int = 1,
    on_epoch: Callable[[int], None] | None = None,
    on_arm: Callable[[pd.DataFrame], object] | None = None,
    checkpoints: Path | None = None,
    checkpoint_seconds: float | None = None,
) -> pd.DataFrame:
    """Train every arm at every seed; one row per (arm, seed, logged epoch), with a ``diverged`` column.

    Runs of one arm train together (``stack``: ``"grouped"``, ``"loop"``, or
    ``"auto"``: grouped on CUDA, loop on CPU). Run (arm, seed) draws its data order
    and augmentation from ``seed`` alone, so arms at the same seed see the same
    batches (pairs by seed share data). Its initialisation comes from
    ``(seed, arm)``; dropout masks come from the device generator, seeded per arm
    from the first seed. ``amp`` (bfloat16 autocast) and ``channels_last``
    default to on for CUDA and off for CPU. ``step`` is how a step runs: one of
    :data:`resclaims.kernels.cifar.steps.STEP_MODES`, or ``"auto"`` (the mode measured
    fastest on the device, :func:`resclaims.kernels.cifar.steps.resolve_mode`). ``workers`` > 1 trains
    arms in parallel processes (see :func:`map_arms`). ``on_epoch(epoch)`` is
    called after each logged epoch of each arm (from worker processes: when the
    arm is done), for progress bars; ``on_arm(frame)`` with each arm's frame as
    that arm finishes (to store it before the next one). With a ``checkpoints``
    folder, each arm saves its whole training state there at the end of a logged
    epoch at most every ``checkpoint_seconds`` (default :data:`CHECKPOINT_SECONDS`) and resumes from it when started
    again, with the same numbers as an uninterrupted run; the file is removed
    when the arm finishes. A run whose loss becomes NaN or inf has
    diverged: its metrics from that epoch on are NaN, and an arm whose runs have
    all diverged stops training.
    """
    device = torch.device(device)
    if stack not in STACKS:
        raise ValueError(f"stack must be one of {STACKS}, got {stack!r}")
    cuda = device.type == "cuda"
    grouped = stack == "grouped" or (stack == "auto" and cuda)
    amp = cuda if amp is None else amp
    channels_last = cuda if channels_last is None else channels_last
    mode = resolve_mode(step, device)
    dev = to_device(data, cfg, device)
    run = partial(_train_arm, cfg, seeds=list(seeds), dev=dev, device=device, grouped=grouped, amp=amp,
                  channels_last=channels_last, dtype=dtype, mode=mode, checkpoints=checkpoints,
                  checkpoint_seconds=CHECKPOINT_SECONDS if checkpoint_seconds is None else checkpoint_seconds)  # fmt: skip
    replay = None
    if workers <= 1:
        run = partial(run, on_epoch=on_epoch)
    elif on_epoch is not None:  # workers cannot call back: replay an arm's epochs when it is done
        replay = lambda frame: [on_epoch(int(e)) for e in sorted(frame.epoch.unique())]  # noqa: E731

    def on_done(frame: pd.DataFrame) -> None:
        for callback in (replay, on_arm):
            if callback is not None:
                callback(frame)

    return pd.concat(map_arms(run, arms, workers, on_done), ignore_index=True)


# -- gradient norms per layer (claim D3) ---------------------------------------------
def _arm_gradients(cfg, arm, *, seeds, dev, checkpoints) -> pd.DataFrame:
    rows = []
    for seed in seeds:
        model = build(arm, seed).to(dev.y_train.device)
        layers = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        optimizer = make_optimizer(cfg, list(model.parameters()))
        batches = run_batches(cfg, dev, seed)
        for step in range(max(checkpoints) + 1):
            x, y = next(batches)
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            if step in checkpoints:
                for index, (name, layer) in enumerate(layers):
                    g, w, n = layer.weight.grad.norm().item(), layer.weight.norm().item(), layer.weight.numel()
                    rows.append({"arm": arm.name, "seed": seed, "step": step, "layer": index, "name": name,
                                 "weights": n, "grad_norm": g, "grad_rms": g / math.sqrt(n),
                                 "weight_norm": w, "relative": g / w})  # fmt: skip
            if cfg.recipe == "he2015":
                for group in optimizer.param_groups:
                    group["lr"] = he_lr(step, cfg.milestones, arm.warmup_steps) * cfg.lr_scale
            optimizer.step()
    return pd.DataFrame(rows)


def gradient_norms(
    cfg: TrainConfig,
    arms: Sequence[Arm],
    seeds: Sequence[int],
    data: Cifar10,
    checkpoints: Sequence[int],
    device: torch.device | str = "cpu",
    *,
    workers: int = 1,
) -> pd.DataFrame:
    """Per-layer weight-gradient norms while training, at the given 0-based steps.

    Each (arm, seed) trains with ``cfg``'s recipe for ``max(checkpoints)`` steps;
    at each checkpoint the gradient of that step's batch is recorded, before the
    optimizer uses it. One row per (arm, seed, step, layer): ``layer`` counts the
    weighted layers (convs, then the fc) in forward order; ``grad_norm`` is
    ||dL/dW||, ``grad_rms`` that over sqrt(weights) (comparable across layers of
    different sizes), ``weight_norm`` ||W||, ``relative`` ||dL/dW|| / ||W||.
    """
    device = torch.device(device)
    run = partial(_arm_gradients, cfg, seeds=list(seeds), dev=to_device(data, cfg, device), checkpoints=set(checkpoints))
    return pd.concat(map_arms(run, arms, workers), ignore_index=True)
