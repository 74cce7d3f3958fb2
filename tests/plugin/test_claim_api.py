"""The plugin's duplicate-id check sees claims declared one by one and claims generated into a dict, list or tuple."""

import json
import re
from types import ModuleType

import pytest

from resclaims.decide import procedures
from resclaims.decide.claims import Claim, ClaimError
from resclaims.report.catalogue import declared_claims

HEADER = """
from resclaims.decide import procedures
from resclaims.decide.claims import Claim

def claim(claim_id):
    return Claim(claim_id, source="mine", claim="a count", statistic="n", procedure=procedures.exact())
"""


def exact(claim_id: str) -> Claim:
    return Claim(claim_id, source="mine", claim="a count", statistic="n", procedure=procedures.exact())


def test_declared_claims_looks_inside_dicts_lists_and_tuples_once_each():
    one, two, three, four = (exact(f"U{i}") for i in range(1, 5))
    module = ModuleType("m")
    module.__dict__.update(ONE=one, TABLE={"U2": two, "other": 5}, ROWS=[three, "x"], PAIR=(four, one), TEXT="U9")
    assert sorted(c.id for c in declared_claims(module)) == ["U1", "U2", "U3", "U4"]


@pytest.mark.parametrize("claim_id", ["A4.share-of-vgg19", "A4.flops.resnet34-B", "Z1.direction@adam"])
def test_ids_may_hold_hyphens_inside_a_part(claim_id):
    assert exact(claim_id).id == claim_id


@pytest.mark.parametrize("claim_id", ["A4.-x", "a4.x", "A4..x", "A4.x@a-b"])
def test_malformed_ids_are_refused(claim_id):
    with pytest.raises(ClaimError, match="id must look like"):
        exact(claim_id)


def run(pytester, **modules):
    pytester.makepyfile(**{name: HEADER + body + "\ndef test_nothing():\n    pass\n" for name, body in modules.items()})
    return pytester.runpytest("-p", "resclaims.plugin", "-p", "no:cacheprovider")


def test_a_generated_claim_that_repeats_a_declared_id_stops_the_session(pytester):
    result = run(pytester, test_one="A = claim('U1')\nTABLE = {i: claim(i) for i in ('U1', 'U2')}\n")
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*claim U1: duplicate id, declared twice in test_one*"])


def test_generated_claims_across_modules_are_checked(pytester):
    result = run(pytester, test_one="ROWS = [claim('U1'), claim('U2')]\n", test_two="ROWS = (claim('U2'),)\n")
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*claim U2: duplicate id, declared in test_*"])


def test_distinct_generated_claims_pass(pytester):
    result = run(pytester, test_one="SAME = claim('U1')\nTABLE = {'U1': SAME, 'U2': claim('U2')}\n")
    result.assert_outcomes(passed=1)


# -- declarations that the suite cannot use stop with one line --------------------------------
@pytest.mark.parametrize("fields, message", [
    ({"source": ""}, "claim U1: missing source"),
    ({"statistic": " "}, "claim U1: missing statistic"),
    ({"procedure": "exceeds_paired"}, "claim U1: unknown procedure 'exceeds_paired'"),
    ({"known": {"quick": "refuted: x"}}, "claim U1: unknown keyword 'known' (an outcome that is not 'supported' goes in "
                                          "the module's expected-outcomes file"),
])
def test_bad_declarations_name_the_claim_and_the_field(fields, message):
    declaration = dict(source="mine", claim="a count", statistic="n", procedure=procedures.exact())
    with pytest.raises(ClaimError, match=re.escape(message)):
        Claim("U1", **{**declaration, **fields})


@pytest.mark.parametrize("left_out, message", [
    ("source", "claim U1: missing source: say which document it comes from, e.g. source='001' (or 'mine')"),
    ("claim", "claim U1: missing claim: say what it claims, in one sentence"),
    ("statistic", "claim U1: missing statistic: say what the estimate measures"),
    ("procedure", "claim U1: missing procedure: say how it is decided, one of resclaims.decide.procedures (Procedure, "
                  "exceeds_paired, "),
    ("id", "claim <no id>: id must look like 'Z1' or 'Z1.direction'"),
], ids=["source", "claim", "statistic", "procedure", "id"])
def test_a_declaration_that_leaves_out_a_field_names_the_claim_and_the_field(left_out, message):
    """Leaving a required field out is the README's one line (a ClaimError), not Python's TypeError."""
    declaration = dict(id="U1", source="mine", claim="a count", statistic="n", procedure=procedures.exact())
    del declaration[left_out]
    with pytest.raises(ClaimError, match="^" + re.escape(message)):
        Claim(**declaration)


def test_an_unknown_keyword_names_the_claim_the_keyword_and_the_fields():
    """``Claim(..., statistc=...)``: the README's one line (a ClaimError), not Python's TypeError."""
    declaration = dict(source="mine", claim="a count", statistic="n", procedure=procedures.exact())
    with pytest.raises(ClaimError, match="^" + re.escape(
            "claim U1: unknown keyword 'confirmatry' (did you mean 'confirmatory'?): a Claim takes id, source, claim, "
            "statistic, procedure, unit, ")):
        Claim("U1", confirmatry=True, **declaration)
    with pytest.raises(ClaimError, match=r"^claim U2: unknown keyword 'colour': a Claim takes id, source, "):
        Claim(id="U2", colour="red", **declaration)


def test_a_misspelled_procedure_names_the_valid_ones():
    """``procedures.exceeds_pairde()`` in a declaration: the error lists the procedures (it was a bare AttributeError)."""
    with pytest.raises(AttributeError, match=re.escape(
            "resclaims.decide.procedures has no procedure 'exceeds_pairde': use one of exceeds_paired, exceeds, below_margin, "
            "median_in_band, share_in_band, increasing, exact, custom")):
        Claim("U1", source="mine", claim="a count", statistic="n", procedure=procedures.exceeds_pairde())
    assert not hasattr(procedures, "__wrapped__")  # tools' own look-ups still find nothing


def test_importing_a_misspelled_procedure_names_the_closest():
    """``from resclaims.decide.procedures import exceeds_pairde``: the same line and the closest name (it was
    Python's generic "cannot import name")."""
    with pytest.raises(ImportError, match=re.escape(
            "resclaims.decide.procedures has no procedure 'exceeds_pairde': use one of exceeds_paired, exceeds, ") +
            r".*; did you mean 'exceeds_paired'\?$"):
        exec("from resclaims.decide.procedures import exceeds_pairde", {})
    with pytest.raises(AttributeError, match="did you mean 'median_in_band'"):
        procedures.median_in_bnad  # noqa: B018


def test_a_bad_declaration_stops_collection_with_one_line(pytester):
    pytester.makepyfile(test_bad=HEADER + "\nBAD = Claim('U1', source='', claim='c', statistic='s', "
                                          "procedure=procedures.exact())\n\ndef test_x():\n    pass\n")
    result = pytester.runpytest("-p", "resclaims.plugin", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*claim U1: missing source: say which document it comes from*"])
    assert "Traceback" not in result.stdout.str()


def test_a_duplicate_id_across_modules_stops_collection(pytester):
    body = "\n\ndef test_x():\n    pass\n"
    pytester.makepyfile(test_one=HEADER + "\nA = claim('U1')" + body, test_two=HEADER + "\nB = claim('U1')" + body)
    result = pytester.runpytest("-p", "resclaims.plugin", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*claim U1: duplicate id, declared in test_* and test_*"])


# -- what judge does with a verdict ------------------------------------------------------------
JUDGED = """
import numpy as np, pytest
from resclaims.decide import procedures
from resclaims.decide.claims import Claim
from resclaims.run.tiers import Tier
TIERS = Tier.everywhere(seeds=5, fidelity="source protocol", protocol="toy")

DIFF = 1 + 0.013 * np.array([3, -1, 5, 2, -4, 0, 1, -2, 4, -3, 6, -5])  # no ties: scipy's exact signed rank
A = np.arange(12.0)
UP = Claim("U1", source="mine", claim="a exceeds b", statistic="mean a - b", procedure=procedures.exceeds_paired())
DOWN = Claim("U2", source="mine", claim="b exceeds a", statistic="mean b - a", procedure=procedures.exceeds_paired())

@pytest.mark.quick
def test_up(judge):
    judge(UP, np.append(A + DIFF, np.nan), np.append(A, 0.0), protocol="toy")

@pytest.mark.quick
def test_down(judge):
    judge(DOWN, A, A + DIFF, protocol="toy")
"""


@pytest.mark.usefixtures("validation_tables")
@pytest.mark.parametrize("known, outcome", [
    ('[quick]\n"U2" = "refuted: b - a = -1.0 [-1.1, -0.9]"', {"passed": 1, "xfailed": 1}),
    (None, {"passed": 1, "failed": 1}),  # not recorded (no file): a refuted claim fails
    ('[full]\n"U2" = "refuted: at the full tier"', {"passed": 1, "failed": 1}),  # recorded at another tier only
    ('[quick]\n"U2" = "inconclusive: recorded before"', {"passed": 1, "failed": 1}),  # no longer measured
])
def test_judge_turns_verdicts_into_outcomes(pytester, monkeypatch, tmp_path, known, outcome):
    """The expected outcome of a claim at a tier comes from expected/<module>.toml beside its module."""
    monkeypatch.setenv("RESCLAIMS_CACHE", str(tmp_path / "cache"))
    pytester.makepyfile(test_judged=JUDGED)
    if known is not None:
        (pytester.path / "expected").mkdir()
        (pytester.path / "expected" / "test_judged.toml").write_text(known + "\n")
    result = pytester.runpytest("-p", "resclaims.plugin", "-p", "no:cacheprovider", "--report-dir", "r",
                                "--baseline", "none")
    result.assert_outcomes(**outcome)
    claims = {c["id"]: c for c in json.loads((pytester.path / "r" / "summary.json").read_text())["claims"]}
    assert claims["U1"]["verdict"] == "supported" and claims["U1"]["n"] == 12
    assert claims["U1"]["details"]["diverged_pairs_excluded"] == 1  # the NaN row left out, and counted
    assert claims["U2"]["verdict"] == "refuted"
    calibrated = {c["claim"] for c in json.loads((pytester.path / "r" / "summary.json").read_text())["calibration"]}
    assert {"U1", "U2"} <= calibrated
    if "inconclusive" in (known or ""):
        result.stdout.fnmatch_lines(["*U2: recorded as inconclusive at the quick tier, now U2 refuted*"])


@pytest.mark.usefixtures("validation_tables")
def test_a_defective_procedure_fails_its_claim(pytester, monkeypatch, tmp_path):
    monkeypatch.setenv("RESCLAIMS_CACHE", str(tmp_path / "cache"))
    pytester.makepyfile(test_defect="""
import numpy as np, pytest
from resclaims.decide import calibration, procedures
from resclaims.decide.claims import Claim
from resclaims.run.tiers import Tier
TIERS = Tier.everywhere(seeds=5, fidelity="source protocol", protocol="toy")
from resclaims.decide.verdict import Decision

always = procedures.custom("always", "says supported whatever the data", lambda x: Decision("supported", 1.0, (0.0, 2.0)),
                           lambda claim, x: {"null": calibration.resample(x), "null_text": "anything"})
U1 = Claim("U1", source="mine", claim="anything", statistic="x", procedure=always)

@pytest.mark.quick
def test_defect(judge):
    judge(U1, np.arange(5.0), protocol="toy")
""")
    result = pytester.runpytest("-p", "resclaims.plugin", "-p", "no:cacheprovider", "--report-dir", "r",
                                "--baseline", "none")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*DefectiveProcedure: U1: the procedure 'always' said supported*"])


@pytest.mark.usefixtures("validation_tables")
@pytest.mark.parametrize("content, message", [
    ('[quick]\n"U9" = "refuted: x"', "expected/test_judged.toml: [quick] names claim 'U9', which test_judged.py does not "
                                     "declare (it declares U1, U2)"),
    ('[medium]\n"U2" = "refuted: x"', "expected/test_judged.toml: unknown tier [medium]: use [quick] or [full]"),
    ('[quick]\n"U2" = "supported: x"', "expected/test_judged.toml: [quick] U2: an expected outcome starts with "
                                       "'refuted', 'inconclusive', 'defective'"),
    ('[quick]\n"U2" = refuted', "expected/test_judged.toml: cannot read it: "),
], ids=["claim", "tier", "verdict", "toml"])
def test_a_bad_expected_outcomes_file_stops_the_session_in_one_line(pytester, monkeypatch, tmp_path, content, message):
    monkeypatch.setenv("RESCLAIMS_CACHE", str(tmp_path / "cache"))
    pytester.makepyfile(test_judged=JUDGED)
    (pytester.path / "expected").mkdir()
    (pytester.path / "expected" / "test_judged.toml").write_text(content + "\n")
    result = pytester.runpytest("-p", "resclaims.plugin", "-p", "no:cacheprovider", "--report-dir", "r",
                                "--baseline", "none")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: " + message.replace("[", "[[]") + "*"])
    assert "Traceback" not in result.stderr.str() and "Traceback" not in result.stdout.str()


def test_a_variant_counts_as_its_claims_and_the_catalogue_shows_the_expected_outcomes(tmp_path):
    from resclaims.decide import expected
    from resclaims.report import catalogue

    module = tmp_path / "test_mine.py"
    module.write_text(HEADER + "\nU1 = claim('U1')\nU2 = claim('U2')\n")
    (tmp_path / "expected").mkdir()
    (tmp_path / "expected" / "test_mine.toml").write_text('[full]\n"U2@variant" = "inconclusive: n = 3"\n'
                                                          '"U2" = """\\\n    refuted: b - a \\\n    = -1"""\n')
    found = expected.load(module)
    assert found == {"full": {"U2@variant": "inconclusive: n = 3", "U2": "refuted: b - a = -1"}}
    expected.check(found, ["U1", "U2"], module)  # no error: U2@variant is U2's
    table = catalogue.markdown(catalogue.load_modules(tmp_path))
    assert "exact count | - |\n| U2 |" in table and table.endswith("exact count | full: refuted: b - a = -1 |\n")
