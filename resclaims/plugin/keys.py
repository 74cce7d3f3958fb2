"""Where the plugin keeps the session's objects: pytest stash keys, shared by the hooks, the fixtures, the planner
and the engines' plugin."""

from __future__ import annotations

import pytest

from resclaims.decide import stored
from resclaims.decide.multiplicity import Families
from resclaims.plugin.settings import Settings
from resclaims.report.report import Report
from resclaims.run.cache import RunCache

SETTINGS_KEY = pytest.StashKey[Settings]()
REPORT_KEY = pytest.StashKey[Report]()
CACHE_KEY = pytest.StashKey[RunCache]()
BASELINE_KEY = pytest.StashKey["Path | None"]()
CALIBRATED_KEY = pytest.StashKey[dict]()
STORED_KEY = pytest.StashKey[stored.Stored]()
DESELECTED_KEY = pytest.StashKey[list[str]]()
FAMILIES_KEY = pytest.StashKey[Families]()  # the session's Holm families, for the reach rule (resclaims.decide.multiplicity)
