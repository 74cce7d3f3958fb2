"""The ImageNet ResNets, plain-34 and VGG-19: structure, shapes and the option/stride variants."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from resclaims.models import imagenet
from resclaims.models.cifar import ShortcutA
from resclaims.models.counting import count_forward, on_meta, parameter_count, weighted_layers
from resclaims.models.imagenet import Bottleneck, Projection, ResNetConfig


def shortcuts(model: nn.Module, kind: type) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, kind)]


@pytest.mark.parametrize("depth", sorted(imagenet.DEPTHS))
def test_forward_shape_on_meta(depth):
    model = on_meta(lambda: imagenet.resnet(depth))
    assert model(torch.zeros(2, 3, 224, 224, device="meta")).shape == (2, 1000)


def test_resnet18_runs_on_cpu_and_trains():
    torch.manual_seed(0)
    model = imagenet.resnet(18, num_classes=7)
    out = model(torch.randn(2, 3, 64, 64))  # any size >= 32 works: global average pooling
    assert out.shape == (2, 7)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_option_b_projects_only_where_the_shape_changes():
    # ResNet-34: stages 2-4 open with a stride-2 block; every other block keeps the shape
    assert len(shortcuts(imagenet.resnet(34), Projection)) == 3
    # ResNet-50: also the first block (64 -> 256 channels at stride 1)
    model = on_meta(lambda: imagenet.resnet(50))
    strides = [p.conv.stride for p in shortcuts(model, Projection)]
    assert strides == [(1, 1), (2, 2), (2, 2), (2, 2)]


def test_projection_parameters():
    # 1x1 conv without bias, then BN (weight and bias)
    assert parameter_count(Projection(64, 128, 2)) == 64 * 128 + 2 * 128


def test_option_a_has_no_shortcut_parameters_and_equals_plain():
    resnet_a = imagenet.resnet(34, shortcut="A")
    assert len(shortcuts(resnet_a, ShortcutA)) == 3 and not shortcuts(resnet_a, Projection)
    assert parameter_count(resnet_a) == parameter_count(imagenet.plain34())
    option_b_extra = parameter_count(imagenet.resnet34()) - parameter_count(resnet_a)
    assert option_b_extra == sum(c_in * c_out + 2 * c_out for c_in, c_out in ((64, 128), (128, 256), (256, 512)))


def test_plain_twin_has_no_shortcuts():
    model = imagenet.plain34()
    assert all(block.shortcut is None for block in model.blocks)


def test_stride_placement_v1_and_v15():
    v1 = on_meta(lambda: imagenet.resnet(50))
    v15 = on_meta(lambda: imagenet.resnet(50, stride_in_1x1=False))
    first_of_stage2 = [b for b in v1.blocks if isinstance(b, Bottleneck)][3]
    assert first_of_stage2.conv1.stride == (2, 2) and first_of_stage2.conv2.stride == (1, 1)
    first_of_stage2 = [b for b in v15.blocks if isinstance(b, Bottleneck)][3]
    assert first_of_stage2.conv1.stride == (1, 1) and first_of_stage2.conv2.stride == (2, 2)
    assert parameter_count(v1) == parameter_count(v15)
    # v1.5 runs each stage's first 1x1 conv at the input resolution: 4x its v1 cost, three times over
    extra = sum(c_in * width * hw * 3 // 4 for c_in, width, hw in ((256, 128, 56 * 56), (512, 256, 28 * 28), (1024, 512, 14 * 14)))
    assert count_forward(v15, (1, 3, 224, 224)).multiply_adds - count_forward(v1, (1, 3, 224, 224)).multiply_adds == extra


def test_resnet34_is_1_plus_2x16_plus_1():
    model = imagenet.resnet34()
    assert len(model.blocks) == 16
    assert all(weighted_layers(block, (Projection,)) == 2 for block in model.blocks)
    assert weighted_layers(model, (Projection,)) == 34
    assert weighted_layers(model) == 37  # with the three projections


def test_vgg19_structure():
    model = on_meta(imagenet.vgg19)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(convs) == 16 and len(linears) == 3
    assert all(c.kernel_size == (3, 3) for c in convs)
    assert model(torch.zeros(1, 3, 224, 224, device="meta")).shape == (1, 1000)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"depth": 20}, "depth must be one of"), ({"shortcut": "C"}, "shortcut must be 'A'")],
)
def test_bad_config_says_what_to_do(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ResNetConfig(**kwargs)


def test_init():
    model = imagenet.resnet18()
    bn = model.bn
    assert torch.equal(bn.weight, torch.ones_like(bn.weight)) and torch.equal(bn.bias, torch.zeros_like(bn.bias))
    # kaiming normal, fan_out: std = sqrt(2 / (64 * 7 * 7))
    assert model.conv.weight.std().item() == pytest.approx((2 / (64 * 49)) ** 0.5, rel=0.05)
