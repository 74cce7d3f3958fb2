"""The validation suite's sequential cells: the shared sign and binomial procedures decided at the looks of a
``--seeds auto`` design (:mod:`resclaims.decide.sequential`), on the suite's written worlds with the claim on its
boundary (:mod:`resclaims.report.validation`), both errors over all looks, each decision's stop included.

A procedure with one count that supports and one that refutes (the sign tests: runs above and below the boundary;
the binomial test of a share: runs inside and outside the band) has its errors **exact**: each run falls on the
supporting side, on the refuting side or on neither (a tie) with probabilities the world fixes (:data:`SIDES`), and
a dynamic programme over the two counts, the runs between looks convolved in as a trinomial, gives the chance that
the supporting count crosses its boundary first ("supported"; at one look the supporting decision comes first, as in
:func:`resclaims.decide.sequential.looked`) and the chance that the refuting one does. A band's median (two
supporting and two refuting counts) is **simulated**: ``validation.SIMS`` data sets a cell, decided by
:func:`~resclaims.decide.sequential.looked`, the code that decides a claim.

The designs are those ``--seeds auto`` plans (:func:`resclaims.decide.sequential.stages`) for the tiers' n under a
budget: 5 runs with a budget of 20 (K quick), 16 with 40 (M), 2,000 with 2,000 (Z, both tiers).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from scipy import signal, special, stats

from resclaims.decide import sequential as sq
from resclaims.decide.stats import ALPHA
from resclaims.report import validation
from resclaims.report.validation import CASES, SIMS, WORLDS, Case, margin, rate

SEED = 25  # the simulated cells' draws: apart from the fixed cells' (seed 0)
DESIGNS = {"K quick (5 runs, budget 20)": sq.stages(5, 20), "M (16 runs, budget 40)": sq.stages(16, 40),
           "Z (2000 runs, budget 2000)": sq.stages(2000, 2000)}

# Each world's chance that a run lies exactly on the boundary (a tie: neither side), for the cases below: "ties and
# zeros" rounds 2 z to an integer, so a run is 0 when |z| < 1/4; every other world is continuous there (the censored
# one puts its +inf above). Every world has median 0, so the two sides share the rest equally.
TIES = {world: 0.0 for world in WORLDS} | {"ties and zeros": float(2 * stats.norm.cdf(0.25) - 1)}


def _sign_sides(world: str) -> tuple[float, float]:
    half = (1 - TIES[world]) / 2
    return half, half


SIDES = {  # case name -> world -> (chance a run counts for "supported", chance it counts for "refuted")
    "a exceeds b, paired (sign test)": _sign_sides,  # a - b is the noise
    "x above -1 (sign test)": _sign_sides,
    "x below a margin of 1 (sign test)": _sign_sides,
    "rows increase (sign test of slopes)": _sign_sides,  # each row's slope has the sign of its noise
    "share in band above 0.8 (binomial)": lambda world: (0.8, 0.2),  # inside with chance 0.8, outside otherwise
}


@lru_cache(maxsize=64)
def _trinomial(m: int, ps: float, pr: float) -> np.ndarray:
    """P(i runs count for "supported", j for "refuted") among ``m`` runs, as an (m + 1, m + 1) array (0 where
    i + j > m): the trinomial pmf in closed form, log-gamma for the coefficient."""
    i, j = np.meshgrid(np.arange(m + 1), np.arange(m + 1), indexing="ij")
    rest = m - i - j
    k = np.clip(rest, 0, None)  # the runs on neither side (where i + j <= m)
    log = (special.gammaln(m + 1) - special.gammaln(i + 1) - special.gammaln(j + 1) - special.gammaln(k + 1)
           + special.xlogy(i, ps) + special.xlogy(j, pr) + special.xlogy(k, max(1.0 - ps - pr, 0.0)))
    return np.where(rest >= 0, np.exp(log), 0.0)


def exact_errors(looks: tuple[int, ...], tests: sq.Tests, sides: tuple[float, float],
                 alpha: float = ALPHA) -> tuple[float, float]:
    """(P(supported), P(refuted)) of a one-count-each-way sequential procedure whose runs count for the supporting
    test with chance ``sides[0]`` and for the refuting one with ``sides[1]``: exact, by the trinomial recursion (the
    mass still undecided after a look lies below both critical counts, so only that corner is carried on)."""
    (_, p_support0), = tests.support
    (_, p_refute0), = tests.refute
    design = sq.Design(looks, alpha)
    c_support = design.counts(p_support0)
    c_refute = sq.Design(looks, alpha * tests.refute_share).counts(p_refute0)
    ps, pr = sides
    mass, done, supported, refuted = np.ones((1, 1)), 0, 0.0, 0.0
    for n, cs, cr in zip(looks, c_support, c_refute):
        m = n - done
        mass = np.clip(signal.fftconvolve(mass, _trinomial(m, ps, pr)), 0.0, None) if m else mass
        done = n
        s, f = np.meshgrid(np.arange(mass.shape[0]), np.arange(mass.shape[1]), indexing="ij")
        up = s >= cs
        down = ~up & (f >= cr)
        supported += float(mass[up].sum())
        refuted += float(mass[down].sum())
        mass = mass[:cs, :cr]  # what neither crossed: counts below both critical counts
    return supported, refuted


def _exact_rate(value: float) -> dict[str, Any]:
    return {"rate": value, "ci": [value, value]}


def cell(case: Case, world: str, design: str, *, sims: int = SIMS, seed: int = SEED) -> dict[str, Any]:
    """Both errors of ``case`` in ``world`` decided at ``design``'s looks: exact where :data:`SIDES` knows the case,
    else from ``sims`` data sets."""
    looks, tests = DESIGNS[design], sq.tests_of(case.procedure)
    row = {"procedure": case.name, "world": world, "design": design, "looks": list(looks)}
    if case.name in SIDES:
        s, r = exact_errors(looks, tests, SIDES[case.name](world))
        false_s, false_r, method, n_sims = _exact_rate(s), _exact_rate(r), "exact", None
    else:
        out = sq.looked(tests, sq.Design(looks), *validation.data(case, world, looks[-1], sims=sims, seed=seed))
        false_s, false_r, method, n_sims = rate(out.supported), rate(out.refuted), "simulated", sims
    return {**row, "method": method, "sims": n_sims, "false_supported": None if case.claim_true else false_s,
            "false_refuted": false_r}


def cases() -> list[Case]:
    """The validation suite's cases that have a sequential form (the shared sign and binomial procedures)."""
    return [c for c in CASES if sq.tests_of(c.procedure) is not None]


def run(*, sims: int = SIMS, seed: int = SEED) -> dict[str, Any]:
    """Every sequential cell, by design, then case, then world; ``failures``: rows above alpha plus the Monte Carlo
    margin (an exact row: above alpha itself, with a rounding allowance)."""
    rows = [cell(case, world, design, sims=sims, seed=seed) for design in DESIGNS for world in WORLDS
            for case in cases()]
    validation._common_noise.cache_clear()
    index = {c.name: i for i, c in enumerate(cases())}
    rows.sort(key=lambda r: (list(DESIGNS).index(r["design"]), index[r["procedure"]], list(WORLDS).index(r["world"])))

    def above(row: dict[str, Any]) -> bool:
        limit = ALPHA + (1e-12 if row["method"] == "exact" else margin(sims=sims))
        return validation.worst(row) > limit

    return {"rows": rows, "alpha": ALPHA, "margin": margin(sims=sims), "sims": sims,
            "designs": {name: list(looks) for name, looks in DESIGNS.items()},
            "failures": [r for r in rows if above(r)],
            "statement": "each row: a shared sign or binomial procedure decided at the looks of a --seeds auto design "
                         "(alpha spent across them, both ways), the claim on its boundary; exact (recursion over "
                         f"the counts) or {sims} simulated data sets"}


def fingerprint() -> str:
    """:func:`resclaims.report.validation.fingerprint`'s code (the deciding code, the fixed cells' worlds) and this
    module."""
    from resclaims.decide.stored import code_digest

    return code_digest(Path(validation.__file__), Path(__file__))[:16]


def cached(directory: Path | None) -> dict[str, Any]:
    """:func:`run`, kept in ``directory`` under :func:`fingerprint` (:func:`resclaims.report.validation.keep`)."""
    return validation.keep(directory, "validation-sequential", fingerprint(), run)
