"""The Markdown report: tables that read well on a code host, the report document at the end."""

from __future__ import annotations

from typing import Any

from custody.reports.layout import MD_END, MD_START
from custody.reports.outline import outline


def cell(value: Any) -> str:
    """One table cell: no line breaks, pipes, backticks or raw HTML from user text."""
    text = "" if value is None else str(value)
    for old, new in (("\r", " "), ("\n", " "), ("|", "\\|"), ("`", "'"), ("<", "&lt;"), (">", "&gt;")):
        text = text.replace(old, new)
    return text


def render(content: dict[str, Any]) -> tuple[str, str]:
    lines: list[str] = []
    for block in outline(content):
        kind = block[0]
        if kind == "h":
            lines += [f"{'#' * block[1]} {cell(block[2])}", ""]
        elif kind == "p":
            lines += [cell(block[1]), ""]
        elif kind == "code":
            lines += ["~~~", *[cell(line) for line in block[1].splitlines()], "~~~", ""]
        elif kind == "table":
            lines += _table(block[1], block[2])
        elif kind == "bars":
            lines += [
                f"**{cell(block[1])}**",
                "",
                *_table(["", "records"], [[k, f"{v:,}"] for k, v in block[2].items()]),
            ]
        elif kind == "hist":
            edges, counts = block[2], block[3]
            rows = [[f"{edges[i]:.1f}–{edges[i + 1]:.1f}", f"{n:,}"] for i, n in enumerate(counts)]
            lines += [f"**{cell(block[1])}**", "", *_table(["score", "records"], rows)]
        elif kind == "line":
            lines += _line_table(block[1], block[2])
    lines += ["<details>", "<summary>Report document (machine-readable; checked by custody verify-report)</summary>"]
    head = "\n".join(lines) + "\n" + MD_START
    return head, MD_END + "\n</details>\n"


def _table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    if not rows:
        return ["(none)", ""]
    out = ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return [*out, ""]


def _line_table(title: str, series: dict[str, list[tuple[float, float]]]) -> list[str]:
    """Markdown has no charts: a table by step. The first series (a training loss, one point a step)
    is thinned to about 20 rows; every point of the others (evaluations) is kept."""
    names = list(series)
    first = series[names[0]] if names else []
    steps = {x for x, _ in first[:: max(len(first) // 20, 1)]} | ({first[-1][0]} if first else set())
    for name in names[1:]:
        steps |= {x for x, _ in series[name]}
    by_step = {name: dict(values) for name, values in series.items()}
    rows = [[s, *(f"{by_step[n][s]:.4f}" if s in by_step[n] else "" for n in names)] for s in sorted(steps)]
    return [f"**{cell(title)}**", "", *_table(["step", *names], rows)]
