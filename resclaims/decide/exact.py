"""The shared procedures' exact parts: their two p-values vectorised over simulated data sets, and the null
rates their calibrations know by construction.

``decide`` (resclaims.decide.procedures) and the validation suite (resclaims.report.validation) both call the
``*_tests`` functions, so what is validated is what decides. A sign test in a world that flips the runs' signs,
or puts their median on a band's edge, has its null rate from the binomial (``by_construction``,
``band_by_construction``): the report labels it "exact by construction".
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from resclaims.decide import calibration as cal
from resclaims.decide.stats import ALPHA, share_test, sign_test


def slopes(rows: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Each run's least-squares slope of its row on ``positions`` (rows: ... x runs x positions)."""
    centred = positions - positions.mean()
    return np.asarray(rows) @ (centred / (centred**2).sum())



# -- the two p-values of each shared procedure, vectorised over leading axes (simulated data sets): decide and
# the validation suite (tests/report/test_validation.py) both call these, so what is validated is what decides.
def paired_tests(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = sign_test(np.asarray(a) - np.asarray(b), 0.0)
    return t.p_above, t.p_below


def exceeds_tests(x: np.ndarray, null: float) -> tuple[np.ndarray, np.ndarray]:
    t = sign_test(x, null)
    return t.p_above, t.p_below


def below_tests(x: np.ndarray, margin: float) -> tuple[np.ndarray, np.ndarray]:
    t = sign_test(x, margin)
    return t.p_below, t.p_above


def band_tests(x: np.ndarray, band: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """:func:`inside`'s two p-values from the sign tests at the band's edges (counts only: no sorting)."""
    x = np.asarray(x, dtype=float)
    n = x.shape[-1]
    p = stats.binom.sf(np.arange(-1, n), n, 0.5).__getitem__  # sign_test's p-value of each count, looked up
    p_support = np.maximum(p((x > band[0]).sum(axis=-1)), p((x < band[1]).sum(axis=-1)))
    return p_support, np.minimum(1.0, 2 * np.minimum(p((x < band[0]).sum(axis=-1)), p((x > band[1]).sum(axis=-1))))


def share_tests(x: np.ndarray, band: tuple[float, float], share: float) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x)
    t = share_test(((x >= band[0]) & (x <= band[1])).sum(axis=-1), x.shape[-1], share)
    return t.p_above, t.p_below


def trend_tests(rows: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = sign_test(slopes(rows, positions), 0.0)
    return t.p_above, t.p_below


# -- calibrations exact by construction: the sign test in a world that flips signs, or whose median is the edge -----
def fewest_for(n: int, alpha: float = ALPHA) -> int:
    """The fewest of ``n`` runs on one side of a boundary for which the sign test rejects at ``alpha`` (n + 1: none)."""
    counts = np.arange(n + 1)
    rejecting = counts[stats.binom.sf(counts - 1, n, 0.5) <= alpha]
    return int(rejecting[0]) if len(rejecting) else n + 1


def by_construction(differences: np.ndarray, world: str) -> dict[str, Any]:
    """The null rate of a sign test in a world that flips the sign of each of ``differences`` (x - boundary, or
    a - b) with probability 1/2 (:func:`~resclaims.worlds.reflect`, :func:`~resclaims.worlds.exchange`).

    The test says "supported" when at least :func:`fewest_for` runs lie on the claim's side, and in that world
    the count on either side is Binomial(m, 1/2) over the m nonzero differences (a zero stays a zero and counts
    against both sides). So the rate is that binomial tail, at most alpha by construction: a simulated gate can
    never flag it, and its simulated rate checks the code, not the procedure.
    """
    d = np.asarray(differences, dtype=float)
    m = int(np.count_nonzero(d))
    rate = float(stats.binom.sf(fewest_for(len(d)) - 1, m, 0.5))
    return {"construction": f"exact by construction: {world} makes the sign test's count Binomial({m}, 1/2) (the "
                            f"runs off the boundary), so P(supported | null) = {rate:.4g} <= alpha, from the binomial",
            "exact_rate": rate}


def band_by_construction(x: np.ndarray, band: tuple[float, float], how: str) -> dict[str, Any]:
    """The null rate bound of :func:`median_in_band` in its band world (:func:`~resclaims.worlds.band_null`): runs
    resampled from the sample moved so its median sits on the edge nearer the estimate.

    "Supported" needs the sign test at that edge to reject, at least :func:`fewest_for` runs inside it; each
    resampled run lies inside with probability q (the moved sample's share inside the edge), at most 1/2 since
    its median is the edge. So the rate is at most the Binomial(n, q) tail, at most alpha by construction (empty
    where the world cannot be built or q exceeds 1/2).
    """
    null = cal.band_null((np.asarray(x, dtype=float),), 0, np.median, band, float(np.median(x)), how)
    if null is None:
        return {}
    _, edge, move = null
    moved = x * move if how == "scale" else x + move
    q = float(np.mean(moved > edge) if edge == min(band) else np.mean(moved < edge))
    if q > 0.5:
        return {}
    bound = float(stats.binom.sf(fewest_for(len(x)) - 1, len(x), q))
    return {"construction": f"exact by construction: each resampled run lies inside the edge {edge:.4g} with "
                            f"probability {q:.3g} <= 1/2 (the moved sample's median is the edge), so P(supported | "
                            f"null) <= {bound:.4g} <= alpha, from the binomial", "exact_rate": bound}
