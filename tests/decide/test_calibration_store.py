"""Calibrations kept by content (issue 24): a session on runs it has already judged computes no calibration again."""

from __future__ import annotations

import json

import numpy as np
import pytest

from resclaims.decide import calibration, procedures, stored
from resclaims.decide.claims import Claim

U1 = Claim("U1", source="mine", claim="a beats b", statistic="median paired difference", unit="points",
           procedure=procedures.exceeds_paired())
RNG = np.random.default_rng(0)
A, B = RNG.normal(1.0, 1.0, 12), RNG.normal(0.0, 1.0, 12)


def calibrated(stored: stored.Stored, key: str, calls: list[int]) -> calibration.Calibration:
    def compute() -> calibration.Calibration:
        calls.append(1)
        worlds = U1.procedure.calibration(U1, A, B)
        return calibration.calibrate("U1", U1.procedure.decide, n_sims=50, seed=7, **worlds)
    return stored.calibration(key, compute)


def test_a_kept_calibration_is_read_back_equal_and_not_computed(tmp_path):
    calls: list[int] = []
    key = stored.Stored.key("code", "U1", (A, B), 50, 7)
    first = calibrated(stored.Stored(tmp_path), key, calls)
    again = stored.Stored(tmp_path)
    second = calibrated(again, key, calls)
    assert calls == [1] and (again.read, again.computed) == (1, 0)
    assert second.to_json() == first.to_json() and second.type_one == first.type_one and second.power == first.power


def test_the_key_holds_the_data_the_code_and_the_settings():
    key = stored.Stored.key("code", "U1", (A, B), 50, 7)
    assert key == stored.Stored.key("code", "U1", (A.copy(), B.copy()), 50, 7)
    others = [stored.Stored.key("code", "U1", (A, B[::-1]), 50, 7),   # other runs
              stored.Stored.key("code", "U1", (A, B.astype(np.float32)), 50, 7),
              stored.Stored.key("other code", "U1", (A, B), 50, 7),  # the procedures or the module changed
              stored.Stored.key("code", "U2", (A, B), 50, 7),
              stored.Stored.key("code", "U1", (A, B), 200, 7),        # another tier's simulations
              stored.Stored.key("code", "U1", (A, B), 50, 8)]         # another calibration seed
    assert key not in others and len(set(others)) == len(others)


def test_the_code_digest_changes_with_the_module_that_declares_the_claim(tmp_path):
    module = tmp_path / "test_mine.py"
    module.write_text("BAND = (4, 7)\n")
    before = stored.code_digest(module)
    module.write_text("BAND = (4, 8)\n")
    assert stored.code_digest(module) != before


def test_an_unreadable_entry_is_computed_again_and_replaced(tmp_path):
    calls: list[int] = []
    key = stored.Stored.key("code", "U1", (A, B), 50, 7)
    calibrated(stored.Stored(tmp_path), key, calls)
    (entry,) = tmp_path.glob("calibration-*.json")
    entry.write_text('{"claim": "U1", "null"')  # cut short
    calibrated(stored.Stored(tmp_path), key, calls)
    assert calls == [1, 1] and json.loads(entry.read_text())["claim"] == "U1"


def test_no_folder_keeps_nothing(tmp_path):
    calls: list[int] = []
    key = stored.Stored.key("code", "U1", (A, B), 50, 7)
    for _ in range(2):
        calibrated(stored.Stored(None), key, calls)
    assert calls == [1, 1]


MODULE = """
import numpy as np
import pytest
from resclaims.decide import procedures
from resclaims.decide.claims import Claim
from resclaims.run.tiers import Tier
TIERS = Tier.everywhere(seeds=5, fidelity="source protocol", protocol="toy")

U1 = Claim("U1", source="mine", claim="a beats b", statistic="median paired difference", unit="points",
           procedure=procedures.exceeds_paired())
U2 = Claim("U2", source="mine", claim="a beats b by little", statistic="median paired difference", unit="points",
           procedure=procedures.exceeds_paired())


def test_u1(judge):
    rng = np.random.default_rng(0)
    judge(U1, rng.normal(1.0, 1.0, 12), rng.normal(0.0, 1.0, 12))


def test_u2(judge):  # inconclusive: also asks seeds_for_power
    rng = np.random.default_rng(1)
    judge.record(U2, rng.normal(0.1, 1.0, 6), rng.normal(0.0, 1.0, 6))
"""


@pytest.mark.usefixtures("validation_tables")
def test_a_second_session_on_the_same_runs_computes_no_calibration(pytester, monkeypatch, tmp_path):
    monkeypatch.setenv("RESCLAIMS_CACHE", str(tmp_path / "cache"))
    pytester.makepyfile(test_mine=MODULE)
    summaries = []
    for session in ("first", "second"):
        result = pytester.runpytest("-p", "resclaims.plugin", "-p", "no:cacheprovider", "--baseline", "none",
                                    "--report-dir", str(tmp_path / session))
        result.assert_outcomes(passed=2)
        summaries.append(json.loads((tmp_path / session / "summary.json").read_text()))
    first, second = (s["provenance"] for s in summaries)
    assert (first["calibrations_computed"], first["calibrations_read"]) == (3, 0)  # two calibrations, one seeds_for_power
    assert (second["calibrations_computed"], second["calibrations_read"]) == (0, 3)
    assert summaries[0]["claims"] == summaries[1]["claims"] and summaries[0]["calibration"] == summaries[1]["calibration"]
