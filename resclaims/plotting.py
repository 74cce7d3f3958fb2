"""Figures in the sources' style: mean curve with a 95% band per condition.

Plotting is kept apart from statistics: functions here take tidy frames and
return nothing but a saved file.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: reports are written on CI machines with no display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402


def mean_band(frame: pd.DataFrame, x: str, y: str, by: str, confidence: float = 0.95) -> pd.DataFrame:
    """Mean of ``y`` per (``by``, ``x``) with a t-interval of the mean over runs."""
    grouped = frame.groupby([by, x])[y]
    out = grouped.agg(["mean", "sem", "count"]).reset_index()
    half = out["sem"].fillna(0) * stats.t.ppf(0.5 + confidence / 2, np.maximum(out["count"] - 1, 1))
    out["low"], out["high"] = out["mean"] - half, out["mean"] + half
    return out


def plot_learning_curves(
    frame: pd.DataFrame,
    path: Path,
    *,
    x: str = "epoch",
    y: str = "loss",
    by: str = "arm",
    title: str,
    ylabel: str,
    threshold: float | None = None,
    logy: bool = False,
) -> Path:
    """Mean ± 95% band of ``y`` against ``x`` per ``by``; a dashed line at ``threshold``."""
    bands = mean_band(frame, x, y, by)
    fig, ax = plt.subplots(figsize=(8, 4.8))
    for name, band in bands.groupby(by, sort=True):
        n = int(band["count"].max())
        ax.plot(band[x], band["mean"], label=f"{name} (n={n})")
        ax.fill_between(band[x], band["low"], band["high"], alpha=0.25)
    if threshold is not None:
        ax.axhline(threshold, linestyle="--", color="gray", label=f"threshold {threshold:g}")
    if logy:
        ax.set_yscale("log")
    ax.set(xlabel=x, ylabel=ylabel, title=title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


VERDICT_COLOURS = {"supported": "#1a7f37", "refuted": "#cf222e", "inconclusive": "#9a6700", "full tier only": "#57606a"}


def plot_forest(claims: list[dict], path: Path, *, title: str, units: dict[str, str] | None = None) -> Path:
    """Small multiples, one row per claim: its estimate and interval against its null (a line) or band (shaded).

    Claims have different units, so every row has its own x-scale, wide enough to
    show the reference too. ``claims`` are summary.json claim records; the
    reference comes from :func:`resclaims.render.reference`.
    """
    from resclaims.render import reference  # local: render imports nothing heavy, but stays a reader of JSON

    units = units or {}
    fig, axes = plt.subplots(len(claims), 1, figsize=(8.5, 0.62 * len(claims) + 0.7), squeeze=False)
    for ax, claim in zip(axes[:, 0], claims):
        _forest_row(ax, claim, reference(claim), units.get(claim["id"], ""))
    fig.suptitle(title, fontsize=10, x=0.02, ha="left")
    fig.tight_layout(h_pad=0.4)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _forest_row(ax, claim: dict, ref: tuple[float, float] | float, unit: str) -> None:
    """One claim: the interval as a bar, the estimate as a dot coloured by verdict, the reference behind them."""
    estimate, (low, high) = claim["estimate"], claim["ci"]
    colour = VERDICT_COLOURS.get(claim["verdict"], "black")
    if isinstance(ref, tuple):
        ax.axvspan(*ref, color="#4c72b0", alpha=0.18, lw=0)
    else:
        ax.axvline(ref, color="#555", ls="--", lw=1)
    if low is not None and high is not None:
        ax.plot([low, high], [0, 0], color=colour, lw=2.5, solid_capstyle="butt")
    if estimate is not None:
        ax.plot([estimate], [0], "o", color=colour, ms=6)
    values = [v for v in (estimate, low, high, *(ref if isinstance(ref, tuple) else (ref,))) if v is not None]
    span = (max(values) - min(values)) or abs(values[0]) or 1.0
    ax.set_xlim(min(values) - 0.08 * span, max(values) + 0.08 * span)
    ax.set_ylim(-1, 1)
    ax.set_yticks([])
    ax.tick_params(axis="x", labelsize=7, length=2, pad=1)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    ax.set_ylabel(f"{claim['id']}\n{_short(unit)}", rotation=0, ha="right", va="center", fontsize=8, labelpad=6)
    numbers = f"{_g(estimate)} [{_g(low)}, {_g(high)}]"
    ax.text(1.01, 0, f"{claim['verdict']}\n{numbers}", transform=ax.get_yaxis_transform(), fontsize=7, color=colour,
            va="center")


def _g(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def _short(text: str, width: int = 28) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def forest_plots(document: dict, folder: Path) -> dict[str, list[str]]:
    """Draw each family's forest plot into ``folder``/figures; the document's ``figures`` with them added.

    A forest plot is listed under its family's key ("Z"), so the renderers, which
    read only summary.json and figure files, show it in the family's section.
    """
    from resclaims.render import families, unit_of

    figures = {k: list(v) for k, v in (document.get("figures") or {}).items()}
    for family, claims in families(document).items():
        path = Path(folder) / "figures" / f"forest_{family}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        units = {c["id"]: unit_of(c, document) for c in claims}
        plot_forest(claims, path, title=f"Family {family}: estimate and interval against the null (dashed) or "
                                        "band (shaded); one x-scale per row", units=units)
        relative = path.relative_to(folder).as_posix()
        figures[family] = [p for p in figures.get(family, []) if p != relative] + [relative]
    return figures
