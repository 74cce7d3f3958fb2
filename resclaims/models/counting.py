"""Counting what a network costs: parameters, multiply-adds, weighted layers.

Parameters come from the module itself. Multiply-adds come from
``torch.utils.flop_counter.FlopCounterMode``, a maintained counter that records
every matmul and convolution the forward pass dispatches. It reports FLOPs as
2 x multiply-accumulates (one multiply and one add each) and does not count conv
or fc biases, normalisation, activations, pooling or the element-wise addition of
a shortcut. He et al. quote "FLOPs (multiply-adds)", so :func:`count_forward`
returns the counter's FLOPs / 2, and counts the shortcut additions the counter
leaves out, to show they are negligible.

Counting runs on the ``meta`` device by default: shapes propagate, no arithmetic
happens, so ResNet-152 or VGG-19 at 224x224 counts in well under a second.

:func:`rounds_to` is the decision rule for a paper's number: the computed value,
rounded half-up at the precision the paper printed, must equal the printed value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode


def parameter_count(module: nn.Module) -> int:
    """Number of trainable parameters (every parameter of these models is trainable)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def on_meta(factory: Callable[[], nn.Module]) -> nn.Module:
    """Build ``factory()`` on the meta device: shapes only, no memory, no init arithmetic."""
    with torch.device("meta"):
        return factory()


@dataclass(frozen=True)
class ForwardCount:
    """What one forward pass costs."""

    multiply_adds: int  # FlopCounterMode's FLOPs / 2, over every operator it counts
    by_operator: dict[str, int]  # multiply-adds per aten operator: "convolution", "addmm" (fc layers), ...
    shortcut_additions: int  # element-wise additions of shortcuts, which FlopCounterMode does not count

    @property
    def fc_multiply_adds(self) -> int:
        return self.by_operator.get("addmm", 0) + self.by_operator.get("mm", 0)


def count_forward(model: nn.Module, input_shape: Sequence[int], block_types: tuple[type, ...] = ()) -> ForwardCount:
    """Count one eval-mode forward pass of ``model`` on zeros of ``input_shape``.

    Multiply-adds are FlopCounterMode's FLOPs / 2 (it counts 2 FLOPs per multiply-add).
    Shortcut additions are the output sizes of the modules of ``block_types`` whose
    ``shortcut`` attribute is not None. The input is made on the model's device, so a
    model built with :func:`on_meta` is counted without compute.
    """
    additions = 0

    def count_additions(_module: nn.Module, _inputs, output: torch.Tensor) -> None:
        nonlocal additions
        additions += output.numel()

    hooks = [
        m.register_forward_hook(count_additions)
        for m in model.modules()
        if isinstance(m, block_types) and getattr(m, "shortcut", None) is not None
    ]
    x = torch.zeros(*input_shape, device=next(model.parameters()).device)
    counter = FlopCounterMode(display=False)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), counter:
            model(x)
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    by_operator = {str(op).removeprefix("aten."): _halve(flops) for op, flops in counter.get_flop_counts()["Global"].items()}
    return ForwardCount(_halve(counter.get_total_flops()), by_operator, additions)


def _halve(flops: int) -> int:
    """FLOPs -> multiply-adds; FlopCounterMode's matmul and conv formulas are always 2 x MACs."""
    if flops % 2:
        raise ValueError(f"odd FLOP count {flops}: not 2 x multiply-adds, so this counter's convention changed")
    return flops // 2


def weighted_layers(model: nn.Module, shortcut_types: tuple[type, ...] = ()) -> int:
    """Convs and fc layers on the main path: He et al.'s layer count ("34 layers").

    Layers inside a module of ``shortcut_types`` (projection shortcuts) are not counted,
    as the paper does not count them.
    """
    skipped = {id(inner) for outer in model.modules() if isinstance(outer, shortcut_types) for inner in outer.modules()}
    return sum(isinstance(m, (nn.Conv2d, nn.Linear)) and id(m) not in skipped for m in model.modules())


def decimals(printed: str) -> int:
    """Digits after the decimal point in a number as printed: "0.27" -> 2, "1.7" -> 1, "18" -> 0."""
    Decimal(printed)  # raises InvalidOperation for a malformed number
    return len(printed.partition(".")[2])


def round_as_printed(value: float, printed: str) -> Decimal:
    """``value`` rounded half-up to as many decimals as ``printed`` shows."""
    return Decimal(repr(value)).quantize(Decimal(1).scaleb(-decimals(printed)), rounding=ROUND_HALF_UP)


def rounds_to(value: float, printed: str) -> bool:
    """True iff ``value`` rounded half-up at ``printed``'s precision is ``printed``."""
    return round_as_printed(value, printed) == Decimal(printed)
