"""The membrane kernel under the run interface: asking for fewer seeds trains nothing, more trains only the new ones.

:class:`resclaims.run.runs.Runs` with a temporary :class:`~resclaims.run.cache.RunCache`, a
tiny protocol (2 epochs, 8x8 crops, both heads) and generated labels. The
membrane protocol is one condition (its arms train in lockstep), so the cache
holds, and ``cache.trained`` counts, one entry per seed with all four arms in it.
"""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from resclaims.datasets.membrane import Membrane
from resclaims.kernels.membrane import ARMS, FIXED_ARMS, MembraneProtocol, train
from resclaims.plugin.settings import Settings
from resclaims.report.report import Report
from resclaims.run.cache import RunCache
from resclaims.run.runs import Runs

TINY = MembraneProtocol(arms=ARMS + FIXED_ARMS, epochs=2, crop=8)


class Trainings:
    """A progress stub: records each training's (label, conditions, seeds, total steps) and its steps."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int, int]] = []
        self.steps: list[int] = []

    @contextlib.contextmanager
    def track(self, label: str, conditions: str, seeds: int, total: int):
        self.calls.append((label, conditions, seeds, total))
        yield self.steps.append


@pytest.fixture
def data() -> Membrane:
    images = (np.random.default_rng(3).random((4, 1, 16, 16)) > 0.22).astype(np.float32)
    return Membrane(images, Path("synthetic"), "generated", hashlib.sha256(images.tobytes()).hexdigest())


@pytest.fixture
def setup(tmp_path):
    settings = Settings(tier="quick", device=torch.device("cpu"), base_seed=20190403, seeds=None, data_dir=None,
                        report_dir=tmp_path / "report")
    cache, progress = RunCache(tmp_path / "runs"), Trainings()
    report = Report(tmp_path / "report", tier="quick", device="cpu", base_seed=settings.base_seed)
    return Runs(settings, cache, progress, report), cache, progress, report


def test_fewer_seeds_train_nothing_and_more_train_only_the_new_ones(setup, data):
    runs, cache, progress, report = setup
    five = runs(TINY, 5, seed_name="M", family="M", data=data)
    assert (cache.trained, cache.reused) == (5, 0)  # one entry per seed: its four arms
    name = f"{TINY.name} (epochs=2, crop=8)"  # its arms, and how it differs from 000's protocol (runs.condition_name)
    assert progress.calls == [("M", name, 5, TINY.epochs)] and progress.steps == [0, 1]
    assert len(five) == 5 * 4 * TINY.epochs and five.seed.nunique() == 5

    two = runs(TINY, 2, seed_name="M", family="M", data=data)  # --seeds 2 after --seeds 5
    assert (cache.trained, cache.reused) == (5, 2) and len(progress.calls) == 1
    pd.testing.assert_frame_equal(two, five[five.seed.isin(two.seed.unique())].reset_index(drop=True), check_exact=True)

    seven = runs(TINY, 7, seed_name="M", family="M", data=data)  # --seeds 7: only the 2 new seeds train
    assert (cache.trained, cache.reused) == (7, 7)
    assert progress.calls[1:] == [("M", name, 2, TINY.epochs)]
    shared = seven[seven.seed.isin(five.seed.unique())].reset_index(drop=True)
    pd.testing.assert_frame_equal(shared, five, check_exact=True)
    assert list(seven.seed.unique()[:5]) == list(five.seed.unique())  # the first five of seven are --seeds 5's

    # a seed's runs do not depend on which seeds trained beside it: the cached frame is the one-batch frame
    pd.testing.assert_frame_equal(seven, train(TINY, list(seven.seed.unique()), data=data), check_exact=True)
    assert report.run_counts == {"M": {"runs": (5 + 2 + 7) * 4, "diverged": 0}}


def test_the_cache_keys_on_the_protocol_and_the_data(setup, data):
    runs, cache, _, _ = setup
    runs(TINY, 2, seed_name="M", family="M", data=data)
    runs(MembraneProtocol(arms=ARMS, epochs=2, crop=8), 2, seed_name="M", family="M", data=data)  # other arms
    other = Membrane(1 - data.images, data.folder, data.source, "other labels")
    runs(TINY, 2, seed_name="M", family="M", data=other)  # other labels
    assert (cache.trained, cache.reused) == (6, 0)
