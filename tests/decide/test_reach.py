"""Reach (issue 25, item 2): the fewest runs at which a procedure can reach a verdict, after Holm in its family.

Each shared procedure's best attainable p is checked against brute force (its own decision on every extreme data
set, and scipy's binomtest); the judge refuses a confirmatory claim below its reach in one line; ``plan`` prints
the reach of every confirmatory claim and warns where n is below it; a fill trains a request that extends another
(K1.consistency's 44 seeds of K1's pair) after every other request; K1.consistency's design n is 44.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binomtest

from resclaims.decide import procedures, stats
from resclaims.decide.claims import BelowReach, Claim, Judge, below_reach
from resclaims.plugin.costs import Need, Plan
from resclaims.plugin.plan import plan
from resclaims.decide.multiplicity import Families, reach_levels
from resclaims.run.seeding import DEFAULT_BASE_SEED, derive_seeds

ROOT = Path(__file__).resolve().parents[2]
ALPHA = stats.ALPHA
LEVELS = (ALPHA, ALPHA / 2, ALPHA / 3, ALPHA / 5, ALPHA / 6)


def sides(n: int, boundary: float = 0.0):
    """Every sign pattern's count: k runs above ``boundary`` and n - k below."""
    for k in range(n + 1):
        yield np.r_[np.full(k, boundary + 1.0), np.full(n - k, boundary - 1.0)]


def band_data(n: int, band: tuple[float, float]):
    """Every count of runs below, inside and beyond ``band``."""
    for below, inside in itertools.product(range(n + 1), repeat=2):
        if below + inside <= n:
            yield np.r_[np.full(below, band[0] - 1), np.full(inside, np.mean(band)), np.full(n - below - inside,
                                                                                                band[1] + 1)]


def brute(procedure, data_sets) -> tuple[float, float]:
    """The smallest p of each test the procedure's own decision gives over ``data_sets``."""
    decisions = [procedure(*d) for d in data_sets]
    return min(d.p_value for d in decisions), min(d.p_refute for d in decisions)


TRENDS = procedures.increasing([5.0, 10.0, 20.0])
CASES = {  # procedure -> every extreme data set at n runs
    "exceeds_paired": (procedures.exceeds_paired(), lambda n: ((x, np.zeros(n)) for x in sides(n))),
    "exceeds": (procedures.exceeds(-1.0), lambda n: ((x,) for x in sides(n, -1.0))),
    "below_margin": (procedures.below_margin(1.0), lambda n: ((x,) for x in sides(n, 1.0))),
    "increasing": (TRENDS, lambda n: ((np.outer(x, [1.0, 2.0, 4.0]),) for x in sides(n))),
    "median_in_band": (procedures.median_in_band((4.0, 7.0)), lambda n: ((x,) for x in band_data(n, (4.0, 7.0)))),
    "share_in_band": (procedures.share_in_band((4.0, 7.0), 0.8),
                      lambda n: ((np.r_[np.full(k, 5.0), np.full(n - k, 9.0)],) for k in range(n + 1))),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_best_p_is_the_procedure_s_own_smallest_p(name):
    procedure, data = CASES[name]
    for n in range(1, 13):
        assert procedure.best_p(n) == pytest.approx(brute(procedure, data(n)), rel=1e-9), (name, n)


def test_the_best_p_is_scipy_s_binomial_test_with_every_run_on_one_side():
    for n in range(1, 30):
        sign = binomtest(n, n, 0.5, alternative="greater").pvalue
        assert procedures.sign_best_p(n) == pytest.approx((sign, sign))
        share = procedures.share_best_p(0.8)(n)
        assert share == pytest.approx((binomtest(n, n, 0.8, alternative="greater").pvalue,
                                       binomtest(0, n, 0.8, alternative="less").pvalue))


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_reach_is_the_fewest_runs_at_which_some_data_decide(name):
    procedure, data = CASES[name]
    smallest = {n: brute(procedure, data(n)) for n in range(1, 26)}
    for level in LEVELS:
        expected = tuple(min(n for n, p in smallest.items() if p[i] <= level) for i in (0, 1))
        assert procedures.reach(procedure, level) == expected, (name, level)


def test_reach_of_a_procedure_without_a_best_p_is_not_computed_and_exact_needs_one_look():
    bootstrap = procedures.custom("a bootstrap", "BCa", lambda x: None)
    assert procedures.reach(bootstrap, ALPHA) == (None, None)
    assert procedures.reach(procedures.exact(), ALPHA / 5) == (1, 1)
    assert procedures.reach(procedures.share_in_band((0, 1), 1.0), ALPHA) == (None, 1)  # share 1: never supported


def test_the_band_s_refute_level_is_one_constant(monkeypatch):
    """alpha/2 per edge (median_in_band's refute rule) sets the reach of "refuted" through one constant."""
    band = procedures.median_in_band((4.0, 7.0))
    assert procedures.BAND_REFUTE_SHARE == 0.5
    assert procedures.reach(band, ALPHA) == (5, 6)  # 0.5^5 = 0.031 > 0.025: six runs beyond one edge
    monkeypatch.setattr(procedures, "BAND_REFUTE_SHARE", 1.0)
    assert procedures.reach(band, ALPHA) == (5, 5)  # at alpha per edge 0.031 <= 0.05 would do


def test_the_binomial_design_is_the_first_n_with_80_percent_power():
    level = ALPHA / 3
    assert stats.share_critical_count(44, 0.8, level) == 41
    assert stats.share_seeds_for_power(0.8, 0.95, level) == 44
    for n in range(1, 45):  # brute force: the exact test's power at 95% in the band, from every count
        critical = min((k for k in range(n + 1) if binomtest(k, n, 0.8, alternative="greater").pvalue <= level),
                       default=n + 1)
        assert critical == stats.share_critical_count(n, 0.8, level)
        power = sum(_pmf(k, n, 0.95) for k in range(critical, n + 1))
        assert (power >= 0.8) == (n == 44), (n, power)
    assert sum(_pmf(k, 44, 0.95) for k in range(41, 45)) == pytest.approx(0.8235, abs=1e-4)


def _pmf(k: int, n: int, p: float) -> float:
    from math import comb

    return comb(n, k) * p**k * (1 - p) ** (n - k)


# -- K1.consistency's design ---------------------------------------------------------------------------------
def k_module():
    from resclaims.report import catalogue

    return next(m for m in catalogue.load_modules(ROOT / "benchmarks") if m.__name__.endswith("resnet_vs_plain"))


def test_k1_consistency_has_its_own_design_of_44_seeds_at_the_full_tier_and_k1_s_at_the_quick():
    from resclaims.report import catalogue
    from resclaims.kernels import cifar

    k = k_module()
    confirmatory = [c.id for c in catalogue.declared_claims(k) if c.confirmatory]
    assert tuple(confirmatory) == k.HOLM_003  # the Holm family its design level divides alpha by
    assert k.CONSISTENCY_SEEDS == {"quick": cifar.K_TIERS["quick"].seeds, "full": 44}
    assert procedures.reach(k.K1_CONSISTENCY.procedure, ALPHA / 3) == (19, 3)
    assert below_reach(k.K1_CONSISTENCY, cifar.K_TIERS["full"].seeds, 3)  # the old design: never supported
    assert below_reach(k.K1_CONSISTENCY, 44, 3) is None
    assert "44 seeds" in k.K1_CONSISTENCY.procedure.test and "0.8^10 = 0.107" in k.K1_CONSISTENCY.procedure.test


def test_seed_i_is_the_same_however_many_seeds_are_asked_for():
    assert derive_seeds(DEFAULT_BASE_SEED, "K", 44)[:10] == derive_seeds(DEFAULT_BASE_SEED, "K", 10)


# -- families and the judge ----------------------------------------------------------------------------------
def claim(claim_id: str, *, confirmatory: bool = True, procedure=None, **fields) -> Claim:
    return Claim(claim_id, source="mine", claim="x", statistic="s", confirmatory=confirmatory,
                 procedure=procedure or procedures.exceeds(0.0), **fields)


def test_a_family_counts_its_undecided_and_decided_claims_and_not_those_without_a_verdict():
    a, b, c, other = claim("U1"), claim("U2"), claim("U3", protocol_bound=True), claim("U4", confirmatory=False)
    families = Families()
    for x in (a, b, c, other):
        families.add(x)
    assert families.size(a) == 3 and reach_levels(3) == (ALPHA / 3, ALPHA)
    families.exclude(c, "full tier only")
    families.decided(a)
    families.exclude(a, "skipped")  # a claim with a verdict stays in
    assert families.size(b) == 2 and families.size(claim("U9")) == 3  # a claim joins its own family


def test_a_variant_is_exploratory_and_leaves_the_family_the_plan_counted():
    a, b = claim("U1"), claim("U2")
    families = Families()
    families.add(a), families.add(b)
    planned = families.size(a)
    again = a.variant("source100")
    assert (again.id, again.confirmatory, again.procedure) == ("U1@source100", False, a.procedure)
    families.decided(again)  # the judge tells the families of every decision
    assert families.size(a) == planned == 2
    assert a.variant("own", confirmatory=True).confirmatory  # asked for: a member of its own

class Recorded:
    def __init__(self):
        self.claims = []

    def record(self, result):
        self.claims.append(result)

    def add_calibration(self, calibration):
        pass


def judge(families: Families, fidelity: str = "source protocol") -> Judge:
    return Judge(tier="full", report=Recorded(), calibration_seed=lambda i: 0, expect=lambda *a: None,
                 fidelity=fidelity, families=families, n_sims=40)


def test_the_judge_refuses_a_confirmatory_claim_below_its_reach_before_deciding_it():
    a, b = claim("U1"), claim("U2")
    families = Families()
    families.add(a), families.add(b)
    j = judge(families)
    with pytest.raises(BelowReach, match=r"^U1: n = 5 cannot reach supported after Holm in mine's family of 2 "
                                         r"\(level 0.05/2 = 0.025; its best p at n = 5 is 0.0312\): its procedure "
                                         r"\(x is above 0\) needs n >= 6: run with --seeds 6 or more$"):
        j.record(a, np.arange(1.0, 6.0))
    assert j.report.claims == []  # no verdict recorded
    assert j.record(a, np.append(np.arange(1.0, 6.0), np.nan)).verdict == "supported"  # a diverged run is planned
    assert j.record(claim("U5", confirmatory=False), np.arange(1.0, 3.0)).verdict == "inconclusive"  # exploratory


def test_a_protocol_bound_claim_at_a_reduced_protocol_needs_no_reach_and_leaves_its_family():
    bound, other = claim("U1", protocol_bound=True), claim("U2")
    families = Families()
    families.add(bound), families.add(other)
    result = judge(families, fidelity="reduced: fewer steps").record(bound, np.arange(1.0, 3.0))
    assert result.verdict == "full tier only" and families.size(other) == 1


SESSION = """
import numpy as np, pytest
from resclaims.decide import procedures
from resclaims.decide.claims import Claim
from resclaims.run.tiers import Tier

U1 = Claim("U1", source="mine", claim="x is above 0", statistic="x", procedure=procedures.exceeds(0.0),
           confirmatory=True)
U2 = Claim("U2", source="mine", claim="y is above 0", statistic="y", procedure=procedures.exceeds(0.0),
           confirmatory=True)
U3 = Claim("U3", source="mine", claim="z is above 0", statistic="z", procedure=procedures.exceeds(0.0),
           confirmatory=True, protocol_bound=True)

TIERS = Tier.everywhere(seeds=8, fidelity="reduced: a toy", protocol="toy")


@pytest.mark.quick
def test_U1(judge, settings):
    judge(U1, np.arange(1.0, settings.n_seeds({"quick": 8, "full": 8}) + 1), protocol="toy")


@pytest.mark.quick
def test_U2(judge, settings):
    judge(U2, np.arange(1.0, settings.n_seeds({"quick": 8, "full": 8}) + 1), protocol="toy")


@pytest.mark.quick
def test_U3(judge, settings):
    judge(U3, np.arange(1.0, settings.n_seeds({"quick": 8, "full": 8}) + 1), protocol="toy")
"""


@pytest.mark.usefixtures("validation_tables")
@pytest.mark.parametrize("args, outcome", [
    ((), {"passed": 2, "skipped": 1}),
    (("--seeds", "5"), {"failed": 2, "skipped": 1}),  # two claims in the family: alpha/2 needs 6 runs
    (("--seeds", "5", "-k", "U1 or U3"), {"passed": 1, "skipped": 1}),  # alone in its family: 5 runs reach alpha
])
def test_a_session_below_reach_fails_those_claims_with_one_line(pytester, monkeypatch, tmp_path, args, outcome):
    monkeypatch.setenv("RESCLAIMS_CACHE", str(tmp_path / "cache"))
    pytester.makepyfile(test_reach_toy=SESSION)
    result = pytester.runpytest("-p", "resclaims.plugin", "-p", "no:cacheprovider", "--report-dir", "r",
                                "--baseline", "none", "-rf", *args)
    result.assert_outcomes(**outcome)
    if outcome.get("failed"):
        result.stdout.fnmatch_lines(["*_ test_U1 _*", "U1: n = 5 cannot reach supported after Holm in mine's "
                                     "family of 2 (level 0.05/2 = 0.025; its best p at n = 5 is 0.0312): its procedure "
                                     "(x is above 0) needs n >= 6: run with --seeds 6 or more", "*_ test_U2 _*"])
        assert "Traceback" not in result.stdout.str() and "def test_U1" not in result.stdout.str()
        claims = json.loads((pytester.path / "r" / "summary.json").read_text())["claims"]
        assert [c["id"] for c in claims] == ["U3"]  # no verdict for the refused; U3 is full tier only


@pytest.mark.usefixtures("validation_tables")
def test_plan_prints_the_reach_of_each_confirmatory_claim_and_warns_below_it(pytester, monkeypatch, tmp_path):
    monkeypatch.setenv("RESCLAIMS_CACHE", str(tmp_path / "cache"))
    pytester.syspathinsert()
    pytester.makeconftest('pytest_plugins = ("resclaims.plugin",)\n')
    pytester.makepyfile(test_reach_toy=SESSION)
    found = plan(["test_reach_toy.py", "--seeds", "5"])
    rows = {r.claim.id: r for r in found.reaches}
    assert [(i, r.n, r.excluded) for i, r in rows.items()] == [("U1", 5, None), ("U2", 5, None),
                                                                ("U3", 5, "full tier only")]
    assert rows["U1"].m == rows["U2"].m == 2
    from resclaims.plugin.plan import reach_table

    table = reach_table(found.reaches).splitlines()
    assert table[3].split() == ["U1", "x", "is", "above", "0", "mine", "2", "5", "6", "5", "6", "5", "BELOW", "REACH"]
    assert "full tier only: not judged at this tier" in table[5]
    assert table[6:] == [f"warning: {below_reach(rows[i].claim, 5, 2)}" for i in ("U1", "U2")]


# -- plan: n from the runs a test asks for; fills train a larger design last --------------------------------
TOY_KERNEL = '''
from dataclasses import dataclass
from typing import ClassVar

import pandas as pd


@dataclass(frozen=True)
class Toy:
    name: str
    epochs: int = 1
    kernel: ClassVar[str] = "toy_reach_kernel"


def train(protocol, seeds, device, *, data=None, on_epoch=None, on_condition=None, checkpoints=None):
    return pd.DataFrame([{"seed": s, "epoch": 0, "loss": float(s % 7)} for s in seeds])
'''
TOY_TESTS = '''
import pytest
from resclaims.decide import procedures
from resclaims.decide.claims import Claim
from toy_reach_kernel import Toy

U1 = Claim("U1", source="mine", claim="x", statistic="x", procedure=procedures.exceeds(0.0), confirmatory=True)
U2 = Claim("U2", source="mine", claim="y", statistic="y", procedure=procedures.share_in_band((0, 3), 0.8),
           confirmatory=True)


@pytest.fixture(scope="module")
def pair(runs):
    return runs(Toy("a"), 7, family="X")


@pytest.fixture(scope="module")
def more(runs):
    return runs(Toy("a"), 12, family="X", label="U2")


def test_U1(pair, judge):
    judge(U1, pair.loss.to_numpy())


def test_other(runs):
    runs(Toy("b"), 7, family="X")


def test_U2(more, judge):
    judge(U2, more.loss.to_numpy())
'''


@pytest.mark.usefixtures("validation_tables")
def test_plan_takes_n_from_the_runs_a_test_asks_for_and_a_fill_trains_a_larger_design_last(pytester, monkeypatch,
                                                                                             tmp_path):
    """The toy kernel has no planned_frame: each test stops at its request, before the judge. U2's request extends
    U1's condition from 7 seeds to 12: its 5 more come after test_other's, and U1's 7 are trained once."""
    monkeypatch.setenv("RESCLAIMS_CACHE", str(tmp_path / "cache"))
    pytester.syspathinsert()
    pytester.makeconftest('pytest_plugins = ("resclaims.plugin",)\n')
    pytester.makepyfile(toy_reach_kernel=TOY_KERNEL, test_toy=TOY_TESTS)
    found = plan(["test_toy.py"])
    assert [(r.claim.id, r.n, r.m) for r in found.reaches] == [("U1", 7, 2), ("U2", 12, 2)]
    assert [r.warning is None for r in found.reaches] == [True, False]  # a share at 0.8 needs 17 at alpha/2
    assert found.runs_to_train == 19 and found.estimate().startswith("X quick: 19 runs to train")
    jobs = found.jobs(1)
    seeds = derive_seeds(DEFAULT_BASE_SEED, "X", 12)
    assert [(j.label, j.protocol.name, j.seeds[0]) for j in jobs] == (
        [("X", "a", s) for s in seeds[:7]] + [("X", "b", s) for s in seeds[:7]] + [("U2", "a", s) for s in seeds[7:]])
    assert [len(j.seeds) for j in found.jobs()] == [7, 7, 5]
    assert found.table().splitlines()[3].split()[-7:] == ["5", "unknown", "(and", "7", "to", "train", "above)"]


def test_a_run_two_requests_hold_is_published_once():
    seeds = (1, 2, 3)
    needs = [Need("K", "K", "toy", "a", seeds[:2], (), 3, "cpu", None, published=2, published_seeds=seeds[:2]),
             Need("K", "K1.consistency", "toy", "a", seeds, (3,), 3, "cpu", None, published=2, request=1,
                  published_seeds=seeds[:2])]
    assert Plan(needs, {}, Path("cache"), "full", "cpu").published == 2


CIFAR_DIR = Path(os.environ.get("RESCLAIMS_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))  # .ci/run: ../shared/data


@pytest.mark.skipif(not any(CIFAR_DIR.glob("cifar*")), reason=f"no CIFAR-10 under {CIFAR_DIR} (RESCLAIMS_DATA)")
def test_a_k_fill_trains_k1_k2_first_then_k1_order_and_k3_then_k1_consistency_s_further_seeds(tmp_path):
    """The K module's full tier on an empty cache and store: K1/K2's pair seed by seed, then K1.order's and K3's
    arms, then K1.consistency's 34 seeds beyond K1's 10 (whose first 10 are K1's own, trained once). Its plan
    counts each confirmatory claim's n though no run is there (K1.consistency's own 44, or K1's with --seeds 5,
    below every reach in 003's family of 3)."""
    script = (f"from resclaims.plugin.plan import plan\n"
              "p = plan(['--full', '--device', 'cpu', '--no-store', 'benchmarks/test_cifar_resnet_vs_plain.py', "
              f"'--data-dir', '{CIFAR_DIR}'])\n"
              "low = plan(['--full', '--seeds', '5', '--device', 'cpu', '--no-store', "
              f"'benchmarks/test_cifar_resnet_vs_plain.py', '--data-dir', '{CIFAR_DIR}'])\n"
              "print(*(f'{r.claim.id}:{r.n}:{r.m}:{r.warning is not None}' for r in p.reaches + low.reaches))\n"
              "print(p.runs_to_train)\n"
              "for j in p.jobs(1): print(j.label, j.protocol.name, j.seeds[0])\n")
    env = {"RESCLAIMS_CACHE": str(tmp_path), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr
    reaches, total, *jobs = out.stdout.split("\n")[:-1]
    assert reaches.split() == ["K1:10:3:False", "K1.consistency:44:3:False", "K3:10:3:False",  # the design
                               "K1:5:3:True", "K1.consistency:5:3:True", "K3:5:3:True"]  # --seeds 5: below reach
    labels = [line.split()[0] for line in jobs]
    assert int(total) == len(jobs) == 20 + 20 + 40 + 68
    assert labels == ["K"] * 20 + ["K1.order"] * 20 + ["K3"] * 40 + ["K1.consistency"] * 68
    k_seeds = derive_seeds(DEFAULT_BASE_SEED, "K", 44)
    assert [int(line.split()[2]) for line in jobs[:20:2]] == k_seeds[:10]
    assert [int(line.split()[2]) for line in jobs[80::2]] == k_seeds[10:]


# -- Z's own procedures (source 001): tests of means and Z2's sign test over disjoint pairs -------------------------
def _z():
    from resclaims.families import zero_identity as z

    return z


def _curves(n: int, crossing_after: int, epochs: int = 20) -> np.ndarray:
    """n identical runs' loss curves: 1 up to ``crossing_after``, then 0.001 (a threshold of 0.01 crossed just
    after that epoch)."""
    return np.tile(np.where(np.arange(epochs) <= crossing_after, 1.0, 0.001), (n, 1))


def test_a_test_of_a_mean_needs_two_runs_and_from_two_can_reach_any_p():
    """Hall's test refers a mean's distance to its SD: one run has none (p = 1 both ways, however far it lies);
    from two runs T is unbounded (Student's t on n - 1 degrees of freedom) and identical runs give 0 exactly."""
    from resclaims.decide import means

    assert means.MIN_RUNS == 2 and means.hall_best_p(1) == (1.0, 1.0) and means.hall_best_p(2) == (0.0, 0.0)
    assert [float(p) for p in means.hall_tests(np.array([100.0]), 0.0)] == [1.0, 1.0]
    assert float(means.hall_tests(np.array([100.0, 100.001]), 0.0)[0]) < 1e-5  # far above: "at most 0" rejected
    assert [float(p) for p in means.hall_tests(np.array([3.0, 3.0]), 0.0)] == [0.0, 1.0]  # no spread, above
    assert means.mean_test(np.array([5.0]), 0.0).ci == (-np.inf, np.inf)


@pytest.mark.parametrize("level", LEVELS)
def test_z1s_mean_curve_procedures_reach_both_verdicts_from_two_runs(level):
    """Z1.zero_epochs / identity_epochs (crossing in a band) and Z1.magnitude (ratio of crossings in a band): from
    2 runs an extreme data set (identical runs on one side at every edge) gives p = 0 for either verdict; 1 run
    gives p = 1, so the reach is (2, 2) at every level, Holm's alpha / m included."""
    z = _z()
    crossing = z.mean_curve_crossing((3.0, 4.0), 0.01, 20, "zero")
    ratio = z.mean_curve_ratio((2.375, 3.5), 0.01, 20)
    assert procedures.reach(crossing, level) == procedures.reach(ratio, level) == (2, 2)
    inside, early = crossing(_curves(2, 3)), crossing(_curves(2, 1))  # crosses in (3, 4); crosses by epoch 2
    assert (inside.verdict, inside.p_value) == ("supported", 0.0) and (early.verdict, early.p_refute) == ("refuted", 0.0)
    assert (crossing(_curves(1, 3)).p_value, crossing(_curves(1, 1)).p_refute) == (1.0, 1.0)
    three, five = ratio(_curves(2, 8), _curves(2, 2)), ratio(_curves(2, 14), _curves(2, 2))  # ratios 3 and 5
    assert (three.verdict, three.p_value) == ("supported", 0.0) and (five.verdict, five.p_refute) == ("refuted", 0.0)
    assert (ratio(_curves(1, 8), _curves(1, 2)).p_value, ratio(_curves(1, 14), _curves(1, 2)).p_refute) == (1.0, 1.0)


def _pairs(n: int):
    """Every count of Z2's disjoint pairs where identity spreads more (+) or less (-), and an odd run left over."""
    for k in range(n // 2 + 1):
        identity = np.r_[np.tile([0.0, 2.0], k), np.tile([0.0, 1.0], n // 2 - k), np.zeros(n % 2)]
        zero = np.r_[np.tile([0.0, 1.0], k), np.tile([0.0, 2.0], n // 2 - k), np.zeros(n % 2)]
        yield identity, zero


def test_z2s_best_p_is_the_sign_test_over_its_disjoint_pairs():
    """Z2 counts n // 2 disjoint pairs of experiments: best p 0.5^(n // 2) both ways, so its reach at alpha is 10
    runs (0.5^5 = 0.031) and in 001's family of 4 (alpha / 4 = 0.0125) 14 (0.5^7 = 0.0078; 0.5^6 = 0.0156)."""
    z2 = _z().variance_ratio_above_one
    for n in range(1, 14):
        assert z2.best_p(n) == pytest.approx(brute(z2, _pairs(n)), rel=1e-9) == (0.5 ** (n // 2),) * 2, n
    assert procedures.reach(z2, ALPHA) == (10, 10) and procedures.reach(z2, ALPHA / 4) == (14, 14)
    for level in LEVELS:
        smallest = {n: brute(z2, _pairs(n)) for n in range(1, 26)}
        assert procedures.reach(z2, level) == tuple(min(n for n, p in smallest.items() if p[i] <= level)
                                                    for i in (0, 1))


def test_z4s_best_p_is_both_sign_tests_with_every_seed_on_one_side():
    """Z4: supported when both sign tests reject (0.5^n at best), refuted when one does at alpha / 2 (2 x 0.5^n)."""
    z4 = _z().target_variance_is_the_cause
    data = lambda n: ((np.r_[np.full(k, s), np.full(n - k, -s)], np.r_[np.full(k, s), np.full(n - k, -s)] - g)  # noqa: E731
                      for k in range(n + 1) for s in (1.0, -1.0) for g in (2.0, -2.0))
    for n in range(1, 10):
        assert z4.best_p(n) == pytest.approx(brute(z4, data(n)), rel=1e-9), n
    assert procedures.reach(z4, ALPHA) == (5, 6)
