"""The validation table's sequential cells (resclaims/report/validation_sequential.py): the shared sign and binomial
procedures decided at the looks of a --seeds auto design keep both errors on the written worlds, exact by recursion
where one count supports and one refutes, simulated otherwise; and the report shows them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scipy import stats

from resclaims.decide import procedures, sequential as sq
from resclaims.decide.stats import ALPHA
from resclaims.report import validation
from resclaims.report import validation_sequential as vq


@pytest.fixture(scope="module")
def table():
    return vq.cached(None)  # the table a report in this process shows


def test_every_sequential_procedure_keeps_both_errors_in_every_world_and_design(table):
    bad = [f"{r['procedure']} | {r['world']} | {r['looks']}: {r['method']} supported "
           f"{(r['false_supported'] or {}).get('rate')}, refuted {r['false_refuted']['rate']:.4f}"
           for r in table["failures"]]
    assert not bad, "\n".join(bad)
    exact = [r for r in table["rows"] if r["method"] == "exact"]
    assert exact and max(validation.worst(r) for r in exact) <= ALPHA  # exact: no Monte Carlo margin to hide in


def test_the_table_covers_every_sequential_case_world_and_design(table):
    cells = {(r["procedure"], r["world"], r["design"]) for r in table["rows"]}
    assert cells == {(c.name, w, d) for c in vq.cases() for w in validation.WORLDS for d in vq.DESIGNS}
    assert {r["procedure"] for r in table["rows"] if r["method"] == "exact"} == set(vq.SIDES)
    assert vq.DESIGNS["Z (2000 runs, budget 2000)"] == (500, 1000, 2000)
    assert all(r["sims"] == validation.SIMS for r in table["rows"] if r["method"] == "simulated")


def test_one_look_is_the_fixed_sign_test_by_hand():
    """One look at 5 runs: supported when all 5 lie above (1/32), refuted when all 5 lie below (1/32); with a tie
    chance t, each side's chance is (1 - t) / 2."""
    tests = sq.tests_of(procedures.exceeds(0.0))
    assert vq.exact_errors((5,), tests, (0.5, 0.5)) == pytest.approx((1 / 32, 1 / 32), abs=1e-15)
    assert vq.exact_errors((5,), tests, (0.4, 0.4)) == pytest.approx((0.4**5, 0.4**5), abs=1e-15)
    share = sq.tests_of(procedures.share_in_band((0.0, 1.0), 0.8))  # 20 of 20 inside: 0.8^20 = 0.0115 <= 0.05
    assert vq.exact_errors((20,), share, (0.8, 0.2)) == pytest.approx(
        (0.8**20, stats.binom.sf(7, 20, 0.2)), abs=1e-12)  # refuted: 8 or more of 20 outside (0.032; 7: 0.087)


def test_two_looks_by_hand():
    """Looks (5, 10), sign test at p = 1/2: the design's critical counts, and the chance of crossing at look 1
    (all 5 above) plus at look 2 without look 1, both ways, summed by hand over the binomial paths."""
    tests = sq.tests_of(procedures.exceeds(0.0))
    (c1, c2) = sq.Design((5, 10)).counts(0.5)
    first = stats.binom.sf(c1 - 1, 5, 0.5)
    second = sum(stats.binom.pmf(k, 5, 0.5) * stats.binom.sf(c2 - k - 1, 5, 0.5) for k in range(min(c1, 6)))
    supported, refuted = vq.exact_errors((5, 10), tests, (0.5, 0.5))
    assert supported == pytest.approx(first + second, abs=1e-12) and refuted == pytest.approx(supported, abs=1e-12)


@pytest.mark.parametrize("name", sorted(vq.SIDES))
def test_the_exact_rates_agree_with_the_sequential_decision_on_simulated_worlds(name):
    """What the recursion computes is what :func:`resclaims.decide.sequential.looked` decides: 20,000 data sets of
    the case's own worlds (ties and zeros included) at each design, within Monte Carlo error."""
    case = next(c for c in validation.CASES if c.name == name)
    for design, looks in vq.DESIGNS.items():
        for world in ("normal", "ties and zeros", "censored at a budget"):
            exact = vq.cell(case, world, design)
            data = validation.data(case, world, looks[-1], sims=20_000 if looks[-1] < 100 else 4_000, seed=9)
            out = sq.looked(sq.tests_of(case.procedure), sq.Design(looks), *data)
            for key, hits in (("false_supported", out.supported), ("false_refuted", out.refuted)):
                rate = exact[key]["rate"]
                assert stats.binomtest(int(hits.sum()), hits.size, min(max(rate, 1e-12), 1 - 1e-12)).pvalue > 1e-4, (
                    design, world, key, rate, hits.mean())


def test_the_report_shows_the_sequential_and_mean_curve_cells():
    """The Calibration section's two parts after the fixed cells: each sequential row with its looks and method,
    each mean-curve row with its standing, a known-above cell shown as above alpha + 1 point."""
    from resclaims.report.render import render_markdown

    seq = {"alpha": ALPHA, "margin": 0.0148, "sims": 3000, "designs": {"K quick": [5, 10, 20]}, "failures": [],
           "rows": [{"procedure": "a exceeds b, paired (sign test)", "world": "normal", "design": "K quick",
                     "looks": [5, 10, 20], "method": "exact", "sims": None,
                     "false_supported": {"rate": 0.0271, "ci": [0.0271, 0.0271]},
                     "false_refuted": {"rate": 0.0271, "ci": [0.0271, 0.0271]}},
                    {"procedure": "median in band, at its lower edge", "world": "lognormal", "design": "K quick",
                     "looks": [5, 10, 20], "method": "simulated", "sims": 3000,
                     "false_supported": {"rate": 0.03, "ci": [0.024, 0.037]},
                     "false_refuted": {"rate": 0.07, "ci": [0.061, 0.08]}}]}
    means = {"alpha": ALPHA, "note": "produced by code with fingerprint abc", "stale": False, "failures": [],
             "rows": [{"procedure": "mean-curve crossing in [3, 4], at 4", "world": "lognormal", "n": 400,
                       "sims": 2000, "held": False, "status": "not held: known above, above alpha + 1 point",
                       "false_supported": {"rate": 0.066, "ci": [0.055, 0.078]},
                       "false_refuted": {"rate": 0.03, "ci": [0.023, 0.039]}},
                      {"procedure": "mean-curve crossing in [3, 4], at 3", "world": "heavy tails (t3)", "n": 400,
                       "sims": 2000, "held": True, "status": "ok, above alpha + 1 point",
                       "false_supported": {"rate": 0.0625, "ci": [0.052, 0.074]},
                       "false_refuted": {"rate": 0.03, "ci": [0.023, 0.039]}}]}
    means["above_one_point"] = means["rows"]
    document = json.loads((Path(__file__).parents[1] / "data" / "report_new_fields.json").read_text())
    document["validation"] = {"alpha": ALPHA, "margin": 0.0148, "rows": [], "sequential": seq, "mean_curves": means}
    markdown = render_markdown(document)
    assert "### Validation: sequential designs" in markdown and "### Validation: mean-curve procedures" in markdown
    assert "| a exceeds b, paired (sign test) | normal | 5, 10, 20 | 0.0271 | 0.0271 | exact |" in markdown
    assert "0.070 [0.061, 0.080] - above alpha + margin | 3000 sims |" in markdown
    assert ("| mean-curve crossing in [3, 4], at 4 | lognormal | 400 | 0.066 [0.055, 0.078] | 0.030 [0.023, 0.039] "
            "| 2000 | not held: known above, above alpha + 1 point |") in markdown
    assert "2 of 2 cells above alpha + 1 point" in markdown and "Worst held cell 0.0625" in markdown
    assert ("- held, yet above alpha + 1 point: mean-curve crossing in [3, 4], at 3, heavy tails (t3), n = 400: false "
            "supported 0.062 [0.052, 0.074], false refuted 0.030 [0.023, 0.039] (2000 sims)") in markdown
    stale = render_markdown({**document, "validation": {**document["validation"], "mean_curves": {
        **means, "stale": True, "note": "STALE: produced by code with fingerprint abc, the code's is now def"}}})
    assert "\nSTALE: produced by code with fingerprint abc, the code's is now def\n" in stale
