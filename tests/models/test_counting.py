"""resclaims.models.counting on tiny modules whose counts can be worked out by hand."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import pytest
import torch
import torch.nn as nn

from resclaims.models.counting import (
    count_forward,
    decimals,
    on_meta,
    parameter_count,
    round_as_printed,
    rounds_to,
    weighted_layers,
)


class Projection(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 1, bias=False)


class Block(nn.Module):
    """conv3x3 (2 -> 4) plus a 1x1 projection shortcut; output 4 x H x W."""

    def __init__(self, shortcut: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.shortcut = Projection() if shortcut else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.conv(x)
        return z + self.shortcut.conv(x) if self.shortcut is not None else z


def tiny_net(shortcut: bool = True) -> nn.Module:
    return nn.Sequential(Block(shortcut), nn.Flatten(), nn.Linear(4 * 5 * 5, 3))


def test_parameter_count_by_hand():
    # conv 2*4*9 + 4 bias = 76; projection 2*4 = 8; fc 100*3 + 3 = 303
    assert parameter_count(tiny_net()) == 76 + 8 + 303
    assert parameter_count(tiny_net(shortcut=False)) == 76 + 303


def test_parameter_count_skips_frozen_parameters():
    net = tiny_net()
    net[0].shortcut.requires_grad_(False)
    assert parameter_count(net) == 76 + 303


def test_count_forward_by_hand():
    count = count_forward(tiny_net(), (1, 2, 5, 5), (Block,))
    conv = 2 * 4 * 9 * 25 + 2 * 4 * 25  # 3x3 conv and 1x1 projection, 25 output positions each
    assert count.by_operator == {"convolution": conv, "addmm": 100 * 3}
    assert count.multiply_adds == conv + 300
    assert count.fc_multiply_adds == 300
    assert count.shortcut_additions == 4 * 25  # one addition per output element of the block


def test_count_forward_scales_with_batch_and_ignores_biases():
    with_bias = count_forward(nn.Conv2d(3, 5, 3), (2, 3, 6, 6))
    without = count_forward(nn.Conv2d(3, 5, 3, bias=False), (2, 3, 6, 6))
    assert with_bias.multiply_adds == without.multiply_adds == 2 * 3 * 5 * 9 * 16


def test_count_forward_same_on_meta_and_cpu_and_restores_mode():
    net = tiny_net().train()
    on_cpu = count_forward(net, (1, 2, 5, 5), (Block,))
    assert net.training
    assert count_forward(on_meta(tiny_net), (1, 2, 5, 5), (Block,)) == on_cpu


def test_count_forward_no_shortcut_no_additions():
    assert count_forward(tiny_net(shortcut=False), (1, 2, 5, 5), (Block,)).shortcut_additions == 0


def test_on_meta_builds_without_storage():
    net = on_meta(lambda: nn.Linear(10_000, 10_000))
    assert net.weight.device.type == "meta"
    assert parameter_count(net) == 10_000 * 10_000 + 10_000


def test_weighted_layers_skips_shortcut_modules():
    assert weighted_layers(tiny_net()) == 3
    assert weighted_layers(tiny_net(), (Projection,)) == 2


@pytest.mark.parametrize(("printed", "expected"), [("0.27", 2), ("1.7", 1), ("18", 0), ("11689512", 0), ("19.60", 2)])
def test_decimals(printed, expected):
    assert decimals(printed) == expected


def test_decimals_rejects_a_malformed_number():
    with pytest.raises(InvalidOperation):
        decimals("3.6 billion")


@pytest.mark.parametrize(
    ("value", "printed", "match"),
    [
        (0.269722, "0.27", True),
        (0.265, "0.27", True),  # half-up, not half-even
        (0.2649999, "0.27", False),
        (1.727962, "1.7", True),
        (3.663761408, "3.6", False),  # rounds to 3.7
        (3.644493824, "3.6", True),
        (18.56, "18", False),
        (11689512.0, "11689512", True),
        (11689513, "11689512", False),
    ],
)
def test_rounds_to(value, printed, match):
    assert rounds_to(value, printed) is match


def test_round_as_printed_keeps_the_printed_precision():
    assert round_as_printed(3.663761408, "3.6") == Decimal("3.7")
    assert str(round_as_printed(0.2, "0.27")) == "0.20"


def test_float_repr_avoids_binary_rounding_surprises():
    # 2.675 is stored as 2.67499999...; repr gives "2.675", which rounds half-up to 2.68
    assert round_as_printed(2.675, "2.68") == Decimal("2.68")


def test_flops_to_multiply_adds():
    from resclaims.models.counting import _halve

    assert _halve(8) == 4
    with pytest.raises(ValueError, match="odd FLOP count"):
        _halve(3)
