"""``--seeds auto --seeds-budget N``: a module's runs in stages, each claim decided at a planned look by the exact
group-sequential tests (resclaims.plugin.sequential), and bad input in one line before anything trains."""

from __future__ import annotations

import json

import pytest

from resclaims.decide.sequential import MIN_STAGE

MODULE = """
import numpy as np, pytest
from resclaims.decide import procedures
from resclaims.decide.claims import Claim
from resclaims.run.tiers import Tier
TIERS = {{"quick": Tier(seeds=10, fidelity="reduced: toy", protocol="toy, {{seeds}} seeds")}}
X = np.linspace(0.5, 1.5, 40)  # every run above 0: the 9 of 10 a look-2 sign test needs, never 6 of 5
UP = Claim("U1", source="mine", claim="x is above 0", statistic="median x", procedure={procedure})

@pytest.mark.quick
def test_up(judge, tier):
    judge(UP, X[:tier.seeds])
"""


def stage(pytester, monkeypatch, tmp_path, name: str, *args: str, procedure: str = "procedures.exceeds(0.0)"):
    monkeypatch.setenv("RESCLAIMS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("resclaims.report.validation.cached", lambda directory: {})
    pytester.makepyfile(test_mine=MODULE.format(procedure=procedure))
    result = pytester.runpytest("-p", "resclaims.plugin", "-p", "no:cacheprovider", "--baseline", "none",
                                "--report-dir", name, "-rfs", "--seeds", "auto", *args)
    summary = pytester.path / name / "summary.json"
    return result, json.loads(summary.read_text()) if summary.exists() else None


def test_a_claim_is_decided_at_the_first_look_that_decides_it_and_then_asks_for_nothing(pytester, monkeypatch,
                                                                                         tmp_path):
    first, one = stage(pytester, monkeypatch, tmp_path, "r1", "--seeds-budget", "20")
    first.assert_outcomes(skipped=1)  # 5 of 5 above 0 is not enough at look 1 of (5, 10, 20): continue
    first.stdout.fnmatch_lines(["*U1: undecided at look 1 (n = 5) of [[]5, 10, 20[]]: continue with --seeds-after*"])
    assert one["provenance"]["sequential"]["seeds"] == {"test_mine.py": 5}
    second, two = stage(pytester, monkeypatch, tmp_path, "r2", "--seeds-budget", "20", "--seeds-after", "r1")
    second.assert_outcomes(passed=1)
    (claim,) = two["claims"]
    assert claim["verdict"] == "supported" and claim["n"] == 10
    assert claim["details"]["sequential"]["look"] == 2 and claim["details"]["sequential"]["decided"]
    third, three = stage(pytester, monkeypatch, tmp_path, "r3", "--seeds-budget", "20", "--seeds-after", "r2")
    third.assert_outcomes(passed=1)  # decided: the module stays at its look, no new seeds
    assert three["provenance"]["sequential"]["seeds"] == {"test_mine.py": 10}
    assert three["claims"][0]["p_value"] == claim["p_value"]


@pytest.mark.parametrize("args, line", [
    ((), "--seeds auto: give --seeds-budget N, the most seeds per arm*"),
    (("--seeds-budget", "3"), f"--seeds-budget 3: cannot hold a single stage: a look needs at least {MIN_STAGE}*"),
    (("--seeds-budget", "many"), "--seeds-budget many: give a positive whole number of seeds per arm"),
    (("--seeds-budget", "20", "--seeds-after", "nowhere"), "--seeds-after nowhere: not a readable report of a stage*"),
])
def test_bad_input_is_one_line_before_training(pytester, monkeypatch, tmp_path, args, line):
    result, _ = stage(pytester, monkeypatch, tmp_path, "r", *args)
    assert result.ret == 4
    result.stderr.fnmatch_lines([f"ERROR: {line}"])


def test_a_budget_without_auto_is_one_line(pytester, monkeypatch, tmp_path):
    pytester.makepyfile(test_x="def test_x(): pass")
    result = pytester.runpytest("-p", "resclaims.plugin", "--seeds-budget", "20")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["ERROR: --seeds-budget 20: only with --seeds auto*"])


def test_a_budget_below_a_claims_reach_is_refused_before_training(pytester, monkeypatch, tmp_path):
    # a share above 0.8: the binomial test's best p at n runs is 0.8^n, at most 0.05 from n = 14 only
    result, _ = stage(pytester, monkeypatch, tmp_path, "r", "--seeds-budget", "10",
                      procedure="procedures.share_in_band((0.0, 2.0), 0.8)")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["ERROR: --seeds-budget 10: below U1's reach: its looks [[]5, 10[]] at level 0.05 "
                                 "can never say supported; its procedure (*) needs n >= 14 at level 0.05 even at one "
                                 "look: raise the budget"])


def test_plan_prints_each_modules_stages(pytester, monkeypatch, tmp_path, capsys):
    from resclaims.__main__ import main

    monkeypatch.setenv("RESCLAIMS_CACHE", str(tmp_path / "cache"))
    pytester.makepyfile(test_mine=MODULE.format(procedure="procedures.exceeds(0.0)"))
    monkeypatch.chdir(pytester.path)
    assert main(["plan", "-p", "resclaims.plugin", "--seeds", "auto", "--seeds-budget", "20", "test_mine.py"]) == 0
    out = capsys.readouterr().out
    assert "at most 20 seeds per arm" in out and "test_mine.py: [5], 10, 20" in out
