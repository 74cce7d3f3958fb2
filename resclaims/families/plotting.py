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
