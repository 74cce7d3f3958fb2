"""The report's unit of layout: a titled section of paragraphs, a table, a list and figures, which each renderer
draws in its own way (:mod:`resclaims.report.render`, :mod:`resclaims.report.html`)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Section:
    title: str
    headers: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    items: list[str] = field(default_factory=list)  # a bulleted list, after the table
    figures: list[tuple[str, str]] = field(default_factory=list)  # (caption, relative path)
    paragraphs: list[str] = field(default_factory=list)  # sentences before the table
    level: int = 2  # heading level: 2 for a section, 3 for a part of the one before
