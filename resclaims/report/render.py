"""Render ``summary.json`` for people: the layout both renderers share, and Markdown (HTML: :mod:`resclaims.report.html`).

Both renderers read only the JSON document (and, for HTML, the figure files), so a
report can be re-rendered later without retraining. They share one layout:
:func:`sections` turns the document into titled tables and lists, and each
renderer only decides how a table looks. The page reads top down:

1. a headline: how many sampled claims got each verdict, confirmatory and
   exploratory, at the source's protocol and at a reduced one;
2. one section per claim family (the claim id's leading capitals: Z, K, D, M...):
   its sentences, verdicts, estimates and intervals, a forest plot and its figures;
3. the exact architecture facts (counted, not sampled) in one compact table;
4. what the reference sections were before: changes against the baseline,
   protocols, calibration, runs, tests, timings, speed-ups and provenance.

Fields that later documents add (``fidelity``, ``family``, ``p_adjusted``,
``p_refute``, ``seeds_for_power``, ``ci_level``, ``details.null``, the top-level
``multiplicity`` and ``validation``) are read with fallbacks, so older reports
render too.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from resclaims.report.calibration_text import calibration_sections
from resclaims.report.changes import Change, aside, counted
from resclaims.report.layout import Section

VERDICTS = ("supported", "refuted", "inconclusive", "full tier only")
VERDICT_MARK = {"supported": "✅ supported", "refuted": "❌ refuted", "inconclusive": "❔ inconclusive",
                "full tier only": "ℹ️ full tier only"}
SCOPES = ("source protocol", "reduced")  # a claim's fidelity, in the headline's columns
EXACT, NOTES = "exact facts", "notes"  # where notes that belong to no family section go
NUMBER = r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?"
EXACT_TESTS = ("exact", "property holds on every", "hypothesis property test (exact)")  # how exact facts' tests begin


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _value(value: float | None) -> str:
    """A counted value as printed: whole numbers in full with thousands separators."""
    if value is None:
        return "n/a"
    return f"{int(value):,}" if float(value).is_integer() else f"{value:.6g}"


# -- reading claims ------------------------------------------------------------
def family_of(claim_id: str) -> str:
    """A claim's family: its id's leading capital letters ("Z1.direction" -> "Z", "A4.flops" -> "A")."""
    match = re.match(r"[A-Z]+", claim_id)
    return match.group(0) if match else claim_id


def is_exact(claim: dict[str, Any], document: dict[str, Any]) -> bool:
    """An exact fact: no p-value, and a count or property check rather than a sample (its test or calibration says so)."""
    if claim.get("p_value") is not None:
        return False
    nulls = {c["claim"]: str(c.get("null", "")) for c in document.get("calibration") or []}
    return nulls.get(claim["id"], "").startswith("exact") or claim.get("test", "").lower().startswith(EXACT_TESTS)


def sampled_claims(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Claims decided from sampled runs (everything but the exact facts), in the document's order."""
    return [c for c in document["claims"] if not is_exact(c, document)]


def families(document: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Sampled claims by family, families in order of their first claim."""
    out: dict[str, list[dict[str, Any]]] = {}
    for claim in sampled_claims(document):
        out.setdefault(family_of(claim["id"]), []).append(claim)
    return out


def reference(claim: dict[str, Any]) -> tuple[float, float] | float:
    """What the estimate is judged against: the band ``(lo, hi)``, or the null (boundary) value.

    ``details.band`` for band claims; else ``details.null``, else a non-inferiority
    ``details.margin``; for reports written before those fields, the band or value
    the test's description names ("... inside [0.9, 1.0]", "Wilcoxon against -1.0"), else 0.
    """
    details = claim.get("details") or {}
    band = details.get("band")
    if isinstance(band, (list, tuple)) and len(band) == 2:
        return (float(band[0]), float(band[1]))
    for key in ("null", "margin"):
        if isinstance(details.get(key), (int, float)):
            return float(details[key])
    test = str(claim.get("test", ""))
    if match := re.search(rf"inside[^\[]*\[({NUMBER}), ({NUMBER})\]", test):
        return (float(match[1]), float(match[2]))
    if match := re.search(rf"against ({NUMBER})", test):
        return float(match[1])
    return 0.0


def reference_text(claim: dict[str, Any]) -> str:
    ref = reference(claim)
    return f"band [{_num(ref[0])}, {_num(ref[1])}]" if isinstance(ref, tuple) else f"null {_num(ref)}"


def ci_level(claim: dict[str, Any], document: dict[str, Any]) -> float:
    """The interval's level: the claim's ``ci_level``, the document's, or 0.95."""
    return float(claim.get("ci_level") or document.get("ci_level") or 0.95)


def unit_of(claim: dict[str, Any], document: dict[str, Any]) -> str:
    """The estimate's unit: the calibration's where it names one, else the statistic."""
    units = {c["claim"]: c.get("unit") for c in document.get("calibration") or []}
    unit = (units.get(claim["id"]) or claim.get("statistic") or "").strip()
    return unit[1:-1] if unit.startswith("(") and unit.endswith(")") else unit


def confirmatory(claim: dict[str, Any]) -> bool:
    return claim.get("family") == "confirmatory"


def scope_of(claim: dict[str, Any]) -> str:
    """"source protocol", "reduced" or "not stated" (a report written before claims carried their fidelity)."""
    fidelity = str(claim.get("fidelity") or "")
    return next((s for s in SCOPES if fidelity.startswith(s)), "not stated")


def _verdict_text(claim: dict[str, Any]) -> str:
    """The verdict, and for an inconclusive claim how many seeds would decide it."""
    seeds = claim.get("seeds_for_power")
    if claim["verdict"] != "inconclusive":
        return claim["verdict"]
    if not seeds:
        return "inconclusive; no number of seeds would decide it" if claim.get("details", {}).get(
            "seeds_for_power_how", "").startswith("no number") else "inconclusive"
    if seeds <= claim.get("n", 0):  # the design had the power at the stated effect: the effect is smaller
        return f"inconclusive, although {seeds} seeds have 80% power at the stated effect"
    return f"inconclusive; about {seeds} seeds would decide it"


def _p_text(claim: dict[str, Any]) -> str:
    """p, with the Holm-adjusted p and the refutation test's p where the claim has them."""
    parts = [] if claim.get("p_value") is None else [_num(claim["p_value"])]
    if claim.get("p_adjusted") is not None:
        parts.append(f"Holm {_num(claim['p_adjusted'])}")
    if claim.get("p_refute") is not None:
        parts.append(f"refute {_num(claim['p_refute'])}")
    return "; ".join(parts) or "n/a"


def _estimate_text(claim: dict[str, Any], level: str) -> str:
    lo, hi = claim["ci"]
    text = f"{_num(claim['estimate'])} [{_num(lo)}, {_num(hi)}]" + level
    return text + " (information only)" if claim["verdict"] == "full tier only" else text


def _percent(level: float) -> str:
    return f"{100 * level:g}%"


# -- sections -------------------------------------------------------------------
def headline(document: dict[str, Any]) -> Section:
    """Counts per verdict of the sampled claims: confirmatory and exploratory, at the source's protocol and reduced."""
    claims = sampled_claims(document)
    scopes = list(SCOPES) + (["not stated"] if any(scope_of(c) == "not stated" for c in claims) else [])
    columns = [(kind, scope) for kind in (True, False) for scope in scopes  # "not stated": only where there is one
               if scope != "not stated" or any(confirmatory(c) == kind and scope_of(c) == scope for c in claims)]
    count = lambda verdict, kind, scope: sum(  # noqa: E731
        1 for c in claims if c["verdict"] == verdict and confirmatory(c) == kind and scope_of(c) == scope)
    verdicts = [v for v in VERDICTS if any(c["verdict"] == v for c in claims)] or list(VERDICTS[:3])
    rows = [[v] + [str(count(v, k, s)) for k, s in columns] + [str(sum(c["verdict"] == v for c in claims))]
            for v in verdicts]
    totals = [str(sum(1 for c in claims if confirmatory(c) == k and scope_of(c) == s)) for k, s in columns]
    rows.append(["all"] + totals + [str(len(claims))])
    return Section("Headline", headers=["verdict"] + [f"{'confirmatory' if k else 'exploratory'}, {s}"
                                                      for k, s in columns] + ["all"],
                   rows=rows, paragraphs=_headline_sentences(document, claims))


def _headline_sentences(document: dict[str, Any], claims: list[dict[str, Any]]) -> list[str]:
    """What the counts cover, the family-wise statement, the exact facts and the changes, one sentence each."""
    out = [f"{len(claims)} claims from sampled runs. Confirmatory: the sentences a source asserts; "
           "exploratory: the rest. Source protocol: the source's own experiment; reduced: a smaller one, named in "
           "the claim's scope. Full tier only: a magnitude measured at a reduced protocol, given as information."]
    statement = (document.get("multiplicity") or {}).get("statement")
    if statement:
        out.append(statement)
    exact = [c for c in document["claims"] if is_exact(c, document)]
    if exact:
        tally = ", ".join(f"{sum(c['verdict'] == v for c in exact)} {v}" for v in VERDICTS
                          if any(c["verdict"] == v for c in exact))
        out.append(f"{len(exact)} exact architecture facts (counted, not sampled): {tally}; see their table.")
    comparison = document.get("comparison")
    if comparison is not None:
        changes = [Change(**c) for c in comparison["changes"]]
        listed = "; listed below." if changes else "."
        out.append(f"{len(counted(changes))} change(s) against the baseline {comparison['baseline']}"
                   f"{aside(changes)}{listed}")
    return out


def family_section(document: dict[str, Any], family: str, claims: list[dict[str, Any]]) -> Section:
    """One family's sampled claims: sentence, verdict, estimate and interval, reference, p, n and scope; its figures."""
    levels = {ci_level(c, document) for c in claims}
    shared = len(levels) == 1
    header = f"estimate [{_percent(levels.pop())} CI]" if shared else "estimate [CI, level]"
    rows = [[c["id"], f"“{c['claim']}” ({c['source']})", _verdict_text(c),
             _estimate_text(c, "" if shared else f" ({_percent(ci_level(c, document))})"), reference_text(c),
             _p_text(c), str(c["n"]),
             f"{'confirmatory' if confirmatory(c) else 'exploratory'}; {c.get('fidelity') or c['tier'] + ' tier'}"]
            for c in claims]
    exact = [c["id"] for c in document["claims"] if family_of(c["id"]) == family and is_exact(c, document)]
    items = notes_by_place(document).get(family, [])
    if exact:
        items.append(f"exact facts of this family ({', '.join(exact)}): in the table of exact architecture facts")
    sources = ", ".join(sorted({s.strip() for c in claims for s in str(c["source"]).split(",")}))
    return Section(f"Family {family} (source {sources})",
                   headers=["id", "claim (source)", "verdict", header, "against", "p (Holm; refute)", "n", "scope"],
                   rows=rows, items=items, figures=_family_figures(document, family))


def _family_figures(document: dict[str, Any], family: str) -> list[tuple[str, str]]:
    """The family's figures, its forest plot first."""
    figures = [(k, p) for k, paths in (document.get("figures") or {}).items() if family_of(k) == family for p in paths]
    return sorted(figures, key=lambda f: not Path(f[1]).name.startswith("forest_"))


def exact_section(document: dict[str, Any], exact: list[dict[str, Any]]) -> Section:
    """The exact facts in one compact table: id, verdict, value and what was counted; their notes below."""
    return Section("Exact architecture facts",
                   paragraphs=["Counted or checked on every case, not sampled: no interval and no p-value. "
                               "A fact is supported when the count matches the source at the source's rounding."],
                   headers=["id", "verdict", "value", "what was counted"],
                   rows=[[c["id"], c["verdict"], _value(c["estimate"]), c["statistic"]] for c in exact],
                   items=notes_by_place(document).get(EXACT, []))


def notes_by_place(document: dict[str, Any]) -> dict[str, list[str]]:
    """Each note as "key: text", under where it is shown: a family with a section, EXACT or NOTES.

    A note on an exact fact, or on a family whose claims are all exact facts, goes
    under the exact facts' table; a note on anything else ("timing") under "Notes".
    """
    sampled = families(document)
    exact = {c["id"] for c in document["claims"] if is_exact(c, document)}
    out: dict[str, list[str]] = {}
    for key, notes in (document.get("notes") or {}).items():
        if key in exact or (key == family_of(key) and key not in sampled and any(family_of(i) == key for i in exact)):
            place = EXACT
        else:
            place = family_of(key) if family_of(key) in sampled else NOTES
        out.setdefault(place, []).extend(f"{key}: {n}" for n in notes)
    return out


def sections(document: dict[str, Any]) -> list[Section]:
    """The report's sections in reading order."""
    prov = document["provenance"]
    out = [headline(document)]
    if document.get("incomplete"):
        out.append(Section(
            "Incomplete: no verdict on partial data",
            headers=["claim", "runs missing", "which, and what they cost"],
            rows=[[claim_id, f"{i['missing']} of {i['runs']}", i["reason"]]
                  for claim_id, i in sorted(document["incomplete"].items(), key=lambda kv: kv[0])],
        ))
    out += [family_section(document, f, claims) for f, claims in families(document).items()]
    exact = [c for c in document["claims"] if is_exact(c, document)]
    if exact:
        out.append(exact_section(document, exact))
    sequential = sequential_section(document)
    if sequential is not None:
        out.append(sequential)
    comparison = document.get("comparison")
    if comparison is not None:
        changes = comparison["changes"]
        out.append(Section(
            f"Changes against the baseline ({comparison['baseline']})",
            items=[f"{c['kind']}: {c['message']}" for c in changes] or ["no change"],
        ))
    protocols: dict[str, list[str]] = {}
    for c in document["claims"]:
        protocols.setdefault(c["protocol"], []).append(c["id"])
    out.append(Section("Protocols", items=[f"{', '.join(ids)}: {p}" for p, ids in protocols.items()]))
    out += calibration_sections(document)
    if document.get("runs"):
        out.append(Section("Runs", headers=["family", "runs",
                                            "diverged (NaN or inf loss; excluded from every statistic)",
                                            "diverged per arm"],
                           rows=[[f, str(c["runs"]), str(c["diverged"]),
                                  ", ".join(f"{arm}: {n}" for arm, n in c.get("diverged_by_arm", {}).items())]
                                 for f, c in document["runs"].items()]))
    if document.get("run_sources"):
        out.append(Section(
            "Where the runs came from",
            headers=["family", "trained in this session", "from the local run cache", "from the published run store",
                     "published by (commit; device)"],
            rows=[[f, str(c["trained"]), str(c["from_cache"]), str(c["from_store"]),
                   "; ".join([", ".join(c["store_revisions"]), ", ".join(c["store_devices"])]) if c["from_store"] else ""]
                  for f, c in document["run_sources"].items()],
        ))
    out.append(Section("Tests", items=[f"{c['id']}: {c['test']}" for c in document["claims"]]))
    if notes_by_place(document).get(NOTES):
        out.append(Section("Notes", items=notes_by_place(document)[NOTES]))
    shown = set(families(document))
    figures = [(k, p) for k, paths in (document.get("figures") or {}).items() if family_of(k) not in shown for p in paths]
    if figures:
        out.append(Section("Figures", figures=figures))
    if document.get("timings"):
        out.append(Section(
            "Timings (pytest-benchmark)",
            headers=["benchmark", "group", "mean s / call", "experiments / call", "s / experiment", "rounds"],
            rows=[[t["name"], t["group"], f"{t['seconds']:.4g}", str(t["experiments"]),
                   f"{t['seconds_per_experiment']:.3g}", str(t["rounds"])] for t in document["timings"]],
        ))
    elif prov.get("timings"):  # none taken, and why (pytest-benchmark does not time under xdist)
        out.append(Section("Timings (pytest-benchmark)", items=[f"timings {prov['timings']}"]))
    if document.get("speedups"):
        out.append(Section(
            "Seed batching speed-up (per experiment, same run)",
            headers=["group", "batched experiments", "batched s / exp", "sequential s / exp", "speed-up"],
            rows=[[s["group"], str(s["experiments"]), f"{s['batched_s_per_experiment']:.3g}",
                   f"{s['sequential_s_per_experiment']:.3g}", f"{s['speedup']:.0f}x"] for s in document["speedups"]],
        ))
    items = [f"{k}: {v}" for k, v in prov.items() if k != "data"]
    items += [f"data {name}: " + ", ".join(f"{k} {v}" for k, v in info.items()) for name, info in prov.get("data", {}).items()]
    out.append(Section("Provenance", items=items))
    return out


def sequential_section(document: dict[str, Any]) -> Section | None:
    """``--seeds auto``: each claim's look and n at its decision (``details.sequential``), and the stages a
    ``resclaims sequential`` drive ran (``provenance.sequential.history``); None for a fixed design's report."""
    rows = []
    for claim in document["claims"]:
        seq = (claim.get("details") or {}).get("sequential")
        if not seq:
            continue
        looks = seq.get("looks") or []
        at = f"look {seq.get('look')} of {len(looks)}" if seq.get("look") else "no planned look"
        state = "continue" if seq.get("continue") else "decided" if seq.get("decided") else ""
        level = f"{seq['level']:.3g} ({seq.get('spending', '')})" if "level" in seq else \
            f"fixed design at n = {seq.get('fixed')}"
        rows.append([claim["id"], claim["verdict"], at, str(seq.get("n")), ", ".join(map(str, looks)), level, state])
    if not rows:
        return None
    history = ((document.get("provenance") or {}).get("sequential") or {}).get("history") or []
    items = [f"stage {h['stage']}: seeds per arm " + ", ".join(f"{m} {n}" for m, n in sorted(h["seeds"].items()))
             + f"; {h['claims_decided']} claims decided, {h['claims_to_continue']} to continue; "
             f"{h['runs_trained']} runs trained" for h in history]
    return Section("Sequential design (--seeds auto)",
                   headers=["claim", "verdict", "decided at", "n per arm", "planned looks", "level (spending)",
                            "state"], rows=rows, items=items)


def _heading(document: dict[str, Any]) -> str:
    prov = document["provenance"]
    steps = f", CIFAR steps {prov['cifar_steps']}" if prov.get("cifar_steps") else ""
    return (f"Tier {prov['tier']} on {prov['device']} ({prov.get('device_name') or ''}){steps}, base seed "
            f"{prov['base_seed']}, commit {prov['git_commit']}, torch {prov['torch']}.")


def _marked(text: str) -> str:
    """A verdict, or a cell that starts with one, with its mark."""
    verdict = next((v for v in VERDICT_MARK if text == v or text.startswith((v + ";", v + ","))), None)
    return text if verdict is None else VERDICT_MARK[verdict] + text[len(verdict):]


def render_markdown(document: dict[str, Any]) -> str:
    cell = lambda text: _marked(str(text)).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["# resclaims report", "", _heading(document)]
    for section in sections(document):
        lines += ["", f"{'#' * section.level} {section.title}", ""]
        lines += [line for p in section.paragraphs for line in (p, "")]
        if section.headers:
            lines += ["| " + " | ".join(section.headers) + " |", "|" + "---|" * len(section.headers)]
            lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in section.rows]
        if section.items and section.headers:
            lines.append("")
        lines += [f"- {cell(item)}" for item in section.items]
        lines += [f"![{caption}]({path})" for caption, path in section.figures]
    return "\n".join(lines) + "\n"
