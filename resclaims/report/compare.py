"""What changed between two reports: claims (verdicts, estimates) and timings.

Answers "did anything change?" the way pytest-benchmark and asv do for timings,
and extends it to claims. A change is one of:

- ``verdict``: a claim's verdict differs from the baseline's;
- ``estimate``: a claim's estimate left the baseline's interval (same tier only), where both
  reports trained on the same arithmetic (``provenance["arithmetic"]``: torch, the device, the
  CPU's vector capability). On other arithmetic the same seeds train to other last bits, which
  training amplifies: the runs are a new sample, whose estimate can leave the baseline's 90%
  interval without any change in the code. That is listed as ``moved`` and not counted as a
  change (a verdict that differs still is);
- ``appeared`` / ``disappeared``: a claim is in one report only; a baseline claim
  counts as disappeared only if the later session ran the test that recorded it
  (see :func:`ran`), so a session that runs one module, or ``-k`` a few tests,
  is compared on what it ran;
- ``slower``: a benchmark failed pytest-benchmark's regression check
  (``--benchmark-compare-fail`` syntax, e.g. ``mean:50%``) and, where both runs
  kept at least 5 rounds, asv's one-sided Mann-Whitney test agrees (p < 0.05),
  *relative to the session's other benchmarks*: its times are first divided by the
  machine's speed factor measured in the same run (:func:`speed_factor`, the median
  ratio over all benchmarks both ran), so a slower machine is no change, and one
  benchmark slower than its peers is. Only benchmarks the later session ran are
  compared: one it did not run is no change.
"""

from __future__ import annotations

import json
import os
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pytest_benchmark.utils import parse_compare_fail
from scipy import stats

from resclaims.report.report import SCHEMA_VERSION

DEFAULT_SLOWDOWN = "mean:100%"  # twice as slow: shared CI machines are noisy
MIN_ROUNDS_FOR_TEST = 5


class ReportError(RuntimeError):
    """A report folder that cannot be read; the message says what to do."""


@dataclass(frozen=True)
class Change:
    kind: str  # verdict | estimate | appeared | disappeared | slower; or moved (information, not a change)
    item: str  # claim id or benchmark name
    message: str


def load(folder: Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """A report's ``summary.json`` and (if there) ``benchmarks.json``, checked."""
    folder = Path(folder)
    summary = folder / "summary.json"
    if not folder.is_dir():
        raise ReportError(f"{folder}: no such report folder; run the suite, or `python -m resclaims baseline update`")
    if not summary.is_file():
        raise ReportError(f"{folder}: no summary.json here; is this a report folder? (an unfinished run leaves none)")
    try:
        document = json.loads(summary.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ReportError(f"{summary}: not valid JSON ({error}); re-create it with `python -m resclaims baseline update`") from None
    if not isinstance(document, dict) or document.get("schema") != SCHEMA_VERSION:
        found = document.get("schema", "none") if isinstance(document, dict) else "none"
        raise ReportError(f"{summary}: report format {found}, this resclaims reads format {SCHEMA_VERSION}; "
                          "re-run the suite to make a new report (or `python -m resclaims baseline update`)")
    benchmarks = None
    if (folder / "benchmarks.json").is_file():
        try:
            benchmarks = json.loads((folder / "benchmarks.json").read_text())
        except json.JSONDecodeError as error:
            raise ReportError(f"{folder / 'benchmarks.json'}: not valid JSON ({error})") from None
    return document, benchmarks


def ran(claim: dict[str, Any], selection: dict[str, Any] | None) -> bool:
    """Whether a session with ``selection`` (its report's ``provenance["selection"]``) ran the test behind ``claim``.

    A baseline claim's ``nodeid`` names the test that recorded it: the session ran
    that test if it was among the tests it ran from modules named by node id, or
    if it ran the test's module whole and did not deselect the test (``-k``, ``-m``,
    ``--deselect``); a test that no longer exists in a module the session ran
    whole counts as run, so its claim disappears. A claim without a node id
    (a baseline from before reports recorded them) counts as run when the session
    ran whole directories without ``-k`` or ``--deselect``. A report without a
    selection (older, or not written by the plugin) ran everything.
    """
    if selection is None:
        return True
    nodeid = claim.get("nodeid")
    if nodeid is None:
        return selection["whole"]
    return nodeid in selection["tests"] or (nodeid.split("::")[0] in selection["modules"]
                                            and nodeid not in selection["deselected"])


def compare_claims(current: dict[str, Any], baseline: dict[str, Any]) -> list[Change]:
    """Claim changes from ``baseline`` to ``current``, limited to the claims whose tests ``current`` ran."""
    now = {c["id"]: c for c in current["claims"]}
    selection = current["provenance"].get("selection")
    before = {c["id"]: c for c in baseline["claims"] if c["id"] in now or ran(c, selection)}
    changes = [Change("appeared", i, f"{i} is new: {now[i]['verdict']}") for i in sorted(now.keys() - before.keys())]
    changes += [Change("disappeared", i, f"{i} is gone (was {before[i]['verdict']})") for i in sorted(before.keys() - now.keys())]
    same = current["provenance"].get("arithmetic") == baseline["provenance"].get("arithmetic") is not None
    for claim_id in sorted(now.keys() & before.keys()):
        a, b = now[claim_id], before[claim_id]
        if a["verdict"] != b["verdict"]:
            changes.append(Change("verdict", claim_id, f"{claim_id}: {b['verdict']} -> {a['verdict']} "
                                  f"(estimate {_num(b['estimate'])} -> {_num(a['estimate'])})"))
        low, high = b["ci"]
        if a["tier"] == b["tier"] and a["estimate"] is not None and low is not None and high is not None:
            if not low <= a["estimate"] <= high:
                text = f"{claim_id}: estimate {_num(a['estimate'])} left the baseline's interval [{_num(low)}, {_num(high)}]"
                if same:
                    changes.append(Change("estimate", claim_id, text))
                else:
                    changes.append(Change("moved", claim_id, f"{text}, on other arithmetic ("
                                          f"{baseline['provenance'].get('arithmetic') or 'not recorded'} -> "
                                          f"{current['provenance'].get('arithmetic') or 'not recorded'}): "
                                          "a new sample of runs, not counted as a change"))
    return changes


def counted(changes: list[Change]) -> list[Change]:
    """The changes that count (``--fail-on-change``, ``compare --fail-on-change``): all but ``moved``."""
    return [change for change in changes if change.kind != "moved"]


MIN_BENCHMARKS_FOR_FACTOR = 3  # benchmarks both sessions ran, from which a machine's speed factor is taken


def speed_factor(current: dict[str, Any] | None, baseline: dict[str, Any] | None) -> float:
    """How much slower this session's machine ran than the baseline's, measured in this same run: the median over
    the benchmarks both ran of mean time now / mean time then (1 with fewer than 3 of them, where a machine's speed
    cannot be told from a change)."""
    if not current or not baseline:
        return 1.0
    before = {b["fullname"]: b["stats"]["mean"] for b in baseline.get("benchmarks", [])}
    ratios = [b["stats"]["mean"] / before[b["fullname"]] for b in current.get("benchmarks", [])
              if before.get(b["fullname"])]
    return float(statistics.median(ratios)) if len(ratios) >= MIN_BENCHMARKS_FOR_FACTOR else 1.0


def compare_timings(current: dict[str, Any] | None, baseline: dict[str, Any] | None,
                    slowdown: str = DEFAULT_SLOWDOWN) -> list[Change]:
    """Benchmarks slower than the baseline's beyond ``slowdown``, relative to the rest of this session's benchmarks.

    No absolute time is judged: a whole machine that is slower (another CPU, a shared one) makes every benchmark
    slower alike, which :func:`speed_factor` measures in the same run and divides out. What counts is one
    benchmark slower than its peers by more than ``slowdown``, confirmed by Mann-Whitney where both kept 5 rounds.
    """
    if not current or not baseline:
        return []
    check = parse_compare_fail(slowdown)
    factor = speed_factor(current, baseline)
    before = {b["fullname"]: b for b in baseline.get("benchmarks", [])}
    changes = []
    for bench in current.get("benchmarks", []):
        old = before.get(bench["fullname"])
        scaled = {k: v / factor if isinstance(v, (int, float)) and k in SCALED else v for k, v in bench["stats"].items()}
        if old is None or not check.fails(scaled, old["stats"]):
            continue
        new_data, old_data = [t / factor for t in bench["stats"].get("data") or []], old["stats"].get("data") or []
        p = None
        if min(len(new_data), len(old_data)) >= MIN_ROUNDS_FOR_TEST:
            p = stats.mannwhitneyu(new_data, old_data, alternative="greater").pvalue
            if p >= 0.05:
                continue
        ratio = bench["stats"]["mean"] / old["stats"]["mean"]
        relative = f", {ratio / factor:.2f}x relative to this session's other benchmarks (machine factor " \
                   f"{factor:.2f})" if factor != 1.0 else ""
        changes.append(Change("slower", bench["fullname"], f"{bench['name']}: {ratio:.2f}x the baseline's mean time "
                              f"({old['stats']['mean']:.4g} s -> {bench['stats']['mean']:.4g} s{relative}"
                              + (f", Mann-Whitney p = {p:.2g})" if p is not None else ")")))
    return changes


SCALED = ("min", "max", "mean", "median", "q1", "q3", "ld15iqr", "hd15iqr", "stddev", "iqr")  # times, not counts


def compare(current_folder: Path, baseline_folder: Path, slowdown: str = DEFAULT_SLOWDOWN) -> list[Change]:
    current, current_bench = load(current_folder)
    baseline, baseline_bench = load(baseline_folder)
    return compare_claims(current, baseline) + compare_timings(current_bench, baseline_bench, slowdown)


def as_json(changes: list[Change], baseline: Path) -> dict[str, Any]:
    """The comparison for ``summary.json``; the baseline's path relative to the working directory."""
    return {"baseline": os.path.relpath(baseline), "changes": [asdict(c) for c in changes]}


def summary_line(changes: list[Change], baseline: Path) -> str:
    moved = len(changes) - len(counted(changes))
    aside = f" ({moved} estimate(s) moved on other arithmetic, not counted)" if moved else ""
    changes = counted(changes)
    if not changes:
        return f"no change against the baseline {baseline}{aside}"
    kinds = {}
    for change in changes:
        kinds[change.kind] = kinds.get(change.kind, 0) + 1
    return (f"{len(changes)} change(s) against the baseline {baseline}: "
            + ", ".join(f"{n} {k}" for k, n in kinds.items()) + aside)


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"
