"""The seed-batched membrane kernel computes the source's loop, model by model.

The reference is the source's own code (``resnet_block``, one module and one Adam
per model, ``nn.L1Loss``, batch 1) on small generated binary images. Equality is
shown in float64, where the two programs' different summation orders cannot
matter, and in float32 over a few epochs with a looser tolerance.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from resclaims.datasets.membrane import Membrane
from resclaims.kernels.membrane import (
    ARMS,
    FIXED_ARMS,
    STATE,
    STATE_PREFIX,
    MembraneProtocol,
    conv3x3,
    epoch_orders,
    final_state,
    initial_weights,
    loss_floor,
    prepare,
    progress_total,
    reconstruct,
    resnet_block,
    train,
    train_sequential,
)

SEEDS = [11, 12, 13]
ALL_ARMS = ARMS + FIXED_ARMS


def binary_images(n: int = 6, size: int = 16, seed: int = 0) -> np.ndarray:
    """(n, 1, size, size) float32 labels in {0, 1}, about 22% black like the membranes."""
    return (np.random.default_rng(seed).random((n, 1, size, size)) > 0.22).astype(np.float32)


def synthetic(images: np.ndarray) -> Membrane:
    """Generated labels as the kernel's ``data``, with a checksum of their pixels."""
    return Membrane(images, Path("synthetic"), "generated", hashlib.sha256(images.tobytes()).hexdigest())


def assert_same_runs(reference, batched, rtol: float) -> None:
    """Two frames hold the same runs: the same rows, losses and final states within ``rtol``."""
    ids = ["seed", "arm", "shortcut", "head", "epoch", "diverged"]
    assert list(reference.columns) == list(batched.columns)
    assert reference[ids].equals(batched[ids])
    np.testing.assert_allclose(batched.loss_sum, reference.loss_sum, rtol=rtol)
    np.testing.assert_allclose(batched.loss, reference.loss, rtol=rtol)
    state = [c for c in reference.columns if c.startswith(STATE_PREFIX)]
    assert len(state) == 2 * (9 + 5)
    for column in state:
        np.testing.assert_allclose(batched[column], reference[column], rtol=rtol, atol=rtol, err_msg=column)


def test_conv3x3_is_a_grouped_convolution():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, 5, 9, 7, generator=generator, dtype=torch.float64)
    weight = torch.randn(5, 1, 3, 3, generator=generator, dtype=torch.float64)
    torch.testing.assert_close(conv3x3(x, weight), F.conv2d(x, weight, padding=1, groups=5), rtol=1e-12, atol=1e-12)


def test_batched_equals_source_loop_float64():
    protocol = MembraneProtocol(arms=ALL_ARMS, epochs=3, dtype=torch.float64)
    data = synthetic(binary_images(size=32))
    reference = train_sequential(prepare(data.images, protocol), SEEDS, ALL_ARMS, epochs=protocol.epochs)
    assert_same_runs(reference, train(protocol, SEEDS, data=data), rtol=1e-6)


def test_batched_equals_source_loop_float32():
    """float32 rounds differently in the two programs; over 5 epochs the runs still agree to 1e-4.

    (About 6e-8 on the CI machine; 2e-5 on a 16-core machine with torch 2.11, whose oneDNN sums in
    another order: the tolerance covers the CPUs the suite runs on, not one machine's rounding.)
    """
    protocol = MembraneProtocol(arms=ALL_ARMS, epochs=5)
    data = synthetic(binary_images(size=32))
    reference = train_sequential(prepare(data.images, protocol), SEEDS[:2], ALL_ARMS, epochs=protocol.epochs)
    assert_same_runs(reference, train(protocol, SEEDS[:2], data=data), rtol=1e-4)


def test_splitting_into_programs_changes_nothing_and_progress_counts_epochs():
    protocol, data = MembraneProtocol(arms=ALL_ARMS, epochs=2, dtype=torch.float64), synthetic(binary_images())
    whole, split_epochs = train(protocol, SEEDS, data=data), []
    split = train(dataclasses.replace(protocol, program_elements=5 * 16 * 16), SEEDS, data=data,  # 5, 5 and 2 models
                  on_epoch=split_epochs.append)
    assert_same_runs(whole, split, rtol=1e-12)
    assert split_epochs == list(range(progress_total(protocol, len(SEEDS))))  # 3 programs x 2 epochs: 2 steps


def test_compiled_step_equals_eager():
    protocol, data = MembraneProtocol(arms=ALL_ARMS, epochs=1, dtype=torch.float64), synthetic(binary_images(n=3, size=8))
    eager = train(protocol, SEEDS[:1], data=data)
    compiled = train(dataclasses.replace(protocol, compile=True), SEEDS[:1], data=data)
    assert_same_runs(eager, compiled, rtol=1e-9)


def test_arms_train_in_lockstep_on_the_seeds_order():
    """Arms of one seed see the same images; the source-head and fixed-head twins start from the same kernels."""
    orders = epoch_orders(5, epochs=4, n_images=30)
    assert orders.shape == (4, 30)
    assert all(sorted(row) == list(range(30)) for row in orders)
    assert np.array_equal(orders, epoch_orders(5, 4, 30)) and not np.array_equal(orders, epoch_orders(6, 4, 30))
    for source, fixed in zip(ARMS, FIXED_ARMS):
        assert all(torch.equal(a, b) for a, b in zip(initial_weights(5, source), initial_weights(5, fixed)))
    assert not torch.equal(initial_weights(5, ARMS[0])[0], initial_weights(5, ARMS[1])[0])


def test_initial_weights_follow_kaiming_fan_out():
    kernels = torch.cat([w for seed in range(300) for w in initial_weights(seed, ARMS[0])])
    std = (2 / 9) ** 0.5  # fan_out = 1 output channel x 9 taps, gain sqrt(2)
    assert abs(kernels.std().item() - std) < 0.05 * std and abs(kernels.mean().item()) < 0.05


def test_source_head_cannot_go_below_the_floor_and_the_fixed_head_can():
    images = torch.tensor(binary_images(n=4, size=8))
    z = torch.randn(2000, 4, 1, 8, 8, dtype=torch.float64) * 10
    floor = loss_floor(images)
    source = (torch.sigmoid(z.relu()) - images).abs().mean(dim=(1, 2, 3, 4))
    fixed = (torch.sigmoid(z) - images).abs().mean(dim=(1, 2, 3, 4))
    assert floor == pytest.approx(0.5 * float((images == 0).float().mean()))
    assert source.min() >= floor
    perfect = torch.where(images == 1, 40.0, -40.0)  # the fixed head can predict 0 on black pixels
    assert (torch.sigmoid(perfect) - images).abs().mean() < 1e-12 < floor
    assert fixed.min() >= 0


def test_reconstruct_is_the_training_mode_forward():
    protocol, data = MembraneProtocol(arms=ALL_ARMS, epochs=1, dtype=torch.float64), synthetic(binary_images())
    images = prepare(data.images, protocol)
    frame = train(protocol, SEEDS[:2], data=data)
    outputs = reconstruct(frame, images[:1], SEEDS[1])
    assert list(outputs) == [arm.name for arm in ALL_ARMS]
    models, state = final_state(frame)
    k = models.index((SEEDS[1], "shortcut"))
    net = resnet_block(1).double()
    assert list(net.state_dict()) == list(STATE)
    net.load_state_dict({key: value[k].reshape(net.state_dict()[key].shape) for key, value in state.items()})
    expected = torch.sigmoid(net.train()(images[:1], shortcuts=True))[0, 0]
    np.testing.assert_allclose(outputs["shortcut"], expected.detach().numpy(), rtol=1e-12)


def test_prepare_crops_the_centre():
    images = np.arange(2 * 10 * 10, dtype=np.float32).reshape(2, 1, 10, 10)
    cropped = prepare(images, MembraneProtocol(crop=4))
    assert cropped.shape == (2, 1, 4, 4) and cropped.dtype == torch.float32
    assert torch.equal(cropped[0, 0, 0], torch.tensor([33.0, 34, 35, 36]))
