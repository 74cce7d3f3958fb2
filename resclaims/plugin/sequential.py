"""Sequential seeds in a session: ``--seeds auto --seeds-budget N``, stage by stage.

With ``--seeds auto`` a module's runs are trained in stages whose sizes are fixed before any run is looked at: the
planned looks of :func:`resclaims.decide.sequential.stages` (the tier's n halved twice, halved, itself, doubled,
... up to the budget, the most seeds per arm). A stage's seeds are the first n of the module's fixed seed sequence
(seeds derive by index, :mod:`resclaims.run.seeding`), so each stage only adds runs.

One session is one stage. The first (no ``--seeds-after``) trains every module's first look; each claim is decided
at that look with the exact group-sequential tests (:func:`resclaims.decide.sequential.decide_at`; alpha spent
across the module's looks, for "supported" and "refuted" alike, at alpha / m for a confirmatory claim in a Holm
family of m, alpha for an exploratory one), and a claim not decided yet says ``continue`` in its details. The next
session, ``--seeds-after REPORT`` (the previous stage's report folder), moves each module with a claim to continue
to its next look, keeps every other module at its look (it asks for no new runs: a decided claim stops asking), and
keeps every claim decided at an earlier look as it was decided there. A claim is decided only at a planned look.
A claim whose procedure has no exact sequential form (a bootstrap, a family's own) is decided at the tier's n (one
of the looks whenever the budget holds it), or at the budget's n where the budget is below the tier's.

All stages in one command: ``resclaims sequential --seeds-budget N [--report-dir DIR] [SELECTION]``
(:func:`drive`) runs the stage sessions one after another, each a pytest process writing ``DIR/stage-<k>/`` and
reading the one before with ``--seeds-after``, with one line per stage (its looks, the claims decided, the runs
trained), and stops when no claim continues (every claim decided, or at the budget's look); the last stage's
report, with every stage's line in its provenance (``sequential.history``), is the report in ``DIR``.

``plan`` and ``fill`` with ``--seeds auto --seeds-budget N [--seeds-after REPORT]`` plan the selection's sessions as
they would run: one stage, the one those options name (its modules' looks), so a fill trains only the runs that
stage needs, and a decided claim's module asks for nothing new (``tests/plugin/test_sequential_session.py``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from resclaims.decide import procedures, sequential
from resclaims.decide.claims import Claim
from resclaims.decide.multiplicity import Families, reach_levels
from resclaims.decide.verdict import FULL_TIER_ONLY, INCONCLUSIVE, Decision
from resclaims.plugin.settings import MAX_SEEDS, SettingsError

AUTO = "auto"
MOST_STAGES = sequential.MOST_LOOKS + 1  # the driver's guard: a design has at most MOST_LOOKS looks


@dataclass(frozen=True)
class Auto:
    """A session's sequential settings: the budget (the most seeds per arm), and the previous stage's report's
    claims (id -> its record in summary.json) and modules' looks (module file -> look, 1-based)."""

    budget: int
    previous: dict[str, dict[str, Any]] = field(default_factory=dict)
    looks: dict[str, int] = field(default_factory=dict)

    def stages(self, tier_seeds: int) -> tuple[int, ...]:
        return sequential.stages(tier_seeds, self.budget)

    def look(self, module: str, tier_seeds: int) -> int:
        """The module's look in this session (1-based): the previous stage's, moved on where a claim continues."""
        last = len(self.stages(tier_seeds))
        if module not in self.looks:
            return 1
        going_on = any(r.get("nodeid", "").split("::")[0] == module and _sequential(r).get("continue")
                       for r in self.previous.values())
        return min(self.looks[module] + going_on, last)

    def seeds(self, module: str, tier_seeds: int) -> int:
        return self.stages(tier_seeds)[self.look(module, tier_seeds) - 1]


def _sequential(record: dict[str, Any]) -> dict[str, Any]:
    return (record.get("details") or {}).get("sequential") or {}


def parse(seeds: str | None, budget: str | None, after: str | None, limit: str | None = None) -> Auto | None:
    """``--seeds auto``, ``--seeds-budget`` and ``--seeds-after``; None without ``--seeds auto``. Bad input is one
    line (:class:`SettingsError`), before anything trains."""
    if seeds != AUTO:
        for option, value in (("--seeds-budget", budget), ("--seeds-after", after)):
            if value is not None:
                raise SettingsError(f"{option} {value}: only with --seeds auto (sequential seeds); leave it out, or "
                                    "pass --seeds auto")
        return None
    if budget is None:
        raise SettingsError("--seeds auto: give --seeds-budget N, the most seeds per arm a claim may train (a "
                            "sequential design fixes its last look before any run)")
    most = int(budget) if budget.strip().isdigit() else 0
    if most < 1:
        raise SettingsError(f"--seeds-budget {budget}: give a positive whole number of seeds per arm")
    if most < sequential.MIN_STAGE:
        raise SettingsError(f"--seeds-budget {budget}: cannot hold a single stage: a look needs at least "
                            f"{sequential.MIN_STAGE} seeds per arm (the sign test's fewest for a verdict at alpha 0.05)")
    if most > (MAX_SEEDS if limit is None else int(limit)):
        raise SettingsError(f"--seeds-budget {budget}: more than {MAX_SEEDS:,} seeds per arm; check the number, or "
                            f"pass --max-seeds {most} to allow it")
    if after is None:
        return Auto(most)
    return Auto(most, *_previous(Path(after).expanduser(), most))


def _previous(folder: Path, budget: int) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
    """The previous stage's claims and each module's look, from its ``summary.json``."""
    try:
        document = json.loads((folder / "summary.json").read_text())
        claims = {c["id"]: c for c in document["claims"]}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise SettingsError(f"--seeds-after {folder}: not a readable report of a stage ({error}); give the previous "
                            "stage's report folder") from None
    stage = document.get("provenance", {}).get("sequential") or {}
    if stage.get("budget") != budget:
        raise SettingsError(f"--seeds-after {folder}: that stage ran with --seeds-budget {stage.get('budget')}, not "
                            f"{budget}: a design's looks are fixed before the first; give the same budget")
    return claims, {module: int(look) for module, look in stage.get("looks", {}).items()}


def level(claim: Claim, families: Families | None) -> float:
    """The level a claim's sequential tests are designed at: alpha / m in a Holm family of m (its first step), else
    alpha."""
    if claim.confirmatory and families is not None:
        return reach_levels(families.size(claim))[0]
    return reach_levels(1)[1]


def decider(auto: Auto, module: str, tier_seeds: int, families: Families | None):
    """The judge's decision for ``module``'s claims at this session's look (see the module docstring)."""
    looks = auto.stages(tier_seeds)

    def decide(claim: Claim, *data: Any) -> Decision:
        before = auto.previous.get(claim.id)
        seq = _sequential(before or {})
        if seq.get("decided"):  # decided at an earlier look: kept as it was decided there
            details, proxy = before.get("details") or {}, before["verdict"] == FULL_TIER_ONLY
            details = {**details, "sequential": {**seq, "rows": before.get("n", seq.get("n"))}}  # its n: that look's
            return Decision(details.get("proxy_verdict") if proxy else before["verdict"], before["estimate"],
                            tuple(before["ci"]), details.get("proxy_p_value") if proxy else before.get("p_value"),
                            details, details.get("proxy_p_refute") if proxy else before.get("p_refute"))
        design = sequential.Design(looks, level(claim, families))
        if sequential.tests_of(claim.procedure) is not None:
            return sequential.decide_at(claim.procedure, design, *data)
        # the module's seeds at this look, not the rows handed over: a claim may keep a subset (converged runs)
        n, fixed_n = auto.seeds(module, tier_seeds), tier_seeds if tier_seeds in looks else looks[-1]
        decision = claim.procedure(*data)
        info = {"looks": list(looks), "look": looks.index(n) + 1, "n": n, "rows": len(data[0]),
                "fixed": fixed_n, "decided": n == fixed_n, "continue": n < fixed_n}
        if n != fixed_n:
            return Decision(INCONCLUSIVE, decision.estimate, decision.ci, None, {**decision.details,
                            "sequential": info}, None)
        return Decision(decision.verdict, decision.estimate, decision.ci, decision.p_value,
                        {**decision.details, "sequential": info}, decision.p_refute)

    return decide


def below_budget(claims: list[Claim], auto: Auto, families: Families, tier_seeds: dict[str, int]) -> str | None:
    """The line that refuses a session whose budget is below a claim's reach: no look of its design can say
    "supported" whatever the runs (None where every claim can). ``tier_seeds``: claim id -> its module's tier n."""
    for claim in claims:
        tests = sequential.tests_of(claim.procedure)
        if tests is None or claim.id not in tier_seeds:
            continue
        design = sequential.Design(auto.stages(tier_seeds[claim.id]), level(claim, families))
        if all(c > n for _, p0 in tests.support for c, n in zip(design.counts(p0), design.looks)):
            fixed, _ = procedures.reach(claim.procedure, design.alpha)
            needs = f"its procedure ({claim.procedure.name}) needs n >= {fixed} at level {design.alpha:.3g} even " \
                    "at one look" if fixed else "no n reaches it"
            return (f"--seeds-budget {auto.budget}: below {claim.id}'s reach: its looks {list(design.looks)} at "
                    f"level {design.alpha:.3g} can never say supported; {needs}: raise the budget")
    return None


def check_budget(items: list[Any], auto: Auto, families: Families, tier: str, named_claims: Any) -> str | None:
    """:func:`below_budget` for the claims of a session's selected tests (``named_claims(item)``: the claims a test
    names, :func:`resclaims.plugin.named_claims`), each at its module's tier n."""
    from resclaims.run.tiers import TierError, declared

    claims, tier_seeds = {}, {}
    for item in items:
        module = getattr(item, "module", None)
        try:
            tiers = declared(getattr(module, "TIERS", None), "")
        except TierError:
            continue
        if tier in tiers and item.get_closest_marker("skip") is None:
            for claim in named_claims(item):
                claims[claim.id], tier_seeds[claim.id] = claim, tiers[tier].seeds
    return below_budget(list(claims.values()), auto, families, tier_seeds)


def stage_lines(stages: dict[str, Any]) -> str:
    """``plan``'s lines for ``--seeds auto``: the budget, and each module's looks with this session's stage."""
    lines = [f"sequential seeds (--seeds auto): at most {stages.get('budget')} seeds per arm; each module's planned "
             "looks (seeds per arm), this stage's in brackets"]
    for module, looks in sorted((stages.get("stages") or {}).items()):
        now = (stages.get("seeds") or {}).get(module)
        lines.append(f"  {module}: " + ", ".join(f"[{n}]" if n == now else str(n) for n in looks))
    return "\n".join(lines)


# -- the driver: every stage in one command ---------------------------------------------------------------------
def _claims_left(document: dict[str, Any]) -> tuple[int, int]:
    """A stage report's claims decided (no ``continue``) and those to continue."""
    going_on = sum(bool(_sequential(c).get("continue")) for c in document.get("claims", []))
    return len(document.get("claims", [])) - going_on, going_on


def stage_line(k: int, document: dict[str, Any], seconds: float) -> str:
    """The driver's one line for stage ``k``: each module's seeds per arm, the claims decided, the runs trained."""
    provenance = document.get("provenance", {})
    seeds = (provenance.get("sequential") or {}).get("seeds") or {}
    decided, going_on = _claims_left(document)
    looks = ", ".join(f"{Path(m).stem} {n}" for m, n in sorted(seeds.items())) or "no module"
    return (f"stage {k}: seeds per arm {looks}; {decided} claims decided, {going_on} to continue; "
            f"{provenance.get('runs_trained', 0)} runs trained, {provenance.get('runs_from_cache', 0)} from the cache "
            f"({seconds:.0f} s)")


def pytest_session(args: Sequence[str]) -> int:
    """One stage's session: a pytest process (a fresh interpreter per stage), with this resclaims importable."""
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "pytest", *args], env=env).returncode


def drive(args: Sequence[str], budget: int | str, report_dir: Path, *, out: TextIO | None = None,
          session: Callable[[Sequence[str]], int] = pytest_session, most_stages: int = MOST_STAGES) -> int:
    """Run the stage sessions of ``args`` (a pytest selection) under ``--seeds auto --seeds-budget budget`` into
    ``report_dir/stage-<k>/`` until no claim continues; the last stage's report becomes ``report_dir``'s. Returns
    the last session's exit status (1 where a claim's test failed, as any session), or 4 where a stage wrote no
    report (bad input: its own line is on stderr)."""
    from resclaims.report.html import render_html
    from resclaims.report.render import render_markdown

    out = sys.stdout if out is None else out
    report_dir = Path(report_dir).resolve()
    report_dir.mkdir(parents=True, exist_ok=True)
    for old in report_dir.glob("stage-*"):  # an earlier drive's stages: not this design's
        shutil.rmtree(old) if old.is_dir() else old.unlink()
    history: list[dict[str, Any]] = []
    previous: Path | None = None
    for k in range(1, most_stages + 1):
        folder = report_dir / f"stage-{k}"
        started = time.perf_counter()
        code = session([*args, "--seeds", AUTO, "--seeds-budget", str(budget), "--report-dir", str(folder),
                        *(["--seeds-after", str(previous)] if previous is not None else [])])
        if not (folder / "summary.json").is_file():
            print(f"resclaims: sequential: stage {k} wrote no report (pytest exit {code}); stopped", file=out)
            return 4 if code in (0, 1) else code
        document = json.loads((folder / "summary.json").read_text())
        print(f"resclaims: {stage_line(k, document, time.perf_counter() - started)}", file=out, flush=True)
        seeds = ((document.get("provenance") or {}).get("sequential") or {}).get("seeds") or {}
        decided, going_on = _claims_left(document)
        history.append({"stage": k, "seeds": seeds, "claims_decided": decided, "claims_to_continue": going_on,
                        "runs_trained": document.get("provenance", {}).get("runs_trained", 0),
                        "runs_from_cache": document.get("provenance", {}).get("runs_from_cache", 0),
                        "exit": code})
        if going_on == 0 or code not in (0, 1) or len(history) > 1 and history[-2]["seeds"] == seeds:
            break  # every claim decided (or at its last look), a session that broke, or a stage that moved nothing
        previous = folder
    for item in folder.iterdir():  # the last stage's report is the design's
        target = report_dir / item.name
        if item.is_dir():
            shutil.copytree(item, target, dirs_exist_ok=True)
        else:
            shutil.copy2(item, target)
    document.setdefault("provenance", {}).setdefault("sequential", {})["history"] = history
    (report_dir / "summary.json").write_text(json.dumps(document, indent=2, allow_nan=False))
    (report_dir / "summary.md").write_text(render_markdown(document), encoding="utf-8")
    (report_dir / "summary.html").write_text(render_html(document, report_dir), encoding="utf-8")
    verdicts: dict[str, int] = {}
    for claim in document.get("claims", []):
        verdicts[claim["verdict"]] = verdicts.get(claim["verdict"], 0) + 1
    print(f"resclaims: sequential: {len(history)} stages; {len(document.get('claims', []))} claims ("
          + ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items())) + f"); "
          f"{sum(h['runs_trained'] for h in history)} runs trained; report in {report_dir}", file=out)
    return code
