"""D2L's Residual block behaves as source 004 prints it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from resclaims.models.counting import parameter_count
from resclaims.models.d2l import Residual


def reference_forward(block: Residual, x: torch.Tensor) -> torch.Tensor:
    """The block's computation written out: relu(bn2(conv2(relu(bn1(conv1 x)))) + shortcut(x))."""
    y = F.relu(block.bn1(block.conv1(x)))
    y = block.bn2(block.conv2(y))
    return F.relu(y + (block.conv3(x) if block.conv3 is not None else x))


@pytest.mark.parametrize(("c_in", "c_out", "use_1x1conv", "strides"), [(3, 3, False, 1), (3, 6, True, 2), (4, 4, True, 1)])
def test_forward_matches_the_written_out_block(c_in, c_out, use_1x1conv, strides):
    torch.manual_seed(0)
    block = Residual(c_in, c_out, use_1x1conv, strides)
    x = torch.randn(2, c_in, 6, 6)
    x_before = x.clone()
    torch.testing.assert_close(block(x), reference_forward(block, x))
    assert torch.equal(x, x_before)  # the in-place `Y += X` must not touch the input


def test_d2l_shapes_from_the_book():
    # D2L 8.6: Residual(3, 3) keeps (4, 3, 6, 6); Residual(3, 6, use_1x1conv=True, strides=2) gives (4, 6, 3, 3)
    x = torch.rand(4, 3, 6, 6)
    assert Residual(3, 3)(x).shape == (4, 3, 6, 6)
    assert Residual(3, 6, use_1x1conv=True, strides=2)(x).shape == (4, 6, 3, 3)


def test_shape_mismatch_without_1x1_conv_raises():
    with pytest.raises(RuntimeError):
        Residual(3, 6, strides=2)(torch.rand(1, 3, 6, 6))


def test_parameter_formula():
    for c_in, c in ((1, 1), (3, 6), (16, 32)):
        base = 9 * c_in * c + 9 * c * c + 6 * c
        assert parameter_count(Residual(c_in, c)) == base
        assert parameter_count(Residual(c_in, c, use_1x1conv=True)) == base + c_in * c + c
