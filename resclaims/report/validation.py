"""The validation suite: every sampled procedure's two errors on simulated worlds written for the purpose.

A procedure's verdicts are decisions with a bounded error only if they keep the
bound on data they were not tuned to. Each world here puts the claim's quantity
exactly on its boundary, the one place where the claim is both "false" (for
the error of saying "supported") and "true" (for the error of saying "refuted"),
with noise of a given shape:

- normal; heavy-tailed (Student t, 3 degrees of freedom); skewed right and left
  (centred exponential); lognormal;
- censored at a budget (the top 20% of values never arrive: +inf, as a run that
  never reaches a loss threshold);
- with ties and zeros (values rounded to a grid of 0.5, a fifth of them exactly
  on the boundary).

Every world has median exactly on the boundary, the quantity the sign tests
decide. Each cell (procedure, world, n) draws ``sims`` data sets at once and
runs the procedure's own vectorised p-values (``Procedure.tests``, the
functions its ``decide`` calls) through the suite's rule (:func:`two_tests`).
A cell passes when both rates are at most alpha plus the Monte Carlo margin: a
one-sided z of 3.72 (a false alarm in one cell in 10,000), so that with 3,000
simulations a true rate of 7.5% fails with probability 0.98.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from resclaims.decide import procedures
from resclaims.decide.procedures import Procedure
from resclaims.decide.stats import ALPHA
from resclaims.decide.stored import code_digest, keep_json
from resclaims.families import zero_identity

SIMS = 3000  # data sets per cell
Z_MARGIN = 3.72  # one-sided normal quantile of the per-cell false alarm rate, 1e-4
N_BY_TIER = {"K quick": 5, "D quick and full": 8, "K full": 10, "M": 16, "Z quick": 400, "Z full": 2000}

Noise = Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]


def _censored(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    x = rng.standard_normal(shape)
    return np.where(x > stats.norm.ppf(0.8), np.inf, x)


WORLDS: dict[str, Noise] = {  # noise with median exactly 0
    "normal": lambda rng, shape: rng.standard_normal(shape),
    "heavy tails (t3)": lambda rng, shape: rng.standard_t(3, shape),
    "skewed right": lambda rng, shape: rng.exponential(1.0, shape) - np.log(2),
    "skewed left": lambda rng, shape: np.log(2) - rng.exponential(1.0, shape),
    "lognormal": lambda rng, shape: rng.lognormal(0.0, 1.0, shape) - 1.0,
    "censored at a budget": _censored,
    "ties and zeros": lambda rng, shape: np.round(2 * rng.standard_normal(shape)) / 2,
}


@dataclass(frozen=True)
class Case:
    """A procedure and how to draw its data with the claim on its boundary, from a noise of median 0."""

    name: str
    procedure: Procedure
    draw: Callable[[np.random.Generator, Noise, int, int], tuple[np.ndarray, ...]]  # (rng, noise, sims, n) -> data
    sizes: tuple[int, ...]  # the n of the tiers that use it


def _paired(rng, noise, sims, n):
    b = rng.normal(10.0, 3.0, (sims, n))
    return b + noise(rng, (sims, n)), b


def _trend(rng, noise, sims, n):
    centred = np.array([-1.0, 0.0, 1.0]) * 5  # rows whose least-squares slopes are the noise, median 0
    with np.errstate(invalid="ignore"):  # a censored slope (inf) times 0
        return (np.nan_to_num(noise(rng, (sims, n))[..., None] * centred, nan=0.0, posinf=1e9, neginf=-1e9),)


def _spread(rng, noise, sims, n):  # equal spreads, means 3 apart: Z2 must not call that a difference in spread
    return 3.0 + noise(rng, (sims, n)), noise(rng, (sims, n))


def _z4(rng, noise, sims, n):  # both parts on their boundary: the guess false (and true) at once
    tv = noise(rng, (sims, n))
    with np.errstate(invalid="ignore"):  # inf - inf: a part censored twice
        return tv, np.nan_to_num(tv - noise(rng, (sims, n)), nan=0.0)


def _share(rng, noise, sims, n):  # each run inside [4, 7] with probability 0.8; outside runs above the band
    inside = rng.random((sims, n)) < 0.8
    outside = 7.0 + np.abs(noise(rng, (sims, n))) + 1e-9
    return (np.where(inside, rng.uniform(4.0, 7.0, (sims, n)), np.where(np.isfinite(outside), outside, 99.0)),)


BAND = (4.0, 7.0)
CASES = [
    Case("a exceeds b, paired (sign test)", procedures.exceeds_paired(), _paired, (5, 8, 10, 16, 400)),
    Case("x above -1 (sign test)", procedures.exceeds(-1.0), lambda rng, noise, sims, n: (-1.0 + noise(rng, (sims, n)),),
         (8, 16)),
    Case("x below a margin of 1 (sign test)", procedures.below_margin(1.0),
         lambda rng, noise, sims, n: (1.0 + noise(rng, (sims, n)),), (8, 16)),
    Case("median in band, at its lower edge", procedures.median_in_band(BAND),
         lambda rng, noise, sims, n: (BAND[0] + noise(rng, (sims, n)),), (5, 8, 10, 16, 400)),
    Case("median in band, at its upper edge", procedures.median_in_band(BAND),
         lambda rng, noise, sims, n: (BAND[1] + noise(rng, (sims, n)),), (5, 8, 10, 16, 400)),
    Case("share in band above 0.8 (binomial)", procedures.share_in_band(BAND, 0.8), _share, (5, 10, 16)),
    Case("rows increase (sign test of slopes)", procedures.increasing([5.0, 10.0, 20.0]), _trend, (10,)),
    Case("Z2: identity spreads more (sign test)", zero_identity.variance_ratio_above_one, _spread, (400,)),
    Case("Z4: target variance is the cause", zero_identity.target_variance_is_the_cause, _z4, (400,)),
]


def margin(alpha: float = ALPHA, sims: int = SIMS) -> float:
    """How far above alpha a cell's observed rate may lie by Monte Carlo error alone."""
    return Z_MARGIN * float(np.sqrt(alpha * (1 - alpha) / sims))


def rate(hits: np.ndarray) -> dict[str, Any]:
    k, n = int(hits.sum()), int(hits.size)
    ci = stats.binomtest(k, n).proportion_ci(0.95, method="exact")
    return {"rate": k / n, "ci": [float(ci.low), float(ci.high)]}


def cell(case: Case, world: str, n: int, *, sims: int = SIMS, seed: int = 0) -> dict[str, Any]:
    """Both error rates of ``case`` in ``world`` at ``n`` runs, from ``sims`` data sets with the claim on its
    boundary: "supported" there is a false support, "refuted" a false refutation."""
    rng = np.random.default_rng([seed, n, CASES.index(case), list(WORLDS).index(world)])
    p_support, p_refute = case.procedure.tests(*case.draw(rng, WORLDS[world], sims, n))
    supported = np.asarray(p_support) <= ALPHA
    refuted = ~supported & (np.asarray(p_refute) <= ALPHA)  # two_tests, row by row
    return {"procedure": case.name, "world": world, "n": n, "sims": sims,
            "false_supported": rate(supported), "false_refuted": rate(refuted)}


def run(*, sims: int = SIMS, seed: int = 0) -> dict[str, Any]:
    """The whole table (the report's calibration section shows it), with alpha, the margin and the verdict."""
    rows = [cell(case, world, n, sims=sims, seed=seed) for case in CASES for n in case.sizes for world in WORLDS]
    limit = ALPHA + margin(sims=sims)
    return {"rows": rows, "alpha": ALPHA, "margin": margin(sims=sims), "sims": sims,
            "failures": [r for r in rows if max(r["false_supported"]["rate"], r["false_refuted"]["rate"]) > limit],
            "statement": f"each row: {sims} simulated data sets with the claim exactly on its boundary; a rate above "
                         f"alpha + {margin(sims=sims):.4f} (Monte Carlo margin, z = {Z_MARGIN}) fails the suite"}


def fingerprint() -> str:
    """What the table depends on: this module and the deciding code it runs (procedures, tests, rule, the families'
    procedures), and numpy's and scipy's versions (:func:`resclaims.decide.stored.code_digest`)."""
    return code_digest(Path(__file__))[:16]


_MEMO: dict[str, dict[str, Any]] = {}  # fingerprint -> table, within one process


def cached(directory: Path | None) -> dict[str, Any]:
    """:func:`run`, kept in ``directory`` under the code's :func:`fingerprint` (atomic write; None: no cache).

    The table depends only on code, so a session whose procedures did not change reads it back
    instead of spending half a minute on it again.
    """
    key = fingerprint()
    if key in _MEMO:
        return _MEMO[key]
    path = None if directory is None else Path(directory) / f"validation-{key}.json"
    if path is not None and path.exists():
        try:
            return _MEMO.setdefault(key, json.loads(path.read_text()))
        except (OSError, ValueError):
            pass  # unreadable: simulate again and replace it
    table = _MEMO.setdefault(key, run())
    if path is not None:
        keep_json(path, table)  # a read-only cache keeps nothing: the report still gets the table
    return table
