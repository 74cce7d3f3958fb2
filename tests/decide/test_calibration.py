"""Calibration on tiny arrays and toy procedures whose rates can be worked out with a pencil."""

import json
import math

import numpy as np
import pytest
from scipy import stats

from resclaims.decide import calibration, design
from resclaims.decide.calibration import (
    Calibration,
    Rate,
    band_null,
    calibrate,
    exchange,
    geometric_grid,
    has_power,
    paired_scale,
    paired_shift,
    rejection_rate,
    resample,
    rescaled,
    smallest_detectable,
)
from resclaims.decide.verdict import INCONCLUSIVE, SUPPORTED, Decision


def test_rate_and_its_clopper_pearson_interval():
    r = Rate(5, 100)
    assert r.rate == 0.05
    assert r.ci == pytest.approx(tuple(stats.binomtest(5, 100).proportion_ci()))
    assert Rate(0, 10).ci[0] == 0.0 and Rate(10, 10).ci[1] == 1.0
    assert str(Rate(1, 4)).startswith("0.250 [")


def coin(rng):
    return (rng.random(),)


def above_half(x):
    return SUPPORTED if x > 0.5 else INCONCLUSIVE


def test_rejection_rate_counts_supported_and_is_reproducible():
    first = rejection_rate(above_half, coin, 400, seed=1)
    assert first == rejection_rate(above_half, coin, 400, seed=1)
    assert first.n == 400 and first.ci[0] < 0.5 < first.ci[1]
    assert rejection_rate(lambda x: Decision(SUPPORTED, 0.0, (0.0, 0.0)), coin, 7, seed=0).k == 7  # Decisions count too


def test_exchange_swaps_whole_pairs_and_keeps_the_data():
    a, b = np.array([1.0, 2.0, 3.0, 4.0]), np.array([10.0, 20.0, 30.0, 40.0])
    simulate = exchange(a, b)
    rng = np.random.default_rng(0)
    swaps = []
    for _ in range(200):
        x, y = simulate(rng)
        np.testing.assert_array_equal(x + y, a + b)  # each pair keeps its members
        assert set(np.abs(x - y)) == set(np.abs(a - b))  # the differences only flip sign
        swaps.append(x != a)
    assert 0.4 < np.mean(swaps) < 0.6  # each member swaps with probability 1/2


def test_resample_keeps_rows_paired():
    a = np.arange(10.0)
    x, y = resample(a, a + 1)(np.random.default_rng(0))
    np.testing.assert_array_equal(y - x, np.ones(10))
    assert set(x) <= set(a)


def test_paired_shift_moves_the_difference_and_keeps_the_sum():
    a, b = np.array([3.0, 5.0, 4.0, 9.0]), np.array([1.0, 2.0, 2.0, 3.0])  # differences 2, 3, 2, 6: mean 3.25
    x, y = paired_shift(a, b)(0.5)(np.random.default_rng(0))
    assert set(np.round(x - y, 9)) <= {-0.75, 0.25, 3.25}  # each difference, less 3.25, plus 0.5
    assert set(np.round(x + y, 9)) <= set(a + b)  # sums kept
    median_centred = paired_shift(a, b, np.median)(0.0)(np.random.default_rng(0))  # median 2.5
    assert set(np.round(median_centred[0] - median_centred[1], 9)) <= {-0.5, 0.5, 3.5}


def test_paired_scale_sets_the_sd_ratio():
    a, b = np.array([1.0, 2.0, 4.0, 8.0]), np.array([0.0, 1.0, 0.0, 1.0])
    scale = paired_scale(a, b)(3.0)
    x, y = scale(np.random.default_rng(2))
    assert set(np.round(y, 9)) <= set(b)
    # before resampling, the world's ratio is exactly 3: every resample draws from these values
    world = a.mean() + 3.0 * (a - a.mean()) * (np.std(b) / np.std(a))
    assert np.std(world) / np.std(b) == pytest.approx(3.0) and set(np.round(x, 9)) <= set(np.round(world, 9))


def test_rescaled_finds_the_factor_or_says_it_cannot():
    (scaled,), factor = rescaled((np.array([1.0, 2.0, 3.0]),), 0, np.mean, 4.0)
    assert factor == pytest.approx(2.0, rel=1e-6) and np.mean(scaled) == pytest.approx(4.0, rel=1e-6)
    censored = lambda x: min(np.mean(x), 2.5)  # noqa: E731  (a statistic a budget cuts off at 2.5)
    assert rescaled((np.array([1.0, 2.0, 3.0]),), 0, censored, 3.0) is None
    # only the chosen member is scaled; a decreasing statistic works too
    (a, b), factor = rescaled((np.array([2.0, 2.0]), np.array([1.0, 3.0])), 1, lambda a, b: a.mean() / b.mean(), 0.5)
    np.testing.assert_array_equal(a, [2.0, 2.0])
    np.testing.assert_allclose(b, [2.0, 6.0], rtol=1e-6)
    assert factor == pytest.approx(2.0, rel=1e-6)


def test_band_null_uses_the_nearer_edge_unless_it_is_out_of_reach():
    x = np.array([1.0, 2.0, 3.0])  # mean 2
    _, edge, factor = band_null((x,), 0, np.mean, (0.5, 3.0), estimate=2.0)
    assert edge == 3.0 and factor == pytest.approx(1.5, rel=1e-6)
    _, edge, _ = band_null((x,), 0, lambda v: min(np.mean(v), 2.5), (0.5, 3.0), estimate=2.0)
    assert edge == 0.5  # 3.0 is past the cut-off: the other edge
    assert band_null((x,), 0, lambda v: 7.0, (0.5, 3.0), estimate=7.0) is None


class Counting:
    """A procedure with a fixed verdict that counts its calls."""

    def __init__(self, verdict):
        self.verdict, self.calls = verdict, 0

    def __call__(self, *data):
        self.calls += 1
        return self.verdict


def test_has_power_stops_once_decided():
    always = Counting(SUPPORTED)
    assert has_power(always, coin, 100, seed=0) and always.calls == 80  # 80 of 100 settle it
    never = Counting(INCONCLUSIVE)
    assert not has_power(never, coin, 100, seed=0) and never.calls == 21  # 21 misses rule 80 out


def test_smallest_detectable_bisects_the_grid():
    def effect(size):
        return lambda rng: (size,)

    def detects_from_0_3(size):
        return SUPPORTED if size >= 0.3 else INCONCLUSIVE

    grid = [0.1, 0.2, 0.4, 0.8]
    assert smallest_detectable(detects_from_0_3, effect, grid, 10, seed=0) == 0.4
    assert smallest_detectable(lambda s: INCONCLUSIVE, effect, grid, 10, seed=0) is None
    assert smallest_detectable(lambda s: SUPPORTED, effect, grid, 10, seed=0) == 0.1


def all_positive(a, b):
    """Supported when all three paired differences are positive: under exchange that is 1/8 of the time."""
    return SUPPORTED if np.all(a > b) else INCONCLUSIVE


def sign_test(a, b):
    """Exact one-sided sign test at alpha 0.05 (n = 10): its size is 11/1024 = 0.0107."""
    p = stats.binomtest(int(np.sum(a > b)), len(a), alternative="greater").pvalue
    return Decision(SUPPORTED if p < 0.05 else INCONCLUSIVE, float(np.mean(a - b)), (0.0, 0.0), p)


def test_calibrate_flags_a_procedure_that_fires_too_often():
    a, b = np.array([2.0, 3.0, 4.0]), np.array([1.0, 1.0, 1.0])
    result = calibrate("T1", all_positive, null=exchange(a, b), null_text="exchange", n_sims=400, seed=0)
    assert result.type_one.ci[0] < 0.125 < result.type_one.ci[1]
    assert result.defective and result.test_size is None  # no p-value: no test size


def test_calibrate_a_sign_test_type_one_power_and_detectable_effect():
    a, b = np.linspace(1.0, 2.0, 10), np.linspace(1.5, 0.5, 10)
    result = calibrate("T2", sign_test, null=exchange(a, b), null_text="exchange", n_sims=200, seed=0,
                       effect=paired_shift(a, b), stated_effect=10.0, effect_text="shift", grid=(0.5, 5.0, 50.0),
                       unit="u")
    assert result.type_one.ci[0] <= 11 / 1024 <= result.type_one.ci[1] and not result.defective
    assert result.test_size == result.type_one  # the verdict is the test's
    assert result.power.rate == 1.0  # every difference is positive once shifted by 10 (|a - b| <= 1)
    assert result.detectable == 5.0
    record = result.to_json()
    json.dumps(record, allow_nan=False)
    assert record["type_one"]["k"] == result.type_one.k and record["grid"] == [0.5, 5.0, 50.0]


def test_exact_claims_have_no_rates():
    result = calibration.exact("Z3.parameters")
    assert result.exact and not result.defective and result.to_json()["type_one"] is None
    assert "exact, no sampling" in result.null


def test_geometric_grid():
    assert geometric_grid(1.0, 4.0, 2.0) == (1.0, 2.0, 4.0)
    grid = geometric_grid(0.05, 8.0)
    assert grid[0] == 0.05 and grid[-1] <= 8.0 and grid[-1] * math.sqrt(2) > 8.0
    assert all(b / a == pytest.approx(math.sqrt(2)) for a, b in zip(grid, grid[1:]))


def test_a_calibration_is_a_frozen_record():
    with pytest.raises(AttributeError):
        Calibration("X", null="n").claim_id = "Y"


def test_band_worlds_names_the_edge_and_the_factor():
    worlds = calibration.band_worlds((np.array([1.0, 2.0, 3.0]),), 0, np.mean, (2.5, 4.0), stated=3.0, what="x")
    assert worlds["null_label"] == "at the band edge 2.5" and "multiplied by 1.25" in worlds["null_text"]
    (x,) = worlds["null"](np.random.default_rng(0))
    assert set(np.round(x, 6)) <= {1.25, 2.5, 3.75}  # runs of the rescaled sample
    (y,) = worlds["effect"](3.0)(np.random.default_rng(0))
    assert set(np.round(y, 6)) <= {1.5, 3.0, 4.5}
    assert calibration.band_worlds((np.ones(3),), 0, lambda v: 9.0, (2.5, 4.0), 3.0, "x")["null"] is None


def test_reflect_flips_about_the_centre():
    x = np.array([1.0, 2.0, 5.0])
    (y,) = calibration.reflect(x, 2.0)(np.random.default_rng(0))
    assert all(v in (a, 4.0 - a) for v, a in zip(y, x))  # 1 <-> 3, 2 stays, 5 <-> -1


def test_located_moves_the_centre_and_keeps_the_spread():
    x = np.array([1.0, 2.0, 6.0])  # mean 3, median 2
    (y,) = calibration.located(x)(10.0)(np.random.default_rng(0))
    assert set(y) <= {8.0, 9.0, 13.0}
    (z,) = calibration.located(x, np.median)(0.0)(np.random.default_rng(0))
    assert set(z) <= {-1.0, 0.0, 4.0}


def test_row_nulls_and_trends():
    rows = np.array([[1.0, 2.0, 3.0], [4.0, 6.0, 8.0]])
    (p,) = calibration.permute_rows(rows)(np.random.default_rng(0))
    assert all(sorted(a) == sorted(b) for a, b in zip(p, rows))  # each run keeps its values
    positions = np.array([5.0, 10.0, 20.0])
    (t,) = calibration.row_trend(rows[:1], positions)(0.5)(np.random.default_rng(1))  # one run: its own trend
    assert np.polyfit(positions, t[0], 1)[0] == pytest.approx(0.5)
    assert t[0].mean() == pytest.approx(2.0)  # the level kept


def test_rescaled_by_a_shift():
    (x,), c = rescaled((np.array([1.0, 2.0, 3.0]),), 0, np.mean, 0.0, how="shift")
    assert c == pytest.approx(-2.0) and np.mean(x) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="how"):
        rescaled((np.ones(2),), 0, np.mean, 1.0, how="stretch")


def test_a_stated_effect_no_world_can_have_is_said_so():
    result = calibrate("T3", above_half, null=coin, null_text="coin", n_sims=10, seed=0,
                       effect=lambda size: None, stated_effect=2.0, effect_text="rescaled")
    assert result.power is None and "no world has the value 2" in result.effect


def _paired_claim(stated):
    from resclaims.decide import procedures
    from resclaims.decide.claims import Claim

    return Claim("U9", source="mine", claim="a exceeds b", statistic="median paired difference", unit="points",
                 procedure=procedures.exceeds_paired(), stated=stated)


def _power_at(claim, n, world, hit, sims=400):
    rng = np.random.default_rng(99)
    return np.mean([hit(claim.procedure.decide(*world(rng, n))) for _ in range(sims)])


def test_seeds_for_power_at_a_stated_effect_reaches_the_power_it_names():
    rng = np.random.default_rng(0)
    b = rng.normal(10, 1, 6)
    a = b + rng.normal(0.2, 1.0, 6)
    claim = _paired_claim(stated=0.8)
    seeds, how = design.seeds_for_power(claim, claim.procedure, a, b, seed=1)
    assert seeds is not None and seeds > 6 and "stated 0.8" in how
    world = claim.procedure.calibration(claim, a, b)["effect"](0.8)
    assert _power_at(claim, seeds, world, calibration.supported) >= 0.72  # 0.8, less Monte Carlo error
    assert _power_at(claim, max(seeds // 2, 5), world, calibration.supported) < 0.8


def test_seeds_for_power_without_a_stated_effect_aims_at_a_verdict_either_way():
    rng = np.random.default_rng(0)
    b = rng.normal(10, 1, 8)
    a = b + rng.normal(-0.6, 1.0, 8)  # the claim looks false: more seeds would refute it
    claim = _paired_claim(stated=None)
    seeds, how = design.seeds_for_power(claim, claim.procedure, a, b, seed=1)
    assert seeds is not None and "either way" in how and "no effect stated" in how
    decisive = lambda outcome: calibration.verdict_of(outcome) != INCONCLUSIVE  # noqa: E731
    assert _power_at(claim, seeds, design._resampled((a, b)), decisive) >= 0.72


def test_seeds_for_power_of_a_slow_bootstrap_is_the_normal_approximation_or_none_when_censored():
    decision = Decision(INCONCLUSIVE, 2.0, (1.0, 3.0), 0.3, details={"band": [2.5, 4.0]})
    seeds, how = design._normal_approximation(decision, 100, 0.8)
    se = 2.0 / (2 * stats.norm.ppf(0.95))
    assert seeds == math.ceil(100 * ((stats.norm.ppf(0.95) + stats.norm.ppf(0.8)) * se / 0.5) ** 2)
    assert "normal approximation" in how
    censored = Decision(INCONCLUSIVE, 3.1, (2.9, 3.2), None, details={"band": [2.4, 3.5], "censored": True})
    assert design._normal_approximation(censored, 400, 0.8)[0] is None


# -- the gate (issue 25, item 5): it flags a procedure whose type-I error is credibly above 0.06 -----------------------
def _flag_probability(rate: float) -> float:
    """P(the gate flags) at a true ``rate``, from the binomial, through the gate's own code: ``Calibration.defective``
    on every count the design can end with (at a look of ``null_rate``, or after NULL_SIMS nulls)."""
    flags = lambda k, sims: Calibration("X", null="n", type_one=Rate(k, sims)).defective  # noqa: E731
    counts, done, flagged = np.ones(1), 0, 0.0
    for n_at, f in [*calibration.LOOKS, (calibration.NULL_SIMS, calibration.NULL_SIMS)]:
        counts = np.convolve(counts, stats.binom.pmf(np.arange(n_at - done + 1), n_at - done, rate))
        done = n_at
        ends = np.arange(min(f, len(counts) - 1) + 1)  # the counts that stop here
        flagged += sum(counts[k] for k in ends if flags(int(k), n_at))
        counts[ends] = 0.0
    return float(flagged)


def test_the_gate_flags_a_true_rate_of_eight_percent_nine_times_in_ten_and_a_valid_procedure_almost_never():
    at_8, at_6, at_5 = (_flag_probability(r) for r in (0.08, 0.06, 0.05))
    assert at_8 >= 0.9 and at_8 == pytest.approx(calibration.gate_power(0.08), abs=1e-9)
    assert at_6 <= calibration.GATE_LEVEL  # a rate of exactly alpha + 1 point: the gate's own false alarm
    assert at_5 <= 1e-3  # a procedure at alpha: about 3 in 10,000
    assert calibration.gate_power(0.08, looks=()) >= at_8  # the looks only let a procedure pass


def test_the_gate_has_enough_nulls_and_the_looks_cost_little_power():
    n = calibration.NULL_SIMS
    no_look = lambda sims: calibration.gate_power(0.08, sims, looks=())  # noqa: E731
    assert no_look(n) >= 0.9 and no_look(1400) < 0.9  # the smallest round number that reaches 0.9
    assert no_look(n) - calibration.gate_power(0.08) < 0.005
    assert calibration.gate_critical(n) == 106  # 106 of 1,500 (7.07%): P(Binomial(1500, 0.06) >= 106) <= 0.05


def _coin_procedure(rate: float):
    """Says supported with probability ``rate`` on a uniform draw: decide and its vectorised tests."""
    decide = lambda u: Decision(SUPPORTED if u < rate else INCONCLUSIVE, float(u), (0.0, 1.0),  # noqa: E731
                                0.0 if u < rate else 1.0)
    tests = lambda u: (np.where(np.asarray(u) < rate, 0.0, 1.0), np.ones(np.shape(u)))  # noqa: E731
    return decide, tests


@pytest.mark.parametrize("rate, flagged_at_least, flagged_at_most", [(0.08, 85, 100), (0.05, 0, 0)])
def test_a_broken_procedure_is_flagged_across_seeds_and_a_correct_one_passes(rate, flagged_at_least, flagged_at_most):
    """A procedure that says supported 8% of the time under the null is flagged on about 92 of 100 seeds (the
    exact power, 0.914, is checked above; 85 is 2.3 SDs below it), one at 5% on none. The old gate (the whole 95%
    interval above 0.06, over 200 nulls) flagged 0.08 on 18% of seeds."""
    decide, tests = _coin_procedure(rate)
    flagged = [calibrate("B", decide, null=coin, null_text="coin", n_sims=10, seed=seed, tests=tests,
                         null_sims=calibration.NULL_SIMS).defective for seed in range(100)]
    assert flagged_at_least <= sum(flagged) <= flagged_at_most


def test_the_vectorised_and_the_per_data_set_paths_give_the_same_rates():
    decide, tests = _coin_procedure(0.08)
    one_by_one = calibrate("B", decide, null=coin, null_text="coin", n_sims=50, seed=3, null_sims=calibration.NULL_SIMS,
                           effect=lambda size: coin, stated_effect=1.0)
    at_once = calibrate("B", decide, null=coin, null_text="coin", n_sims=50, seed=3, null_sims=calibration.NULL_SIMS,
                        effect=lambda size: coin, stated_effect=1.0, tests=tests)
    assert one_by_one.type_one == at_once.type_one and one_by_one.test_size == at_once.test_size
    assert one_by_one.power == at_once.power and one_by_one.type_one.n == calibration.NULL_SIMS


@pytest.mark.parametrize("rate, stops_at, defective", [(0.01, 300, False), (0.045, 750, False), (0.1, 1500, True)])
def test_the_looks_stop_a_procedure_below_alpha_early(rate, stops_at, defective):
    decide, tests = _coin_procedure(rate)
    result = calibrate("B", decide, null=coin, null_text="coin", n_sims=10, seed=0, tests=tests,
                       null_sims=calibration.NULL_SIMS)
    assert result.type_one.n == stops_at and result.defective == defective


def test_a_claims_calibration_uses_the_gates_nulls(monkeypatch):
    """The judge calibrates with NULL_SIMS nulls whatever the tier's power simulations, and a procedure at 9% fails."""
    from resclaims.decide import procedures
    from resclaims.decide.claims import Claim, DefectiveProcedure, Judge

    decide, tests = _coin_procedure(0.09)
    broken = procedures.custom("broken", "says supported 9% of the time", lambda x: decide(float(x[0])),
                               lambda claim, x: {"null": lambda rng: (np.array([rng.random()]),), "null_text": "u"},
                               tests=lambda x: tests(np.asarray(x)[..., 0]))
    claim = Claim("U7", source="mine", claim="anything", statistic="u", procedure=broken)
    recorded = []
    judge = Judge(tier="quick", report=type("R", (), {"add_calibration": lambda self, c: recorded.append(c),
                                                      "record": lambda self, r: None})(),
                  calibration_seed=lambda claim_id: 11, expect=lambda reason, raises: None, n_sims=20)
    with pytest.raises(DefectiveProcedure, match="credibly above"):
        judge.record(claim, np.array([0.5]))
    assert recorded[0].type_one.n == calibration.NULL_SIMS and recorded[0].n_sims == 20


def test_a_sign_test_of_reflected_or_exchanged_runs_is_exact_by_construction():
    """Its null rate is the binomial tail, at most alpha whatever the data: the calibration says so, gives the rate,
    and the simulated rate agrees with it (the gate cannot flag it: that is the procedure being valid)."""
    from resclaims.decide import procedures
    from resclaims.decide.claims import Claim
    from resclaims.report.calibration_text import calibration_section

    rng = np.random.default_rng(4)
    a, b = rng.normal(1.0, 1.0, 10), rng.normal(0.0, 1.0, 10)
    claim = Claim("U8", source="mine", claim="a beats b", statistic="d", procedure=procedures.exceeds_paired())
    worlds = claim.procedure.calibration(claim, a, b)
    assert worlds["exact_rate"] == pytest.approx(11 / 1024)  # 9 or 10 of 10 positive: the sign test's size at n = 10
    assert "exact by construction" in worlds["construction"]
    result = calibrate("U8", claim.procedure.decide, n_sims=20, seed=0, null_sims=calibration.NULL_SIMS,
                       tests=claim.procedure.tests, **worlds)
    assert result.by_construction and result.type_one.ci[0] <= 11 / 1024 <= result.type_one.ci[1]
    with_a_zero = procedures.exceeds(0.0).calibration(claim, np.r_[np.arange(1.0, 10.0), 0.0])
    assert with_a_zero["exact_rate"] == pytest.approx(stats.binom.sf(8, 9, 0.5))  # 9 runs off the boundary
    assert procedures.below_margin(1.0).calibration(claim, np.arange(10.0))["exact_rate"] <= 0.05
    about = Claim("U9", source="mine", claim="x is about 5.5", statistic="x", stated=5.5,
                  procedure=procedures.median_in_band((4.0, 7.0)))
    band = about.procedure.calibration(about, np.linspace(5.0, 8.0, 9))
    assert band["exact_rate"] <= 0.05 and "probability" in band["construction"]
    document = {"calibration": [result.to_json()], "claims": []}
    (row,) = calibration_section(document).rows
    assert row[2].startswith("exact by construction: <= 0.0107; simulated") and "defect" not in row[2]
    assert not procedures.increasing([1.0, 2.0, 3.0]).calibration(claim, np.ones((5, 3))).get("construction")


def test_an_old_calibration_record_without_the_new_fields_reads_back():
    record = calibrate("T2", sign_test, null=exchange(np.ones(10), np.zeros(10)), null_text="x", n_sims=20,
                       seed=0).to_json()
    for key in ("construction", "exact_rate", "gate"):
        record.pop(key)
    assert Calibration.from_json(record).construction is None
