"""Sequential seeds: exact group-sequential sign and binomial tests, both ways.

The shared procedures (:mod:`resclaims.decide.procedures`) decide a median by the exact sign test and a share by the
exact binomial test, each "supported" and "refuted" a one-sided test at alpha. Here the same tests are taken at
planned looks ``n_1 < n_2 < ... < n_K`` (a prefix of the same fixed seeds at each look), and each decision's alpha
is spent across the looks: the test that supports rejects at look k when its count reaches the critical count
``c_k``, computed so that, under the boundary null, the probability of crossing at any look up to k is at most
``alpha * spend(n_k / n_K)`` (an alpha-spending function, Lan and DeMets 1983). The counts and the crossing
probabilities are exact: a dynamic programme over the count at each look, the binomial increments between looks
convolved in (no simulation, no normal approximation).

Every count here is the number of "successes" of a Binomial(n, p0) at the boundary null:

- the sign test that supports "above b": the runs above b, p0 = 1/2 (ties count for neither side, so at the
  boundary the chance of a success is at most 1/2: the crossing probability, monotone in p, is at most the one at
  1/2);
- the sign test that refutes it: the runs below b, p0 = 1/2;
- the binomial test of a share that supports "more than ``share`` of the runs in the band": the runs in the band,
  p0 = share; the one that refutes it: the runs outside, p0 = 1 - share.

The two directions are designed apart, each ignoring the other's stop (a non-binding stop: stopping early for one
decision only lowers the chance of the other), so each decision's error is at most alpha over all looks, the
"refuted" one as well as the "supported" one. A design with one look is the fixed test exactly.

The p-value reported for a decision is the stage-wise ordering p-value (Armitage, McPherson and Rowe; Jennison
and Turnbull 2000, ch. 8): the chance, at the boundary null, of crossing at an earlier look, or of being at the
same look with a count at least as large. It is at most the design's level exactly when the boundary was crossed,
and it is what Holm adjusts across a source's family (``tests/decide/test_sequential.py`` checks its validity by
exact enumeration, the other direction's stop included).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import stats

from resclaims.decide import procedures
from resclaims.decide.stats import ALPHA
from resclaims.decide.verdict import INCONCLUSIVE, REFUTED, SUPPORTED, Decision

SPENDING = ("pocock", "obrien-fleming")
MIN_STAGE = 5  # the fewest runs at which a sign test can say anything at alpha = 0.05 (0.5^5 = 0.031)
MOST_LOOKS = 6


def spent(t: float, alpha: float, spending: str = "pocock") -> float:
    """The cumulative alpha a design may have spent at information fraction ``t`` (runs so far / the last look's).

    ``pocock``: alpha log(1 + (e - 1) t); ``obrien-fleming``: 2 (1 - Phi(z_{1 - alpha/2} / sqrt(t))), Lan and
    DeMets' two O'Brien-Fleming-like function for a one-sided alpha. Both are alpha at t = 1."""
    t = min(max(float(t), 0.0), 1.0)
    if spending == "pocock":
        return alpha * float(np.log1p((np.e - 1) * t))
    if spending == "obrien-fleming":
        return 0.0 if t == 0 else float(2 * stats.norm.sf(stats.norm.isf(alpha / 2) / np.sqrt(t)))
    raise ValueError(f"spending must be one of {', '.join(SPENDING)}, got {spending!r}")


def _step(dist: np.ndarray, runs: int, p: float) -> np.ndarray:
    """The distribution of the count after ``runs`` more Binomial(1, p) runs (``dist``: not-yet-crossed mass)."""
    return np.convolve(dist, stats.binom.pmf(np.arange(runs + 1), runs, p)) if runs else dist.copy()


def _check_looks(looks: Sequence[int]) -> tuple[int, ...]:
    looks = tuple(int(n) for n in looks)
    if not looks or looks[0] < 1 or any(b <= a for a, b in zip(looks, looks[1:])):
        raise ValueError(f"looks must be increasing positive run counts, got {list(looks)}")
    return looks


@lru_cache(maxsize=4096)
def critical_counts(looks: tuple[int, ...], p0: float, alpha: float = ALPHA, spending: str = "pocock") -> tuple[int, ...]:
    """The critical count at each look: the test rejects at look k when the count of successes among the first
    ``looks[k]`` runs is at least ``c_k`` (``looks[k] + 1``: it cannot reject there). Each ``c_k`` is the smallest
    count whose crossing probability up to look k, at success probability ``p0``, is at most ``alpha * spend``."""
    looks = _check_looks(looks)
    dist, done, total, counts = np.ones(1), 0, 0.0, []
    for n in looks:
        dist = _step(dist, n - done, p0)
        done = n
        allowed = spent(n / looks[-1], alpha, spending)
        tails = np.cumsum(dist[::-1])[::-1]  # tails[c] = P(no earlier crossing, S_n >= c)
        c = n + 1
        while c > 0 and total + tails[c - 1] <= allowed:
            c -= 1
        counts.append(c)
        if c <= n:
            total += float(tails[c])
            dist = dist.copy()
            dist[c:] = 0.0
    return tuple(counts)


def crossing(looks: Sequence[int], counts: Sequence[int], p: float) -> np.ndarray:
    """The exact probability of first crossing ``counts`` at each look, at success probability ``p``."""
    looks = _check_looks(looks)
    dist, done, out = np.ones(1), 0, []
    for n, c in zip(looks, counts):
        dist = _step(dist, n - done, p)
        done = n
        out.append(float(dist[c:].sum()) if c <= n else 0.0)
        dist = dist.copy()
        dist[min(c, n + 1):] = 0.0
    return np.asarray(out)


def stagewise_p(looks: Sequence[int], counts: Sequence[int], p0: float, look: int, count: int) -> float:
    """The stage-wise ordering p-value of stopping at look index ``look`` with ``count`` successes: the chance at
    ``p0`` of crossing at an earlier look, or of reaching that look without crossing with at least ``count``."""
    looks = _check_looks(looks)
    dist, done, before = np.ones(1), 0, 0.0
    for k, (n, c) in enumerate(zip(looks[:look + 1], counts)):
        dist = _step(dist, n - done, p0)
        done = n
        if k == look:
            return min(1.0, before + float(dist[min(max(count, 0), n + 1):].sum()))
        before += float(dist[c:].sum()) if c <= n else 0.0
        dist = dist.copy()
        dist[min(c, n + 1):] = 0.0
    raise IndexError(f"look {look} of {len(looks)}")


@lru_cache(maxsize=1024)
def stagewise_table(looks: tuple[int, ...], counts: tuple[int, ...], p0: float) -> np.ndarray:
    """:func:`stagewise_p` for every look index (rows) and count (columns, 0 to the last look's n + 1)."""
    table = np.ones((len(looks), looks[-1] + 2))
    for k, n in enumerate(looks):
        table[k, :n + 2] = [stagewise_p(looks, counts, p0, k, s) for s in range(n + 2)]
    return table


@dataclass(frozen=True)
class Design:
    """A planned schedule of looks (runs per arm at each) and how alpha is spent across them, for both decisions."""

    looks: tuple[int, ...]
    alpha: float = ALPHA
    spending: str = "pocock"

    def __post_init__(self) -> None:
        object.__setattr__(self, "looks", _check_looks(self.looks))
        spent(1.0, self.alpha, self.spending)  # an unknown spending function fails here

    def counts(self, p0: float) -> tuple[int, ...]:
        return critical_counts(self.looks, float(p0), float(self.alpha), self.spending)

    def error(self, p0: float, p: float | None = None) -> float:
        """The exact chance of ever crossing the boundaries designed at ``p0``, at success probability ``p``
        (default ``p0``: the type-I error of the decision, at most alpha)."""
        return float(crossing(self.looks, self.counts(p0), p0 if p is None else p).sum())

    def index(self, n: int) -> int:
        """The look at ``n`` runs; a ValueError where ``n`` is no planned look (a claim is decided only at one)."""
        if n not in self.looks:
            raise ValueError(f"n = {n} is not a planned look of {list(self.looks)}: a claim is decided only at one")
        return self.looks.index(n)


def stages(tier: int, budget: int, *, least: int = MIN_STAGE, most: int = MOST_LOOKS) -> tuple[int, ...]:
    """The planned looks of a module whose tier asks ``tier`` runs per arm, under a ``budget`` (the most runs per
    arm): the tier's n halved twice, halved once, itself, doubled, ... (rounded up), those of at least ``least`` runs
    and at most three quarters of the budget, then the budget itself. The tier's own n is a look whenever the budget
    holds it (at least ``least`` runs), so a claim with no sequential procedure is decided at its fixed design.

    At most ``most`` looks: where there are more, the first look, the tier's n and the budget are kept, and the
    earliest of the others fill the rest (the looks dropped are the late ones before the budget: an early look is
    where stopping saves the most runs, and the budget is the design's last word). This rule was fixed from the
    numbers alone (the looks, the cap), before any stage's results were looked at. A ValueError where the budget
    cannot hold a single stage (fewer than ``least`` runs)."""
    if budget < least:
        raise ValueError(f"a budget of {budget} runs per arm cannot hold a single stage: a look needs at least {least}")
    looks, j = [], -2
    while (n := -(-tier // 2**-j) if j < 0 else tier * 2**j) <= 0.75 * budget:
        if n >= least and n not in looks:
            looks.append(n)
        j += 1
    if tier < budget and tier >= least and tier not in looks:
        looks.append(tier)  # a tier between three quarters of the budget and the budget
    looks = sorted(looks + [budget])
    if len(looks) <= most:
        return tuple(looks)
    kept = {looks[0], budget} | ({tier} if tier in looks else set())
    rest = [n for n in looks if n not in kept]
    return tuple(sorted(kept | set(rest[:most - len(kept)])))


# -- a claim's sequential tests ---------------------------------------------------------------------
@dataclass(frozen=True)
class Counts:
    """A test's successes at each look (its count over the first n runs for each n), and p0 at the boundary."""

    successes: np.ndarray  # one per look
    p0: float


def prefix_counts(success: np.ndarray, looks: Sequence[int]) -> np.ndarray:
    """``success`` (booleans per run, in seed order, last axis) counted over the first n runs for each look n (each
    stretch between looks summed once, then the stretches added up)."""
    success = np.asarray(success, dtype=bool)
    starts = (0, *looks[:-1])
    stretches = [np.count_nonzero(success[..., a:b], axis=-1) for a, b in zip(starts, looks)]
    return np.cumsum(np.stack(stretches, axis=-1), axis=-1)


def first_crossing(design: Design, counts: np.ndarray, p0: float, upto: int | None = None) -> np.ndarray:
    """The first look index (vectorised over leading axes) at which ``counts`` (per look) reaches the design's
    critical count, among the looks up to ``upto`` (default: all); -1 where none."""
    critical = np.asarray(design.counts(p0))
    k = len(design.looks) if upto is None else upto + 1
    hit = np.asarray(counts)[..., :k] >= critical[:k]
    return np.where(hit.any(axis=-1), hit.argmax(axis=-1), -1)


@dataclass(frozen=True)
class Tests:
    """A shared procedure as counts: the tests that support (all must reject at one look: a band's two edges, an
    intersection-union test) and those that refute (any one rejecting refutes, each held to ``refute_share`` of the
    level), each a function of the data giving one boolean per run (last axis) and its success chance at the
    boundary null."""

    support: tuple[tuple[Callable[..., np.ndarray], float], ...]
    refute: tuple[tuple[Callable[..., np.ndarray], float], ...]
    refute_share: float = 1.0


def _sign(tell: Callable[..., np.ndarray]) -> tuple[tuple[Callable, float], tuple[Callable, float]]:
    """The sign tests of a quantity told per run by ``tell``: above 0 supports, below 0 refutes (p0 = 1/2 each)."""
    return (lambda *d: tell(*d) > 0, 0.5), (lambda *d: tell(*d) < 0, 0.5)


def tests_of(procedure: Any) -> Tests | None:
    """The sequential form of a shared sign or binomial procedure (read from the vectorised tests it was built
    with), or None for any other (a family's own, a bootstrap): such a claim is decided at its fixed n only."""
    tests = getattr(procedure, "tests", None)
    func, kw = getattr(tests, "func", tests), getattr(tests, "keywords", {})
    if func is procedures.paired_tests:
        up, down = _sign(lambda a, b: np.asarray(a) - np.asarray(b))
    elif func is procedures.exceeds_tests:
        up, down = _sign(lambda x: np.asarray(x) - kw["null"])
    elif func is procedures.below_tests:
        up, down = _sign(lambda x: kw["margin"] - np.asarray(x))
    elif func is procedures.trend_tests:
        up, down = _sign(lambda rows: procedures.slopes(rows, kw["positions"]))
    elif func is procedures.band_tests:
        low, high = kw["band"]
        return Tests(((lambda x: np.asarray(x) > low, 0.5), (lambda x: np.asarray(x) < high, 0.5)),
                     ((lambda x: np.asarray(x) < low, 0.5), (lambda x: np.asarray(x) > high, 0.5)),
                     procedures.BAND_REFUTE_SHARE)
    elif func is procedures.share_tests:
        (low, high), share = kw["band"], kw["share"]
        inside = lambda x: (np.asarray(x) >= low) & (np.asarray(x) <= high)  # noqa: E731
        return Tests(((inside, share),), ((lambda x: ~inside(x), 1 - share),))
    else:
        return None
    return Tests((up,), (down,))


@dataclass(frozen=True)
class Looked:
    """Vectorised outcome of a sequential procedure on data sets (leading axes) at look ``upto``: the look index of
    the decision (-1: none yet), whether it supports or refutes, and both stage-wise p-values at that look (at the
    look ``upto`` where undecided) on the level's scale."""

    look: np.ndarray
    supported: np.ndarray
    refuted: np.ndarray
    p_support: np.ndarray
    p_refute: np.ndarray


def _first(hit: np.ndarray) -> np.ndarray:
    """The first look index at which ``hit`` (last axis: looks) holds; the number of looks where it never does."""
    return np.where(hit.any(axis=-1), hit.argmax(axis=-1), hit.shape[-1])


def looked(tests: Tests, design: Design, *data: np.ndarray, upto: int | None = None) -> Looked:
    """Decide at each planned look up to ``upto`` (default: the last; the data hold at least ``looks[upto]`` runs,
    in seed order), stopping at the first look at which the tests that support all reject, or one that refutes
    rejects. Both are exact group-sequential tests at the design's level (the refuting ones at ``refute_share`` of
    it), each designed ignoring the other's stop."""
    upto = len(design.looks) - 1 if upto is None else upto
    looks = design.looks[:upto + 1]
    refute_design = Design(design.looks, design.alpha * tests.refute_share, design.spending)

    def counts(parts, d: Design) -> list[tuple[np.ndarray, np.ndarray, float, Design]]:
        out = []
        for tell, p0 in parts:
            c = prefix_counts(tell(*data), looks)
            out.append((c, c >= np.asarray(d.counts(p0))[:upto + 1], p0, d))
        return out

    support, refute = counts(tests.support, design), counts(tests.refute, refute_design)
    never = upto + 1
    s_look = _first(np.logical_and.reduce([hit for _, hit, _, _ in support]))
    r_look = _first(np.logical_or.reduce([hit for _, hit, _, _ in refute]))
    look = np.minimum(s_look, r_look)
    supported, refuted = (s_look == look) & (look < never), (r_look < s_look) & (look < never)
    at = np.where(look < never, look, upto)

    def p(parts, combine, scale: float) -> np.ndarray:
        values = []
        for c, _, p0, d in parts:
            table = stagewise_table(d.looks, d.counts(p0), p0)  # (looks, counts + 1)
            values.append(table[at, np.take_along_axis(c, at[..., None], axis=-1)[..., 0]])
        return combine(values) / scale

    p_support = p(support, lambda v: np.maximum.reduce(v), 1.0)
    p_refute = p(refute, lambda v: np.minimum.reduce(v), tests.refute_share)
    return Looked(np.where(look < never, look, -1), supported, refuted, np.minimum(p_support, 1.0),
                  np.minimum(p_refute, 1.0))


def decide(procedure: Any, design: Design, *data: np.ndarray) -> Decision:
    """Decide a claim whose runs (rows of ``data``, in seed order) number a planned look of ``design``: at the first
    look up to this one at which its sequential tests reject, else undecided (at the last look: inconclusive; before
    it, inconclusive with ``details["continue"]``: the next stage's runs are needed). The estimate and interval are
    the fixed procedure's on the runs up to the deciding look (not widened for the looks); the p-values are the
    stage-wise ones. A ValueError where the runs are not a planned look, or the procedure has no sequential form."""
    tests = tests_of(procedure)
    if tests is None:
        raise ValueError(f"procedure {getattr(procedure, 'name', procedure)!r} has no exact sequential form")
    upto = design.index(len(data[0]))
    out = looked(tests, design, *data, upto=upto)
    k = int(out.look) if int(out.look) >= 0 else upto
    n = design.looks[k]
    fixed = procedure.decide(*(np.asarray(d)[:n] for d in data))
    verdict = SUPPORTED if bool(out.supported) else REFUTED if bool(out.refuted) else INCONCLUSIVE
    details = {**fixed.details, "sequential": {
        "looks": list(design.looks), "spending": design.spending, "level": design.alpha,
        "look": k + 1, "n": n, "decided": verdict != INCONCLUSIVE or upto == len(design.looks) - 1,
        "continue": verdict == INCONCLUSIVE and upto < len(design.looks) - 1}}
    return Decision(verdict, fixed.estimate, fixed.ci, float(out.p_support), details, float(out.p_refute))


def decide_at(procedure: Any, design: Design, *data: np.ndarray) -> Decision:
    """:func:`decide` for runs in any order, given that the claim was not decided at an earlier look (the runs of
    the earlier looks are a prefix of these seeds, but their order in ``data`` is not known): the counts at this
    look against its critical counts, the stage-wise p-values at this look. A session that decides stage by stage
    keeps each claim's decision from the look that made it (:mod:`resclaims.plugin.sequential`)."""
    tests = tests_of(procedure)
    if tests is None:
        raise ValueError(f"procedure {getattr(procedure, 'name', procedure)!r} has no exact sequential form")
    k = design.index(len(data[0]))
    refute_design = Design(design.looks, design.alpha * tests.refute_share, design.spending)

    def at(parts, d: Design) -> list[tuple[bool, float]]:
        out = []
        for tell, p0 in parts:
            count = int(np.sum(tell(*data)))
            out.append((count >= d.counts(p0)[k], stagewise_p(d.looks, d.counts(p0), p0, k, count)))
        return out

    support, refute = at(tests.support, design), at(tests.refute, refute_design)
    verdict = SUPPORTED if all(hit for hit, _ in support) else REFUTED if any(hit for hit, _ in refute) else \
        INCONCLUSIVE
    fixed = procedure.decide(*data)
    last = k == len(design.looks) - 1
    details = {**fixed.details, "sequential": {
        "looks": list(design.looks), "spending": design.spending, "level": design.alpha, "look": k + 1,
        "n": design.looks[k], "decided": verdict != INCONCLUSIVE or last, "continue": verdict == INCONCLUSIVE and not last}}
    return Decision(verdict, fixed.estimate, fixed.ci, max(p for _, p in support), details,
                    min(1.0, min(p for _, p in refute) / tests.refute_share))
