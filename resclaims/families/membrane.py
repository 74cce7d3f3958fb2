"""The membrane family's own statistics, procedure and figure (claims M1-M3, source 000).

- :func:`curves` and :func:`shortcut_wins`: M1's per-seed values, both arms paired by seed;
- :data:`share_in_band`: M3.reaches_floor's procedure, the median share of the floor inside a band;
- :func:`plot_reconstructions`: the source's ``row_show`` of the trained models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from resclaims.decide import calibration, procedures
from resclaims.decide.verdict import Decision
from resclaims.kernels.membrane import reconstruct

SHARE_BAND = (0.9, 1.0)  # "reaches the floor": the floor is at least 90% of the final loss


def curves(frame: pd.DataFrame, arm: str, column: str = "loss") -> np.ndarray:
    """(seeds, epochs) of one arm, seeds in a fixed order so that arms pair by seed; a diverged run's epochs are NaN."""
    return frame[frame.arm == arm].pivot(index="seed", columns="epoch", values=column).sort_index().to_numpy()


def shortcut_wins(frame: pd.DataFrame, pair: tuple[str, str], part: str) -> tuple[np.ndarray, np.ndarray, dict]:
    """M1's per-seed values of both arms for ``part`` ("faster": area under the curve, "better": last epoch),
    paired by seed (a diverged run's values are NaN: the judge leaves its seed out), and the details."""
    no_shortcut, shortcut = curves(frame, pair[0]), curves(frame, pair[1])
    pick = (lambda c: c.mean(axis=1)) if part == "faster" else (lambda c: c[:, -1])  # noqa: E731
    a, b = pick(no_shortcut), pick(shortcut)
    finite = np.isfinite(no_shortcut).all(axis=1) & np.isfinite(shortcut).all(axis=1)
    fa, fb = a[finite], b[finite]
    return a, b, {f"mean_{pair[0]}": float(fa.mean()), f"mean_{pair[1]}": float(fb.mean()),
                  "ratio_of_means": float(fa.mean() / fb.mean()), "seeds_shortcut_lower": int((fb < fa).sum()),
                  "first_epoch_means": [float(no_shortcut[finite, 0].mean()), float(shortcut[finite, 0].mean())]}


def decide_share(share: np.ndarray) -> Decision:
    """M3.reaches_floor: median over seeds of floor / final loss inside SHARE_BAND (two one-sided sign tests)."""
    return procedures.median_in_band(SHARE_BAND).decide(share)


def _share_worlds(claim, share: np.ndarray) -> dict[str, Any]:
    """Every seed's share rescaled so that the median of all seeds sits on the band edge (the null), or on the
    claim's ``stated`` value (the effect)."""
    return dict(unit=claim.unit, grid=claim.grid, **calibration.band_worlds(
        (share,), 0, np.median, SHARE_BAND, claim.stated, "every seed's floor / final loss",
        stated_text=claim.stated_text))


share_in_band = procedures.custom(
    f"median share in [{SHARE_BAND[0]:g}, {SHARE_BAND[1]:g}]",
    f"median inside {list(SHARE_BAND)}: two one-sided exact sign tests, order-statistic interval", decide_share,
    _share_worlds)


def plot_reconstructions(frame: pd.DataFrame, images: torch.Tensor, path: Path, epochs: int) -> None:
    """The first seed's models on image 0 next to the target, as the source's ``row_show``."""
    import matplotlib.pyplot as plt

    seed = int(frame.seed.iloc[0])
    outputs = reconstruct(frame, images[:1], seed)
    final = frame[(frame.seed == seed) & (frame.epoch == epochs - 1)].set_index("arm").loss
    panels = [(name, f"{name}\nloss {final[name]:.3f}") for name in outputs] + [("target", "target")]
    fig, axs = plt.subplots(1, len(panels), figsize=(3 * len(panels), 3.4))
    for ax, (name, title) in zip(axs, panels):
        picture = images[0, 0].cpu().numpy() if name == "target" else outputs[name]
        ax.imshow(picture, cmap="gray", vmin=0, vmax=1)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.suptitle(f"image 0 after {epochs} epochs (seed {seed}, per-pixel L1 of the last epoch)")
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    fig.savefig(path, dpi=110)
    plt.close(fig)
