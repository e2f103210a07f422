"""Result containers and plain-markdown formatting (readable both in a terminal and rendered)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass
class Summary:
    """One line of the summary table: a target, its measured figure, the reference and the goal."""

    benchmark: str
    measured: str
    reference: str
    ratio: str
    want: str
    ok: Optional[bool]


@dataclass
class Section:
    """Everything one target reports: a detail table, per-round raw figures and notes."""

    number: int
    title: str
    headers: list[str]
    rows: list[list[str]]
    summary: Summary
    raw: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def fmt(value: float, digits: int = 2) -> str:
    """Format a number with thousands separators and ``digits`` decimals."""
    return f"{value:,.{digits}f}"


def verdict(ok: Optional[bool]) -> str:
    """Render a pass/fail cell."""
    return "-" if ok is None else ("yes" if ok else "NO")


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    """Return a markdown table with padded columns."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    lines = [
        "| " + " | ".join(str(cell).ljust(width) for cell, width in zip(line, widths)) + " |"
        for line in [headers, ["-" * width for width in widths], *rows]
    ]
    return "\n".join(lines)


SUMMARY_HEADERS = ["#", "benchmark", "litserve", "reference", "ratio", "want", "met"]


def summary_table(sections: list[Section]) -> str:
    """Return the one-line-per-target summary table."""
    rows = [
        [
            str(s.number),
            s.summary.benchmark,
            s.summary.measured,
            s.summary.reference,
            s.summary.ratio,
            s.summary.want,
            verdict(s.summary.ok),
        ]
        for s in sections
    ]
    return markdown_table(SUMMARY_HEADERS, rows)


def section_markdown(section: Section) -> str:
    """Return one target's detail block."""
    parts = [f"### {section.number}. {section.title}", "", markdown_table(section.headers, section.rows)]
    if section.notes:
        parts += [""] + [f"- {note}" for note in section.notes]
    if section.raw:
        parts += ["", "Per round:", "", "```", *section.raw, "```"]
    return "\n".join(parts)


def document(title: str, environment: list[str], sections: list[Section]) -> str:
    """Return the whole markdown report."""
    parts = [f"# {title}", "", *[f"- {line}" for line in environment], "", "## Summary", "", summary_table(sections)]
    for section in sections:
        parts += ["", section_markdown(section)]
    return "\n".join(parts) + "\n"
