"""A's own helpers (resclaims/families/architecture.py) on counts small enough to check by hand.

(Named apart from tests/kernels/test_architecture.py: tests/ has no __init__.py, so basenames must differ.)
"""

from __future__ import annotations

import pandas as pd
import torch

from resclaims.families import architecture as a
from resclaims.kernels.architecture import Reference
from resclaims.models.counting import parameter_count
from resclaims.models.d2l import Residual


def test_twins_is_the_largest_absolute_residual_minus_plain_difference():
    worst, details = a.twins({"a": (10, 7), "b": (5, 9), "c": (3, 3)})  # |10 - 7| = 3, |5 - 9| = 4, 0
    assert worst == 4
    assert details == {"pairs": {"a": {"residual": 10, "plain": 7}, "b": {"residual": 5, "plain": 9},
                                 "c": {"residual": 3, "plain": 3}}}


def test_d2l_plain_twin_has_the_blocks_parameters():
    # c = 2: each 3x3 conv 2 x 2 x 9 + 2 biases = 38, each BN 2 x 2 = 4: 2 x (38 + 4) = 84, as D2L's Residual(2, 2)
    assert parameter_count(a.d2l_plain_twin(2)) == 84 == parameter_count(Residual(2, 2))
    assert parameter_count(a.d2l_plain_twin(1)) == 24  # 2 x (9 + 1 + 2)


def test_projection_example_shapes_and_the_added_parameters():
    # 1 -> 2 channels, stride 2, on a 3x3 image: out (1, 2, ceil(3/2), ceil(3/2)) = (1, 2, 2, 2); the block without
    # the 1x1 conv cannot add x (1 channel, 3x3) to F(x) (2 channels, 2x2): it raises, as it should; the 1x1 conv
    # adds 1 x 2 weights + 2 biases = 4
    changed = a.projection_example(1, 2, 2, torch.ones(1, 1, 3, 3))
    assert changed == {"shape_ok": True, "identity_ran": False, "identity_ok": True, "added": 4, "expected_added": 4}
    # 2 -> 2 channels, stride 1: shapes agree, the block without it runs and keeps (1, 2, 3, 3); 2 x 2 + 2 = 6
    same = a.projection_example(2, 2, 1, torch.ones(1, 2, 3, 3))
    assert same == {"shape_ok": True, "identity_ran": True, "identity_ok": True, "added": 6, "expected_added": 6}


def counts() -> pd.DataFrame:
    rows = {
        "cifar-resnet20": dict(parameters=265_000, multiply_adds=40_000_000, label="ResNet-20", input="32x32"),
        "resnet34": dict(parameters=21_800_000, multiply_adds=3_670_000_000, label="ResNet-34 (B)", input="224x224",
                         conv_multiply_adds=3_669_488_000, fc_multiply_adds=512_000),
        "resnet34-A": dict(parameters=21_300_000, multiply_adds=3_600_000_000, label="ResNet-34 (A)", input="224x224"),
        "plain34": dict(parameters=21_300_000, multiply_adds=3_580_000_000, label="plain-34", input="224x224"),
        "resnet50": dict(parameters=25_500_000, multiply_adds=3_860_000_000, label="ResNet-50", input="224x224",
                         fc_multiply_adds=2_048_000),
        "resnet50-v1.5": dict(parameters=25_500_000, multiply_adds=4_089_000_000, label="ResNet-50 (v1.5)",
                              input="224x224"),
        "resnet101": dict(parameters=44_500_000, multiply_adds=7_570_000_000, label="ResNet-101", input="224x224"),
    }
    return pd.DataFrame.from_dict(rows, orient="index")


A3 = Reference("A3.resnet20", "cifar-resnet20", "parameters", "0.27", 1e6, "million parameters", "001/He2015",
               "CIFAR-10 ResNet-20 has 0.27M parameters")
A4_34B = Reference("A4.flops.resnet34-B", "resnet34", "multiply_adds", "3.6", 1e9, "billion multiply-adds", "He2015",
                   "ResNet-34 has 3.6 billion FLOPs")
A4_50 = Reference("A4.flops.resnet50", "resnet50", "multiply_adds", "3.8", 1e9, "billion multiply-adds", "He2015",
                  "ResNet-50 has 3.8 billion FLOPs")


def test_reference_details_rounds_half_up_and_lists_the_variants():
    # 265,000 / 1e6 = 0.265: half-up to 2 decimals is 0.27 (half-even would give 0.26)
    assert A3.matches(counts())
    assert a.reference_details(A3, counts()) == {
        "computed": 265_000, "printed": "0.27", "rounded_as_printed": "0.27",
        "rule": "round half-up to 2 decimal(s) of million parameters", "model": "ResNet-20", "input": "32x32"}
    details = a.reference_details(A4_34B, counts())  # 3.67 -> 3.7, and the two variants' counts beside it
    assert details["rounded_as_printed"] == "3.7" and details["conv_multiply_adds"] == 3_669_488_000
    assert details["fc_multiply_adds"] == 512_000
    assert details["resnet34-A_multiply_adds"] == 3_600_000_000 and details["plain34_multiply_adds"] == 3_580_000_000


def test_miss_note_and_why_for_resnet34_option_b():
    # 3.67 rounds to 3.7; option A is 3.6 and 70,000,000 multiply-adds smaller
    assert a.miss_note(A4_34B, counts()) == (
        "Computed 3,670,000,000 multiply-adds = 3.67 billion multiply-adds, which rounds to 3.7, not the printed 3.6. "
        "ResNet-34 (A): 3,600,000,000 = 3.6; plain-34: 3,580,000,000 = 3.58. Option B's three 1x1 projections add "
        "70,000,000 multiply-adds that option A and plain-34 do not have; without them the count is 3.600 billion, "
        "which rounds to the printed 3.6.")


def test_why_for_resnet50_and_for_a_claim_with_no_explanation():
    # ResNet-101 at 7.570 billion truncates to 7.5, not the printed 7.6
    assert a.why("A4.flops.resnet50", counts()) == (
        "Of the conventions counted here none gives 3.8 at half-up rounding: the fc layer is 2,048,000 "
        "multiply-adds, torchvision's v1.5 stride placement gives 4.089 billion. Truncating instead of rounding "
        "would give 3.8 here, but would turn ResNet-101's 7.570 into 7.5 against the printed 7.6.")
    assert a.miss_note(A4_50, counts()).startswith(
        "Computed 3,860,000,000 multiply-adds = 3.86 billion multiply-adds, which rounds to 3.9, not the printed 3.8. "
        "ResNet-50 (v1.5): 4,089,000,000 = 4.089. Of the conventions")
    assert a.why("A3.resnet20", counts()) == ""


def test_miss_note_of_a_model_without_variants_or_explanation_is_one_clean_sentence():
    # 0.265 M printed as "0.26" (a made-up miss): no variants, no explanation, so nothing follows the sentence
    miss = Reference("A3.resnet20", "cifar-resnet20", "parameters", "0.26", 1e6, "million parameters", "x", "y")
    assert a.miss_note(miss, counts()) == ("Computed 265,000 parameters = 0.265 million parameters, which rounds to "
                                           "0.27, not the printed 0.26.")
