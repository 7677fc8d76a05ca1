"""Making a report or an export, and recording what left the building in the ledger."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from custody.home import Home
from custody.ledger.entry import canonical_json, json_digest
from custody.registry import BUILT_IN
from custody.reports import (
    REPORT_FORMATS,
    ExportError,
    entry_types,  # noqa: F401  registers report.exported/v1 and v2
    render_html,
    render_json,
    render_md,
)
from custody.reports.anchors import anchor, seal
from custody.reports.exports.catalog import EXPORTERS
from custody.reports.gather import gather
from custody.reports.layout import assemble, human_part
from custody.trust.acting import Acting

RENDERERS: dict[str, Callable[[dict[str, Any]], tuple[str, str]]] = {
    "md": render_md.render,
    "html": render_html.render,
    "json": render_json.render,
}


@dataclass(frozen=True)
class Built:
    data: bytes
    subject: str
    format: str
    digest: str  # what the ledger recorded: the file's digest, or the report content's
    ledger_index: int


def build(home: Home, target: str, fmt: str, actor: Acting | str | None = None) -> Built:
    if fmt in REPORT_FORMATS:
        return build_report(home, target, fmt, actor)
    if fmt in EXPORTERS:
        return build_export(home, target, fmt, actor)
    raise ExportError(f"unknown format {fmt!r}; use one of {', '.join([*REPORT_FORMATS, *EXPORTERS.names()])}")


def build_report(home: Home, target: str, fmt: str, actor: Acting | str | None = None) -> Built:
    """Gather, anchor to a fresh checkpoint, render, then seal the content's digest in the ledger."""
    content = gather(home, target)
    content["anchors"] = anchor(home, content)
    head, tail = RENDERERS[fmt](content)
    if fmt != "json":
        content["rendering"] = {"format": fmt, "sha256": hashlib.sha256(human_part(head, tail)).hexdigest()}
    digest = json_digest(content)
    size = len(canonical_json(content))
    content["seal"] = seal(home, content["subject"], fmt, digest, size, content["anchors"]["tree_size"], actor)
    return Built(assemble(fmt, head, tail, content), content["subject"], fmt, digest, content["seal"]["index"])


def build_export(home: Home, target: str, fmt: str, actor: Acting | str | None = None) -> Built:
    content = gather(home, target)
    exporter = EXPORTERS.load(fmt)  # imported on use: each pulls in its format's library
    if hasattr(exporter, "extend_content"):  # an exporter that needs more than a report gathers reads it here
        content = exporter.extend_content(home, content)
    data = exporter.export(content)
    digest = hashlib.sha256(data).hexdigest()
    body = {"subject": content["subject"], "format": fmt, "digest": digest, "bytes": len(data), "covers": "file"}
    entry_type, origin = "report.exported/v1", EXPORTERS.entry(fmt).origin
    if origin != BUILT_IN:  # a plug-in's format: v2 also names the package that wrote the file
        entry_type, body = "report.exported/v2", {**body, "exporter": _package(origin)}
    index = home.record(entry_type, content["subject"], body, actor=actor)
    home.checkpoint()
    return Built(data, content["subject"], fmt, digest, index)


def _package(distribution: str) -> str:
    """`name version` of an installed distribution, as the ledger names a plug-in exporter."""
    try:
        return f"{distribution} {metadata.version(distribution)}"
    except metadata.PackageNotFoundError:
        return distribution
