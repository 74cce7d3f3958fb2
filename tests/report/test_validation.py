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
    assert len(validation.WORLDS) >= 7 and {5, 8, 10, 16, 2000} <= {n for _, _, n in cells}


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


# -- median_in_band on narrow bands (issue 25, item 3): "refuted" at alpha / 2 per edge -------------------------------
NARROW_CASES = [c for c in validation.CASES if " SD wide" in c.name]


def test_narrow_bands_are_validated_at_every_tiers_n_on_both_edges_and_in_the_middle(table):
    rows = [r for r in table["rows"] if " SD wide" in r["procedure"]]
    assert {r["n"] for r in rows} == set(validation.N_BY_TIER.values())
    names = {r["procedure"] for r in rows}
    for width in validation.NARROW[1:]:
        edges = {f"median in a band {width:g} SD wide, at its {edge} edge" for edge in ("lower", "upper")}
        assert edges <= names
        assert (f"median in a band {width:g} SD wide, in its middle" in names) == (width <= 0.1)
    assert "median in a band 0 SD wide, at it" in names
    middle = [r for r in rows if "middle" in r["procedure"]]
    assert middle and all(r["false_supported"] is None for r in middle)  # the claim true there: only refuted counts
    limit = table["alpha"] + table["margin"]
    worst = max(rows, key=validation.worst)
    assert validation.worst(worst) <= limit, worst


@pytest.mark.parametrize("case", NARROW_CASES, ids=lambda c: c.name)
def test_a_narrow_bands_runs_have_their_median_where_the_case_says_and_the_width_asked_for(case):
    low, high = case.procedure.decide.keywords["band"]
    width = float(case.name.split(" SD wide")[0].split()[-1])
    where = high if "upper" in case.name else (low + high) / 2 if "middle" in case.name else low
    for world in validation.WORLDS:
        (x,) = validation.data(case, world, 100_001, sims=1, seed=3)
        sd = 1.0 / width if width else 1.0  # the band is `width` SDs of the runs
        assert abs(np.median(x) - where) < 0.02 * sd, world
        if world != "censored at a budget":
            assert np.std(x) == pytest.approx(sd, rel=0.1 if world == "heavy tails (t3)" else 0.03), world


def test_refuting_at_alpha_per_edge_fails_a_narrow_band():
    """The old rule (a refutation when either edge's sign test rejects at alpha) says "refuted" about twice alpha
    when the band is a point (the two edges' tests are the two sides of one two-sided test)."""
    def union_at_alpha(x):
        x = np.asarray(x)
        p = lambda count: stats.binom.sf(count - 1, x.shape[-1], 0.5)  # noqa: E731
        return p((x > 0).sum(-1)) * 0 + 1.0, np.minimum(p((x < 0).sum(-1)), p((x > 0).sum(-1)))

    case = validation.Case("median in a point, alpha per edge", SimpleNamespace(tests=union_at_alpha),
                           lambda rng, noise, sims, n: (noise(rng, (sims, n)),), (400,))
    validation.CASES.append(case)
    try:
        row = validation.cell(case, "normal", 400)
    finally:
        validation.CASES.remove(case)
    assert row["false_refuted"]["rate"] > ALPHA + validation.margin()


def test_median_in_band_refutes_exactly_when_its_95_percent_interval_misses_the_band():
    """Estimate, interval and tests are of one quantity, the median: "supported" is the 90% interval inside the band,
    "refuted" the 95% one (``refute_ci``) outside it, and p_refute is twice the smaller edge's p (at most 1)."""
    from resclaims.decide import procedures
    from resclaims.decide.stats import sign_test

    rng = np.random.default_rng(0)
    band = (-0.1, 0.1)
    procedure = procedures.median_in_band(band)
    verdicts = set()
    for n in (5, 6, 8, 16, 40):
        for _ in range(200):
            x = rng.normal(rng.normal(0, 0.6), 1.0, n)
            d = procedure.decide(x)
            low, high = d.details["refute_ci"]
            assert (d.verdict == REFUTED) == (high < band[0] or low > band[1])
            assert (d.verdict == SUPPORTED) == (band[0] <= d.ci[0] and d.ci[1] <= band[1])
            at_low, at_high = sign_test(x, band[0]), sign_test(x, band[1])
            assert d.p_refute == pytest.approx(min(1.0, 2 * min(at_low.p_below, at_high.p_above)))
            assert d.estimate == pytest.approx(np.median(x))
            verdicts.add((n, d.verdict))
    assert (5, REFUTED) not in verdicts and (6, REFUTED) in verdicts  # 5 runs cannot refute at 0.025 per edge
