"""The HTML report: one self-contained file with inline SVG charts and the report document."""

from __future__ import annotations

from html import escape
from typing import Any

from custody.reports import svg
from custody.reports.layout import HTML_END, HTML_START
from custody.reports.outline import outline

STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#111}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:13px}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top;overflow-wrap:anywhere}
th{background:#f3f4f6} pre{background:#f3f4f6;padding:8px;overflow-x:auto} figure{margin:1em 0}
"""


def render(content: dict[str, Any]) -> tuple[str, str]:
    title = escape(f"{content['kind']} report: {content['target']}")
    parts = [f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{title}</title>']
    parts.append(f"<style>{STYLE}</style>\n</head>\n<body>")
    for block in outline(content):
        kind = block[0]
        if kind == "h":
            parts.append(f"<h{block[1]}>{escape(str(block[2]))}</h{block[1]}>")
        elif kind == "p":
            parts.append(f"<p>{escape(str(block[1]))}</p>")
        elif kind == "code":
            parts.append(f"<pre>{escape(block[1])}</pre>")
        elif kind == "table":
            parts.append(_table(block[1], block[2]))
        elif kind == "bars":
            parts.append(_figure(block[1], svg.bars(block[2])))
        elif kind == "hist":
            parts.append(_figure(block[1], svg.histogram(block[2], block[3])))
        elif kind == "line":
            parts.append(_figure(block[1], svg.lines(block[2])))
    head = "\n".join(parts) + "\n" + HTML_START
    return head, HTML_END + "\n</body>\n</html>\n"


def _figure(title: str, chart: str) -> str:
    return f"<figure><figcaption><strong>{escape(title)}</strong></figcaption>{chart}</figure>"


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    if not rows:
        return "<p>(none)</p>"
    head = "".join(f"<th>{escape(str(h))}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape('' if v is None else str(v))}</td>" for v in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
