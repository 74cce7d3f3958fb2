"""One training step of a group of seeds: eager, compiled with inductor, or captured once as a CUDA graph and replayed.

Training many seeds is the product, and these nets are small: on a GPU one
model's step is a few hundred tiny kernels, so the device waits on the Python
that launches them. :class:`GroupStep` takes the step of a :class:`ModelStack`
(forward of every model on its own batch, the per-model cross-entropy, backward,
the optimizer) as one unit, and runs it in one of :data:`STEP_MODES`:

| mode            | what runs                                                                  |
|-----------------|----------------------------------------------------------------------------|
| ``eager``       | PyTorch's kernels one by one (what :func:`resclaims.kernels.cifar.training.train` did first) |
| ``compile``     | ``torch.compile``: inductor fuses forward and backward (one graph), and the optimizer (another) |
| ``graph``       | the eager step captured once as a CUDA graph (``torch.cuda.graph``) and replayed (CUDA only) |
| ``compile+graph`` | the compiled step captured as one CUDA graph and replayed (CUDA only)  |

What makes the step capturable: inputs are copied into static buffers; the
learning rate is a tensor (:class:`CapturableSGD`, :class:`CapturableKerasAdam`)
whose value changes without a recompile or a recapture; the optimizers keep
every state tensor from the start (zero momentum equals PyTorch's first step
exactly) and take ``torch._foreach_*`` steps; BatchNorm's running statistics and
counters are updated in place inside the graph. Before capture the step is
warmed up (cuDNN's algorithm search, the allocator, inductor's compile) on a
side stream and every state tensor and the RNG are restored afterwards, so the
warm-up steps leave no trace in the run. Compile and capture times are counted
(:attr:`GroupStep.setup_seconds`) and reported.

A step whose batches differ in size (source 003's partial batch of 16, which
each seed meets at its own step) takes the eager path through the same
optimizer, so the compiled or captured graph never sees a second shape.

Numbers: a compiled step gives the eager step's numbers within float32
rounding (inductor keeps the eager random numbers: ``fallback_random``; tested
on CPU with inductor's C++ backend). A captured step's dropout draws its masks
from the graph's own Philox offsets, a different stream from eager's, and the
CUDA steps run in bfloat16 autocast as before: those runs are not the eager
runs' numbers, which is why the run cache records the step mode with the
device.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import nullcontext

import torch
import torch.nn.functional as F

from resclaims.kernels.cifar.optim import make_optimizer
from resclaims.kernels.cifar.stack import ModelStack
from resclaims.models import grouped as grouped_models

STEP_MODES = ("eager", "compile", "graph", "compile+graph")
WARMUP_STEPS = 3  # steps run (and undone) before a capture: cuDNN's search, the allocator, inductor's compile
ENVIRONMENT = "RESCLAIMS_STEP"  # overrides "auto": one of STEP_MODES

# What "auto" means per device type, and the measurements behind it: img/s of one quick arm's seeds, one step on
# random batches repeated for 5 s as gpu-check measures it (torch 2.13.0, AMD EPYC, 1 thread, 2026-12-02; the
# quick tier's benchmark test_T_keras003_step_modes times eager against compiled in every CI run):
#
#   arm (tier)                                     eager loop  eager grouped  compiled grouped  compile (cold cache)
#   K quick: 003's net x0.25, 10 blocks, 5 x 64        2,128          3,186             3,463          29 s
#   D quick: ResNet-20 8-16-32, 16x16, 8 x 128         2,751          2,410             2,820          51 s
#
# On the 2-core CPU a compiled step is at most ~10% faster, and a quick arm trains in about 40 s: the compile
# (30-50 s per architecture on CI's cold cache) costs more than it saves, so the CPU stays eager.
# CUDA: no GPU has measured these modes yet. "graph" (the eager kernels captured once, replayed) removes the
# launch overhead that bounds these nets (issue 14: 24 ms per step of 003's net on an H100, launch-bound) without
# depending on inductor; ``python -m resclaims gpu-check`` measures all four modes with the eager numbers next to
# them, and its table replaces this choice. A mode that fails to compile or capture falls back to eager with a warning.
AUTO = {"cpu": "eager", "cuda": "graph"}


def resolve_mode(mode: str, device: torch.device | str) -> str:
    """``mode``, or for ``"auto"`` the :data:`AUTO` choice for ``device`` (the environment's :data:`ENVIRONMENT` first)."""
    device = torch.device(device)
    if mode == "auto":
        mode = os.environ.get(ENVIRONMENT) or AUTO.get(device.type, "eager")
    if mode not in STEP_MODES:
        raise ValueError(f"step mode must be auto or one of {', '.join(STEP_MODES)} (set by {ENVIRONMENT} or step=), "
                         f"got {mode!r}")
    if "graph" in mode and device.type != "cuda":
        raise ValueError(f"step mode {mode!r} captures a CUDA graph; it needs --device cuda (this run is on {device})")
    return mode


class CapturableSGD(torch.optim.Optimizer):
    """PyTorch's SGD with momentum and weight decay (dampening 0, not Nesterov), with a tensor learning rate.

    ``d = g + wd * p; buf = momentum * buf + d; p -= lr * buf``. PyTorch starts
    ``buf`` at ``d`` on the first step; a zero buffer gives the same value
    (``momentum * 0 + d == d`` exactly), and makes the step the same code every
    time, which a CUDA graph needs.
    """

    def __init__(self, params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0) -> None:
        super().__init__(params, {"momentum": momentum, "weight_decay": weight_decay})
        first = self.param_groups[0]["params"][0]
        self.lr = torch.tensor(lr, dtype=first.dtype, device=first.device)
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p]["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)

    def set_lr(self, value: float) -> None:
        self.lr.fill_(value)

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ARG002 - no closures: the step is captured
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            grads = [p.grad for p in params]
            bufs = [self.state[p]["momentum_buffer"] for p in params]
            if group["weight_decay"]:
                grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
            torch._foreach_mul_(bufs, group["momentum"])
            torch._foreach_add_(bufs, grads)
            torch._foreach_sub_(params, torch._foreach_mul(bufs, self.lr))


class CapturableKerasAdam(torch.optim.Optimizer):
    """Keras' Adam (:class:`resclaims.kernels.cifar.optim.KerasAdam`) with tensor learning rate and step count.

    ``m = lerp(m, g, 1 - b1); v = b2 v + (1 - b2) g^2``;
    ``p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps / sqrt(1 - b2^t))``:
    PyTorch's Adam arithmetic with Keras' epsilon, as KerasAdam computes it. The
    bias corrections are computed on the device from the step count ``t``.
    """

    def __init__(self, params, lr: float = 1e-3, beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7) -> None:
        super().__init__(params, {"betas": (beta_1, beta_2), "epsilon": epsilon})
        first = self.param_groups[0]["params"][0]
        self.lr = torch.tensor(lr, dtype=first.dtype, device=first.device)
        self.t = torch.zeros((), dtype=torch.float64, device=first.device)  # steps taken
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p]["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                self.state[p]["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)

    def set_lr(self, value: float) -> None:
        self.lr.fill_(value)

    @property
    def iterations(self) -> int:
        """Steps taken (checkpoints save and restore it, as for :class:`KerasAdam`)."""
        return int(self.t.item())

    @iterations.setter
    def iterations(self, value: int) -> None:
        self.t.fill_(value)

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ARG002
        self.t.add_(1)
        for group in self.param_groups:
            b1, b2 = group["betas"]
            params = [p for p in group["params"] if p.grad is not None]
            grads = [p.grad for p in params]
            m = [self.state[p]["exp_avg"] for p in params]
            v = [self.state[p]["exp_avg_sq"] for p in params]
            torch._foreach_lerp_(m, grads, 1 - b1)
            torch._foreach_mul_(v, b2)
            torch._foreach_addcmul_(v, grads, grads, 1 - b2)
            bc2_sqrt = torch.sqrt(1 - b2**self.t)
            dtype = self.lr.dtype
            step_size = (self.lr / (1 - b1**self.t)).to(dtype)
            denom = torch._foreach_sqrt(v)
            torch._foreach_div_(denom, bc2_sqrt.to(dtype))
            torch._foreach_add_(denom, (group["epsilon"] / bc2_sqrt).to(dtype))
            update = torch._foreach_div(m, denom)
            torch._foreach_mul_(update, step_size)
            torch._foreach_sub_(params, update)


def capturable_optimizer(recipe: str, params: list[torch.Tensor], lr_scale: float = 1.0) -> torch.optim.Optimizer:
    """The recipe's optimizer (:func:`resclaims.kernels.cifar.optim.make_optimizer`) in its capturable form."""
    if recipe == "keras003":
        return CapturableKerasAdam(params, lr=1e-3 * lr_scale)
    return CapturableSGD(params, lr=0.1 * lr_scale, momentum=0.9, weight_decay=1e-4)


def group_step(cfg, stack: ModelStack, mode: str = "eager", *, autocast: bool = False) -> "GroupStep":
    """``stack``'s training step under ``cfg``'s recipe (a :class:`~resclaims.kernels.cifar.config.TrainConfig`): PyTorch's
    optimizer when eager (the numbers :func:`resclaims.kernels.cifar.training.train` always had), else its capturable form."""
    params = stack.parameters()
    optimizer = make_optimizer(cfg, params) if mode == "eager" else capturable_optimizer(cfg.recipe, params, cfg.lr_scale)
    return GroupStep(stack, optimizer, mode, autocast=autocast)


def _group_losses(logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-model mean cross-entropy and correct count: logits (G, B, K) float, y (G, B) -> two (G,) tensors."""
    G, B = y.shape
    losses = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(G, B).mean(1)
    return losses, (logits.argmax(2) == y).sum(1)


class GroupStep:
    """One training step of every model of a :class:`ModelStack`, in one of :data:`STEP_MODES` (module docstring).

    ``step(xs, ys, lr)`` trains model g on (xs[g], ys[g]) at learning rate ``lr``
    (None: the optimizer's own) and returns the (G,) losses and (G,) correct
    counts of the step, on the device. ``optimizer`` must be a capturable one
    unless ``mode`` is eager.
    """

    def __init__(self, stack: ModelStack, optimizer: torch.optim.Optimizer, mode: str = "eager", *,
                 autocast: bool = False) -> None:
        if mode not in STEP_MODES:
            raise ValueError(f"step mode must be one of {STEP_MODES}, got {mode!r}")
        device = stack.parameters()[0].device
        if "graph" in mode and device.type != "cuda":
            raise ValueError(f"step mode {mode!r} captures a CUDA graph; the models are on {device}")
        if mode != "eager" and not hasattr(optimizer, "set_lr"):
            raise ValueError(f"step mode {mode!r} needs a capturable optimizer (see capturable_optimizer)")
        self.stack, self.optimizer, self.mode, self.device = stack, optimizer, mode, device
        # a captured autocast must not cache its casts across replays (torch.cuda.graph's documentation)
        self.autocast = (torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled="graph" not in mode)
                         if autocast else nullcontext())
        self.setup_seconds = 0.0  # compile and capture time, counted once
        self.fast_steps = self.eager_steps = 0
        self._graph: torch.cuda.CUDAGraph | None = None
        self._static: tuple[torch.Tensor, ...] = ()
        self._shape: tuple | None = None  # one model's batch shape that the fast path was compiled or captured for
        forward, optimize = self._forward_losses, optimizer.step
        if "compile" in mode:
            import torch._inductor.config as inductor

            inductor.fallback_random = True  # the eager step's random numbers (dropout), not inductor's own
            forward = torch.compile(forward, dynamic=False)
            optimize = torch.compile(optimize, dynamic=False)
        self._forward, self._optimize = forward, optimize

    # -- the step -----------------------------------------------------------------------
    def _forward_losses(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with self.autocast:
            z = self.stack.net(x)  # (B, G*K)
        return _group_losses(grouped_models.split_logits(z.float(), self.stack.size), y)

    def _grouped_step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        losses, hits = self._forward(x, y)
        losses.sum().backward()
        self._optimize()
        return losses.detach(), hits

    def _eager_step(self, xs: Sequence[torch.Tensor], ys: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The step as :func:`resclaims.kernels.cifar.training.train` takes it eagerly (also: batches of different sizes)."""
        with self.autocast:
            logits = self.stack(xs)
        loss = torch.stack([F.cross_entropy(z.float(), y) for z, y in zip(logits, ys)])
        self.optimizer.zero_grad(set_to_none=True)
        loss.sum().backward()
        self.optimizer.step()
        return loss.detach(), torch.stack([(z.argmax(1) == y).sum() for z, y in zip(logits, ys)])

    def __call__(self, xs: Sequence[torch.Tensor], ys: Sequence[torch.Tensor], lr: float | None = None):
        if lr is not None:
            if hasattr(self.optimizer, "set_lr"):
                self.optimizer.set_lr(lr)
            else:
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
        shapes = {tuple(x.shape) for x in xs}
        if self.mode == "eager" or len(shapes) > 1 or self._shape not in (None, *shapes):  # one shape is compiled
            self.eager_steps += 1
            return self._eager_step(xs, ys)
        self.fast_steps += 1
        x = self.stack.format(grouped_models.join_inputs(xs))
        y = torch.stack(list(ys))
        if self._shape is None:  # the first grouped step compiles or captures
            return self._first_step(xs, ys, x, y)
        if "graph" not in self.mode:
            self.optimizer.zero_grad(set_to_none=True)
            return self._grouped_step(x, y)
        return self._replay(x, y)

    def _first_step(self, xs, ys, x, y):
        """Compile or capture, timed; if either fails, undo what it did and continue eagerly, with one warning."""
        started, state = time.perf_counter(), self._state()
        saved = [t.detach().clone() for t in state]
        rng = _rng_state(self.device)
        try:
            if "graph" in self.mode:
                self._capture(x, y, state, saved, rng)
                out = self._replay(x, y)
            else:
                self.optimizer.zero_grad(set_to_none=True)
                out = self._grouped_step(x, y)
            self._shape = tuple(xs[0].shape)
        except Exception as error:  # noqa: BLE001 - any compiler or capture failure: the eager step still trains
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
            warnings.warn(f"step mode {self.mode!r} failed to set up ({type(error).__name__}: {reason}); "
                          f"training eagerly instead", RuntimeWarning, stacklevel=3)
            _restore(state, saved, self.device, rng)
            self.mode, self._graph, self._forward, self._optimize = "eager", None, self._forward_losses, self.optimizer.step
            self.fast_steps -= 1
            return self(xs, ys)
        self.setup_seconds += time.perf_counter() - started
        return out

    def _replay(self, x: torch.Tensor, y: torch.Tensor):
        static_x, static_y, losses, hits = self._static
        static_x.copy_(x)
        static_y.copy_(y)
        self._graph.replay()
        return losses.clone(), hits.clone()

    # -- capture ------------------------------------------------------------------------
    def _state(self) -> list[torch.Tensor]:
        """Every tensor a step changes: parameters, buffers (BatchNorm), optimizer state."""
        tensors = [*self.stack.net.parameters(), *self.stack.net.buffers()]
        for state in self.optimizer.state.values():
            tensors += [v for v in state.values() if isinstance(v, torch.Tensor)]
        return tensors + [v for k, v in vars(self.optimizer).items() if isinstance(v, torch.Tensor) and k != "lr"]

    def _capture(self, x: torch.Tensor, y: torch.Tensor, state: list[torch.Tensor], saved: list[torch.Tensor],
                 rng: torch.Tensor) -> None:
        """Warm up on a side stream, undo the warm-up (back to ``saved`` and ``rng``), capture one step."""
        static_x, static_y = x.clone(), y.clone()
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(WARMUP_STEPS):
                self.optimizer.zero_grad(set_to_none=True)
                self._grouped_step(static_x, static_y)
        torch.cuda.current_stream(self.device).wait_stream(side)
        _restore(state, saved, self.device, rng)
        self.optimizer.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            losses, hits = self._grouped_step(static_x, static_y)
        torch.cuda.synchronize(self.device)
        self._graph, self._static = graph, (static_x, static_y, losses, hits)


def _rng_state(device: torch.device) -> torch.Tensor:
    return torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state()


@torch.no_grad()
def _restore(state: list[torch.Tensor], saved: list[torch.Tensor], device: torch.device, rng: torch.Tensor) -> None:
    """Put every state tensor and the device's generator back as they were."""
    for tensor, value in zip(state, saved):
        tensor.copy_(value)
    if device.type == "cuda":
        torch.cuda.set_rng_state(rng, device)
    else:
        torch.set_rng_state(rng)


def images_per_second(step: Callable[[], object], images: int, *, seconds: float = 1.0, min_steps: int = 3,
                      synchronize: Callable[[], None] = lambda: None) -> float:
    """Images per second of ``step`` (each call trains ``images`` images), over at least ``seconds`` of steps."""
    synchronize()
    n, started = 0, time.perf_counter()
    while n < min_steps or time.perf_counter() - started < seconds:
        step()
        n += 1
    synchronize()
    return n * images / (time.perf_counter() - started) if n else math.nan
