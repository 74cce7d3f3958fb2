"""Reports people read and CI that catches regressions: atomic writing, baseline comparison, run cache, CLI."""

import json
import re
import shutil
from pathlib import Path

import pytest

from resclaims.__main__ import main
from resclaims.decide.verdict import ClaimResult
from resclaims.report import compare
from resclaims.report.report import Report

# A claim family whose "kernel" is a module the test can change: FLIP makes the claim flip.
KERNEL = '''
import pandas as pd
SHIFT = {shift}
def train(seeds):
    return pd.DataFrame({{"seed": seeds, "value": [SHIFT + s % 3 for s in seeds]}})
'''
FAMILY = '''
import importlib, pytest
import toy_kernel
from resclaims.decide.verdict import ClaimResult, directional

kernel = importlib.reload(toy_kernel)

@pytest.fixture(scope="module")
def runs(settings, run_cache, report):
    frame = run_cache.runs(kernel, kernel.train, settings.run_seeds("T", 6), device_kind="cpu")
    report.add_runs("T", frame)
    return frame

@pytest.mark.quick
def test_T1(runs, settings, report):
    mean = float(runs.value.mean())
    report.record(ClaimResult(id="T1", claim="positive", source="toy", verdict=directional((mean - 0.1, mean + 0.1)),
                              estimate=mean, ci=(mean - 0.1, mean + 0.1), p_value=0.01, n=len(runs), statistic="mean",
                              test="toy", tier=settings.tier, protocol="toy"))
'''


def session(pytester, shift, *args):
    pytester.makepyfile(test_family=FAMILY, toy_kernel=KERNEL.format(shift=shift))
    return pytester.runpytest("-p", "resclaims.plugin", "-p", "no:cacheprovider", *args)


@pytest.fixture
def isolated_cache(monkeypatch, tmp_path, validation_tables):
    monkeypatch.setenv("RESCLAIMS_CACHE", str(tmp_path / "cache"))


def test_a_flipped_claim_is_named_and_fails_the_session_under_the_ci_option(pytester, isolated_cache):
    session(pytester, 5, "--report-dir", "baseline").assert_outcomes(passed=1)
    result = session(pytester, -5, "--report-dir", "run", "--baseline", "baseline", "--fail-on-change")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*verdict: T1: supported -> refuted*", "*change(s) against the baseline*"])
    summary = json.loads((pytester.path / "run" / "summary.json").read_text())
    assert [c["item"] for c in summary["comparison"]["changes"]] == ["T1", "T1"]  # verdict, and estimate left the CI
    assert "supported -> refuted" in (pytester.path / "run" / "summary.md").read_text()
    # without the CI option the same change is reported, and the session passes
    assert session(pytester, -5, "--report-dir", "run2", "--baseline", "baseline").ret == pytest.ExitCode.OK


def test_the_second_run_trains_nothing_and_writes_the_same_claims(pytester, isolated_cache):
    first = session(pytester, 5, "--report-dir", "one")
    second = session(pytester, 5, "--report-dir", "two")
    first.stdout.fnmatch_lines(["*runs trained: 6, from the cache: 0*"])
    second.stdout.fnmatch_lines(["*runs trained: 0, from the cache: 6*"])
    one, two = (json.loads((pytester.path / d / "summary.json").read_text()) for d in ("one", "two"))
    assert one["claims"] == two["claims"] and two["provenance"]["runs_trained"] == 0
    assert session(pytester, 5, "--report-dir", "three", "--no-run-cache").stdout.str().count("runs trained: 6") == 1


def test_a_changed_kernel_changes_the_key(pytester, isolated_cache):
    session(pytester, 5, "--report-dir", "one")
    session(pytester, 6, "--report-dir", "two").stdout.fnmatch_lines(["*runs trained: 6, from the cache: 0*"])


def test_the_report_holds_runs_html_and_benchmarks_and_links_latest(pytester, isolated_cache):
    session(pytester, 5).assert_outcomes(passed=1)
    latest = pytester.path / "reports" / "latest"
    assert latest.is_symlink() and re.fullmatch(r"\d{8}T\d{6}Z-.*", latest.resolve().name)
    assert {"summary.json", "summary.md", "summary.html", "results.csv"} <= {p.name for p in latest.iterdir()}
    html = (latest / "summary.html").read_text()
    assert "<table>" in html and not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # nothing remote


@pytest.mark.parametrize("content,message", [(None, "no such report folder"), ("{bad", "not valid JSON"),
                                             ('{"schema": 0, "claims": []}', "report format 0")])
def test_a_bad_baseline_option_stops_with_one_line(pytester, content, message):
    if content is not None:
        (pytester.path / "base").mkdir()
        (pytester.path / "base" / "summary.json").write_text(content)
    pytester.makepyfile(test_x="def test_x(): pass")
    result = pytester.runpytest("-p", "resclaims.plugin", "--baseline", "base")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("ERROR: --baseline: ") and message in errors[0], errors
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_a_corrupt_default_baseline_is_reported_not_a_traceback(pytester, isolated_cache):
    (pytester.path / "reports" / "baseline").mkdir(parents=True)
    (pytester.path / "reports" / "baseline" / "summary.json").write_text("{bad")
    result = session(pytester, 5, "--report-dir", "run", "--fail-on-change")
    result.stdout.fnmatch_lines(["*baseline not compared*not valid JSON*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED and "Traceback" not in result.stdout.str()


# A claim family per module; each test records the claim it is parametrized with.
CLAIMS_MODULE = '''
import pytest
from resclaims.decide.verdict import ClaimResult

@pytest.mark.parametrize("claim_id", {ids!r})
def test_claim(report, claim_id):
    report.record(ClaimResult(id=claim_id, claim="c", source="s", verdict="supported", estimate=1.0, ci=(0.5, 1.5),
                              p_value=0.01, n=5, statistic="s", test="t", tier="quick", protocol="p"))
'''


def two_families(pytester, a=("A1", "A2"), b=("B1", "B2")):
    pytester.makepyfile(test_a=CLAIMS_MODULE.format(ids=list(a)), test_b=CLAIMS_MODULE.format(ids=list(b)))


def changes(pytester, *args):
    """Run a session against the baseline ``base``; the changes in its report, as ``(kind, item)``."""
    result = pytester.runpytest("-p", "resclaims.plugin", "-p", "no:cacheprovider", "--report-dir", "run",
                                "--baseline", "base", *args)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    comparison = json.loads((pytester.path / "run" / "summary.json").read_text())["comparison"]
    return [(c["kind"], c["item"]) for c in comparison["changes"]]


def test_a_subset_session_is_compared_on_the_claims_it_ran(pytester):
    two_families(pytester)
    pytester.runpytest("-p", "resclaims.plugin", "--report-dir", "base").assert_outcomes(passed=4)
    claims = json.loads((pytester.path / "base" / "summary.json").read_text())["claims"]
    assert [c["nodeid"] for c in claims] == [f"test_{c[0].lower()}.py::test_claim[{c}]" for c in ("A1", "A2", "B1", "B2")]
    assert changes(pytester, "test_a.py") == []  # test_b.py's claims were not run: not gone
    assert changes(pytester, "-k", "A1") == []
    assert changes(pytester, "test_b.py::test_claim[B1]") == []
    assert main(["compare", str(pytester.path / "base"), str(pytester.path / "run")]) == 0  # the CLI reads the same
    two_families(pytester, b=("B1",))  # B2's test is gone from a module the session runs: its claim is gone
    assert changes(pytester) == [("disappeared", "B2")]
    assert changes(pytester, "test_b.py") == [("disappeared", "B2")]
    assert changes(pytester, "test_a.py") == [] and changes(pytester, "test_b.py::test_claim[B1]") == []


def test_a_baseline_without_node_ids_counts_gone_claims_only_for_whole_directories(pytester):
    two_families(pytester)
    pytester.runpytest("-p", "resclaims.plugin", "--report-dir", "base").assert_outcomes(passed=4)
    summary = pytester.path / "base" / "summary.json"
    document = json.loads(summary.read_text())
    for record in document["claims"]:
        del record["nodeid"]  # as written before claims recorded their test
    summary.write_text(json.dumps(document))
    two_families(pytester, b=("B1",))
    assert changes(pytester, "test_a.py") == [] and changes(pytester, "-k", "B") == []
    assert changes(pytester) == [("disappeared", "B2")]


def test_baseline_none_turns_the_comparison_off(pytester, isolated_cache):
    (pytester.path / "reports" / "baseline").mkdir(parents=True)
    (pytester.path / "reports" / "baseline" / "summary.json").write_text("{bad")  # would be reported
    result = session(pytester, 5, "--report-dir", "run", "--baseline", "none", "--fail-on-change")
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.OK and "the baseline" not in out and "baseline not compared" not in out
    assert json.loads((pytester.path / "run" / "summary.json").read_text())["comparison"] is None


def claim(claim_id="X1", verdict="supported", estimate=1.0):
    return ClaimResult(id=claim_id, claim="c", source="s", verdict=verdict, estimate=estimate, ci=(0.5, 1.5),
                       p_value=0.01, n=5, statistic="s", test="t", tier="quick", protocol="p")


def test_an_interrupted_write_leaves_the_earlier_report_and_nothing_that_looks_finished(tmp_path, monkeypatch):
    destination = tmp_path / "report"
    first = Report(destination, tier="quick", device="cpu", base_seed=1)
    first.record(claim(estimate=1.0))
    first.write()
    second = Report(destination, tier="quick", device="cpu", base_seed=1)
    second.record(claim(estimate=2.0))
    monkeypatch.setattr("resclaims.report.html.render_html", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        second.write()
    assert json.loads((destination / "summary.json").read_text())["claims"][0]["estimate"] == 1.0
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == ["report"]


def test_cli_compare_report_and_baseline_update(tmp_path, capsys, monkeypatch):
    for name, verdict in (("a", "supported"), ("b", "refuted")):
        report = Report(tmp_path / name, tier="quick", device="cpu", base_seed=1)
        report.record(claim(verdict=verdict))
        report.write()
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--fail-on-change"]) == 1
    assert "supported -> refuted" in capsys.readouterr().out
    (tmp_path / "b" / "summary.md").unlink()
    assert main(["report", str(tmp_path / "b")]) == 0 and (tmp_path / "b" / "summary.md").exists()
    monkeypatch.setattr("resclaims.__main__.REPORTS", tmp_path / "reports")
    (tmp_path / "reports").mkdir()
    assert main(["baseline", "update", str(tmp_path / "a")]) == 0
    assert compare.load(tmp_path / "reports" / "baseline")[0]["claims"][0]["verdict"] == "supported"
    assert main(["baseline", "update", str(tmp_path / "missing")]) == 2
    shutil.rmtree(tmp_path / "reports")


def test_an_estimate_that_moves_on_other_arithmetic_is_listed_but_not_counted():
    """Same arithmetic: an estimate outside the baseline's interval is a change. Another CPU (AVX2 against AVX-512)
    trains other last bits: the shift is listed as moved, not counted; a verdict that differs still counts."""
    def document(estimate, verdict="supported", arithmetic="torch 2.13.0, AMD EPYC, AVX512"):
        return {"claims": [{"id": "K1", "verdict": verdict, "estimate": estimate, "ci": [estimate - 1, estimate + 1],
                            "tier": "quick"}], "provenance": {"arithmetic": arithmetic}}  # fmt: skip

    baseline = document(5.0)
    assert [c.kind for c in compare.compare_claims(document(9.0), baseline)] == ["estimate"]
    moved = compare.compare_claims(document(9.0, arithmetic="torch 2.13.0, AMD EPYC, AVX2"), baseline)
    assert [c.kind for c in moved] == ["moved"] and compare.counted(moved) == [] and "AVX2" in moved[0].message
    assert "no change against the baseline b (1 estimate(s) moved on other arithmetic" in compare.summary_line(moved, Path("b"))
    flipped = compare.compare_claims(document(9.0, "refuted", "torch 2.13.0, AMD EPYC, AVX2"), baseline)
    assert [c.kind for c in compare.counted(flipped)] == ["verdict"]
    unrecorded = compare.compare_claims(document(9.0), {**baseline, "provenance": {}})
    assert [c.kind for c in unrecorded] == ["moved"]  # a baseline from before reports recorded it


def timed(times, group="g", reference=None):
    """A session's benchmarks.json: ``times`` by name (5 equal rounds each), all in ``group``; ``reference`` (by name):
    the seconds a test timed itself as its reference."""
    return {"benchmarks": [{"fullname": f"t::{name}", "name": name, "group": group,
                            "extra_info": {"reference": "sgemm", "reference_s": reference[name]} if reference else {},
                            "stats": {"mean": t, "min": t, "median": t, "data": [t] * 5}} for name, t in times.items()]}


def test_a_ratio_to_a_benchmark_timed_in_the_same_session_that_grows_past_the_threshold_is_a_change():
    """b over a (its group's other member) was 2, and is 6: b is slower. a over b fell: a is not. 1.5x is within
    mean:100%; a benchmark this session did not run is no change; a doubled mean that Mann-Whitney does not confirm
    (one wild round) is no change."""
    baseline = timed({"a": 1.0, "b": 2.0})
    slow = compare.compare_timings(timed({"a": 1.0, "b": 6.0}), baseline, "mean:100%")
    assert [(c.kind, c.item) for c in compare.counted(slow)] == [("slower", "t::b")]
    assert "b: 3.00x the baseline's mean as a ratio to a, timed in the same session (2 -> 6" in slow[0].message
    assert compare.counted(compare.compare_timings(timed({"a": 1.0, "b": 3.0}), baseline, "mean:100%")) == []
    assert compare.compare_timings({"benchmarks": []}, baseline) == []
    noisy = timed({"a": 1.0, "b": 2.0})
    noisy["benchmarks"][1]["stats"].update(mean=4.4, data=[1.0, 1.2, 16.0, 1.6, 2.2])
    assert compare.counted(compare.compare_timings(noisy, baseline)) == []  # the ratio doubled, Mann-Whitney: no shift


def test_one_noisy_peer_does_not_make_its_group_look_slower():
    """A benchmark's group ratio is over the geometric mean of its peers: one peer timed once, at a quiet moment, 3x
    faster than it should be (a session on a shared machine saw a single-round sequential Z epoch at 0.58x its
    peers) moves the others' ratios by 3^(1/3) = 1.44x, within mean:100%; over that one peer alone, 3x."""
    baseline = timed({"a": 1.0, "b": 2.0, "c": 0.5, "d": 4.0})
    quiet = compare.compare_timings(timed({"a": 1.0, "b": 2.0, "c": 0.5, "d": 4.0 / 3}), baseline, "mean:100%")
    assert compare.counted(quiet) == []


def test_a_uniformly_slower_session_is_no_change_but_a_ratio_that_worsens_is():
    """No absolute time fails: every benchmark 3x slower (another machine, or a shared one) leaves every same-session
    ratio as it was, and is listed as information only; one benchmark 3x slower than its group is a change. Under
    --fail-on-change the first passes, the second fails (compare's exit code)."""
    baseline = timed({"a": 1.0, "b": 2.0, "c": 0.5, "d": 4.0})
    uniform = compare.compare_timings(timed({"a": 3.0, "b": 6.0, "c": 1.5, "d": 12.0}), baseline, "mean:100%")
    assert {c.kind for c in uniform} == {"time"} and len(uniform) == 4 and compare.counted(uniform) == []
    assert compare.summary_line(uniform, Path("b")) == (
        "no change against the baseline b (4 absolute time(s) past the threshold, not counted)")
    worse = compare.compare_timings(timed({"a": 3.0, "b": 6.0, "c": 1.5, "d": 36.0}), baseline, "mean:100%")
    assert [c.item for c in compare.counted(worse)] == ["t::d"] and "3.00x" in compare.counted(worse)[0].message
    # the same through the reference a test times itself (sgemm just before and after a step), in a group of one
    own = compare.compare_timings(timed({"s": 3.0}, reference={"s": 6.0}), timed({"s": 1.0}, reference={"s": 2.0}))
    assert compare.counted(own) == [] and [c.kind for c in own] == ["time"]
    own = compare.compare_timings(timed({"s": 3.0}, reference={"s": 2.0}), timed({"s": 1.0}, reference={"s": 2.0}))
    assert [c.kind for c in compare.counted(own)] == ["slower"] and "as a ratio to sgemm" in own[0].message


TIMED = """
import os, time, pytest

@pytest.mark.parametrize("name, seconds", [("a", 0.1), ("b", 0.2)])  # long enough that a loaded scheduler's ms of lag stay small
def test_time(name, seconds, benchmark, report):
    factor = float(os.environ.get("SLOW", "1")) * (float(os.environ.get("SLOW_B", "1")) if name == "b" else 1)
    benchmark.group = "sleeps"
    benchmark.pedantic(time.sleep, args=(seconds * factor,), rounds=5, iterations=1)
    report.add_benchmark(benchmark, f"sleep {name}")
"""


def test_fail_on_change_passes_a_session_3x_slower_throughout_and_fails_one_whose_ratio_worsened(pytester,
                                                                                                 monkeypatch):
    """The whole path, through pytest-benchmark and the plugin: a baseline session; the same session with every
    sleep 3x longer passes under --fail-on-change (its absolute times are listed); one where b alone sleeps 3x
    longer, so that b / a tripled, fails."""
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)  # under xdist (-n 2) pytest-benchmark would not time
    pytester.makepyfile(test_timed=TIMED)
    args = ("-p", "resclaims.plugin", "-p", "no:cacheprovider", "--baseline", "base", "--fail-on-change")
    assert pytester.runpytest("-p", "resclaims.plugin", "-p", "no:cacheprovider", "--report-dir", "base").ret == 0
    monkeypatch.setenv("SLOW", "3")
    uniform = pytester.runpytest(*args, "--report-dir", "uniform")
    assert uniform.ret == pytest.ExitCode.OK, uniform.stdout.str()
    uniform.stdout.fnmatch_lines(["*time: test_time?a-0.1?: *x the baseline's mean time*information only*",
                                  "no change against the baseline *(2 absolute time(s) past the threshold, not counted)"])
    monkeypatch.setenv("SLOW", "1")
    monkeypatch.setenv("SLOW_B", "3")
    worse = pytester.runpytest(*args, "--report-dir", "worse")
    assert worse.ret == pytest.ExitCode.TESTS_FAILED, worse.stdout.str()
    worse.stdout.fnmatch_lines(["*slower: test_time?b-0.2?: *x the baseline's mean as a ratio to test_time?a-0.1?*",
                                "1 change(s) against the baseline *: 1 slower*"])


def test_data_provenance_names_no_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    report = Report(tmp_path / "r", tier="quick", device="cpu", base_seed=1)
    report.add_data("x", source=f"data dir: {tmp_path}/data/set", sha256="ab", size=3)
    assert report.data["x"] == {"source": "data dir: data/set", "sha256": "ab", "size": 3}


def test_the_report_opens_with_the_headline_then_families_then_exact_facts_and_shows_validation(tmp_path):
    """A report people read first: the verdict counts by role and fidelity, one section per family, the exact
    facts in one table, and the validation table with both error rates (tests/data: a summary.json with every
    field the statistics write)."""
    from resclaims.report.html import render_html
    from resclaims.report.render import render_markdown

    document = json.loads((Path(__file__).parents[1] / "data" / "report_new_fields.json").read_text())
    markdown = render_markdown(document)
    titles = [line for line in markdown.splitlines() if line.startswith("## ")]
    assert titles[0] == "## Headline" and titles[1].startswith("## Family D")
    assert titles.index("## Exact architecture facts") > max(i for i, t in enumerate(titles) if "Family" in t)
    assert "| verdict | confirmatory, source protocol | confirmatory, reduced |" in markdown
    assert "Holm 0.1875" in markdown  # D1.plain's adjusted p
    assert "about 12 seeds would decide it" in markdown  # D1.residual's seeds_for_power
    assert "| share_in_band | t3 | 16 | 0.071 [0.063, 0.079] - above alpha + margin" in markdown
    html = render_html(document, tmp_path)
    assert html.count("<h2") == len(titles) and "Headline" in html


def test_the_calibration_table_calls_only_a_band_claim_an_equivalence_test():
    """A claim without a grid gets no smallest detectable effect: "n/a (equivalence test)" for a band (median_in_band),
    but an exceeds_paired claim is a one-sided test, whose table once said "equivalence test" too."""
    import numpy as np

    from resclaims.decide import calibration, procedures
    from resclaims.decide.claims import Claim
    from resclaims.report.calibration_text import calibration_section

    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 1.0, 12), rng.normal(0.0, 1.0, 12)
    data = {"U1": (procedures.exceeds_paired(), (a, b)), "U2": (procedures.median_in_band((0.0, 2.0)), (a,))}
    document = {"calibration": [], "claims": []}
    for claim_id, (procedure, arrays) in data.items():
        claim = Claim(claim_id, source="mine", claim="c", statistic="s", procedure=procedure, stated=1.0)
        worlds = procedure.calibration(claim, *arrays)
        document["calibration"].append(
            calibration.calibrate(claim_id, procedure.decide, n_sims=20, seed=1, **worlds).to_json())
        document["claims"].append({"id": claim_id, "details": procedure(*arrays).details})
    rows = {row[0]: row for row in calibration_section(document).rows}
    assert rows["U1"][5] == "n/a (no grid declared)"
    assert rows["U2"][5] == "n/a (equivalence test)"
