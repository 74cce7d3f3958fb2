"""Render ``summary.json`` as one self-contained HTML page: the layout of :func:`resclaims.report.render.sections`,
figures inline as data URIs, so the page opens offline with no other files."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path
from typing import Any

from resclaims.report.render import VERDICT_MARK, _heading, _marked, sections

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1300px; padding: 0 1em; color: #222; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.6em; }
nav { font-size: 0.9em; margin: 0.5em 0 1em; } nav a { margin-right: 0.8em; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.5em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.headline td, table.headline th { text-align: center; min-width: 6em; } table.headline td:first-child { text-align: left; }
figure { display: inline-block; margin: 0.5em; vertical-align: top; }
img { max-width: 560px; border: 1px solid #ddd; }
figure.forest { display: block; } figure.forest img { max-width: 900px; }
figcaption { font-size: 0.8em; color: #555; }
li { margin: 0.2em 0; }
.supported { color: #1a7f37; font-weight: bold; } .refuted { color: #cf222e; font-weight: bold; }
.inconclusive { color: #9a6700; font-weight: bold; } .full-tier-only { color: #57606a; font-weight: bold; }
"""


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def _html_cell(value: str) -> str:
    marked = _marked(value)
    if marked != value:
        verdict = next(v for v in VERDICT_MARK if value.startswith(v))
        return f'<td class="{_slug(verdict)}">{html.escape(value)}</td>'
    numeric = re.fullmatch(r"[-+]?[\d,.]+(e[-+]?\d+)?", value) is not None
    return f'<td class="num">{html.escape(value)}</td>' if numeric else f"<td>{html.escape(value)}</td>"


def _html_figure(folder: Path, caption: str, path: str) -> str:
    """A figure inline as a data URI ("" when its file is missing)."""
    image = Path(folder) / path
    if not image.is_file():
        return ""
    data = base64.b64encode(image.read_bytes()).decode("ascii")
    kind = ' class="forest"' if image.name.startswith("forest_") else ""
    return (f'<figure{kind}><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}: {html.escape(path)}</figcaption></figure>")


def render_html(document: dict[str, Any], folder: Path) -> str:
    """One HTML file with the figures inline (data URIs): it opens offline, with no other files."""
    e = html.escape
    parts = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">', "<title>resclaims report</title>",
             f"<style>{STYLE}</style></head><body>", "<h1>resclaims report</h1>", f"<p>{e(_heading(document))}</p>"]
    content = sections(document)
    parts.append("<nav>" + "".join(f'<a href="#{_slug(s.title)}">{e(s.title)}</a>' for s in content if s.level == 2)
                 + "</nav>")
    for section in content:
        parts.append(f'<h{section.level} id="{_slug(section.title)}">{e(section.title)}</h{section.level}>')
        parts += [f"<p>{e(p)}</p>" for p in section.paragraphs]
        if section.headers:
            kind = ' class="headline"' if section.title == "Headline" else ""
            parts.append(f"<table{kind}><tr>" + "".join(f"<th>{e(h)}</th>" for h in section.headers) + "</tr>")
            parts += ["<tr>" + "".join(_html_cell(v) for v in row) + "</tr>" for row in section.rows]
            parts.append("</table>")
        if section.items:
            parts.append("<ul>" + "".join(f"<li>{e(item)}</li>" for item in section.items) + "</ul>")
        parts += [_html_figure(folder, caption, path) for caption, path in section.figures]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
