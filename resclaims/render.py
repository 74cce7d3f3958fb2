"""Render ``summary.json`` for people: Markdown and a self-contained HTML page.

Both renderers read only the JSON document (and, for HTML, the figure files), so a
report can be re-rendered later without retraining. They share one layout:
:func:`sections` turns the document into titled tables and lists, and each
renderer only decides how a table looks.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

VERDICT_MARK = {"supported": "✅ supported", "refuted": "❌ refuted", "inconclusive": "❔ inconclusive"}


@dataclass
class Section:
    title: str
    headers: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    items: list[str] = field(default_factory=list)  # a bulleted list, after the table
    figures: list[tuple[str, str]] = field(default_factory=list)  # (caption, relative path)


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def sections(document: dict[str, Any]) -> list[Section]:
    prov = document["provenance"]
    out = []
    comparison = document.get("comparison")
    if comparison is not None:
        changes = comparison["changes"]
        out.append(Section(
            f"Changes against the baseline ({comparison['baseline']})",
            items=[f"{c['kind']}: {c['message']}" for c in changes] or ["no change"],
        ))
    out.append(Section(
        "Claims",
        headers=["id", "claim", "verdict", "statistic", "estimate [95% CI]", "p", "n", "tier"],
        rows=[[c["id"], f"{c['claim']} ({c['source']})", c["verdict"], c["statistic"],
               f"{_num(c['estimate'])} [{_num(c['ci'][0])}, {_num(c['ci'][1])}]", _num(c["p_value"]), str(c["n"]),
               c["tier"]] for c in document["claims"]],
    ))
    protocols: dict[str, list[str]] = {}
    for c in document["claims"]:
        protocols.setdefault(c["protocol"], []).append(c["id"])
    out.append(Section("Protocols", items=[f"{', '.join(ids)}: {p}" for p, ids in protocols.items()]))
    if document.get("calibration"):
        out.append(calibration_section(document))
    if document.get("runs"):
        out.append(Section("Runs", headers=["family", "runs", "diverged (NaN or inf loss; excluded from every statistic)"],
                           rows=[[f, str(c["runs"]), str(c["diverged"])] for f, c in document["runs"].items()]))
    out.append(Section("Tests", items=[f"{c['id']}: {c['test']}" for c in document["claims"]]))
    if document.get("notes"):
        out.append(Section("Notes", items=[f"{k}: {n}" for k, notes in document["notes"].items() for n in notes]))
    if document.get("figures"):
        out.append(Section("Figures", figures=[(k, p) for k, paths in document["figures"].items() for p in paths]))
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


def _rate(rate: dict[str, Any] | None) -> str:
    return "n/a" if rate is None else f"{rate['rate']:.3f} [{rate['ci'][0]:.3f}, {rate['ci'][1]:.3f}]"


def calibration_section(document: dict[str, Any]) -> Section:
    """Each claim's procedure under simulated nulls and at the source's stated effect."""
    rows, items = [], []
    calibrated = {c["claim"] for c in document["calibration"]}
    for c in document["calibration"]:
        if c["type_one"] is None:
            rows.append([c["claim"], c["null"], "", "", "", "", ""])
            continue
        label = c.get("null_label") or "simulated"
        alpha, min_power = c["alpha"], c["min_power"]
        type_one = _rate(c["type_one"]) + (f" - above {alpha:g} + 0.01: defect" if c["defective"] else "")
        weak = c["power"] is not None and c["power"]["rate"] < min_power
        if c["stated_effect"] is None:
            power = "n/a: the source states no effect size"
        elif c["power"] is None:
            power = f"n/a: no simulated world has {c['stated_effect']:.4g} {c['unit']} (see below)"
        else:
            power = (_rate(c["power"]) + f" at {c['stated_effect']:.4g} {c['unit']}"
                     + (f" (< {min_power:g}: may not refute)" if weak else ""))
        if c["grid"]:
            detectable = (f"{c['detectable']:.3g} {c['unit']}" if c["detectable"] is not None
                          else f"> {c['grid'][-1]:.3g} {c['unit']}")
        else:
            detectable = "n/a (equivalence test)"
        rows.append([c["claim"], label, type_one, _rate(c["test_size"]), power, detectable, str(c["n_sims"])])
        items.append(f"{c['claim']}: null: {c['null']}" + (f"; effect: {c['effect']}" if c["effect"] else "")
                     + f" ({c['seconds']:.1f} s)")
    rows += [[c["id"], "not calibrated", "", "", "", "", ""] for c in document["claims"] if c["id"] not in calibrated]
    items.append(f"Type-I error: how often the procedure says supported when the null holds (alpha = "
                 f"{document['calibration'][0]['alpha']:g}; a rate above alpha + 0.01 is a defect). p < alpha: how often "
                 "its test alone rejects. Power: how often it says supported at the source's stated effect; below "
                 f"{document['calibration'][0]['min_power']:g} a refutation is reported as inconclusive. Smallest "
                 "detectable effect: the smallest effect on a coarse grid (ratio sqrt 2) with power >= 0.8 in "
                 f"{document['calibration'][0].get('search_sims', 100)} simulations per grid point. Intervals: 95% "
                 "Clopper-Pearson.")
    return Section("Calibration", headers=["claim", "null", "type-I error [95% CI]", "p < alpha under the null",
                                           "power [95% CI] at the source's effect", "smallest detectable effect",
                                           "sims"],
                   rows=rows, items=items)


def _heading(document: dict[str, Any]) -> str:
    prov = document["provenance"]
    return (f"Tier {prov['tier']} on {prov['device']} ({prov.get('device_name') or ''}), base seed "
            f"{prov['base_seed']}, commit {prov['git_commit']}, torch {prov['torch']}.")


def render_markdown(document: dict[str, Any]) -> str:
    cell = lambda text: VERDICT_MARK.get(text, str(text)).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["# resclaims report", "", _heading(document)]
    for section in sections(document):
        lines += ["", f"## {section.title}", ""]
        if section.headers:
            lines += ["| " + " | ".join(section.headers) + " |", "|" + "---|" * len(section.headers)]
            lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in section.rows]
        lines += [f"- {cell(item)}" for item in section.items]
        lines += [f"![{caption}]({path})" for caption, path in section.figures]
    return "\n".join(lines) + "\n"


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.5em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
figure { display: inline-block; margin: 0.5em; }
img { max-width: 560px; border: 1px solid #ddd; }
li { margin: 0.2em 0; }
.supported { color: #1a7f37; font-weight: bold; } .refuted { color: #cf222e; font-weight: bold; }
.inconclusive { color: #9a6700; font-weight: bold; }
"""


def _html_cell(value: str) -> str:
    if value in VERDICT_MARK:
        return f'<td class="{value}">{value}</td>'
    return f"<td>{html.escape(value)}</td>"


def render_html(document: dict[str, Any], folder: Path) -> str:
    """One HTML file with the figures inline (data URIs): it opens offline, with no other files."""
    e = html.escape
    parts = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">', "<title>resclaims report</title>",
             f"<style>{STYLE}</style></head><body>", "<h1>resclaims report</h1>", f"<p>{e(_heading(document))}</p>"]
    for section in sections(document):
        parts.append(f"<h2>{e(section.title)}</h2>")
        if section.headers:
            parts.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in section.headers) + "</tr>")
            parts += ["<tr>" + "".join(_html_cell(v) for v in row) + "</tr>" for row in section.rows]
            parts.append("</table>")
        if section.items:
            parts.append("<ul>" + "".join(f"<li>{e(item)}</li>" for item in section.items) + "</ul>")
        for caption, path in section.figures:
            image = Path(folder) / path
            if image.is_file():
                data = base64.b64encode(image.read_bytes()).decode("ascii")
                parts.append(f'<figure><img alt="{e(caption)}" src="data:image/png;base64,{data}">'
                             f"<figcaption>{e(caption)}: {e(path)}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
