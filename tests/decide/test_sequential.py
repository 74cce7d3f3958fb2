"""Sequential seeds' exact group-sequential sign and binomial tests (resclaims.decide.sequential): both errors at
most alpha over all looks, checked by the exact recursion, brute-force enumeration, simulation and the validation
suite's written worlds.

confseq (beta-binomial mixture boundaries) would be the independent check; it does not install here (its sdist
needs Boost's C++ headers to build, and there is no wheel), so the exact recursion is checked against enumeration
and simulation instead, and nothing depends on it.
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest
from scipy import stats

from resclaims.decide import procedures, sequential as sq
from resclaims.decide.stats import ALPHA
from resclaims.decide.verdict import INCONCLUSIVE, REFUTED, SUPPORTED

SCHEDULES = [(5,), (5, 10), (5, 10, 20), (8, 16, 40), (25, 50, 100, 200, 400), (100, 200, 400), (3, 4, 7, 12)]
P0 = [0.5, 0.8, 0.2, 0.9]


@pytest.mark.parametrize("spending", sq.SPENDING)
@pytest.mark.parametrize("looks", SCHEDULES, ids=str)
def test_the_exact_type_one_error_is_at_most_alpha_at_every_look_both_ways(looks, spending):
    """Each decision's boundary null (p0 = 1/2 for both sign tests, share and 1 - share for the binomial's two):
    the probability of crossing by look k is at most alpha * spend(t_k), so at most alpha in all."""
    for p0 in P0:
        design = sq.Design(looks, spending=spending)
        cumulative = np.cumsum(sq.crossing(looks, design.counts(p0), p0))
        allowed = [sq.spent(n / looks[-1], ALPHA, spending) for n in looks]
        assert np.all(cumulative <= np.asarray(allowed) + 1e-12), (p0, cumulative, allowed)
        assert design.error(p0) <= ALPHA + 1e-12
        for p in (p0 - 0.1, p0 - 0.3):  # inside the null (a median below the boundary, a smaller share): less
            if p > 0:
                assert design.error(p0, p) <= design.error(p0) + 1e-12


@pytest.mark.parametrize("spending", sq.SPENDING)
def test_each_critical_count_is_the_smallest_the_spending_allows(spending):
    """One fewer at any look (the earlier looks as designed) would spend more than allowed there."""
    for looks, p0 in itertools.product(SCHEDULES[:5], P0):
        counts = sq.critical_counts(looks, p0, ALPHA, spending)
        for k, c in enumerate(counts):
            if c == 0:
                continue
            lower = counts[:k] + (c - 1,) + (looks[-1] + 1,) * (len(looks) - k - 1)
            assert sq.crossing(looks, lower, p0)[:k + 1].sum() > sq.spent(looks[k] / looks[-1], ALPHA, spending)


def _enumerated(looks, counts, p):
    """The chance of first crossing at each look, by enumerating every sequence of runs (exact fractions)."""
    p = Fraction(p).limit_denominator(1000)
    out = [Fraction(0)] * len(looks)
    for runs in itertools.product((0, 1), repeat=looks[-1]):
        cumulative = np.cumsum(runs)
        weight = p ** int(cumulative[-1]) * (1 - p) ** (looks[-1] - int(cumulative[-1]))
        for k, (n, c) in enumerate(zip(looks, counts)):
            if cumulative[n - 1] >= c:
                out[k] += weight
                break
    return [float(v) for v in out]


@pytest.mark.parametrize("looks", [(5, 10), (3, 4, 7, 12), (5, 8, 13), (6, 12)], ids=str)
def test_the_recursion_agrees_with_brute_force_enumeration(looks):
    for p0, p in [(0.5, 0.5), (0.8, 0.8), (0.2, 0.2), (0.5, 0.7), (0.8, 0.95)]:
        counts = sq.Design(looks).counts(p0)
        assert np.allclose(sq.crossing(looks, counts, p), _enumerated(looks, counts, p), atol=1e-12)


def test_the_recursion_agrees_with_simulation():
    rng = np.random.default_rng(1)
    sims = 200_000
    for looks, p0 in [((5, 10, 20), 0.5), ((25, 50, 100), 0.5), ((8, 16, 40), 0.8), ((8, 16, 40), 0.2)]:
        design = sq.Design(looks)
        counts = sq.prefix_counts(rng.random((sims, looks[-1])) < p0, looks)
        first = sq.first_crossing(design, counts, p0)
        exact = sq.crossing(looks, design.counts(p0), p0)
        for k, rate in enumerate(exact):
            hits = int((first == k).sum())
            assert stats.binomtest(hits, sims, rate).pvalue > 1e-4 if rate > 0 else hits == 0, (looks, p0, k)


def test_one_look_is_the_fixed_test_exactly():
    """A design with one look decides as the fixed procedure does, on every data set."""
    rng = np.random.default_rng(2)
    for procedure, draw in [
        (procedures.exceeds(0.0), lambda n: (rng.normal(0.4, 1, (400, n)).round(1),)),
        (procedures.below_margin(1.0), lambda n: (rng.normal(0.6, 1, (400, n)),)),
        (procedures.exceeds_paired(), lambda n: (rng.normal(0.3, 1, (400, n)), rng.normal(0, 1, (400, n)))),
        (procedures.median_in_band((4.0, 7.0)), lambda n: (rng.normal(5.5, 2, (400, n)),)),
        (procedures.share_in_band((4.0, 7.0), 0.8), lambda n: (rng.normal(5.5, 1.2, (400, n)),)),
        (procedures.increasing([5.0, 10.0, 20.0]), lambda n: (rng.normal(0, 1, (400, n, 3)) + [0, 0.2, 0.5],)),
    ]:
        for n in (5, 9, 16, 40):
            data = draw(n)
            out = sq.looked(sq.tests_of(procedure), sq.Design((n,)), *data)
            p_support, p_refute = procedure.tests(*data)
            fixed_s, fixed_r = p_support <= ALPHA, (p_support > ALPHA) & (p_refute <= ALPHA)
            assert np.array_equal(out.supported, fixed_s) and np.array_equal(out.refuted, fixed_r), procedure.name
            assert np.allclose(out.p_support, p_support) and np.allclose(out.p_refute, p_refute), procedure.name


def test_stagewise_p_values_are_valid_with_both_stops_by_enumeration():
    """Runs above (+), below (-) or on (0) the boundary, every sequence enumerated at the boundary null with ties:
    whichever decision stops the claim, P(the supporting p <= u) <= u at every u, and the same for refuting."""
    looks, tie = (3, 6, 9), 0.2
    design = sq.Design(looks)
    weights = {1: (1 - tie) / 2, -1: (1 - tie) / 2, 0: tie}
    mass_support: dict[float, float] = {}
    mass_refute: dict[float, float] = {}
    procedure = procedures.exceeds(0.0)
    runs = np.array(list(itertools.product((1, -1, 0), repeat=looks[-1])), dtype=float)
    out = sq.looked(sq.tests_of(procedure), design, runs)
    weight = np.prod(np.vectorize(weights.get)(runs.astype(int)), axis=1)
    for p_s, p_r, w in zip(out.p_support, out.p_refute, weight):
        mass_support[round(float(p_s), 12)] = mass_support.get(round(float(p_s), 12), 0.0) + w
        mass_refute[round(float(p_r), 12)] = mass_refute.get(round(float(p_r), 12), 0.0) + w
    assert np.isclose(weight.sum(), 1.0)
    for mass in (mass_support, mass_refute):
        levels = sorted(mass)
        cumulative = np.cumsum([mass[u] for u in levels])
        assert np.all(cumulative <= np.asarray(levels) + 1e-12)
    decided = out.supported | out.refuted
    assert weight[out.supported].sum() <= ALPHA and weight[out.refuted].sum() <= ALPHA and decided.any()


def test_a_claim_is_decided_only_at_a_planned_look_and_keeps_its_look():
    design = sq.Design((5, 10, 20))
    x = np.r_[np.ones(10), -np.ones(10)]  # every one of the first 10 above 0: crosses at look 2, then falls
    with pytest.raises(ValueError, match="not a planned look"):
        sq.decide(procedures.exceeds(0.0), design, x[:7])
    first = sq.decide(procedures.exceeds(0.0), design, x[:5])
    assert first.verdict == INCONCLUSIVE and first.details["sequential"]["continue"]
    at_two, at_three = (sq.decide(procedures.exceeds(0.0), design, x[:n]) for n in (10, 20))
    assert at_two.verdict == at_three.verdict == SUPPORTED
    assert at_three.details["sequential"]["look"] == 2 and at_three.details["sequential"]["n"] == 10
    assert at_three.p_value == at_two.p_value <= ALPHA
    refuted = sq.decide(procedures.exceeds(0.0), design, -np.ones(20))
    assert refuted.verdict == REFUTED and refuted.details["sequential"]["look"] == 2
    last = sq.decide(procedures.exceeds(0.0), design, np.tile([1.0, -1.0], 10))
    assert last.verdict == INCONCLUSIVE and not last.details["sequential"]["continue"]


def test_a_procedure_without_an_exact_sequential_form_says_so():
    from resclaims.families import zero_identity

    assert sq.tests_of(zero_identity.variance_ratio_above_one) is None
    with pytest.raises(ValueError, match="no exact sequential form"):
        sq.decide(zero_identity.variance_ratio_above_one, sq.Design((5,)), np.zeros(5), np.zeros(5))


def test_stages_double_from_the_tier_up_to_the_budget():
    assert sq.stages(5, 20) == (5, 10, 20)
    assert sq.stages(16, 40) == (8, 16, 40)
    assert sq.stages(400, 400) == (100, 200, 400)
    assert sq.stages(400, 800) == (100, 200, 400, 800)
    assert sq.stages(5, 5) == (5,)
    assert sq.stages(16, 20) == (8, 16, 20)
    assert sq.stages(400, 50) == (50,)
    with pytest.raises(ValueError, match="cannot hold a single stage"):
        sq.stages(5, 4)


def test_a_cap_on_looks_keeps_the_first_look_the_tiers_n_and_the_budget():
    # seven looks (8, 16, ..., 256, 400) under the cap of six: the late ones before the budget go, not the first
    assert sq.stages(16, 400) == (8, 16, 32, 64, 128, 400)
    assert sq.stages(5, 400) == (5, 10, 20, 40, 80, 400)  # the tier's n is the first look, kept
    assert sq.stages(10, 400)[0] == 5 and 10 in sq.stages(10, 400)
    assert sq.stages(400, 5000) == (100, 200, 400, 800, 1600, 5000)
    assert all(len(sq.stages(t, b)) <= sq.MOST_LOOKS for t in range(5, 60) for b in range(5, 2000, 37))


# -- the validation suite's written worlds, decided sequentially ---------------------------------------
def _cases():
    from resclaims.report import validation

    return [c for c in validation.CASES if sq.tests_of(c.procedure) is not None]


@pytest.mark.parametrize("looks", [(5, 10, 20), (8, 16, 40), (100, 200, 400)], ids=str)
def test_sequential_procedures_hold_both_errors_on_the_written_worlds(looks):
    """Every shared sign and binomial procedure of the validation suite, decided at the looks of a budget, in every
    world (normal, t3, skew both ways, lognormal, censoring, ties and zeros), with the claim on its boundary:
    false "supported" and false "refuted" each at most alpha plus the suite's Monte Carlo margin."""
    from resclaims.report import validation

    design, sims = sq.Design(looks), validation.SIMS
    limit = ALPHA + validation.margin(sims=sims)
    bad = []
    for i, case in enumerate(_cases()):
        for j, (world, noise) in enumerate(validation.WORLDS.items()):
            rng = np.random.default_rng([11, looks[-1], i, j])
            out = sq.looked(sq.tests_of(case.procedure), design, *case.draw(rng, noise, sims, looks[-1]))
            rates = out.supported.mean(), out.refuted.mean()
            if max(rates[case.claim_true:]) > limit:  # a claim true in its band's middle: only "refuted" errs
                bad.append(f"{case.name} | {world}: supported {rates[0]:.4f}, refuted {rates[1]:.4f}")
    assert not bad, f"above {limit:.4f}:\n" + "\n".join(bad)


def test_deciding_at_one_look_agrees_with_the_whole_sequence_where_no_earlier_look_decided():
    rng = np.random.default_rng(5)
    design = sq.Design((5, 10, 20))
    for procedure in (procedures.exceeds(0.0), procedures.median_in_band((-0.5, 0.5)),
                      procedures.share_in_band((-1.0, 1.0), 0.6)):
        for _ in range(200):
            x = rng.normal(rng.choice([-0.8, 0.0, 0.4]), 1.0, 20)
            for n in design.looks:
                whole = sq.decide(procedure, design, x[:n])
                if whole.details["sequential"]["look"] == design.index(n) + 1:  # not decided earlier
                    here = sq.decide_at(procedure, design, rng.permutation(x[:n]))  # any order
                    assert (here.verdict, here.p_value, here.p_refute) == (whole.verdict, whole.p_value,
                                                                            whole.p_refute)
                    assert here.details["sequential"] == whole.details["sequential"]


@pytest.mark.parametrize("m", [2, 3])
def test_holms_adjusted_verdict_never_contradicts_a_sequential_decision(m, monkeypatch):
    """Families of m confirmatory sign-test claims, each designed at alpha / m (Holm's first step): whatever one is
    decided at its look, Holm's adjusted verdict on the stage-wise p-values says the same; a claim that continues is
    inconclusive after Holm whatever its interim p."""
    import gc

    from resclaims.decide.multiplicity import adjust
    from resclaims.decide.verdict import ClaimResult

    monkeypatch.setattr(gc, "collect", lambda *args: 0)  # statsmodels' multipletests collects garbage at every call
    rng = np.random.default_rng(25 + m)
    design, procedure = sq.Design((5, 10, 20, 40), ALPHA / m), procedures.exceeds(0.0)
    shifts = rng.choice([-1.0, -0.3, 0.0, 0.3, 1.0], size=(1000, m))  # each claim its own world, per data set
    runs = rng.standard_normal((1000, m, 40)) + shifts[..., None]
    out = sq.looked(sq.tests_of(procedure), design, runs, upto=2)  # at look 3 of 4: some claims continue
    claims = [ClaimResult(f"C{j}.{i}", "", f"family {j}", SUPPORTED if out.supported[j, i] else REFUTED if
                          out.refuted[j, i] else INCONCLUSIVE, 0.0, (0.0, 0.0), float(out.p_support[j, i]), 20, "",
                          "", "quick", "", {"sequential": {"continue": bool(out.look[j, i] < 0)}},
                          float(out.p_refute[j, i]), family="confirmatory") for j in range(len(runs)) for i in range(m)]
    adjusted, _ = adjust(claims)
    for claim in adjusted:
        if claim.verdict != INCONCLUSIVE:
            assert claim.verdict_adjusted == claim.verdict, claim
        if claim.details["sequential"]["continue"]:
            assert claim.verdict_adjusted == INCONCLUSIVE, claim
    pairs = {(c.verdict, c.verdict_adjusted) for c in adjusted}
    assert {(SUPPORTED, SUPPORTED), (REFUTED, REFUTED), (INCONCLUSIVE, INCONCLUSIVE)} <= pairs
    continuing = [c for c in adjusted if c.details["sequential"]["continue"]]
    assert continuing and any(min(c.p_adjusted, c.p_refute_adjusted) <= ALPHA for c in continuing)  # Holm alone
    # would have decided some of them at an interim look
