"""The architecture-facts family's helpers (A1-A5): what a claim's details and notes say about the counts.

The counts themselves come from :func:`resclaims.kernels.architecture.count_models`; the
claims are declared in ``benchmarks/test_architecture_facts.py``. Everything here
reads a counts frame (or builds a tiny block) and returns numbers, details for the
report, or a note's sentence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd
import torch
import torch.nn as nn

from resclaims.kernels.architecture import Reference
from resclaims.models.counting import decimals, parameter_count, round_as_printed
from resclaims.models.d2l import Residual

VARIANTS = {  # the same net counted another way, reported beside the claim's count
    "resnet34": ("resnet34-A", "plain34"),
    "resnet34-A": ("resnet34", "plain34"),
    "resnet50": ("resnet50-v1.5",),
    "resnet101": ("resnet101-v1.5",),
    "resnet152": ("resnet152-v1.5",),
}


# -- A1: twins ---------------------------------------------------------------------------------


def twins(pairs: Mapping[str, tuple[int, int]]) -> tuple[int, dict]:
    """The largest |residual - plain| parameter difference over ``pairs`` (name: (residual, plain)), and the details."""
    worst = max(abs(int(r) - int(p)) for r, p in pairs.values())
    return worst, {"pairs": {k: {"residual": int(r), "plain": int(p)} for k, (r, p) in pairs.items()}}


def d2l_plain_twin(c: int) -> nn.Module:
    """D2L's block without the shortcut: the same layers, built independently."""
    return nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(),
                         nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU())


# -- A2: the 1x1 projection block on one input ----------------------------------------------------


def projection_example(c_in: int, c_out: int, stride: int, x: torch.Tensor) -> dict:
    """D2L's ``Residual`` with and without the 1x1 conv on ``x``: do the shapes and the added parameters hold?

    With the 1x1 conv the output is (B, c_out, ceil(H/s), ceil(W/s)) and the conv adds
    c_in x c_out + c_out parameters; without it the block runs exactly when x and F(x)
    agree in shape. Eval mode: BN in training mode rejects a single value per channel.
    """
    batch, _, h, w = x.shape
    projection, identity = Residual(c_in, c_out, True, stride).eval(), Residual(c_in, c_out, False, stride).eval()
    expected = (batch, c_out, math.ceil(h / stride), math.ceil(w / stride))
    with torch.no_grad():
        shape = tuple(projection(x).shape)
        try:
            identity_shape = tuple(identity(x).shape)
        except RuntimeError:  # x and F(x) differ in shape: the "Problem" the 1x1 conv solves
            identity_shape = None
    shapes_agree = expected == tuple(x.shape)
    return {"shape_ok": shape == expected, "identity_ran": identity_shape is not None,
            "identity_ok": (identity_shape == expected) if shapes_agree else identity_shape is None,
            "added": parameter_count(projection) - parameter_count(identity), "expected_added": c_in * c_out + c_out}


# -- A3-A5: a count against the printed number ------------------------------------------------------


def projection_examples(seed: int, examples: int) -> list[dict]:
    """:func:`projection_example` on every hypothesis example, seeded: c_in, c_out in 1..12, stride 1..3, H, W in
    1..10, batch 1..3 (one dict of checks each)."""
    from hypothesis import given, settings
    from hypothesis import seed as hypothesis_seed
    from hypothesis import strategies as st

    from resclaims.run.seeding import torch_generator

    checked: list[dict] = []
    generator = torch_generator(seed, "inputs")

    @settings(max_examples=examples, deadline=None, database=None)
    @hypothesis_seed(seed)
    @given(c_in=st.integers(1, 12), c_out=st.integers(1, 12), stride=st.integers(1, 3), h=st.integers(1, 10),
           w=st.integers(1, 10), batch=st.integers(1, 3))
    def check(c_in, c_out, stride, h, w, batch):
        checked.append(projection_example(c_in, c_out, stride, torch.randn(batch, c_in, h, w, generator=generator)))

    check()
    if not checked:
        raise RuntimeError("hypothesis ran no examples")
    return checked


def reference_details(ref: Reference, counts: pd.DataFrame) -> dict:
    """A reference claim's details: the exact count, the printed number, the rounding, and the variants' counts."""
    row = counts.loc[ref.model]
    details = {
        "computed": int(row[ref.quantity]), "printed": ref.printed,
        "rounded_as_printed": str(round_as_printed(ref.scaled(counts), ref.printed)),
        "rule": f"round half-up to {decimals(ref.printed)} decimal(s) of {ref.unit}", "model": row["label"],
        "input": row["input"],
    }  # fmt: skip
    if ref.quantity == "multiply_adds":
        details.update(conv_multiply_adds=int(row["conv_multiply_adds"]), fc_multiply_adds=int(row["fc_multiply_adds"]))
    for variant in VARIANTS.get(ref.model, ()):
        details[f"{variant}_{ref.quantity}"] = int(counts.loc[variant, ref.quantity])
    return details


def miss_note(ref: Reference, counts: pd.DataFrame) -> str:
    """The report's note for a count that does not round to the printed number: the count, the variants, why."""
    count = lambda model: int(counts.loc[model, ref.quantity])  # noqa: E731
    computed, scaled = count(ref.model), ref.scaled(counts)
    variants = "; ".join(f"{counts.loc[v, 'label']}: {count(v):,} = {count(v) / ref.scale:.4g}"
                         for v in VARIANTS.get(ref.model, ()))
    sentence = (f"Computed {computed:,} {ref.quantity.replace('_', '-')} = {scaled:.4g} {ref.unit}, which rounds to "
                f"{round_as_printed(scaled, ref.printed)}, not the printed {ref.printed}.")
    return " ".join(part for part in (sentence, variants and f"{variants}.", why(ref.id, counts)) if part)


def why(claim_id: str, counts: pd.DataFrame) -> str:
    """Why a count misses the printed number, from this run's counts."""
    macs = lambda model: int(counts.loc[model, "multiply_adds"])  # noqa: E731
    if claim_id == "A4.flops.resnet34-B":
        extra = macs("resnet34") - macs("resnet34-A")
        return (f"Option B's three 1x1 projections add {extra:,} multiply-adds that option A and plain-34 do not have; "
                f"without them the count is {macs('resnet34-A') / 1e9:.3f} billion, which rounds to the printed 3.6.")
    if claim_id == "A4.flops.resnet50":
        r101 = macs("resnet101") / 1e9
        return (f"Of the conventions counted here none gives 3.8 at half-up rounding: the fc layer is "
                f"{int(counts.loc['resnet50', 'fc_multiply_adds']):,} multiply-adds, torchvision's v1.5 stride placement "
                f"gives {macs('resnet50-v1.5') / 1e9:.3f} billion. Truncating instead of rounding would give 3.8 here, but "
                f"would turn ResNet-101's {r101:.3f} into {math.floor(r101 * 10) / 10} against the printed 7.6.")
    return ""
