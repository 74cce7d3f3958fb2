"""The tables in the model modules' docstrings are specs: each row is checked against a fresh count."""

from __future__ import annotations

import pytest

from resclaims.models import cifar, d2l, imagenet
from resclaims.models.counting import count_forward, on_meta, parameter_count, weighted_layers


def docstring_table(module) -> list[dict[str, str]]:
    """Rows of the first Markdown table in ``module.__doc__``, keyed by header."""
    lines = [line.strip() for line in module.__doc__.splitlines() if line.strip().startswith("|")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    header, rows = cells[0], cells[2:]
    return [dict(zip(header, row, strict=True)) for row in rows]


def number(text: str) -> int:
    return int(text.replace(",", ""))


IMAGENET_FACTORIES = {
    "ResNet-18": imagenet.resnet18,
    "ResNet-34": imagenet.resnet34,
    "ResNet-50": imagenet.resnet50,
    "ResNet-101": imagenet.resnet101,
    "ResNet-152": imagenet.resnet152,
    "plain-34": imagenet.plain34,
    "VGG-19": imagenet.vgg19,
}


@pytest.mark.parametrize("row", docstring_table(imagenet), ids=lambda r: r["name"])
def test_imagenet_table(row):
    model = on_meta(IMAGENET_FACTORIES[row["name"]])
    assert parameter_count(model) == number(row["parameters (option B)"])
    assert weighted_layers(model, (imagenet.Projection,)) == number(row["weighted layers"])
    assert count_forward(model, (1, 3, 224, 224)).multiply_adds == number(row["multiply-adds at 224x224 (v1)"])


@pytest.mark.parametrize("row", docstring_table(cifar), ids=lambda r: r["name"])
def test_cifar_table(row):
    depth = int(row["name"].split("-")[1])
    assert (depth - 2) // 6 == int(row["n"])
    assert parameter_count(on_meta(lambda: cifar.resnet(depth))) == number(row["parameters"])


def test_d2l_table():
    rows = {r["block"]: r["parameters"] for r in docstring_table(d2l)}
    assert parameter_count(d2l.Residual(3, 3)) == number(rows["``Residual(3, 3)``"])
    assert parameter_count(d2l.Residual(3, 6, True, strides=2)) == number(rows["``Residual(3, 6, True, strides=2)``"])
