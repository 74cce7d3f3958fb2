"""Source 003's Keras network, and the widths option of He et al.'s CIFAR nets."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from resclaims.models.cifar import CifarNet
from resclaims.models.keras003 import Keras003, KerasBlock, keras_plain, keras_resnet

pytestmark = pytest.mark.usefixtures("one_thread")


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def keras_total(model: nn.Module) -> int:
    """What Keras' summary() prints as "Total params": parameters plus BN moving means and variances."""
    return n_params(model) + sum(b.numel() for n, b in model.named_buffers() if n.endswith(("running_mean", "running_var")))


@pytest.mark.parametrize("residual", [True, False])
def test_keras003_parameter_count(residual):
    model = Keras003(residual=residual)
    # conv 3->32 (896), conv 32->64 (18,496), 10 x [2 convs 64->64 (36,928 each) + 2 BN (128 each)],
    # conv 64->64 (36,928), dense 64->256 (16,640), dense 256->10 (2,570)
    assert n_params(model) == 896 + 18_496 + 10 * (2 * 36_928 + 2 * 128) + 36_928 + 16_640 + 2_570 == 816_650
    assert keras_total(model) == 819_210


def test_keras003_shapes_follow_valid_padding_and_pool_3():
    model = Keras003(blocks=2)
    shapes = {}
    for name in ("conv1", "conv2", "pool", "blocks", "conv3", "fc1", "fc2"):
        getattr(model, name).register_forward_hook(lambda m, i, o, name=name: shapes.__setitem__(name, tuple(o.shape)))
    model(torch.zeros(4, 3, 24, 24))
    assert shapes == {
        "conv1": (4, 32, 22, 22), "conv2": (4, 64, 20, 20), "pool": (4, 64, 6, 6), "blocks": (4, 64, 6, 6),
        "conv3": (4, 64, 4, 4), "fc1": (4, 256), "fc2": (4, 10),
    }  # fmt: skip


def test_keras_defaults_glorot_uniform_zero_bias_and_bn():
    model = Keras003()
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(m.weight)
            limit = math.sqrt(6 / (fan_in + fan_out))
            assert m.weight.abs().max() <= limit
            assert m.weight.std().item() == pytest.approx(limit / math.sqrt(3), rel=0.15)  # uniform(-l, l)
            assert torch.count_nonzero(m.bias) == 0
        if isinstance(m, nn.BatchNorm2d):
            assert (m.eps, m.momentum) == (1e-3, pytest.approx(0.01))  # Keras momentum 0.99
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)
    assert model.dropout.p == 0.5


def test_block_layer_order_is_the_sources():
    torch.manual_seed(0)
    x = torch.randn(2, 8, 6, 6)
    for residual in (True, False):
        block = KerasBlock(8, residual).train()
        for bn in (block.bn1, block.bn2):  # non-trivial affine parameters, so BN's position matters
            nn.init.uniform_(bn.weight, 0.5, 1.5), nn.init.uniform_(bn.bias, -0.5, 0.5)
        z = F.batch_norm(F.relu(block.conv1(x)), None, None, block.bn1.weight, block.bn1.bias, True, 0.0, 1e-3)
        if residual:  # Conv2D(relu), BN, Conv2D, BN, Add, ReLU
            z = F.relu(F.batch_norm(block.conv2(z), None, None, block.bn2.weight, block.bn2.bias, True, 0.0, 1e-3) + x)
        else:  # Conv2D(relu), BN, Conv2D(relu), BN
            z = F.batch_norm(F.relu(block.conv2(z)), None, None, block.bn2.weight, block.bn2.bias, True, 0.0, 1e-3)
        torch.testing.assert_close(block(x), z)


def test_residual_and_plain_differ_only_in_the_shortcut():
    resnet, plain = keras_resnet(3), keras_plain(3)
    assert [n for n, _ in resnet.named_parameters()] == [n for n, _ in plain.named_parameters()]
    plain.load_state_dict(resnet.state_dict())
    x = torch.rand(2, 3, 24, 24)
    assert not torch.allclose(resnet.eval()(x), plain.eval()(x))


@pytest.mark.parametrize("blocks", [0, 1, 20])
def test_block_count_and_width(blocks):
    model = Keras003(blocks=blocks, width=0.25)
    assert len(model.blocks) == blocks
    assert (model.conv1.out_channels, model.conv2.out_channels, model.fc1.out_features) == (8, 16, 64)
    assert model(torch.rand(3, 3, 24, 24)).shape == (3, 10)
    with pytest.raises(ValueError, match="blocks"):
        Keras003(blocks=-1)


def test_he_nets_keep_he_widths_by_default_and_narrow_on_request():
    assert n_params(CifarNet(20)) == 269_722  # He et al. Table 6: 0.27M
    narrow, plain = CifarNet(20, widths=(8, 16, 32)), CifarNet(20, residual=False, widths=(8, 16, 32))
    assert n_params(narrow) == n_params(plain) < 269_722 / 3
    assert narrow(torch.rand(2, 3, 16, 16)).shape == (2, 10)
    assert [m.out_channels for m in narrow.modules() if isinstance(m, nn.Conv2d)][-1] == 32
