"""A claim module's tiers (``TIERS``): the fidelity is declared, never a default; seeds, fidelity and the protocol line
reach the judge and the report from one declaration."""

from __future__ import annotations

import json

import pytest

from resclaims.run.tiers import Tier, TierError, declared

MODULE = """
import numpy as np, pytest
from resclaims.decide import procedures
from resclaims.decide.claims import Claim
from resclaims.decide.verdict import Decision
from resclaims.run.tiers import Tier
{tiers}
A = np.arange(12.0)
TOY = procedures.custom("toy", "supported, no sampling to calibrate", lambda a, b: Decision("supported", 1.0, (0.5, 1.5), 0.01))
UP = Claim("U1", source="mine", claim="a exceeds b", statistic="median a - b", procedure=TOY, protocol_bound={bound})

@pytest.mark.quick
@pytest.mark.full
def test_up(judge, tier):
    assert tier.seeds == {seeds}
    judge(UP, A + 1 + 0.01 * np.arange(12), A)
"""


def session(pytester, monkeypatch, tmp_path, tiers: str, *args: str, bound: bool = False, seeds: int = 5):
    monkeypatch.setenv("RESCLAIMS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("resclaims.report.validation.cached", lambda directory: {})  # not what these tests are about
    pytester.makepyfile(test_mine=MODULE.format(tiers=tiers, bound=bound, seeds=seeds))
    result = pytester.runpytest("-p", "resclaims.plugin", "-p", "no:cacheprovider", "--baseline", "none",
                                "--report-dir", "r", "-rfs", *args)
    summary = pytester.path / "r" / "summary.json"
    return result, json.loads(summary.read_text()) if summary.exists() else None


@pytest.mark.usefixtures("validation_tables")
def test_a_module_without_tiers_stops_its_claims_in_one_line(pytester, monkeypatch, tmp_path):
    result, summary = session(pytester, monkeypatch, tmp_path, "")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*test_mine.py declares no TIERS: say at which seeds and fidelity*"])
    assert "Traceback" not in result.stdout.str()
    assert summary is None or summary["claims"] == []  # nothing counted as measured at the source's protocol


@pytest.mark.usefixtures("validation_tables")
def test_the_tier_gives_the_judge_its_fidelity_seeds_and_protocol_line(pytester, monkeypatch, tmp_path):
    tiers = ('TIERS = {"quick": Tier(seeds=5, fidelity="reduced: toy scale", protocol="toy, {seeds} seeds"), '
             '"full": Tier(seeds=9, fidelity="source protocol", protocol="toy exactly, {seeds} seeds")}')
    result, summary = session(pytester, monkeypatch, tmp_path, tiers, "--seeds", "7", seeds=7)
    result.assert_outcomes(passed=1)
    (claim,) = summary["claims"]
    assert claim["fidelity"] == "reduced: toy scale" and claim["protocol"] == "toy, 7 seeds"


@pytest.mark.usefixtures("validation_tables")
def test_a_protocol_bound_claim_at_a_reduced_tier_gets_no_verdict(pytester, monkeypatch, tmp_path):
    tiers = 'TIERS = {"quick": Tier(seeds=5, fidelity="reduced: toy scale", protocol="toy")}'
    result, summary = session(pytester, monkeypatch, tmp_path, tiers, bound=True)
    result.assert_outcomes(skipped=1)
    assert summary["claims"][0]["verdict"] == "full tier only"


@pytest.mark.usefixtures("validation_tables")
def test_a_tier_the_module_does_not_declare_skips_its_tests(pytester, monkeypatch, tmp_path):
    tiers = 'TIERS = {"quick": Tier(seeds=5, fidelity="source protocol", protocol="toy")}'
    result, _ = session(pytester, monkeypatch, tmp_path, tiers, "--full", "--device", "cpu")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*test_mine.py declares no full tier (its TIERS: quick)*"])


@pytest.mark.parametrize("fields, message", [
    (dict(seeds=0, fidelity="source protocol", protocol="p"), "positive whole number of seeds"),
    (dict(seeds=5, fidelity="smaller", protocol="p"), "say 'source protocol', or 'reduced: '"),
])
def test_a_bad_tier_is_one_line(fields, message):
    with pytest.raises(TierError, match=message):
        Tier(**fields)


def test_declared_checks_names_and_types():
    tier = Tier(5, "source protocol", "p")
    assert declared({"quick": tier}, "m.py") == {"quick": tier}
    with pytest.raises(TierError, match="unknown tiers"):
        declared({"fast": tier}, "m.py")
    with pytest.raises(TierError, match="to Tier"):
        declared({"quick": 5}, "m.py")
    assert Tier.everywhere(5, "source protocol", "p") == {"quick": tier, "full": tier}
    assert tier.at(3) == Tier(3, "source protocol", "p") and tier.at(None) is not None and tier.at(None).seeds == 5
