"""Render ``summary.json`` as the Markdown table people read.

The renderer reads only the JSON document, so a report can be re-rendered later
without retraining.
"""

from __future__ import annotations

from typing import Any

VERDICT_MARK = {"supported": "✅ supported", "refuted": "❌ refuted", "inconclusive": "❔ inconclusive"}


def _num(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.4g}"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_summary(document: dict[str, Any]) -> str:
    prov = document["provenance"]
    lines = [
        "# resclaims report",
        "",
        f"Tier **{prov['tier']}** on **{prov['device']}** ({_cell(prov.get('device_name') or '')}), "
        f"base seed {prov['base_seed']}, commit `{prov['git_commit']}`, torch {prov['torch']}.",
        "",
        "## Claims",
        "",
        "| id | claim | verdict | statistic | estimate [95% CI] | p | n | tier |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in document["claims"]:
        lo, hi = c["ci"]
        lines.append(
            f"| {c['id']} | {_cell(c['claim'])} ({c['source']}) | {VERDICT_MARK[c['verdict']]} | "
            f"{_cell(c['statistic'])} | {_num(c['estimate'])} [{_num(lo)}, {_num(hi)}] | "
            f"{_num(c['p_value'])} | {c['n']} | {c['tier']} |"
        )
    lines += ["", "## Protocols", ""]
    protocols: dict[str, list[str]] = {}
    for c in document["claims"]:
        protocols.setdefault(c["protocol"], []).append(c["id"])
    lines += [f"- **{', '.join(ids)}**: {_cell(protocol)}" for protocol, ids in protocols.items()]
    lines += ["", "## Tests", ""]
    lines += [f"- **{c['id']}**: {_cell(c['test'])}" for c in document["claims"]]
    if document.get("notes"):
        lines += ["", "## Notes", ""]
        for claim_id, notes in document["notes"].items():
            lines += [f"- **{claim_id}**: {_cell(n)}" for n in notes]
    if document.get("figures"):
        lines += ["", "## Figures", ""]
        for claim_id, paths in document["figures"].items():
            lines += [f"![{claim_id}: {p}]({p})" for p in paths]
    if document.get("timings"):
        lines += [
            "",
            "## Timings (pytest-benchmark)",
            "",
            "| benchmark | group | mean s / call | experiments / call | s / experiment | rounds |",
            "|---|---|---|---|---|---|",
        ]
        for t in document["timings"]:
            lines.append(
                f"| {_cell(t['name'])} | {t['group']} | {t['seconds']:.4g} | {t['experiments']} | "
                f"{t['seconds_per_experiment']:.3g} | {t['rounds']} |"
            )
    if document.get("speedups"):
        lines += [
            "",
            "### Seed batching speed-up (per experiment, same run)",
            "",
            "| group | batched experiments | batched s / exp | sequential s / exp | speed-up |",
            "|---|---|---|---|---|",
        ]
        for s in document["speedups"]:
            lines.append(
                f"| {s['group']} | {s['experiments']} | {s['batched_s_per_experiment']:.3g} | "
                f"{s['sequential_s_per_experiment']:.3g} | {s['speedup']:.0f}× |"
            )
    lines += ["", "## Provenance", ""]
    for key, value in prov.items():
        if key != "data":
            lines.append(f"- {key}: `{value}`")
    for name, info in prov.get("data", {}).items():
        details = ", ".join(f"{k} `{v}`" for k, v in info.items())
        lines.append(f"- data {name}: {details}")
    return "\n".join(lines) + "\n"
