"""The plugin's duplicate-id check sees claims declared one by one and claims generated into a dict, list or tuple."""

from types import ModuleType

import pytest

from resclaims import procedures
from resclaims.claims import Claim, ClaimError
from resclaims.plugin import declared_claims

HEADER = """
from resclaims import procedures
from resclaims.claims import Claim

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
