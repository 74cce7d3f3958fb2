"""``--seeds auto --seeds-budget N``: a module's runs in stages, each claim decided at a planned look by the exact
group-sequential tests (resclaims.plugin.sequential), and bad input in one line before anything trains."""

from __future__ import annotations

import json

import numpy as np
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
    assert one["provenance"]["calibrations_computed"] == 0  # no verdict at this look: no calibration, no power search
    assert one["claims"][0]["seeds_for_power"] is None
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


@pytest.mark.usefixtures("validation_tables")
def test_plan_prints_each_modules_stages(pytester, monkeypatch, tmp_path, capsys):
    from resclaims.__main__ import main

    monkeypatch.setenv("RESCLAIMS_CACHE", str(tmp_path / "cache"))
    pytester.makepyfile(test_mine=MODULE.format(procedure="procedures.exceeds(0.0)"))
    monkeypatch.chdir(pytester.path)
    assert main(["plan", "-p", "resclaims.plugin", "--seeds", "auto", "--seeds-budget", "20", "test_mine.py"]) == 0
    out = capsys.readouterr().out
    assert "at most 20 seeds per arm" in out and "test_mine.py: [5], 10, 20" in out


def test_the_sequential_command_runs_every_stage_in_one_command(pytester, monkeypatch, tmp_path, capsys):
    """``resclaims sequential``: stage sessions (each a pytest process) into DIR/stage-<k>/ until no claim continues,
    one line per stage, the last stage's report in DIR with every stage in its provenance."""
    from resclaims.__main__ import main
    from resclaims.report.validation import fingerprint

    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / f"validation-{fingerprint()}.json").write_text("{}")  # the table, read back: no half minute per stage
    monkeypatch.setenv("RESCLAIMS_CACHE", str(cache))
    pytester.makepyfile(test_mine=MODULE.format(procedure="procedures.exceeds(0.0)"))
    monkeypatch.chdir(pytester.path)
    (pytester.path / "seq" / "stage-9").mkdir(parents=True)  # an earlier drive's stage: not this design's
    code = main(["sequential", "--seeds-budget", "20", "--report-dir", "seq", "-p", "resclaims.plugin", "-p",
                 "no:cacheprovider", "--baseline", "none", "test_mine.py"])
    out = capsys.readouterr().out
    assert code == 0, out
    lines = [line for line in out.splitlines() if line.startswith("resclaims: ")]
    assert lines[0].startswith("resclaims: stage 1: seeds per arm test_mine 5; 0 claims decided, 1 to continue; "
                               "0 runs trained"), lines
    assert lines[1].startswith("resclaims: stage 2: seeds per arm test_mine 10; 1 claims decided, 0 to continue")
    assert lines[2].startswith("resclaims: sequential: 2 stages; 1 claims (1 supported); 0 runs trained; report in")
    report = json.loads((pytester.path / "seq" / "summary.json").read_text())
    (claim,) = report["claims"]
    assert claim["verdict"] == "supported" and claim["details"]["sequential"]["look"] == 2
    assert [h["seeds"] for h in report["provenance"]["sequential"]["history"]] == [{"test_mine.py": 5},
                                                                                    {"test_mine.py": 10}]
    assert sorted(p.name for p in (pytester.path / "seq").glob("stage-*")) == ["stage-1", "stage-2"]
    assert "look 2 of 3" in (pytester.path / "seq" / "summary.md").read_text()


@pytest.mark.usefixtures("validation_tables")
def test_the_sequential_command_stops_at_bad_input_with_its_line(pytester, monkeypatch, tmp_path, capfd):
    from resclaims.__main__ import main

    monkeypatch.setenv("RESCLAIMS_CACHE", str(tmp_path / "cache"))
    pytester.makepyfile(test_mine=MODULE.format(procedure="procedures.exceeds(0.0)"))
    monkeypatch.chdir(pytester.path)
    assert main(["sequential", "--seeds-budget", "3", "--report-dir", "seq", "-p", "resclaims.plugin",
                 "test_mine.py"]) == 4
    out, err = capfd.readouterr()
    assert "--seeds-budget 3: cannot hold a single stage" in err
    assert "resclaims: sequential: stage 1 wrote no report (pytest exit 4); stopped" in out
    assert main(["sequential", "--seeds-budget", "20", "--seeds", "5", "test_mine.py"]) == 4
    assert "--seeds: the sequential command sets it for each stage" in capfd.readouterr().err


TOY = '''
from dataclasses import dataclass
from typing import ClassVar
import numpy as np, pandas as pd, pytest
from resclaims.decide import procedures
from resclaims.decide.claims import Claim
from resclaims.run.tiers import Tier

@dataclass(frozen=True)
class Toy:
    name: str
    epochs: int = 1
    kernel: ClassVar[str] = "test_toy"

def train(protocol, seeds, device, *, data=None, on_epoch=None, on_condition=None, checkpoints=None):
    return pd.DataFrame([{"seed": s, "epoch": 0, "x": 1.0 + s % 7} for s in seeds])

TIERS = {"quick": Tier(seeds=10, fidelity="reduced: toy", protocol="toy, {seeds} seeds")}
UP = Claim("U1", source="mine", claim="x is above 0", statistic="median x", procedure=procedures.exceeds(0.0))

@pytest.mark.quick
def test_up(judge, tier, runs):
    judge(UP, runs(Toy("a"), tier.seeds, family="X").x.to_numpy())
'''


@pytest.mark.usefixtures("validation_tables")
def test_plan_and_fill_with_seeds_auto_ask_for_one_stage_only(pytester, monkeypatch, tmp_path):
    """``plan`` (and so ``fill``, which trains what the plan lacks) with the stage options plans that stage's runs:
    the first look's seeds, then with --seeds-after the next look's, and nothing new once the claim is decided."""
    from resclaims.plugin.plan import plan

    monkeypatch.setenv("RESCLAIMS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("resclaims.report.validation.cached", lambda directory: {})
    pytester.syspathinsert()
    pytester.makepyfile(test_toy=TOY)
    auto = ["-p", "resclaims.plugin", "--seeds", "auto", "--seeds-budget", "20"]
    first = plan([*auto, "test_toy.py"])
    assert [len(need.missing) for need in first.needs] == [5]  # look 1 of (5, 10, 20): 5 seeds per arm
    pytester.runpytest(*auto, "-p", "no:cacheprovider", "--baseline", "none", "--report-dir", "r1").assert_outcomes(
        skipped=1)  # trained the 5, undecided at look 1
    second = plan([*auto, "--seeds-after", "r1", "test_toy.py"])
    assert [(len(need.seeds), len(need.missing)) for need in second.needs] == [(10, 5)]  # only the 5 more
    pytester.runpytest(*auto, "-p", "no:cacheprovider", "--baseline", "none", "--report-dir", "r2", "--seeds-after",
                       "r1").assert_outcomes(passed=1)
    third = plan([*auto, "--seeds-after", "r2", "test_toy.py"])
    assert [len(need.missing) for need in third.needs] == [0] or not third.needs  # decided: nothing to train


def test_a_claim_without_a_sequential_form_is_decided_at_its_modules_fixed_look_on_the_rows_it_keeps():
    """A claim that keeps a subset of its look's runs (converged ones, say: 9 of 10) is decided at the look where its
    module's seeds are the tier's n, not left to continue because its rows are no planned look."""
    from resclaims.decide.claims import Claim
    from resclaims.families import zero_identity
    from resclaims.plugin.sequential import Auto, decider

    claim = Claim("V1", source="mine", claim="a varies more than b", statistic="variance ratio",
                  procedure=zero_identity.variance_ratio_above_one)
    rng = np.random.default_rng(1)
    a, b = 3 * rng.standard_normal(9), rng.standard_normal(9)
    first = decider(Auto(20), "m.py", 10, None)(claim, a[:4], b[:4])  # look 1 (5 seeds): not its fixed design's
    assert first.details["sequential"]["continue"] and first.verdict == "inconclusive"
    going_on = {"V1": {"nodeid": "m.py::test_v", "details": {"sequential": {"continue": True}}}}
    second = decider(Auto(20, going_on, {"m.py": 1}), "m.py", 10, None)(claim, a, b)  # look 2: 10 seeds, 9 kept
    assert second.details["sequential"] | {"n": 10, "rows": 9, "look": 2, "decided": True, "continue": False} == \
        second.details["sequential"]
    assert second.verdict == claim.procedure(a, b).verdict


def test_a_claim_decided_at_an_earlier_look_keeps_that_looks_n():
    """Its module moved on for another claim (more rows now): the kept decision reports the n it was decided at,
    not the rows handed over at this look (Z1.direction, decided at 100 of 400, showed n = 400)."""
    from resclaims.decide import procedures
    from resclaims.decide.claims import Claim
    from resclaims.plugin.sequential import Auto, decider

    claim = Claim("V2", source="mine", claim="x is above 0", statistic="median x", procedure=procedures.exceeds(0.0))
    decided = {"V2": {"nodeid": "m.py::test_v", "verdict": "supported", "estimate": 1.0, "ci": [0.5, 1.5],
                      "p_value": 0.001, "p_refute": 1.0, "n": 10,
                      "details": {"sequential": {"look": 2, "n": 10, "decided": True, "continue": False}}}}
    kept = decider(Auto(20, decided, {"m.py": 2}), "m.py", 10, None)(claim, np.linspace(0.5, 1.5, 20))
    assert kept.verdict == "supported" and kept.details["sequential"]["rows"] == 10
