"""The one statistic in resclaims/families/plotting.py: the mean and its t-interval per (group, x), by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from resclaims.families import plotting


def test_mean_band_is_the_mean_with_a_t_interval_over_runs_and_no_band_for_one_run():
    frame = pd.DataFrame({"arm": ["a", "a", "a", "b"], "epoch": [0, 0, 0, 0], "loss": [1.0, 2.0, 3.0, 5.0]})
    band = plotting.mean_band(frame, "epoch", "loss", "arm").set_index("arm")
    # a: mean 2, SD 1, SEM 1 / sqrt(3); t(0.975, 2 df) = 4.303: 2 -+ 4.303 / sqrt(3) = 2 -+ 2.484
    half = stats.t.ppf(0.975, 2) / np.sqrt(3)
    assert half == pytest.approx(2.484, abs=1e-3)
    assert (band.loc["a", "mean"], band.loc["a", "count"]) == (2.0, 3)
    assert (band.loc["a", "low"], band.loc["a", "high"]) == pytest.approx((2 - half, 2 + half))
    # b: one run, no SEM (NaN): no band, low = high = the run
    assert (band.loc["b", "low"], band.loc["b", "mean"], band.loc["b", "high"]) == (5.0, 5.0, 5.0)

