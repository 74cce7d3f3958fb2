"""Under pytest-xdist (-n) the session writes one report, with the claims, calibrations, runs and figures of a serial one."""

import json

import pandas as pd
import pytest

pytest.importorskip("xdist")

HEAD = """
import numpy as np, pandas as pd, pytest
from resclaims.decide import procedures
from resclaims.decide.claims import Claim
from resclaims.run.tiers import Tier
TIERS = Tier.everywhere(seeds=5, fidelity="source protocol", protocol="toy")

DIFF = 1 + 0.013 * np.array([3, -1, 5, 2, -4, 0, 1, -2, 4, -3, 6, -5])
A = np.arange(12.0)

def claim(claim_id):
    return Claim(claim_id, source="mine", claim="a exceeds b", statistic="mean a - b",
                 procedure=procedures.exceeds_paired())
"""
FIRST = HEAD + """
U1, U2 = claim("U1"), claim("U2")

@pytest.fixture(scope="module")
def runs(report):  # once per module, as in a serial session
    frame = pd.DataFrame({"seed": range(12), "value": (A + DIFF).astype(np.float32), "diverged": [False] * 11 + [True]})
    report.add_runs("U", frame)
    return frame

@pytest.mark.quick
def test_U1(judge, report, runs):
    report.note("U1", "toy scale")
    report.figure_path("U1", "U1_toy").write_bytes(b"not really a png")
    judge(U1, runs.value.to_numpy(), A, protocol="toy")

@pytest.mark.quick
def test_U2(judge, runs):
    judge(U2, runs.value.to_numpy() * 1.5, A, protocol="toy")
"""
SECOND = HEAD + """
V1 = claim("V1")

@pytest.mark.quick
def test_V1(judge, report, dataset):
    report.add_runs("V", pd.DataFrame({"seed": [1, 2], "loss": [0.5, float("nan")], "arm": ["x", "y"]}))
    report.add_data("toy", source="made up", rows=12)
    judge(V1, A + 2 * DIFF, A, protocol="toy")
"""


def session(pytester, folder, *args):
    pytester.makepyfile(test_first=FIRST, test_second=SECOND)
    result = pytester.runpytest("-p", "resclaims.plugin", "-p", "no:cacheprovider", "--report-dir", folder,
                                "--baseline", "none", *args)
    result.assert_outcomes(passed=3)
    if "-n" in args:
        result.stdout.fnmatch_lines(["*2 workers*"])
    return json.loads((pytester.path / folder / "summary.json").read_text())


def claims(document):
    return [{k: c[k] for k in ("id", "verdict", "estimate", "ci", "p_value", "n", "nodeid", "details")}
            for c in document["claims"]]


def results(pytester, folder):
    frame = pd.read_csv(pytester.path / folder / "results.csv")
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


@pytest.mark.usefixtures("validation_tables")
def test_an_xdist_session_writes_the_report_of_a_serial_one(pytester, monkeypatch, tmp_path):
    monkeypatch.setenv("RESCLAIMS_CACHE", str(tmp_path / "cache"))
    serial = session(pytester, "serial")
    parallel = session(pytester, "parallel", "-p", "xdist", "-n", "2")
    assert [c["id"] for c in parallel["claims"]] == ["U1", "U2", "V1"]
    assert claims(parallel) == claims(serial)
    untimed = lambda document: [{k: v for k, v in c.items() if k != "seconds"} for c in document["calibration"]]  # noqa: E731
    assert untimed(parallel) == untimed(serial)
    assert [c["claim"] for c in parallel["calibration"]] == ["U1", "U2", "V1"]
    for key in ("notes", "figures", "runs"):
        assert parallel[key] == serial[key], key
    assert parallel["runs"] == {"U": {"runs": 12, "diverged": 1}}
    assert parallel["provenance"]["data"] == serial["provenance"]["data"] == {"toy": {"source": "made up", "rows": 12}}
    assert parallel["provenance"]["selection"] == serial["provenance"]["selection"]
    pd.testing.assert_frame_equal(results(pytester, "parallel"), results(pytester, "serial"))
    serial_csv = (pytester.path / "serial" / "results.csv").read_text()
    assert (pytester.path / "parallel" / "results.csv").read_text() == serial_csv  # the serial order, too
    assert (pytester.path / "parallel" / "figures" / "U1_toy.png").read_bytes() == b"not really a png"
    assert not list(pytester.path.glob(".parallel*"))  # the staging folder was renamed into place
    # timings: pytest-benchmark takes none under xdist, and the report says so
    assert parallel["provenance"]["timings"] == "disabled: pytest-benchmark does not time under xdist"
    assert "timings" not in serial["provenance"]
    assert "timings disabled: pytest-benchmark does not time under xdist" in (
        pytester.path / "parallel" / "summary.md").read_text()


@pytest.mark.usefixtures("validation_tables")
def test_workers_use_the_controllers_default_report_folder(pytester, monkeypatch, tmp_path):
    monkeypatch.setenv("RESCLAIMS_CACHE", str(tmp_path / "cache"))
    pytester.makepyfile(test_first=FIRST, test_second=SECOND)
    result = pytester.runpytest("-p", "resclaims.plugin", "-p", "no:cacheprovider", "--baseline", "none",
                                "-p", "xdist", "-n", "2")
    result.assert_outcomes(passed=3)
    folders = [p for p in (pytester.path / "reports").iterdir() if p.name != "latest"]
    assert len(folders) == 1  # one report, no worker's own
    assert (folders[0] / "figures" / "U1_toy.png").is_file()
    result.stdout.fnmatch_lines(["*U1 supported*", "*report: *summary.md"])


@pytest.mark.usefixtures("validation_tables")
def test_what_arrived_before_a_worker_crashed_is_reported(pytester, monkeypatch, tmp_path):
    monkeypatch.setenv("RESCLAIMS_CACHE", str(tmp_path / "cache"))
    pytester.makepyfile(test_first=FIRST, test_second=SECOND, test_third="import os\n\ndef test_crash():\n    os._exit(1)\n")
    result = pytester.runpytest("-p", "resclaims.plugin", "-p", "no:cacheprovider", "--report-dir", "r",
                                "--baseline", "none", "-p", "xdist", "-n", "2", "--dist", "load")
    # (--dist load: under loadfile, xdist 3.8 gives the crashed module to each replacement worker in turn)
    result.assert_outcomes(passed=3, failed=1)
    document = json.loads((pytester.path / "r" / "summary.json").read_text())
    assert [c["id"] for c in document["claims"]] == ["U1", "U2", "V1"]
    assert (pytester.path / "r" / "figures" / "U1_toy.png").is_file()
