"""The architecture family's kernel, references and table."""

from __future__ import annotations

from decimal import Decimal

import pandas as pd
import pytest

from resclaims.kernels.architecture import MODELS, REFERENCES, Reference, count_models, render_table
from resclaims.models.counting import decimals


@pytest.fixture(scope="module")
def small_counts() -> pd.DataFrame:
    return count_models(["cifar-resnet20", "cifar-plain20"])


def test_count_models_frame(small_counts):
    assert list(small_counts.index) == ["cifar-resnet20", "cifar-plain20"]
    row = small_counts.loc["cifar-resnet20"]
    assert row["parameters"] == 269_722
    assert row["weighted_layers"] == 20
    assert row["multiply_adds"] == row["conv_multiply_adds"] + row["fc_multiply_adds"]
    assert row["fc_multiply_adds"] == 64 * 10
    # 9 blocks with a shortcut: 3 at 16x32x32, 3 at 32x16x16, 3 at 64x8x8
    assert row["shortcut_additions"] == 3 * (16 * 32 * 32 + 32 * 16 * 16 + 64 * 8 * 8)
    assert small_counts.loc["cifar-plain20", "shortcut_additions"] == 0


def test_references_are_well_formed():
    assert len({r.id for r in REFERENCES}) == len(REFERENCES)
    columns = {"parameters", "multiply_adds", "weighted_layers"}
    for ref in REFERENCES:
        assert ref.model in MODELS, ref.id
        assert ref.quantity in columns, ref.id
        assert decimals(ref.printed) >= 0 and Decimal(ref.printed) > 0, ref.id


def test_reference_match_uses_the_printed_precision(small_counts):
    ref = Reference("A3.x", "cifar-resnet20", "parameters", "0.27", 1e6, "million parameters", "He2015", "claim")
    assert ref.scaled(small_counts) == pytest.approx(0.269722)
    assert ref.matches(small_counts)
    finer = lambda printed: Reference("A3.y", "cifar-resnet20", "parameters", printed, 1e6, "", "", "")  # noqa: E731
    assert finer("0.2697").matches(small_counts)
    assert not finer("0.269").matches(small_counts)  # 0.269722 rounds to 0.270 at three decimals


def test_render_table(small_counts):
    refs = [
        Reference("A3.ok", "cifar-resnet20", "parameters", "0.27", 1e6, "million parameters", "He2015", "c"),
        Reference("A3.off", "cifar-plain20", "parameters", "0.26", 1e6, "million parameters", "He2015", "c"),
    ]
    table = render_table(small_counts, refs)
    assert "| A3.ok | CIFAR ResNet-20 | million parameters | 269,722 | 0.27 | 0.27 | He2015 | yes |" in table
    assert "| A3.off | CIFAR plain-20 | million parameters | 269,722 | 0.27 | 0.26 | He2015 | **no** |" in table
    assert "| CIFAR plain-20 | 32x32 | 269,722 | 40,551,040 |" in table
