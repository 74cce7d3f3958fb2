"""What a comparison with the baseline lists, and which of it counts as a change (:mod:`resclaims.report.compare`).

Kinds that count: ``verdict``, ``estimate``, ``appeared``, ``disappeared``, ``slower`` (a ratio timed in one session).
Kinds listed as information only: ``moved`` (an estimate on other arithmetic) and ``time`` (an absolute time). The
renderers read the kinds from ``summary.json`` alone, so both they and the comparison take them from here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Change:
    kind: str  # verdict | estimate | appeared | disappeared | slower; or moved, time (information, not changes)
    item: str  # claim id or benchmark name
    message: str


NOT_COUNTED = {"moved": "estimate(s) moved on other arithmetic", "time": "absolute time(s) past the threshold"}


def counted(changes: list[Change]) -> list[Change]:
    """The changes that count (``--fail-on-change``, ``compare --fail-on-change``): all but ``moved`` and ``time``."""
    return [change for change in changes if change.kind not in NOT_COUNTED]


def aside(changes: list[Change]) -> str:
    """What is listed but not counted, in parentheses (or nothing)."""
    parts = [f"{n} {text}" for kind, text in NOT_COUNTED.items() if (n := sum(c.kind == kind for c in changes))]
    return f" ({', '.join(parts)}, not counted)" if parts else ""
