"""The exact bytes of a report file, and how a verifier takes one apart again.

JSON: the document, pretty-printed with sorted keys. Markdown and HTML: the human-readable text
with the same document embedded (a fenced block / a `<script type="application/json">`); the
document holds a digest of everything around it, so no byte anywhere can change unnoticed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

MD_START = "\n```json custody-report\n"
MD_END = "\n```\n"
HTML_START = '<script type="application/json" id="custody-report">'
HTML_END = "</script>"


class LayoutError(ValueError):
    """The file is not a custody report: no embedded report, or not JSON."""


def json_text(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def embedded_text(doc: dict[str, Any], fmt: str) -> str:
    text = json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False)
    # In HTML, "<" never appears raw, so the block cannot close early or open a comment.
    return text.replace("<", "\\u003c") if fmt == "html" else text


def markers(fmt: str) -> tuple[str, str]:
    return (MD_START, MD_END) if fmt == "md" else (HTML_START, HTML_END)


def assemble(fmt: str, head: str, tail: str, doc: dict[str, Any]) -> bytes:
    """head ends with the start marker, tail starts with the end marker."""
    if fmt == "json":
        return json_text(doc).encode()
    return (head + embedded_text(doc, fmt) + tail).encode()


def human_part(head: str, tail: str) -> bytes:
    return (head + tail).encode()


@dataclass(frozen=True)
class Parsed:
    fmt: str
    doc: dict[str, Any]
    layout_ok: bool  # the embedded text is exactly how custody writes this document
    human: bytes | None  # md/html: everything but the embedded document


def detect(text: str) -> str:
    if text.lstrip().startswith("{"):
        return "json"
    if HTML_START in text:
        return "html"
    if MD_START in text:
        return "md"
    raise LayoutError("not a custody report: no embedded report document (JSON, or Markdown/HTML from custody report)")


def parse(data: bytes) -> Parsed:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LayoutError(f"not UTF-8 text (byte {exc.start})") from exc
    fmt = detect(text)
    if fmt == "json":
        doc = _load(text)
        return Parsed(fmt, doc, json_text(doc) == text, None)
    start, end = markers(fmt)
    begin = text.rfind(start) + len(start)
    stop = text.find(end, begin)
    if stop < 0:
        raise LayoutError("the embedded report document is not closed")
    inner = text[begin:stop]
    doc = _load(inner)
    return Parsed(fmt, doc, embedded_text(doc, fmt) == inner, (text[:begin] + text[stop:]).encode())


def _load(text: str) -> dict[str, Any]:
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise LayoutError(f"the report document is not JSON: {str(exc)[:200]}") from exc
    if not isinstance(doc, dict):
        raise LayoutError("the report document is not a JSON object")
    return doc
