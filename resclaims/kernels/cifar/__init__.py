"""CIFAR-10 training for claims K, D and H1: data on the device, batched augmentation, stacked seeds.

Two recipes, each the source's own protocol at ``TrainConfig``'s defaults for it:

``keras003`` (source 003, claims K1-K3)
    pixels / 255, ``tf.image.central_crop(x, 0.75)`` (rows and columns 4..27 of 32)
    and ``random_flip_left_right``; batches of 64 in the pipeline's order (below);
    Keras' Adam (lr 1e-3, beta 0.9/0.999, epsilon 1e-7 placed as Keras places it,
    see :class:`KerasAdam`); 30 epochs of 195 steps; sparse categorical
    cross-entropy on the softmax output, computed from the logits.
``he2015`` (He et al. 2015, section 4.2, claims D1-D3 and H1)
    a fixed 45k/5k train/validation split; the per-pixel mean of the training
    images subtracted; 4-pixel zero padding, a random 32x32 crop and a random
    flip; batches of 128; SGD with momentum 0.9 and weight decay 1e-4, lr 0.1
    divided by 10 at 32k and 48k iterations, 64k iterations; lr 0.01 for the
    first ~400 iterations where an arm asks for warm-up (ResNet-110).

Data order. Source 003 builds ``from_tensor_slices(...).batch(64).shuffle(10000)``:
it cuts the training set, in its stored order, into 782 fixed batches (781 of 64
and one of 16) and shuffles the order of those batches every pass, never the
images within them (``order="batches"``). ``order="images"`` reshuffles images
every pass instead (what the author presumably meant), so the quirk's effect can
be measured; ``order="stream"`` is Caffe's: per-pass permutations, cut into full
batches across pass boundaries (He et al.). An image-folder copy of CIFAR-10 is
sorted by class, so the official stored order is lost: such a copy is put once
into a fixed random order (the same for every run) before batching.

Speed. The training set lives on the device as uint8; augmentation is batched
tensor operations with per-run random numbers. The runs of one architecture
train together as a :class:`ModelStack`: one module holding all G models side by
side as grouped convolutions (:mod:`resclaims.models.grouped`), and a step either
runs all of them in one pass or one after the other through views of the grouped
parameters (``stack="grouped"`` or ``"loop"``). Both compute exactly what separate
training computes (tests/kernels/test_cifar_training.py shows it in float64). A grouped
pass launches one model's kernels for G models, which is what small nets on a GPU
need; ``"auto"`` picks it on CUDA. On CPU, compute-bound, it gains little: one
thread, 5 seeds, median step, grouped against loop, 123 against 148 ms (quick K
net), 270 against 297 ms (quick D net) and 721 against 718 ms for 003's
full-width net, nothing where the long runs train, so ``"auto"`` keeps ``loop``
on CPU (torch 2.13, one core of this project's 2-core AVX-512 machine whose other core was
busy, issue 23; a second run under heavier load: 151/182, 329/398 and 953/1041
ms). How near one thread comes to the CPU's own limit (003's step against a
large sgemm, a stretch of training against its step) is measured by
``benchmarks/test_cpu_rate.py``. What pays
on CPU is processes: arms train in parallel worker processes of one thread each
(:func:`map_arms`). On the shared 2-core machine (other jobs running), 5 seeds x
2 arms of the quick K net took 45 s that way against 65 s on one thread, and in
a busier moment 40 s against 233 s for one process with two threads, whose
parallel regions stall whenever another process holds a core. On CUDA the
forward pass runs under bfloat16 autocast in channels_last memory format;
neither changes what a claim compares. A whole step of the group (forward,
losses, backward, optimizer) runs eagerly, compiled with ``torch.compile``, or
captured once as a CUDA graph and replayed (:mod:`~resclaims.kernels.cifar.steps`):
eager on CPU, where compiling costs more than it saves, a captured graph on CUDA.

Every run records, per logged epoch, its training loss and accuracy (the running
mean over the epoch's batches in training mode, as Keras reports them) and the
test loss and accuracy in eval mode, optionally also on clean training images
and on the validation split, in a tidy frame: one row per (arm, seed, epoch).

Modules, each using only those before it: :mod:`~resclaims.kernels.cifar.config` (protocols,
arms, tiers), :mod:`~resclaims.kernels.cifar.optim` (optimisers), :mod:`~resclaims.kernels.cifar.data`
(data on the device, orders, augmentation), :mod:`~resclaims.kernels.cifar.stack` (seeded
models, :class:`ModelStack`), :mod:`~resclaims.kernels.cifar.steps` (eager, compiled and captured steps of a
:class:`ModelStack`, capturable optimizers), :mod:`~resclaims.kernels.cifar.checkpoint` (an arm's state,
saved and resumed), :mod:`~resclaims.kernels.cifar.workers` (arms in worker processes),
:mod:`~resclaims.kernels.cifar.training` (:func:`train`, :func:`gradient_norms`),
:mod:`~resclaims.kernels.cifar.kernel` (both as the :mod:`resclaims.run.runs` kernel, through the
run cache: protocols :class:`CifarRuns` and :class:`GradientRuns`) and
:mod:`~resclaims.kernels.cifar.timing` (timed steps). This package re-exports what callers
use; to replace a name for a test, patch the module that uses it (e.g.
``resclaims.kernels.cifar.kernel.train_arms``), not the package.
"""

from resclaims.kernels.cifar.checkpoint import checkpoint_path, resume, save_checkpoint
from resclaims.kernels.cifar.config import (
    D_TIERS,
    HE2015,
    K_TIERS,
    ORDERS,
    RECIPES,
    STACKS,
    Arm,
    HeFamily,
    KerasFamily,
    TrainConfig,
    he_arms,
    keras_arms,
)
from resclaims.kernels.cifar.data import (
    DATA_SEED,
    DeviceData,
    batch_order,
    central_crop_flip,
    fixed_permutation,
    pad_crop_flip,
    run_batches,
    test_transform,
    to_device,
    train_transform,
)
from resclaims.kernels.cifar.kernel import MODELS_VERSION, CifarRuns, GradientRuns
from resclaims.kernels.cifar.optim import KerasAdam, he_lr, make_optimizer
from resclaims.kernels.cifar.stack import ModelStack, build, run_seed, seeded_device
from resclaims.kernels.cifar.steps import (
    STEP_MODES,
    CapturableKerasAdam,
    CapturableSGD,
    GroupStep,
    capturable_optimizer,
)
from resclaims.kernels.cifar.timing import cpu_threads, step_closure, time_step, timed_step, timing_threads
from resclaims.kernels.cifar.training import CHECKPOINT_SECONDS, EVAL_CHUNK, gradient_norms, train
from resclaims.kernels.cifar.workers import default_workers, map_arms

__all__ = [
    "CHECKPOINT_SECONDS", "DATA_SEED", "D_TIERS", "EVAL_CHUNK", "HE2015", "K_TIERS",
    "MODELS_VERSION", "ORDERS", "RECIPES", "STACKS", "STEP_MODES", "Arm", "CapturableKerasAdam", "CapturableSGD",
    "CifarRuns", "DeviceData", "GradientRuns", "GroupStep", "HeFamily",
    "KerasAdam", "KerasFamily", "ModelStack", "TrainConfig", "batch_order", "build", "capturable_optimizer", "central_crop_flip",
    "checkpoint_path", "cpu_threads", "default_workers", "fixed_permutation", "gradient_norms", "he_arms", "he_lr",
    "keras_arms", "make_optimizer", "map_arms", "pad_crop_flip", "resume", "run_batches", "run_seed",
    "save_checkpoint", "seeded_device", "step_closure", "test_transform", "time_step", "timed_step", "timing_threads", "to_device",
    "train", "train_transform",
]  # fmt: skip
