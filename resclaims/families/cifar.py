"""K and D (CIFAR-10): final-epoch values per seed, gaps between arms, D3's gradient ratio, and the figures.

Every per-seed array is ordered by seed, so arrays of two arms are paired by
seed; a diverged run's values are NaN, and the ``judge`` leaves its pair out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from resclaims.decide.stats import bootstrap_ci
from resclaims.families import plotting

WORDS = {"train_acc": "training accuracy", "test_acc": "test accuracy"}


def final(frame: pd.DataFrame, arm: str, column: str) -> np.ndarray:
    """``column`` at the last logged step of every run of ``arm``, ordered by seed (NaN: diverged)."""
    last = frame[(frame.arm == arm) & (frame.step == frame.step.max())].sort_values("seed")
    return last[column].to_numpy()


def percent(frame: pd.DataFrame, arm: str, column: str) -> np.ndarray:
    """:func:`final` of an accuracy, in percent."""
    return 100 * final(frame, arm, column)


def gap(frame: pd.DataFrame, blocks: int, column: str, suffix: str = "") -> np.ndarray:
    """Per seed, residual minus plain at ``blocks`` blocks (K), percentage points; NaN where a run diverged."""
    return percent(frame, f"resnet-{blocks}{suffix}", column) - percent(frame, f"plain-{blocks}{suffix}", column)


def depth_gap(frame: pd.DataFrame, kind: str, depths: tuple[int, int], column: str) -> np.ndarray:
    """Per seed, deep minus shallow (D); NaN where a run diverged."""
    shallow, deep = depths
    return final(frame, f"{kind}-{deep}", column) - final(frame, f"{kind}-{shallow}", column)


def with_errors(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with an error column in percent beside every accuracy column (D)."""
    return frame.assign(**{f"{split}_err": 100 * (1 - frame[f"{split}_acc"])
                           for split in ("train", "test", "val", "train_eval")})


# -- D3: gradients ---------------------------------------------------------------------------
def first_over_last(frame: pd.DataFrame, arm: str) -> np.ndarray:
    """Per seed: the minimum over checkpoints of log10(gradient RMS of the first conv / the last conv)."""
    convs = frame[(frame.arm == arm) & frame.name.str.contains("conv")]
    first, last = convs.layer.min(), convs.layer.max()
    rms = convs.pivot_table(index=["seed", "step"], columns="layer", values="grad_rms")
    ratio = np.log10(rms[first] / rms[last])  # (seed, step)
    return ratio.groupby("seed").min().sort_index().to_numpy()


def gradient_details(frame: pd.DataFrame) -> dict:
    """Mean log10 gradient RMS of the first and last conv per arm and checkpoint."""
    convs = frame[frame.name.str.contains("conv")]
    ends = convs[convs.layer.isin([convs.layer.min(), convs.layer.max()])]
    table = ends.assign(log10=np.log10(ends.grad_rms)).groupby(["arm", "step", "layer"]).log10.mean()
    return {f"{arm} step {step} layer {layer}": round(float(v), 3) for (arm, step, layer), v in table.items()}


# -- figures -----------------------------------------------------------------------------------
def depth_table(frame: pd.DataFrame, depths, paper: dict[int, float]) -> tuple[dict[int, dict], list[str]]:
    """H1's table: each ResNet depth's final test error (mean with a 95% bootstrap interval, best run, the paper's),
    and one note line per depth. Diverged runs are left out (the report's runs table counts them)."""
    table, notes = {}, []
    for depth in depths:
        err = final(frame, f"resnet-{depth}", "test_err")
        err = err[np.isfinite(err)]
        ci = bootstrap_ci(err, np.mean)
        table[depth] = {"mean": ci.estimate, "ci": list(ci.ci), "best": float(err.min()), "paper": paper.get(depth)}
        notes.append(f"ResNet-{depth}: test error {ci.estimate:.2f}% [{ci.low:.2f}, {ci.high:.2f}] (best "
                     f"{err.min():.2f}%, n = {len(err)}); He et al. Table 6: {paper.get(depth, np.nan):.2f}%")
    return table, notes


def plot_residual_vs_plain(runs: pd.DataFrame, blocks: int, path: Path, column: str) -> None:
    """K: the residual and plain nets' accuracy curves (mean with a 95% band per arm)."""
    name = column.replace("_acc", "_accuracy")  # train_accuracy, test_accuracy
    figure = runs[runs.arm.isin([f"resnet-{blocks}", f"plain-{blocks}"])].assign(**{name: lambda f: 100 * f[column]})
    plotting.plot_learning_curves(figure, path, x="epoch", y=name, by="arm", title=f"003: {WORDS[column]}, residual vs "
                                  "plain", ylabel=f"{WORDS[column]} (%)")


def plot_gap_per_seed(runs: pd.DataFrame, blocks: int, path: Path, column: str) -> None:
    """K1: each seed's gap, residual minus plain, over the epochs (percentage points), one line per seed."""
    pair = runs[runs.arm.isin([f"resnet-{blocks}", f"plain-{blocks}"])].pivot_table(
        index=["seed", "epoch"], columns="arm", values=column)
    gaps = (100 * (pair[f"resnet-{blocks}"] - pair[f"plain-{blocks}"])).rename("gap").reset_index()
    plotting.plot_learning_curves(gaps.assign(seed=gaps.seed.astype(str)), path, x="epoch", y="gap", by="seed",
                                  title=f"003: {WORDS[column]} gap per seed, residual - plain",
                                  ylabel=f"{WORDS[column]} gap (points)")


def plot_errors(runs: pd.DataFrame, path: Path, column: str, title: str) -> None:
    """D: error curves by arm, over iterations."""
    what = {"train_err": "training error", "test_err": "test error"}[column]
    plotting.plot_learning_curves(runs, path, x="step", y=column, by="arm", title=title, ylabel=f"{what} (%)")


def plot_gradients(gradients: pd.DataFrame, path: Path, depth: int) -> None:
    """D3: log10 gradient RMS per layer at initialisation, with and without BN."""
    figure = gradients[gradients.step == 0].assign(log10_grad_rms=lambda f: np.log10(f.grad_rms))
    plotting.plot_learning_curves(figure, path, x="layer", y="log10_grad_rms", by="arm",
                                  title=f"plain-{depth} at initialisation: gradient RMS per layer",
                                  ylabel="log10 gradient RMS")
