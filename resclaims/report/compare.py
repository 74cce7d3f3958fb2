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
- ``slower``: a benchmark got slower *as a ratio measured in the same session*: its time over
  a reference timed in that session (:func:`ratios`: the reference its test timed itself,
  ``extra_info["reference_s"]``, such as sgemm just before and after 003's step; and the
  geometric mean of the other benchmarks of its pytest-benchmark group, the alternatives
  timed side by side: loop and grouped, eager and compiled, sequential and batched, local
  and ray) grew past ``slowdown`` (a percentage in pytest-benchmark's
  ``--benchmark-compare-fail`` syntax, e.g. ``mean:100%``) over the baseline's same ratio,
  and, where both runs kept at least 5 rounds, asv's one-sided Mann-Whitney test agrees
  (p < 0.05). Only benchmarks the later
  session ran are compared: one it did not run is no change;
- ``time`` (information, not a change): a benchmark's absolute mean time past ``slowdown``
  of the baseline's. No absolute time is judged: it was measured at another moment, often
  on another machine, and a shared machine slows some benchmarks and not others; a whole
  session 3x slower changes no ratio.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pytest_benchmark.utils import PercentageRegressionCheck, parse_compare_fail
from scipy import stats

from resclaims.report.changes import Change, aside, counted
from resclaims.report.report import SCHEMA_VERSION

DEFAULT_SLOWDOWN = "mean:100%"  # a same-session ratio twice the baseline's: shared CI machines are noisy
MIN_ROUNDS_FOR_TEST = 5


class ReportError(RuntimeError):
    """A report folder that cannot be read; the message says what to do."""


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


def slowdown_check(slowdown: str) -> Any:
    """``slowdown`` parsed: a percentage only (``mean:100%``); an absolute difference (``min:0.01``) is refused, since
    it would judge a time in seconds. Raises ValueError with the reason."""
    try:
        check = parse_compare_fail(slowdown)
    except Exception:  # pytest-benchmark raises argparse errors here
        raise ValueError("use pytest-benchmark's compare-fail syntax with a percentage, e.g. mean:100%") from None
    if not isinstance(check, PercentageRegressionCheck):
        raise ValueError("an absolute difference judges seconds measured at another moment; give a percentage of "
                         "the same-session ratio, e.g. mean:100%")
    return check


@dataclass(frozen=True)
class Ratio:
    """A benchmark's times over a reference timed in the same session: its stats and rounds divided by the
    reference's seconds (``over`` names the reference, for people)."""

    over: str
    stats: dict[str, Any]
    data: list[float]


def ratio(bench: dict[str, Any], over: str, seconds: float) -> Ratio:
    """``bench``'s times (its stats' times and its rounds) divided by ``seconds``."""
    times = {k: v / seconds for k, v in bench["stats"].items() if k in SCALED and isinstance(v, (int, float))}
    return Ratio(over, times, [t / seconds for t in bench["stats"].get("data") or []])


def ratios(bench: str, session: dict[str, Any], peers: list[str]) -> dict[str, Ratio]:
    """The benchmark ``bench``'s (a fullname) same-session ratios in ``session``, by kind.

    ``reference``: over the time its test measured itself for the purpose (``extra_info["reference_s"]``, named by
    ``extra_info["reference"]``), such as sgemm just before and after a step. ``group``: over the geometric mean of
    ``peers`` (fullnames: the other benchmarks of its pytest-benchmark group that both compared sessions ran, so that
    both ratios are over the same ones), which pytest-benchmark times side by side; a mean over them, so that one
    noisy peer (a single round) does not make the others look slow. A machine that is slower, or shared, slows a
    benchmark and its references alike; a ratio changes when the code does.
    """
    by_name = {b["fullname"]: b for b in session.get("benchmarks", [])}
    this, out = by_name[bench], {}
    extra = this.get("extra_info") or {}
    if extra.get("reference_s"):
        out["reference"] = ratio(this, extra.get("reference", "the reference its test timed"), extra["reference_s"])
    means = [by_name[name]["stats"]["mean"] for name in peers]
    if means and all(means):
        names = ", ".join(by_name[name]["name"] for name in peers)
        over = names if len(peers) == 1 else f"the geometric mean of {names}"
        out["group"] = ratio(this, over, float(np.exp(np.mean(np.log(means)))))
    return out


def compare_timings(current: dict[str, Any] | None, baseline: dict[str, Any] | None,
                    slowdown: str = DEFAULT_SLOWDOWN) -> list[Change]:
    """Benchmarks slower than the baseline's as a same-session ratio (``slower``), and absolute times past
    ``slowdown`` as information (``time``, not counted).

    A ratio (:func:`ratios`) is judged against the baseline's same ratio: it must grow past ``slowdown``, and, where
    both sessions kept 5 rounds, Mann-Whitney must agree. A benchmark is listed once, at its largest ratio's growth.
    """
    if not current or not baseline:
        return []
    check = slowdown_check(slowdown)
    before = {b["fullname"]: b for b in baseline.get("benchmarks", [])}
    both = [b for b in current.get("benchmarks", []) if b["fullname"] in before]
    changes = []
    for bench in both:
        old, name = before[bench["fullname"]], bench["fullname"]
        group = bench.get("group")
        peers = [b["fullname"] for b in both if group is not None and b["fullname"] != name
                 and b.get("group") == group == before[b["fullname"]].get("group") == old.get("group")]
        now, then = ratios(name, current, peers), ratios(name, baseline, peers)
        worst = None
        for kind, this in now.items():
            was = then.get(kind)
            if was is None or not check.fails(this.stats, was.stats):
                continue
            p = None
            if min(len(this.data), len(was.data)) >= MIN_ROUNDS_FOR_TEST:
                p = stats.mannwhitneyu(this.data, was.data, alternative="greater").pvalue
                if p >= 0.05:
                    continue
            growth = this.stats[check.field] / was.stats[check.field]
            if worst is None or growth > worst[0]:
                worst = (growth, this, was, p)
        if worst is not None:
            growth, this, was, p = worst
            test = f", Mann-Whitney p = {p:.2g})" if p is not None else ")"
            changes.append(Change("slower", name, f"{bench['name']}: {growth:.2f}x the baseline's {check.field} as a "
                                  f"ratio to {this.over}, timed in the same session ({was.stats[check.field]:.3g} -> "
                                  f"{this.stats[check.field]:.3g}{test}"))
        if check.fails(bench["stats"], old["stats"]):
            a, b = old["stats"][check.field], bench["stats"][check.field]
            changes.append(Change("time", name, f"{bench['name']}: {b / a:.2f}x the baseline's {check.field} "
                                  f"time ({a:.4g} s -> {b:.4g} s): an absolute time, information only"))
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
    listed, changes = aside(changes), counted(changes)
    if not changes:
        return f"no change against the baseline {baseline}{listed}"
    kinds = {}
    for change in changes:
        kinds[change.kind] = kinds.get(change.kind, 0) + 1
    return (f"{len(changes)} change(s) against the baseline {baseline}: "
            + ", ".join(f"{n} {k}" for k, n in kinds.items()) + listed)


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"
