"""A run whose loss becomes NaN or inf is stopped, marked diverged, counted in the report, and never averaged."""

import inspect
import json
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

from resclaims.datasets.cifar10 import Cifar10
from resclaims.datasets.membrane import Membrane
from resclaims.decide.verdict import ClaimResult
from resclaims.kernels import cifar, membrane
from resclaims.kernels.zero_identity import ZeroIdentityProtocol, finite_pairs, train
from resclaims.models.cifar import CifarNet
from resclaims.report.report import Report

ABSURD = ZeroIdentityProtocol(n_samples=20, epochs=3, lr=3e37)  # one Adam step overflows float32
SEEDS = [1, 2, 3, 4, 5, 6]


def test_the_default_learning_rate_is_adams():
    assert ZeroIdentityProtocol().lr == inspect.signature(torch.optim.Adam).parameters["lr"].default


def test_an_absurd_learning_rate_diverges_and_the_report_counts_it(tmp_path):
    frame = train(ABSURD, SEEDS)
    first = frame[frame.epoch == 0].set_index(["arm", "seed"]).diverged
    assert first.any(), "the absurd learning rate should make some run diverge"
    # a diverged run is blank from its first non-finite epoch on
    for (arm, seed), diverged in first.items():
        loss = frame[(frame.arm == arm) & (frame.seed == seed)].loss
        assert loss.isna().any() == diverged and np.isfinite(loss.dropna()).all()
    # ... and never enters a statistic: the claims see finite pairs only, and count the rest
    identity, zero, excluded = finite_pairs(frame, "identity", "zero")
    diverged_seeds = set(first[first].index.get_level_values("seed"))
    assert excluded == len(diverged_seeds) and len(identity) == len(SEEDS) - excluded
    assert np.isfinite(identity).all() and np.isfinite(zero).all()

    report = Report(tmp_path / "report", tier="quick", device="cpu", base_seed=0)
    report.add_runs("Z", frame)
    report.record(ClaimResult(id="Z9", claim="c", source="s", verdict="inconclusive", estimate=float(identity.mean()),
                              ci=(0.0, 1.0), p_value=None, n=len(identity), statistic="s", test="t", tier="quick",
                              protocol="p", details={"diverged_pairs_excluded": excluded}))
    written = report.write()
    summary = json.loads((written / "summary.json").read_text())
    per_arm = {arm: int(n) for arm, n in first.groupby(level="arm", sort=False).sum().items() if n}
    assert summary["runs"] == {"Z": {"runs": 2 * len(SEEDS), "diverged": int(first.sum()), "diverged_by_arm": per_arm}}
    arms = ", ".join(f"{arm}: {n}" for arm, n in per_arm.items())
    assert f"| Z | {2 * len(SEEDS)} | {int(first.sum())} | {arms} |" in (written / "summary.md").read_text()


def test_training_stops_once_every_run_has_diverged():
    epochs = []
    frame = train(replace(ABSURD, arms=("identity",)), [1], on_epoch=epochs.append)  # seed 1 diverges in its first epoch
    assert frame.diverged.all() and frame.loss.isna().all()
    assert epochs == [0]  # no epoch after the one in which the last run diverged


# -- the other kernels mark, blank and stop diverged runs the same way -------------------------
def test_membrane_runs_diverge_and_are_counted(tmp_path):
    images = (np.random.default_rng(0).random((6, 1, 16, 16)) < 0.5).astype(np.float32)
    data = Membrane(images, Path("synthetic"), "generated", "synthetic")
    curves = membrane.train(membrane.MembraneProtocol(epochs=3, lr=3e37), [1, 2], data=data)
    assert curves.diverged.all() and curves.loss.isna().all()
    assert membrane.MembraneProtocol().lr == inspect.signature(torch.optim.Adam).parameters["lr"].default
    report = Report(tmp_path / "r", tier="quick", device="cpu", base_seed=0)
    report.add_runs("M", curves)
    assert report.run_counts == {"M": {"runs": 4, "diverged": 4, "diverged_by_arm": {"no_shortcut": 2, "shortcut": 2}}}


@pytest.fixture(scope="module")
def cifar_data() -> Cifar10:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (100, 32, 32, 3), dtype=np.uint8)
    return Cifar10(x, rng.integers(0, 10, 100), x[:20], rng.integers(0, 10, 20), "synthetic", "memory", "none", "",
                   official_order=False)


@pytest.mark.parametrize("scale,diverged", [(1.0, 0), (1e30, 2)])
def test_cifar_runs_diverge_keep_their_rows_and_are_counted(cifar_data, tmp_path, scale, diverged):
    cfg = replace(cifar.HE2015, steps=4, log_every=2, batch_size=16, val_size=10, milestones=(), lr_scale=scale)
    arm = cifar.Arm("plain-8", partial(CifarNet, 8, residual=False, widths=(4, 4, 4)))
    with cifar.cpu_threads(1):
        frame = cifar.train(cfg, [arm], [1, 2], cifar_data)
    assert len(frame) == 2 * 2  # every epoch of every run has its row, diverged or not
    assert frame.groupby("seed").diverged.nunique().eq(1).all()  # a run is diverged on every row, or on none
    assert frame[frame.diverged].train_acc.isna().all() and frame[~frame.diverged].train_acc.notna().all()
    report = Report(tmp_path / "r", tier="quick", device="cpu", base_seed=0)
    report.add_runs("D", frame)
    per_arm = {"diverged_by_arm": {"plain-8": 2}} if diverged else {}  # only where a run diverged
    assert report.run_counts == {"D": {"runs": 2, "diverged": diverged, **per_arm}}
