"""A: architecture facts as exact tests (claims A1-A5; sources 001, 003, 004 and He et al. 2015).

Sources:
- A1, 004: "Identity Mapping does not have any parameters, so its contribution to
  model complexity is zero." Tested: a residual net and its plain twin have equal
  parameter counts (He's CIFAR nets at every depth of Table 6, ImageNet ResNet-34
  with option A against plain-34, D2L's block without the 1x1 conv, source 003's net).
- A2, 004: when x and F(x) differ in shape, "Use 1 x 1 convolution with a new stride
  or new channel respectively" (D2L's ``Residual``). Tested as hypothesis properties
  over channels, strides and input sizes: the projection block's output shape, its
  added parameters (in x out + out, a 1x1 conv with bias), and that without the 1x1
  conv the block runs exactly when the shapes agree.
- A3, 001: "110 layers and 1.7 million parameters"; He et al. Table 6: 0.27M, 0.46M,
  0.66M, 0.85M, 1.7M, 19.4M parameters at depths 20, 32, 44, 56, 110, 1202.
- A4, He et al. (quoted by 003's figure): "Our 34-layer baseline has 3.6 billion FLOPs
  (multiply-adds), which is only 18% of VGG-19 (19.6 billion FLOPs)"; Table 1: 1.8,
  3.6, 3.8, 7.6 and 11.3 billion at 18, 34, 50, 101, 152 layers; identity shortcuts
  add "neither extra parameter nor computation complexity". Commonly cited parameter
  counts: 11,689,512; 21,797,672; 25,557,032; 44,549,160; 60,192,808.
- A5, 004: "the author skipped 2 convolutional layers in each residual block for
  ResNet-34" (34 = 1 + 2x16 + 1); 003: "a whopping 152 layers", "VGG-19 ... had 19
  layers"; 001: "110 layers".

Protocol: every model is built in the run (on the meta device: shapes, no arithmetic)
and counted: parameters from the module, multiply-adds from
``torch.utils.flop_counter.FlopCounterMode`` (its FLOPs / 2: it counts a multiply-add
as 2 FLOPs) on one 224x224 (ImageNet) or 32x32 (CIFAR) input, weighted layers as the
convs and fc layers outside projection shortcuts. ImageNet ResNets use option B
projections and, for 50/101/152, the paper's stride placement (v1: stride in the first
1x1; torchvision's v1.5 count is reported beside it). ResNet-34's FLOPs are checked
with option A (the shortcuts of the paper's plain-vs-residual comparison, Table 2) and
option B (the net the cited parameter count describes).

Statistic: the count. Test: exact, no sampling: the count, in the printed unit and
rounded half-up at the printed precision ("0.27" -> 2 decimals, "1.7" -> 1, "18%" -> 0),
must equal the printed number; counts printed in full must match exactly. This rule was
fixed before any count was computed. No alpha or p applies; the interval is (x, x) and n
is the number of models (or hypothesis examples) checked. Quick and full tiers are the
same: counting takes seconds.

History and the counts that do not round right: docs/HISTORY.md.
"""

from __future__ import annotations


import pytest

from resclaims.decide import procedures
from resclaims.decide.claims import Claim
from resclaims.families.architecture import d2l_plain_twin, miss_note, projection_examples, reference_details, twins
from resclaims.kernels.architecture import CIFAR_DEPTHS, MODELS, REFERENCES, count_models, render_table
from resclaims.models.counting import on_meta, parameter_count, round_as_printed, rounds_to
from resclaims.models.d2l import Residual
from resclaims.run.tiers import Tier

pytestmark = [pytest.mark.quick, pytest.mark.full]  # counting takes seconds: the tiers are the same

EXACT = "exact count vs paper at paper rounding"
PROTOCOLS = {  # how each quantity is counted, for the result's protocol; the same in both tiers
    "parameters": "Parameters of the module, built in the run (meta device). Quick and full tiers are identical.",
    "multiply_adds": "FlopCounterMode FLOPs / 2 for one forward pass on one 1x3x{input} input, model built in the run "
    "(meta device): convs and fc; biases, BN, ReLU, pooling and shortcut additions are not counted. Quick and full "
    "tiers are identical.",
    "weighted_layers": "Convs and fc layers outside projection shortcuts, model built in the run (meta device). Quick "
    "and full tiers are identical.",
}


# exact facts, counted on the meta device: the sources' own models at every tier
TIERS = Tier.everywhere(seeds=1, fidelity="source protocol", protocol="the sources' models, counted (see each claim)")

# -- the claims -----------------------------------------------------------------------------------

TWINS = dict(source="004", statistic="max |residual - plain| parameters",
             quote="Identity Mapping does not have any parameters, so its contribution to model complexity is zero.",
             procedure=procedures.exact("exact equality of parameter counts (difference must be 0)"))
A1_CIFAR = Claim("A1.cifar", claim="He's CIFAR ResNet (option A shortcuts) has as many parameters as its plain twin, "
                 "depths 20-1202", **TWINS)
A1_IMAGENET34 = Claim("A1.imagenet34", claim="ImageNet ResNet-34 with option A (identity/zero-padding) shortcuts has as "
                      "many parameters as plain-34", **TWINS)
A1_D2L = Claim("A1.d2l", claim="D2L's Residual(c, c) without the 1x1 conv has as many parameters as "
               "conv-BN-ReLU-conv-BN-ReLU", **TWINS)
A1_SEED003 = Claim("A1.seed003", claim="Source 003's 10-block residual net has as many parameters as its plain version",
                   **TWINS)

PROJECTION = dict(source="004", quote="Use 1 x 1 convolution with a new stride or new channel respectively",
                  procedure=procedures.exact("property holds on every hypothesis example (count of failures must be 0)"))
A2_SHAPE = Claim("A2.shape", claim="With use_1x1conv the block outputs (B, out, ceil(H/s), ceil(W/s)); without it, it "
                 "runs iff x and F(x) agree in shape", statistic="examples violating the shape properties", **PROJECTION)
A2_PARAMS = Claim("A2.params", claim="The 1x1 projection (with bias, as in D2L) adds in x out + out parameters",
                  statistic="examples where added parameters != in x out + out", **PROJECTION)

QUOTES = {  # the sources' own words, where a row has a sentence (Table 1 and Table 6 rows are numbers)
    "A3.resnet110": "110 layers and 1.7 million parameters",
    "A4.flops.plain34": "Our 34-layer baseline has 3.6 billion FLOPs (multiply-adds)",
    "A4.flops.vgg19": "VGG-19 (19.6 billion FLOPs)",
    "A5.resnet34": "the author skipped 2 convolutional layers in each residual block for ResNet-34",
    "A5.resnet152": "a whopping 152 layers",
    "A5.resnet110": "110 layers",
    "A5.vgg19": "VGG-19 ... had 19 layers",
}
REFERENCE_CLAIMS = {  # A3, A4.flops, A4.params, A5: one claim per printed number (resclaims.kernels.architecture.REFERENCES)
    ref.id: Claim(ref.id, source=ref.source, claim=ref.claim, statistic=f"{ref.unit} (printed {ref.printed})",
                  unit=ref.unit, quote=QUOTES.get(ref.id, ""),
                  procedure=procedures.exact(f"{EXACT}: half-up at the printed precision must give {ref.printed}"))
    for ref in REFERENCES
}  # fmt: skip

PLAIN34_EQUAL = Claim(
    "A4.plain34-equal", source="He2015", claim="Plain-34 and ResNet-34 (option A identity shortcuts) cost the same "
    "multiply-adds", quote="neither extra parameter nor computation complexity (except the negligible element-wise "
    "addition)", statistic="ResNet-34 (option A) - plain-34 multiply-adds at 224x224",
    procedure=procedures.exact("exact equality of FlopCounterMode multiply-adds (difference must be 0)"))
SHARE_OF_VGG19 = Claim(
    "A4.share-of-vgg19", source="He2015", claim="Our 34-layer baseline has 3.6 billion FLOPs (multiply-adds), which is "
    "only 18% of VGG-19", quote="Our 34-layer baseline has 3.6 billion FLOPs (multiply-adds), which is only 18% of "
    "VGG-19 (19.6 billion FLOPs)", statistic="plain-34 / VGG-19 multiply-adds, %", unit="%",
    procedure=procedures.exact(f"{EXACT}: half-up to a whole percent must give 18"))


@pytest.fixture(scope="module")
def counts(report):
    """Every model of the family counted once per session; the table goes to architecture.md."""
    frame = count_models(MODELS)
    path = report.directory / "architecture.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_table(frame), encoding="utf-8")
    report.note("A", f"Counts next to the papers' numbers, all computed in this run: {path.name} in the report folder.")
    return frame


# -- A1: a residual net and its plain twin have equal parameter counts ---------------------------


def judge_twins(judge, claim: Claim, pairs: dict[str, tuple[int, int]], protocol: str, **extra) -> None:
    """Supported if every pair (name: (residual, plain)) has equal parameter counts; the estimate is the worst gap."""
    worst, details = twins(pairs)
    judge.exact(claim, worst == 0, worst, n=len(pairs), protocol=protocol, details={**details, **extra})


def test_A1_cifar_twins(counts, judge):
    parameters = counts["parameters"]
    pairs = {f"{d}": (parameters[f"cifar-resnet{d}"], parameters[f"cifar-plain{d}"]) for d in CIFAR_DEPTHS}
    judge_twins(judge, A1_CIFAR, pairs, PROTOCOLS["parameters"])


def test_A1_imagenet34_twins(counts, judge):
    resnet_a, plain34, resnet_b = (int(counts.loc[m, "parameters"]) for m in ("resnet34-A", "plain34", "resnet34"))
    judge_twins(judge, A1_IMAGENET34, {"34": (resnet_a, plain34)}, PROTOCOLS["parameters"],
                option_B_parameters=resnet_b, option_B_extra=resnet_b - plain34,
                note="option B's three 1x1 projections with BN carry parameters: they are not identity mappings")


D2L_CHANNELS = (1, 3, 16, 64, 256)


def test_A1_d2l_identity_block(judge):
    pairs = {f"c={c}": (parameter_count(Residual(c, c)), parameter_count(d2l_plain_twin(c))) for c in D2L_CHANNELS}
    judge_twins(judge, A1_D2L, pairs, f"resclaims.models.d2l.Residual as printed in 004, channels {D2L_CHANNELS}, "
                "against an independently built plain stack")


def test_A1_seed003_twins(judge):
    keras003 = pytest.importorskip("resclaims.models.keras003", reason="source 003's net comes with the CIFAR family")
    resnet, plain = (parameter_count(on_meta(lambda r=r: keras003.Keras003(blocks=10, residual=r))) for r in (True, False))
    judge_twins(judge, A1_SEED003, {"10 blocks": (resnet, plain)},
                "resclaims.models.keras003 at the source's width and 10 blocks")


# -- A2: the 1x1 projection block, as properties ---------------------------------------------------

A2_EXAMPLES = 40  # hypothesis examples: tiny tensors, about a second on CPU
A2_PROTOCOL = (f"hypothesis, up to {A2_EXAMPLES} examples seeded from the base seed: c_in, c_out in 1..12, stride "
               "1..3, H, W in 1..10, batch 1..3; D2L Residual as printed in 004, eval mode, on CPU tensors")


@pytest.fixture(scope="module")
def examples(settings) -> list[dict]:
    """The projection block's properties checked on every hypothesis example (one dict of checks each)."""
    return projection_examples(settings.run_seeds("A2", 1)[0], A2_EXAMPLES)


def test_A2_projection_shape(examples, judge):
    bad = sum(not (c["shape_ok"] and c["identity_ok"]) for c in examples)
    n, ran = len(examples), sum(c["identity_ran"] for c in examples)
    judge.exact(A2_SHAPE, bad == 0, bad, n=n, protocol=A2_PROTOCOL,
                details={"examples": n, "identity_block_ran": ran, "identity_block_raised": n - ran})


def test_A2_projection_parameters(examples, judge):
    bad, n = sum(c["added"] != c["expected_added"] for c in examples), len(examples)
    judge.exact(A2_PARAMS, bad == 0, bad, n=n, protocol=A2_PROTOCOL, details={"examples": n})


# -- A3, A4, A5: counts against the printed numbers ---------------------------------------------------


def references(prefix: str) -> list:
    return [pytest.param(ref, id=ref.id) for ref in REFERENCES if ref.id.startswith(prefix)]


def judge_reference(ref, counts, report, judge) -> None:
    """The count, in the printed unit and rounded half-up at the printed precision, must equal the printed number."""
    holds = ref.matches(counts)
    if not holds:
        report.note(ref.id, miss_note(ref, counts))
    judge.exact(REFERENCE_CLAIMS[ref.id], holds, ref.scaled(counts), details=reference_details(ref, counts),
                protocol=PROTOCOLS[ref.quantity].format(input=counts.loc[ref.model, "input"]))


@pytest.mark.parametrize("ref", references("A3."))
def test_A3_cifar_parameters(ref, counts, report, judge):
    judge_reference(ref, counts, report, judge)


@pytest.mark.parametrize("ref", references("A4.flops."))
def test_A4_imagenet_flops(ref, counts, report, judge):
    judge_reference(ref, counts, report, judge)


@pytest.mark.parametrize("ref", references("A4.params."))
def test_A4_imagenet_parameters(ref, counts, report, judge):
    judge_reference(ref, counts, report, judge)


def test_A4_plain34_equals_resnet34(counts, report, judge):
    """Identity shortcuts add "neither extra parameter nor computation complexity (except the negligible element-wise addition)"."""
    resnet_a, plain34, resnet_b = (int(counts.loc[m, "multiply_adds"]) for m in ("resnet34-A", "plain34", "resnet34"))
    additions = int(counts.loc["resnet34-A", "shortcut_additions"])
    report.note(PLAIN34_EQUAL.id, f"ResNet-34's shortcuts also do {additions:,} element-wise additions "
                f"({additions / resnet_a:.2%} of its multiply-adds), which FlopCounterMode does not count.")
    judge.exact(PLAIN34_EQUAL, resnet_a == plain34, resnet_a - plain34, protocol=PROTOCOLS["multiply_adds"].format(
        input="224x224"), details={"resnet34_A": resnet_a, "plain34": plain34, "resnet34_B": resnet_b,
                                   "option_B_extra": resnet_b - plain34, "shortcut_additions": additions})


def test_A4_baseline_share_of_vgg19(counts, report, judge):
    plain34, vgg19 = (int(counts.loc[m, "multiply_adds"]) for m in ("plain34", "vgg19"))
    share, rounded = 100 * plain34 / vgg19, round_as_printed(100 * plain34 / vgg19, "18")
    if not rounds_to(share, "18"):
        report.note(SHARE_OF_VGG19.id, f"plain-34 / VGG-19 = {plain34:,} / {vgg19:,} = {share:.2f}%, which rounds to "
                    f"{rounded}%; the paper's 18% is its rounded 3.6 / 19.6 = {100 * 3.6 / 19.6:.1f}%.")
    judge.exact(SHARE_OF_VGG19, rounds_to(share, "18"), share, protocol=PROTOCOLS["multiply_adds"].format(input="224x224"),
                details={"plain34": plain34, "vgg19": vgg19, "printed": "18", "rounded_as_printed": str(rounded)})


@pytest.mark.parametrize("ref", references("A5."))
def test_A5_weighted_layers(ref, counts, report, judge):
    judge_reference(ref, counts, report, judge)
