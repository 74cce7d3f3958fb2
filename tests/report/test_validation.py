"""The validation suite: every sampled procedure keeps both of its errors at alpha on simulated worlds.

The worlds are written for the purpose (normal, t3, skewed both ways, lognormal,
censored, ties and zeros), each with the claim exactly on its boundary; see
:mod:`resclaims.report.validation`. The table computed here is the one the report shows.
"""

from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats

from resclaims.decide.stats import ALPHA
from resclaims.decide.verdict import REFUTED, SUPPORTED
from resclaims.report import validation


@pytest.fixture(scope="module")
def table():
    return validation.cached(None)  # the same table a report in this process shows


def test_every_procedure_keeps_both_errors_in_every_world(table):
    limit = table["alpha"] + table["margin"]
    bad = [f"{r['procedure']} | {r['world']} | n={r['n']}: supported {r['false_supported']['rate']:.4f}, "
           f"refuted {r['false_refuted']['rate']:.4f}" for r in table["failures"]]
    assert not bad, f"above alpha + margin = {limit:.4f}:\n" + "\n".join(bad)


def test_the_table_covers_every_procedure_world_and_tier_size(table):
    cells = {(r["procedure"], r["world"], r["n"]) for r in table["rows"]}
    expected = {(c.name, w, n) for c in validation.CASES for n in c.sizes for w in validation.WORLDS}
    assert cells == expected
    assert all(r["sims"] == validation.SIMS for r in table["rows"])
    assert len(validation.WORLDS) >= 7 and {5, 8, 10, 16, 400} <= {n for _, _, n in cells}


def test_the_margin_catches_a_true_rate_of_seven_and_a_half_percent():
    """With SIMS data sets a cell whose true rate is 7.5% exceeds alpha + margin with probability >= 0.95."""
    limit = ALPHA + validation.margin()
    assert stats.binom.sf(np.floor(limit * validation.SIMS), validation.SIMS, 0.075) >= 0.95
    # and a procedure exactly at alpha almost never fails a cell (a false alarm in about one cell in 10,000)
    assert stats.binom.sf(np.floor(limit * validation.SIMS), validation.SIMS, ALPHA) <= 2e-4


@pytest.mark.parametrize("case", validation.CASES, ids=lambda c: c.name)
def test_the_vectorised_tests_decide_as_the_procedure_does(case):
    """What is validated is what decides: each simulated data set's verdict from ``tests`` equals ``decide``'s."""
    rng = np.random.default_rng(7)
    n = case.sizes[0]
    for world in ("normal", "skewed left", "ties and zeros"):
        data = case.draw(rng, validation.WORLDS[world], 25, n)
        p_support, p_refute = case.procedure.tests(*data)
        for i in range(25):
            decision = case.procedure.decide(*(d[i] for d in data))
            vectorised = SUPPORTED if p_support[i] <= ALPHA else REFUTED if p_refute[i] <= ALPHA else "inconclusive"
            assert decision.verdict == vectorised, (world, i)


def test_a_test_of_the_mean_fails_the_suite_where_the_boundary_is_a_median():
    """The suite can fail: Student's t, asked "x above -1" on skewed data whose median sits at -1, says
    "supported" far more often than alpha (the audit's finding for tests whose quantity differs from the claim's)."""
    def t_tests(x):
        t = stats.ttest_1samp(x, -1.0, axis=-1)
        return stats.t.sf(t.statistic, t.df), stats.t.cdf(t.statistic, t.df)

    case = validation.Case("x above -1 (t-test)", SimpleNamespace(tests=t_tests),
                           lambda rng, noise, sims, n: (-1.0 + noise(rng, (sims, n)),), (16,))
    validation.CASES.append(case)  # cell() seeds by the case's position
    try:
        row = validation.cell(case, "lognormal", 16)
    finally:
        validation.CASES.remove(case)
    assert row["false_supported"]["rate"] > ALPHA + validation.margin()


def test_the_table_is_cached_by_the_codes_fingerprint(tmp_path, table, monkeypatch):
    monkeypatch.setattr(validation, "_MEMO", {})
    (tmp_path / f"validation-{validation.fingerprint()}.json").write_text('{"rows": [], "from": "disk"}')
    assert validation.cached(tmp_path)["from"] == "disk"
    monkeypatch.setattr(validation, "_MEMO", {})
    monkeypatch.setattr(validation, "run", lambda: {"rows": [], "from": "simulated"})
    (tmp_path / f"validation-{validation.fingerprint()}.json").write_text("{truncated")
    assert validation.cached(tmp_path)["from"] == "simulated"  # a corrupt entry is simulated again and replaced
    assert "simulated" in (tmp_path / f"validation-{validation.fingerprint()}.json").read_text()
