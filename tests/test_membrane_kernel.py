"""The seed-batched membrane kernel computes the source's loop, model by model.

The reference is the source's own code (``resnet_block``, one module and one Adam
per model, ``nn.L1Loss``, batch 1) on small generated binary images. Equality is
shown in float64, where the two programs' different summation orders cannot
matter, and in float32 over a few epochs with a looser tolerance.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from resclaims.membrane import (
    ARMS,
    FIXED_ARMS,
    MembraneConfig,
    conv3x3,
    epoch_orders,
    initial_weights,
    loss_floor,
    prepare,
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


def by_model(curves):
    return curves.sort_values(["seed", "arm", "epoch"]).reset_index(drop=True)


def assert_same_runs(reference, batched, rtol: float) -> None:
    assert reference.models == batched.models
    a, b = by_model(reference.curves), by_model(batched.curves)
    assert a[["seed", "arm", "shortcut", "head", "epoch"]].equals(b[["seed", "arm", "shortcut", "head", "epoch"]])
    np.testing.assert_allclose(b.loss_sum, a.loss_sum, rtol=rtol)
    np.testing.assert_allclose(b.loss, a.loss, rtol=rtol)
    assert reference.state.keys() == batched.state.keys()
    for key, value in reference.state.items():
        np.testing.assert_allclose(batched.state[key].double(), value.double(), rtol=rtol, atol=rtol, err_msg=key)


def test_conv3x3_is_a_grouped_convolution():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, 5, 9, 7, generator=generator, dtype=torch.float64)
    weight = torch.randn(5, 1, 3, 3, generator=generator, dtype=torch.float64)
    torch.testing.assert_close(conv3x3(x, weight), F.conv2d(x, weight, padding=1, groups=5), rtol=1e-12, atol=1e-12)


def test_batched_equals_source_loop_float64():
    config = MembraneConfig(n_seeds=len(SEEDS), epochs=3, dtype=torch.float64)
    images = prepare(binary_images(size=32), config)
    reference = train_sequential(images, SEEDS, ALL_ARMS, epochs=config.epochs)
    assert_same_runs(reference, train(images, SEEDS, config, ALL_ARMS), rtol=1e-6)


def test_batched_equals_source_loop_float32():
    """float32 rounds differently in the two programs; over 5 epochs the runs still agree to 1e-4.

    (About 6e-8 on the CI machine; 2e-5 on a 16-core machine with torch 2.11, whose oneDNN sums in
    another order: the tolerance covers the CPUs the suite runs on, not one machine's rounding.)
    """
    config = MembraneConfig(n_seeds=2, epochs=5)
    images = prepare(binary_images(size=32), config)
    reference = train_sequential(images, SEEDS[:2], ALL_ARMS, epochs=config.epochs)
    assert_same_runs(reference, train(images, SEEDS[:2], config, ALL_ARMS), rtol=1e-4)


def test_splitting_into_programs_changes_nothing():
    config = MembraneConfig(n_seeds=3, epochs=2, dtype=torch.float64)
    images = prepare(binary_images(), config)
    whole = train(images, SEEDS, config, ALL_ARMS)
    split = train(images, SEEDS, dataclasses.replace(config, program_elements=5 * 16 * 16), ALL_ARMS)  # 5, 5 and 2 models
    assert_same_runs(whole, split, rtol=1e-12)


def test_compiled_step_equals_eager():
    config = MembraneConfig(n_seeds=1, epochs=1, dtype=torch.float64)
    images = prepare(binary_images(n=3, size=8), config)
    eager = train(images, SEEDS[:1], config, ALL_ARMS)
    compiled = train(images, SEEDS[:1], dataclasses.replace(config, compile=True), ALL_ARMS)
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
    config = MembraneConfig(n_seeds=2, epochs=1, dtype=torch.float64)
    images = prepare(binary_images(), config)
    runs = train(images, SEEDS[:2], config, ALL_ARMS)
    outputs = reconstruct(runs, images[:1], SEEDS[1])
    assert list(outputs) == [arm.name for arm in ALL_ARMS]
    k = runs.models.index((SEEDS[1], "shortcut"))
    net = resnet_block(1).double()
    net.load_state_dict({key: value[k].reshape(net.state_dict()[key].shape) for key, value in runs.state.items()})
    expected = torch.sigmoid(net.train()(images[:1], shortcuts=True))[0, 0]
    np.testing.assert_allclose(outputs["shortcut"], expected.detach().numpy(), rtol=1e-12)


def test_prepare_crops_the_centre():
    images = np.arange(2 * 10 * 10, dtype=np.float32).reshape(2, 1, 10, 10)
    cropped = prepare(images, MembraneConfig(n_seeds=1, crop=4))
    assert cropped.shape == (2, 1, 4, 4) and cropped.dtype == torch.float32
    assert torch.equal(cropped[0, 0, 0], torch.tensor([33.0, 34, 35, 36]))
