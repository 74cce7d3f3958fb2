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
decide. A band claim ("the median lies in [L, H]") has a boundary at each edge:
its cells put the median on the lower and on the upper edge (false "supported" is
the limit of a median just outside that edge, false "refuted" a median on it),
for a wide band and for bands 0, 0.05, 0.1 and 0.5 SD of the runs wide
(``NARROW``, at every tier's n), where a "refuted" at the far edge is nearly as
likely as at the near one; for the narrow ones (up to 0.1 SD) also in the band's
middle, where only "refuted" is an error (``Case.claim_true``). Each cell
(procedure, world, n) draws ``sims`` data sets at once and
runs the procedure's own vectorised p-values (``Procedure.tests``, the
functions its ``decide`` calls) through the suite's rule (:func:`two_tests`).
A cell passes when both rates are at most alpha plus the Monte Carlo margin: a
one-sided z of 3.72 (a false alarm in one cell in 10,000), so that with 3,000
simulations a true rate of 7.5% fails with probability 0.98.
"""

from __future__ import annotations

import functools
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
N_BY_TIER = {"K quick": 5, "D quick and full": 8, "K full": 10, "M": 16, "Z quick and full": 2000}

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


def _ties_sd() -> float:
    grid = np.arange(-40, 41)  # round(2 z) = j with probability Phi((j + 1/2) / 2) - Phi((j - 1/2) / 2)
    p = stats.norm.cdf((grid + 0.5) / 2) - stats.norm.cdf((grid - 0.5) / 2)
    return float(np.sqrt((p * (grid / 2) ** 2).sum()))


SD: dict[str, float] = {  # each world's SD of the runs (the censored world's: its normal's before the budget)
    "normal": 1.0,
    "heavy tails (t3)": float(np.sqrt(3.0)),
    "skewed right": 1.0,
    "skewed left": 1.0,
    "lognormal": float(np.sqrt((np.e - 1) * np.e)),
    "censored at a budget": 1.0,
    "ties and zeros": _ties_sd(),
}


@dataclass(frozen=True)
class Case:
    """A procedure and how to draw its data with the claim on its boundary, from a noise of median 0."""

    name: str
    procedure: Procedure
    draw: Callable[[np.random.Generator, Noise, int, int], tuple[np.ndarray, ...]]  # (rng, noise, sims, n) -> data
    sizes: tuple[int, ...]  # the n of the tiers that use it
    claim_true: bool = False  # the truth inside the claim (not on a boundary): only "refuted" is an error there
    common: bool = False  # draws from the noise shared by the common cases of a world and n (:func:`data`)


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
    Case("a exceeds b, paired (sign test)", procedures.exceeds_paired(), _paired, (5, 8, 10, 16, 2000)),
    Case("x above -1 (sign test)", procedures.exceeds(-1.0), lambda rng, noise, sims, n: (-1.0 + noise(rng, (sims, n)),),
         (8, 16)),
    Case("x below a margin of 1 (sign test)", procedures.below_margin(1.0),
         lambda rng, noise, sims, n: (1.0 + noise(rng, (sims, n)),), (8, 16)),
    Case("median in band, at its lower edge", procedures.median_in_band(BAND),
         lambda rng, noise, sims, n: (BAND[0] + noise(rng, (sims, n)),), (5, 8, 10, 16, 2000)),
    Case("median in band, at its upper edge", procedures.median_in_band(BAND),
         lambda rng, noise, sims, n: (BAND[1] + noise(rng, (sims, n)),), (5, 8, 10, 16, 2000)),
    Case("share in band above 0.8 (binomial)", procedures.share_in_band(BAND, 0.8), _share, (5, 10, 16)),
    Case("rows increase (sign test of slopes)", procedures.increasing([5.0, 10.0, 20.0]), _trend, (10,)),
    Case("Z2: identity spreads more (sign test)", zero_identity.variance_ratio_above_one, _spread, (2000,)),
    Case("Z4: target variance is the cause", zero_identity.target_variance_is_the_cause, _z4, (2000,)),
]

NARROW = (0.0, 0.05, 0.1, 0.5)  # band widths, in SDs of the runs (SD), for median_in_band's narrow-band cells


def _in_band(width: float, where: float) -> Callable[..., tuple[np.ndarray, ...]]:
    """Runs whose median sits at ``where`` (0: the lower edge, 1: the upper one, 1/2: the middle) of the band
    [-0.5, 0.5], from a noise of median 0 and SD 1 (:func:`data` passes the world's over its SD) times 1 / width:
    runs with SD 1 / width, so the band is ``width`` SDs wide."""

    def draw(rng, noise, sims, n):
        return (where - 0.5 + noise(rng, (sims, n)) / width,)

    return draw


ALL_N = tuple(sorted(set(N_BY_TIER.values())))
CASES.append(Case("median in a band 0 SD wide, at it", procedures.median_in_band((0.0, 0.0)),  # a point: [0, 0]
                  lambda rng, noise, sims, n: (noise(rng, (sims, n)),), ALL_N, common=True))
for _width in NARROW[1:]:
    for _where, _at in ((0.0, "at its lower edge"), (1.0, "at its upper edge"), (0.5, "in its middle")):
        if _where == 0.5 and _width > 0.1:  # the middle of a band this wide is far from both edges
            continue
        CASES.append(Case(f"median in a band {_width:g} SD wide, {_at}", procedures.median_in_band((-0.5, 0.5)),
                          _in_band(_width, _where), ALL_N, claim_true=_where == 0.5, common=True))


@functools.lru_cache(maxsize=1)
def _common_noise(world: str, shape: tuple[int, int], seed: int) -> np.ndarray:
    """``world``'s noise over its SD (median 0, SD 1), drawn once for every common case at that n: the narrow-band
    cells of one world and n differ only in the band's width and where the median sits (common random numbers),
    so one draw serves them all. Read-only: each case builds its runs from it."""
    noise = WORLDS[world](np.random.default_rng([seed, shape[1], len(WORLDS), list(WORLDS).index(world)]), shape)
    noise /= SD[world]
    noise.flags.writeable = False
    return noise


def data(case: Case, world: str, n: int, *, sims: int = SIMS, seed: int = 0) -> tuple[np.ndarray, ...]:
    """The ``sims`` data sets of a cell: ``case.draw`` from ``world``'s noise, or from the common draw for a
    ``common`` case (the narrow-band ones)."""
    rng = np.random.default_rng([seed, n, CASES.index(case), list(WORLDS).index(world)])
    if case.common:
        return case.draw(rng, lambda rng, shape: _common_noise(world, shape, seed), sims, n)
    return case.draw(rng, WORLDS[world], sims, n)


def margin(alpha: float = ALPHA, sims: int = SIMS) -> float:
    """How far above alpha a cell's observed rate may lie by Monte Carlo error alone."""
    return Z_MARGIN * float(np.sqrt(alpha * (1 - alpha) / sims))


def rate(hits: np.ndarray) -> dict[str, Any]:
    """The share of ``hits`` with its 95% Clopper-Pearson interval (beta quantiles: ``binomtest``'s exact interval
    to 1e-12, without its root finding, which cost a few seconds over the table's cells)."""
    k, n = int(hits.sum()), int(hits.size)
    low = float(stats.beta.ppf(0.025, k, n - k + 1)) if k > 0 else 0.0
    high = float(stats.beta.ppf(0.975, k + 1, n - k)) if k < n else 1.0
    return {"rate": k / n, "ci": [low, high]}


def cell(case: Case, world: str, n: int, *, sims: int = SIMS, seed: int = 0) -> dict[str, Any]:
    """Both error rates of ``case`` in ``world`` at ``n`` runs, from ``sims`` data sets with the claim on its
    boundary: "supported" there is a false support, "refuted" a false refutation."""
    p_support, p_refute = case.procedure.tests(*data(case, world, n, sims=sims, seed=seed))
    supported = np.asarray(p_support) <= ALPHA
    refuted = ~supported & (np.asarray(p_refute) <= ALPHA)  # two_tests, row by row
    return {"procedure": case.name, "world": world, "n": n, "sims": sims,
            "false_supported": None if case.claim_true else rate(supported), "false_refuted": rate(refuted)}


def worst(row: dict[str, Any]) -> float:
    """A row's larger error rate (a cell with the claim true has only the false "refuted")."""
    return max(r["rate"] for r in (row["false_supported"], row["false_refuted"]) if r is not None)


def run(*, sims: int = SIMS, seed: int = 0) -> dict[str, Any]:
    """The whole table (the report's calibration section shows it), with alpha, the margin and the verdict."""
    order = {(case.name, n, world): i for i, (case, n, world) in  # the table's order: by case, n, world
             enumerate((case, n, world) for case in CASES for n in case.sizes for world in WORLDS)}
    # computed by n and world, so the common cases of one world and n follow each other and share one draw
    rows = sorted((cell(case, world, n, sims=sims, seed=seed) for n in sorted({n for c in CASES for n in c.sizes})
                   for world in WORLDS for case in CASES if n in case.sizes),
                  key=lambda row: order[(row["procedure"], row["n"], row["world"])])
    _common_noise.cache_clear()
    limit = ALPHA + margin(sims=sims)
    return {"rows": rows, "alpha": ALPHA, "margin": margin(sims=sims), "sims": sims,
            "failures": [r for r in rows if worst(r) > limit],
            "statement": f"each row: {sims} simulated data sets with the claim exactly on its boundary; a rate above "
                         f"alpha + {margin(sims=sims):.4f} (Monte Carlo margin, z = {Z_MARGIN}) fails the suite"}


def fingerprint() -> str:
    """What the table depends on: this module and the deciding code it runs (procedures, tests, rule, the families'
    procedures), and numpy's and scipy's versions (:func:`resclaims.decide.stored.code_digest`)."""
    return code_digest(Path(__file__))[:16]


_MEMO: dict[str, dict[str, Any]] = {}  # file name (prefix and fingerprint) -> table, within one process


def cached(directory: Path | None) -> dict[str, Any]:
    """:func:`run`, kept in ``directory`` under the code's :func:`fingerprint` (atomic write; None: no cache).

    The table depends only on code, so a session whose procedures did not change reads it back
    instead of spending half a minute on it again.
    """
    return keep(directory, "validation", fingerprint(), run)


def keep(directory: Path | None, prefix: str, key: str, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``compute()``, kept in ``directory`` as ``{prefix}-{key}.json`` (and within the process); an unreadable file
    is computed again and replaced."""
    name = f"{prefix}-{key}.json"
    if name in _MEMO:
        return _MEMO[name]
    path = None if directory is None else Path(directory) / name
    if path is not None and path.exists():
        try:
            return _MEMO.setdefault(name, json.loads(path.read_text()))
        except (OSError, ValueError):
            pass  # unreadable: simulate again and replace it
    table = _MEMO.setdefault(name, compute())
    if path is not None:
        keep_json(path, table)  # a read-only cache keeps nothing: the report still gets the table
    return table
