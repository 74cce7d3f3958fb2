"""Z (source 001): the figures and notes beside Z1's and Z4's verdicts.

Z1's threshold sweep (the identity/zero ratio of mean-curve crossings at thresholds from 0.001 to 1, with
percentile bootstrap intervals), the learning curves at the source's scale and the per-sample mean's, the runs that
never reached the threshold per arm, and Z4's decomposition of the identity - zero gap. Read from frames only; the
statistics that decide the claims are in :mod:`resclaims.families.zero_identity`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from resclaims.decide.stats import bootstrap_mean_curves
from resclaims.families import plotting
from resclaims.families.zero_identity import Z1Data, convergence_counts, mean_crossing

SWEEP = np.geomspace(0.001, 1.0, 16)  # thresholds of the sweep figure, source scale


def threshold_sweep(identity: np.ndarray, zero: np.ndarray) -> pd.DataFrame:
    """The identity/zero ratio of mean-curve crossings at each threshold of :data:`SWEEP` (percentile CIs)."""
    budget = identity.shape[1]
    rows = []
    for threshold in SWEEP:
        ratio = bootstrap_mean_curves(
            (identity, zero), lambda i, z: mean_crossing(i, threshold, budget) / mean_crossing(z, threshold, budget),
            n_resamples=500, method="percentile",
        )
        rows.append({"threshold": threshold, "ratio": ratio.estimate, "low": ratio.low, "high": ratio.high})
    return pd.DataFrame(rows)


def plot_sweep(sweep: pd.DataFrame, path, threshold: float, band: tuple[float, float]) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.8))
    ax.plot(sweep.threshold, sweep.ratio, marker="o", label="identity / zero, mean curves")
    ax.fill_between(sweep.threshold, sweep.low, sweep.high, alpha=0.25, label="95% bootstrap CI")
    ax.axhspan(*band, color="green", alpha=0.1, label="source's claim (2.4-3.5x)")
    ax.axvline(threshold, linestyle="--", color="gray", label=f"source's threshold {threshold:g}")
    ax.set(xscale="log", xlabel="loss threshold (source scale: epoch sum / 20)", ylabel="ratio of epochs to threshold",
           title="Z1: how the identity/zero ratio depends on the dashed line")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report_z1(report, frame: pd.DataFrame, data: Z1Data, band: tuple[float, float], scale: float) -> None:
    """Z1's figures and notes beside its verdicts: the threshold sweep, the learning curves at the source's scale
    and (times ``scale``) at the per-sample mean's, and per arm the runs that never reached the threshold."""
    threshold, budget = data.threshold, data.identity.shape[1]
    sweep = threshold_sweep(data.identity, data.zero)
    plot_sweep(sweep, report.figure_path("Z1", "Z1_threshold_sweep"), threshold, band)
    report.note("Z1", "threshold sweep, identity/zero ratio of mean-curve crossings (values from a censored identity "
                "curve are lower bounds): " + ", ".join(
                    f"{t:.3g}: {r:.2f} [{lo:.2f}, {hi:.2f}]" for t, r, lo, hi in sweep.itertuples(index=False)))
    plotting.plot_learning_curves(
        frame, report.figure_path("Z1", "Z1_learning_curves_source_scale"), threshold=threshold,
        title=f"Z1: training loss, identity vs zero (source scale: epoch sum / {budget}), as in 001",
        ylabel=f"L1 loss, epoch sum / {budget}")
    plotting.plot_learning_curves(
        frame.assign(loss=frame.loss * scale), report.figure_path("Z1", "Z1_learning_curves_mean_scale"),
        logy=True, threshold=threshold * scale, ylabel="L1 loss, per-sample mean",
        title="Z1: training loss, identity vs zero (per-sample mean L1, log scale)")
    report.note("Z1", "runs that never reached 0.01 in 20 epochs, never moved, or diverged, per arm: " + "; ".join(
        f"{s}: {c['never_below_threshold']} never below, {c['dead_from_start']} dead, {c['diverged']} diverged of "
        f"{c['runs']}" for s, c in convergence_counts(frame, threshold).items()))


def report_z4(report, frame: pd.DataFrame, epochs: dict[str, np.ndarray], parts: dict, threshold: float
              ) -> tuple[str, dict[str, float]]:
    """Z4's note and figure: which parts the data support (``parts``: each part's recorded result), the mean epochs
    to the threshold per arm, and the learning curves of the four arms. Returns the explanation and the means."""
    supported = frozenset(f for f, r in parts.items() if r.verdict == "supported")
    explanation = {frozenset(): "neither", frozenset({"target_variance"}): "target variance",
                   frozenset({"weight_configuration"}): "weight configuration"}.get(supported, "both")
    mean_epochs = {name: float(np.mean(e)) for name, e in epochs.items()}
    total = mean_epochs["identity"] - mean_epochs["zero"]
    report.note("Z4", f"the data support: {explanation}. Mean epochs to {threshold:g}: " + "; ".join(
        f"{k}: {v:.2f}" for k, v in mean_epochs.items()) + f". Of the identity - zero gap ({total:.2f} epochs), "
        f"weight configuration accounts for {parts['weight_configuration'].estimate:.2f} and target variance for "
        f"{parts['target_variance'].estimate:.2f}. identity_fixed_input (x0 -> x0) is reported only (see docstring).")
    budget = int(frame.epoch.max()) + 1
    plotting.plot_learning_curves(
        frame, report.figure_path("Z4", "Z4_learning_curves"), threshold=threshold, logy=True,
        title="Z4: zero, identity, shortcut-identity (and fixed-input identity), same initial kernels",
        ylabel=f"L1 loss, epoch sum / {budget}")
    return explanation, mean_epochs
