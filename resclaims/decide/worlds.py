"""Simulated worlds for calibration: null data and data with an effect, built from a claim's own runs.

A *simulator* turns a numpy generator into data for a procedure; an *effect*
maps an effect size to a simulator. :mod:`resclaims.decide.calibration` explains which
world each kind of claim uses; this module holds them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

Simulator = Callable[..., tuple[np.ndarray, ...]]  # (rng, n=None) -> data; resampling worlds draw n runs (default: as many as observed)
Effect = Callable[[float], "Simulator | None"]  # an effect size -> a simulator of data with it (None: unreachable)


# -- simulators --------------------------------------------------------------------
def exchange(a: np.ndarray, b: np.ndarray) -> Simulator:
    """The exact paired null: each pair's two members swap places with probability 1/2."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)

    def simulate(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        swap = rng.random(len(a)) < 0.5
        return np.where(swap, b, a), np.where(swap, a, b)

    return simulate


def resample(*arrays: np.ndarray) -> Simulator:
    """Runs drawn with replacement, the same rows from every array (pairs stay pairs)."""
    arrays = tuple(np.asarray(x, dtype=float) for x in arrays)

    def simulate(rng: np.random.Generator, n: int | None = None) -> tuple[np.ndarray, ...]:
        rows = rng.integers(0, len(arrays[0]), n or len(arrays[0]))
        return tuple(x[rows] for x in arrays)

    return simulate


def reflect(x: np.ndarray, center: float) -> Simulator:
    """The one-sample null "x is centred on ``center``": each run reflected about it with probability 1/2.

    The one-sample form of :func:`exchange` (a sign flip of x - center): exact for
    a test against ``center`` that assumes symmetry, such as Wilcoxon's.
    """
    x = np.asarray(x, dtype=float)

    def simulate(rng: np.random.Generator) -> tuple[np.ndarray]:
        return (center + np.where(rng.random(len(x)) < 0.5, -1.0, 1.0) * (x - center),)

    return simulate


def located(x: np.ndarray, center: Callable[[np.ndarray], float] = np.mean) -> Effect:
    """Effect ``value``: the runs moved so that their ``center`` is ``value`` (their spread kept), then resampled."""
    x = np.asarray(x, dtype=float)
    noise = x - center(x)

    def effect(value: float) -> Simulator:
        def simulate(rng: np.random.Generator, n: int | None = None) -> tuple[np.ndarray]:
            return (value + noise[rng.integers(0, len(x), n or len(x))],)

        return simulate

    return effect


def mixed(inside: np.ndarray, outside: np.ndarray, share: float) -> Simulator:
    """Runs drawn from ``inside`` with probability ``share``, else from ``outside`` (as many as both hold)."""
    inside, outside = np.asarray(inside, dtype=float), np.asarray(outside, dtype=float)
    n = len(inside) + len(outside)

    def simulate(rng: np.random.Generator, size: int | None = None) -> tuple[np.ndarray]:
        size = size or n
        pick = rng.random(size) < share
        return (np.where(pick, inside[rng.integers(0, len(inside), size)],
                         outside[rng.integers(0, len(outside), size)]),)

    return simulate


def permute_rows(rows: np.ndarray) -> Simulator:
    """The null "no trend along the columns": each run's values put in a random order (Page's test's null)."""
    rows = np.asarray(rows, dtype=float)

    def simulate(rng: np.random.Generator) -> tuple[np.ndarray]:
        return (rng.permuted(rows, axis=1),)

    return simulate


def row_trend(rows: np.ndarray, positions: np.ndarray, center: Callable[[np.ndarray], float] = np.mean) -> Effect:
    """Effect ``slope``: each run's values moved so that the ``center`` of the runs' least-squares slopes is
    ``slope``; runs resampled."""
    rows, positions = np.asarray(rows, dtype=float), np.asarray(positions, dtype=float)
    centred = positions - positions.mean()
    observed = center(rows @ (centred / (centred**2).sum()))
    flat = rows - observed * centred  # the trend removed, the noise kept

    def effect(slope: float) -> Simulator:
        def simulate(rng: np.random.Generator, n: int | None = None) -> tuple[np.ndarray]:
            return (flat[rng.integers(0, len(rows), n or len(rows))] + slope * centred,)

        return simulate

    return effect


def paired_shift(a: np.ndarray, b: np.ndarray, center: Callable[[np.ndarray], float] = np.mean) -> Effect:
    """Effect ``delta`` on the paired difference a - b, with the observed noise.

    The observed differences are re-centred so that their ``center`` (the
    statistic's: mean or median) is 0, then shifted by ``delta``; each pair
    keeps its sum, and pairs are resampled with replacement. In that world the
    centre of the differences is exactly ``delta``.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    total, difference = a + b, a - b
    noise = difference - center(difference)

    def effect(delta: float) -> Simulator:
        def simulate(rng: np.random.Generator, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
            rows = rng.integers(0, len(a), n or len(a))
            d = noise[rows] + delta
            return (total[rows] + d) / 2, (total[rows] - d) / 2

        return simulate

    return effect


def paired_scale(a: np.ndarray, b: np.ndarray) -> Effect:
    """Effect ``ratio`` on SD(a) / SD(b): a's deviations from its mean rescaled so the sample's ratio is ``ratio``.

    Both conditions keep their shapes and their pairing; pairs are resampled
    with replacement. In that world SD(a) / SD(b) is exactly ``ratio``.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    unit = (a - a.mean()) * (np.std(b) / np.std(a))  # a's deviations, with b's SD

    def effect(ratio: float) -> Simulator:
        scaled = a.mean() + ratio * unit

        def simulate(rng: np.random.Generator, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
            rows = rng.integers(0, len(a), n or len(a))
            return scaled[rows], b[rows]

        return simulate

    return effect


def rescaled(arrays: Sequence[np.ndarray], member: int, statistic: Callable[..., float], target: float,
             *, how: str = "scale", bounds: tuple[float, float] = (1e-6, 1e6),
             rtol: float = 1e-3, side: int = 0) -> tuple[tuple[np.ndarray, ...], float] | None:
    """``arrays`` with ``arrays[member]`` moved so that ``statistic(*arrays) == target``, and the move.

    ``how="scale"`` multiplies it by a factor c (found by bisection in log space
    within ``bounds``); ``how="shift"`` adds a constant c (bisection within
    +-``bounds[1]``). Both assume the statistic is monotonic in c. Returns the
    arrays and c, or None where no c reaches the target within ``rtol`` (a
    budget censors the statistic, say). ``side`` +1 (-1) keeps the statistic at or
    above (below) the target where bisection ends between two floats that straddle
    it: a median world whose middle run lands a rounding error inside a band edge
    is not on the edge (its runs below the edge outnumber those above).
    """
    if how not in ("scale", "shift"):
        raise ValueError(f"how must be scale or shift, got {how!r}")
    arrays = tuple(np.asarray(x, dtype=float) for x in arrays)
    move = (lambda x, t: x * np.exp(t)) if how == "scale" else (lambda x, t: x + t)  # noqa: E731
    low, high = (np.log(bounds[0]), np.log(bounds[1])) if how == "scale" else (-bounds[1], bounds[1])

    def at(t: float) -> tuple[np.ndarray, ...]:
        return tuple(move(x, t) if i == member else x for i, x in enumerate(arrays))

    increasing = statistic(*at(high)) >= statistic(*at(low))
    for _ in range(100):
        mid = (low + high) / 2
        if (statistic(*at(mid)) < target) == increasing:
            low = mid
        else:
            high = mid
    t = (low + high) / 2
    if side:
        beyond = [c for c in (t, low, high) if side * (statistic(*at(c)) - target) >= 0]
        t = beyond[0] if beyond else t
    if not np.isclose(statistic(*at(t)), target, rtol=rtol, atol=1e-9):
        return None
    return at(t), float(np.exp(t)) if how == "scale" else float(t)


def band_null(arrays: Sequence[np.ndarray], member: int, statistic: Callable[..., float], band: tuple[float, float],
              estimate: float, how: str = "scale") -> tuple[Simulator, float, float] | None:
    """The band claim's null: runs resampled from the sample moved (:func:`rescaled`) so its statistic is on a band edge.

    The edge nearer the estimate is used, the other one where the nearer is out of
    reach (a budget censors the statistic). Returns the simulator, the edge and
    the move; None if neither edge is reachable.
    """
    for edge in sorted(band, key=lambda e: abs(e - estimate)):
        world = rescaled(arrays, member, statistic, edge, how=how, side=1 if edge == max(band) else -1)
        if world is not None:
            return resample(*world[0]), edge, world[1]
    return None


def band_effect(arrays: Sequence[np.ndarray], member: int, statistic: Callable[..., float], how: str = "scale") -> Effect:
    """Effect ``value``: runs resampled from the sample moved so that its statistic is ``value`` (None if unreachable)."""

    def effect(value: float) -> Simulator | None:
        world = rescaled(arrays, member, statistic, value, how=how)
        return None if world is None else resample(*world[0])

    return effect


def band_worlds(arrays: Sequence[np.ndarray], member: int, statistic: Callable[..., float], band: tuple[float, float],
                stated: float, what: str, stated_text: str = "the source's value", how: str = "scale") -> dict[str, Any]:
    """The null and effect arguments of :func:`calibrate` for a band claim.

    ``what`` names the moved per-run quantity (``arrays[member]``) in the report,
    ``how`` how it is moved (multiplied: "scale", or shifted: "shift"); ``null``
    is None where no move reaches a band edge.
    """
    estimate = float(statistic(*arrays))
    null = band_null(arrays, member, statistic, band, estimate, how)
    verb = "multiplied by" if how == "scale" else "shifted by"
    if null is None:
        return dict(null=None, null_text=f"no {'rescaling' if how == 'scale' else 'shift'} of {what} puts the statistic "
                                         "on a band edge")
    simulate, edge, move = null
    return dict(
        null=simulate,
        null_label=f"at the band edge {edge:.4g}",
        null_text=f"{what} {verb} {move:.4g}, which puts the statistic of all runs on the band edge {edge:.4g}; "
                  "runs resampled with replacement",
        effect=band_effect(arrays, member, statistic, how), stated_effect=stated,
        effect_text=f"{stated_text} {stated:.4g}: {what} {'rescaled' if how == 'scale' else 'shifted'} so that the "
                    f"statistic of all runs is {stated:.4g}; runs resampled",
    )


def paired_worlds(a: np.ndarray, b: np.ndarray, *, members: str, grid: Sequence[float], unit: str,
                  stated: float | None = None, stated_text: str = "none stated",
                  center: Callable[[np.ndarray], float] = np.mean) -> dict[str, Any]:
    """The null and effect arguments of :func:`calibrate` for a paired directional claim, "a exceeds b".

    Null: :func:`exchange`. Effect: :func:`paired_shift` with the statistic's
    ``center`` (mean or median). ``members`` names the pair in the report.
    """
    return dict(
        null=exchange(a, b), null_label="pairs exchanged",
        null_text=f"{members} exchanged within each pair at random (sign flip of the paired differences)",
        effect=paired_shift(a, b, center), stated_effect=stated, grid=grid, unit=unit,
        effect_text=f"{stated_text}; the paired differences re-centred on 0 ({center.__name__}) and shifted by the "
                    "effect, each pair keeping its sum; pairs resampled",
    )


