"""Forest plots: each family's claims in one figure, estimate and interval against the null or band.

Drawn from the report's ``summary.json`` records only, when a report is written
(:meth:`resclaims.report.report.Report.write`).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: reports are written on CI machines with no display

import matplotlib.pyplot as plt  # noqa: E402

from resclaims.report.render import families, reference, unit_of  # noqa: E402

VERDICT_COLOURS = {"supported": "#1a7f37", "refuted": "#cf222e", "inconclusive": "#9a6700", "full tier only": "#57606a"}


def plot_forest(claims: list[dict], path: Path, *, title: str, units: dict[str, str] | None = None) -> Path:
    """Small multiples, one row per claim: its estimate and interval against its null (a line) or band (shaded).

    Claims have different units, so every row has its own x-scale, wide enough to
    show the reference too. ``claims`` are summary.json claim records; the
    reference comes from :func:`resclaims.report.render.reference`.
    """
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
