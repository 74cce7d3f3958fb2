"""The architecture-facts family (A1-A5): which models are counted, the papers' numbers, the table.

:func:`count_models` is this family's kernel: model names in, a tidy frame out,
one row per model with its parameters, multiply-adds (FlopCounterMode FLOPs / 2,
split into convs and fc layers), weighted layers and shortcut additions, all
counted in the run. :data:`REFERENCES` holds the numbers the sources print, as
printed: the string fixes the precision a computed count is rounded to (half-up)
before it is compared (:func:`resclaims.models.counting.rounds_to`). That rule was
fixed before any count was computed. :func:`render_table` writes the counts next
to the papers' numbers as Markdown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pandas as pd
import torch.nn as nn

from resclaims.models import cifar, imagenet
from resclaims.models.counting import (
    count_forward,
    on_meta,
    parameter_count,
    round_as_printed,
    rounds_to,
    weighted_layers,
)

IMAGENET_INPUT = (1, 3, 224, 224)  # He et al. and Simonyan & Zisserman count FLOPs on one 224x224 crop
CIFAR_INPUT = (1, 3, 32, 32)
CIFAR_DEPTHS = (20, 32, 44, 56, 110, 1202)  # He et al. Table 6


@dataclass(frozen=True)
class Entry:
    factory: Callable[[], nn.Module]
    input_shape: tuple[int, ...]
    label: str  # how the report names it


MODELS: dict[str, Entry] = {
    **{
        f"resnet{d}": Entry(lambda d=d: imagenet.resnet(d), IMAGENET_INPUT, f"ResNet-{d} (option B{', v1' if d >= 50 else ''})")
        for d in imagenet.DEPTHS
    },
    **{
        f"resnet{d}-v1.5": Entry(lambda d=d: imagenet.resnet(d, stride_in_1x1=False), IMAGENET_INPUT, f"ResNet-{d} (option B, v1.5)")
        for d in (50, 101, 152)
    },
    "resnet34-A": Entry(lambda: imagenet.resnet(34, shortcut="A"), IMAGENET_INPUT, "ResNet-34 (option A)"),
    "plain34": Entry(imagenet.plain34, IMAGENET_INPUT, "plain-34"),
    "vgg19": Entry(imagenet.vgg19, IMAGENET_INPUT, "VGG-19"),
    **{f"cifar-resnet{d}": Entry(lambda d=d: cifar.resnet(d), CIFAR_INPUT, f"CIFAR ResNet-{d}") for d in CIFAR_DEPTHS},
    **{f"cifar-plain{d}": Entry(lambda d=d: cifar.plain(d), CIFAR_INPUT, f"CIFAR plain-{d}") for d in CIFAR_DEPTHS},
}

BLOCK_TYPES = (cifar.BasicBlock, imagenet.BasicBlock, imagenet.Bottleneck)


def count_models(names: Iterable[str] = MODELS) -> pd.DataFrame:
    """Count every model in ``names`` (built on the meta device); one row per model, indexed by name."""
    rows = []
    for name in names:
        entry = MODELS[name]
        model = on_meta(entry.factory)
        forward = count_forward(model, entry.input_shape, BLOCK_TYPES)
        rows.append(
            {
                "model": name,
                "label": entry.label,
                "input": "x".join(map(str, entry.input_shape[2:])),
                "parameters": parameter_count(model),
                "multiply_adds": forward.multiply_adds,
                "conv_multiply_adds": forward.by_operator.get("convolution", 0),
                "fc_multiply_adds": forward.fc_multiply_adds,
                "weighted_layers": weighted_layers(model, (imagenet.Projection,)),
                "shortcut_additions": forward.shortcut_additions,
            }
        )
    return pd.DataFrame(rows).set_index("model")


@dataclass(frozen=True)
class Reference:
    """A number a source prints about a model, and the claim it belongs to."""

    id: str  # claim id, e.g. "A3.resnet20"
    model: str  # key in MODELS
    quantity: str  # column of the counts frame
    printed: str  # the number exactly as printed; its decimals set the rounding
    scale: float  # the printed unit: 1e6 for "M", 1e9 for "billion", 1 for a plain count
    unit: str  # the unit in words, for the report
    source: str  # who prints it
    claim: str  # the sentence, quoted or paraphrased

    def scaled(self, frame: pd.DataFrame) -> float:
        """The computed count in the printed unit."""
        return int(frame.loc[self.model, self.quantity]) / self.scale

    def matches(self, frame: pd.DataFrame) -> bool:
        return rounds_to(self.scaled(frame), self.printed)


HE = "He2015"
_CIFAR_PARAMS = {20: "0.27", 32: "0.46", 44: "0.66", 56: "0.85", 110: "1.7", 1202: "19.4"}  # Table 6
_IMAGENET_FLOPS = {18: "1.8", 34: "3.6", 50: "3.8", 101: "7.6", 152: "11.3"}  # Table 1, x10^9
_IMAGENET_PARAMS = {18: "11689512", 34: "21797672", 50: "25557032", 101: "44549160", 152: "60192808"}  # torchvision

REFERENCES: tuple[Reference, ...] = (
    *(
        Reference(f"A3.resnet{d}", f"cifar-resnet{d}", "parameters", p, 1e6, "million parameters", "001/He2015",
                  f"CIFAR-10 ResNet-{d} has {p}M parameters (He et al. Table 6)")
        for d, p in _CIFAR_PARAMS.items()
    ),
    Reference("A4.flops.resnet18", "resnet18", "multiply_adds", _IMAGENET_FLOPS[18], 1e9, "billion multiply-adds", HE,
              "ResNet-18 has 1.8 billion FLOPs (multiply-adds) at 224x224 (Table 1)"),
    Reference("A4.flops.resnet34-A", "resnet34-A", "multiply_adds", _IMAGENET_FLOPS[34], 1e9, "billion multiply-adds", HE,
              "ResNet-34 has 3.6 billion FLOPs (Table 1); option A, the shortcuts of the paper's Table 2 ResNet-34"),
    Reference("A4.flops.resnet34-B", "resnet34", "multiply_adds", _IMAGENET_FLOPS[34], 1e9, "billion multiply-adds", HE,
              "ResNet-34 has 3.6 billion FLOPs (Table 1); option B projections, as in the cited 21,797,672-parameter net"),
    *(
        Reference(f"A4.flops.resnet{d}", f"resnet{d}", "multiply_adds", _IMAGENET_FLOPS[d], 1e9, "billion multiply-adds", HE,
                  f"ResNet-{d} has {_IMAGENET_FLOPS[d]} billion FLOPs (Table 1); option B, stride in the first 1x1 (v1)")
        for d in (50, 101, 152)
    ),
    Reference("A4.flops.plain34", "plain34", "multiply_adds", "3.6", 1e9, "billion multiply-adds", "003/He2015",
              "Our 34-layer baseline has 3.6 billion FLOPs (multiply-adds)"),
    Reference("A4.flops.vgg19", "vgg19", "multiply_adds", "19.6", 1e9, "billion multiply-adds", "003/He2015",
              "VGG-19 (19.6 billion FLOPs)"),
    *(
        Reference(f"A4.params.resnet{d}", f"resnet{d}", "parameters", p, 1, "parameters", "commonly cited (torchvision)",
                  f"ResNet-{d} has {int(p):,} parameters")
        for d, p in _IMAGENET_PARAMS.items()
    ),
    Reference("A5.resnet34", "resnet34", "weighted_layers", "34", 1, "weighted layers", "004/He2015",
              "ResNet-34 has 34 weighted layers: 1 + 2x16 + 1, two convs skipped per block"),
    Reference("A5.resnet152", "resnet152", "weighted_layers", "152", 1, "weighted layers", "003",
              "The winning ResNet consisted of a whopping 152 layers"),
    Reference("A5.resnet110", "cifar-resnet110", "weighted_layers", "110", 1, "weighted layers", "001",
              "110-layer convolutional networks (CIFAR ResNet-110)"),
    Reference("A5.vgg19", "vgg19", "weighted_layers", "19", 1, "weighted layers", "003",
              "the VGG-19 architecture, had 19 layers"),
)


def _exact(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:.4g}"


def render_table(frame: pd.DataFrame, references: Iterable[Reference] = REFERENCES) -> str:
    """Markdown: every reference's computed count next to the printed number, then all counts."""
    lines = [
        "# Architecture facts: computed counts against the papers",
        "",
        "Multiply-adds are `torch.utils.flop_counter.FlopCounterMode` FLOPs / 2 (convs and fc layers;",
        "biases, BN, ReLU, pooling and shortcut additions not counted), on one 224x224 (ImageNet) or",
        "32x32 (CIFAR) input. A count matches when, rounded half-up at the printed precision, it equals the printed number.",
        "",
        "| claim | model | quantity | computed | computed at printed precision | printed | source | match |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for ref in references:
        computed = int(frame.loc[ref.model, ref.quantity])
        rounded = round_as_printed(ref.scaled(frame), ref.printed)
        lines.append(
            f"| {ref.id} | {frame.loc[ref.model, 'label']} | {ref.unit} | {computed:,} | {rounded} | {ref.printed} | "
            f"{ref.source} | {'yes' if ref.matches(frame) else '**no**'} |"
        )
    lines += [
        "",
        "## All counts",
        "",
        "| model | input | parameters | multiply-adds | of which convs | of which fc | weighted layers | shortcut additions |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for _, row in frame.iterrows():
        lines.append(
            f"| {row['label']} | {row['input']} | {_exact(row['parameters'])} | {_exact(row['multiply_adds'])} | "
            f"{_exact(row['conv_multiply_adds'])} | {_exact(row['fc_multiply_adds'])} | {row['weighted_layers']} | "
            f"{_exact(row['shortcut_additions'])} |"
        )
    return "\n".join(lines) + "\n"
