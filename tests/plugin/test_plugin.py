"""The pytest plugin, driven through pytest itself (pytester)."""

import json

import pytest

CLAIM_MODULE = """
import pytest
from resclaims.decide.verdict import ClaimResult

SEEDS = {"quick": 3, "full": 30}

def result(verdict, tier):
    return ClaimResult(id="T1", claim="a claim", source="test", verdict=verdict, estimate=2.0, ci=(1.0, 3.0),
                       p_value=0.01, n=3, statistic="stat", test="t-test", tier=tier, protocol="as the source")

@pytest.mark.quick
@pytest.mark.full
def test_supported(settings, report):
    assert settings.n_seeds(SEEDS) == {SEEDS}
    report.verify(result("supported", settings.tier))

@pytest.mark.xfail(strict=True, reason="refuted: 2.0 [1, 3], n = 3")
@pytest.mark.quick
def test_refuted(settings, report):
    report.verify(ClaimResult(**{**result("refuted", settings.tier).__dict__, "id": "T2"}))

@pytest.mark.full
def test_full_only():
    pass

@pytest.mark.gpu
def test_needs_gpu():
    pass
"""


def run(pytester, *args, seeds=3):
    pytester.makepyfile(test_claims=CLAIM_MODULE.replace("{SEEDS}", str(seeds)))
    return pytester.runpytest("-p", "resclaims.plugin", "-p", "no:cacheprovider", "-rs", *args)


def test_quick_session_writes_the_report_contract(pytester):
    result = run(pytester, "--report-dir", "out", "--device", "cpu")
    result.assert_outcomes(passed=1, xfailed=1, skipped=2)
    result.stdout.fnmatch_lines(["*base seed 20190403*", "*full tier only: run with --full*", "*needs CUDA*"])
    summary = json.loads((pytester.path / "out" / "summary.json").read_text())
    claims = {c["id"]: c for c in summary["claims"]}
    assert claims["T1"]["verdict"] == "supported" and claims["T2"]["verdict"] == "refuted"
    assert {"id", "verdict", "estimate", "ci", "p_value", "n", "tier", "protocol"} <= set(claims["T1"])
    assert claims["T1"]["ci"] == [1.0, 3.0] and claims["T1"]["tier"] == "quick"
    assert {"git_commit", "torch", "device", "base_seed", "data"} <= set(summary["provenance"])
    assert "| T1 |" in (pytester.path / "out" / "summary.md").read_text()


def test_full_tier_runs_full_tests_and_skips_quick_only(pytester):
    result = run(pytester, "--full", "--device", "cpu", "--report-dir", "out", seeds=30)
    result.assert_outcomes(passed=2, skipped=2)
    result.stdout.fnmatch_lines(["*quick tier only: run without --full*"])


def test_seeds_option_overrides_the_tier(pytester):
    run(pytester, "--seeds", "7", "--device", "cpu", "--report-dir", "out", "-k", "supported", seeds=7).assert_outcomes(passed=1)


def test_base_seed_in_header(pytester):
    run(pytester, "--base-seed", "5", "--co").stdout.fnmatch_lines(["*tier quick*base seed 5 (--base-seed)*"])


def test_a_refuted_claim_that_starts_to_hold_turns_red(pytester):
    pytester.makepyfile(test_x="""
import pytest
from resclaims.decide.verdict import ClaimResult
@pytest.mark.xfail(strict=True, reason="refuted before")
def test_claim(report):
    report.verify(ClaimResult(id="T3", claim="c", source="s", verdict="supported", estimate=1.0, ci=(1.0, 1.0),
                              p_value=None, n=1, statistic="s", test="t", tier="quick", protocol="p"))
""")
    pytester.runpytest("-p", "resclaims.plugin", "--report-dir", "out").assert_outcomes(failed=1)


@pytest.mark.parametrize("args,message", [
    (["--device", "cuda"], "--device cuda: CUDA is not available"),
    (["--device", "tpu"], "--device tpu: use cpu, cuda or auto"),
    (["--seeds", "0"], "--seeds 0: give a positive whole number"),
    (["--seeds", "-1"], "--seeds -1: give a positive whole number"),
    (["--tier", "medium"], "unknown tier 'medium'"),
    (["--full", "--tier", "quick"], "--full and --tier quick disagree"),
    (["--base-seed", "x"], "--base-seed x: give a whole number"),
    (["--data-dir", "does-not-exist"], "--data-dir does-not-exist: no such directory"),
])
def test_bad_options_stop_with_one_line(pytester, args, message):
    if args == ["--device", "cuda"]:
        pytest.importorskip("torch").cuda.is_available() and pytest.skip("this machine has CUDA")
    pytester.makepyfile(test_x="def test_x(): pass")
    result = pytester.runpytest("-p", "resclaims.plugin", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("ERROR: ") and message in errors[0], errors
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_data_dir_from_the_environment(pytester, monkeypatch, tmp_path):
    monkeypatch.setenv("RESCLAIMS_DATA", str(tmp_path))
    pytester.makepyfile(test_x=f"def test_x(settings): assert str(settings.data_dir) == {str(tmp_path.resolve())!r}")
    pytester.runpytest("-p", "resclaims.plugin").assert_outcomes(passed=1)


def test_no_report_for_a_session_without_claims(pytester):
    pytester.makepyfile(test_x="def test_x(): pass")
    pytester.runpytest("-p", "resclaims.plugin", "--report-dir", "out").assert_outcomes(passed=1)
    assert not (pytester.path / "out").exists()


def test_dataset_records_the_provenance_of_what_it_loaded(pytester):
    pytester.makepyfile(test_data="""
from resclaims.report.report import Timing

class Data:
    def provenance(self):
        return {"source": "here", "sha256": "ab"}

def test_loads(dataset, report):
    assert isinstance(dataset(lambda data_dir: Data(), "toy"), Data)
    report.add_timing(Timing("t", "g", 1.0, 1))  # a report is written once something was measured
""")
    result = pytester.runpytest("-p", "resclaims.plugin", "-p", "no:cacheprovider", "--device", "cpu",
                                "--report-dir", "out")
    result.assert_outcomes(passed=1)
    summary = json.loads((pytester.path / "out" / "summary.json").read_text())
    assert summary["provenance"]["data"]["toy"] == {"source": "here", "sha256": "ab"}
