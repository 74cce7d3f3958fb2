"""One report under pytest-xdist: workers send what they recorded with each test's report; the controller writes it.

On a worker, the :class:`~resclaims.report.report.Report` keeps a journal of what each
test recorded (claims, calibrations, notes, figure paths, data provenance, run
tables, timings); :func:`send` puts it, with the runs trained and read from the
cache, on the test's report as one JSON user property, which xdist carries to
the controller (what arrived before a worker crash is kept). The
:class:`Controller` replays it into the controller's report, in the order of a
serial session, and hands the workers its report folder, so their figures land
in the folder it renames into place. pytest-benchmark does not time under
xdist; the report says so.
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

import pytest

from resclaims.report.report import Report, to_json_text
from resclaims.run.cache import RunCache

PROPERTY = "resclaims"  # the user property that carries a worker's results to the controller
PHASES = {"setup": 0, "call": 1, "teardown": 2}
TIMINGS_UNDER_XDIST = "disabled: pytest-benchmark does not time under xdist"


def send(report: Report, cache: RunCache, test_report: pytest.TestReport) -> None:
    """A worker's part: what ``report`` gained since the last call, and the run counts, onto ``test_report``."""
    trained, reused = cache.sent
    cache.sent = (cache.trained, cache.reused)
    entries = report.sent()
    if entries or cache.trained != trained or cache.reused != reused:
        test_report.user_properties.append((PROPERTY, to_json_text(
            {"report": entries, "runs_trained": cache.trained - trained, "runs_from_cache": cache.reused - reused})))


def dist_given(config: pytest.Config) -> bool:
    """--dist was given (on the command line, in PYTEST_ADDOPTS or in addopts), not implied by -n."""
    args = [*config.invocation_params.args, *shlex.split(os.environ.get("PYTEST_ADDOPTS", "")),
            *config.getini("addopts")]
    return any(str(a) == "--dist" or str(a).startswith("--dist=") for a in args)


class Controller:
    """The xdist controller's part: workers write into its report folder, and their results join its report."""

    def __init__(self, config: pytest.Config, report: Report, cache: RunCache, report_dir: Path) -> None:
        self.config, self.report, self.cache, self.report_dir = config, report, cache, report_dir
        self.order: dict[str, int] = {}  # node id -> its place in the collection (a serial session's order)

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node) -> None:
        """The controller's report folder (timestamp included), so workers save figures into its staging folder."""
        node.workerinput["resclaims_report_dir"] = str(self.report_dir)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node, ids) -> None:
        self.order = self.order or {nodeid: i for i, nodeid in enumerate(ids)}

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Add what a worker sent with a test's report to the session's report, and take it off the test's report."""
        sent = [value for name, value in report.user_properties if name == PROPERTY]
        if not sent:
            return
        report.user_properties[:] = [(n, v) for n, v in report.user_properties if n != PROPERTY]
        key = (self.order.get(report.nodeid, len(self.order)), report.nodeid, PHASES.get(report.when, 3))
        for text in sent:
            message = json.loads(text)
            self.report.replay(message["report"], key)
            self.cache.trained += message["runs_trained"]
            self.cache.reused += message["runs_from_cache"]
