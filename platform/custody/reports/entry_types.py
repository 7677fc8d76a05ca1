"""Ledger entry schema for exported reports: what left the building, by digest."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from custody.ledger.entry import EntryBody, entry_type


@entry_type("report.exported/v1")
class ReportExported(EntryBody):
    subject: str  # dataset:NAME@VERSION or run:RUN_ID
    # a format may be added (every entry recorded before stays valid); none is ever taken away
    format: Literal["md", "html", "json", "spdx", "cyclonedx", "hf-card", "ai-act-summary", "openlineage", "croissant"]
    digest: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)
    # "file": the digest is of the file's bytes (exports). "report": of the canonical JSON of the
    # report's content, which the file embeds: the entry's own proof travels inside the file.
    covers: Literal["file", "report"] = "file"


@entry_type("report.exported/v2")
class ReportExportedByPlugin(EntryBody):
    """An export in a format a third-party package registered (`custody.exporters`): the format is
    any registered name, and `exporter` names the package and version that wrote the file."""

    subject: str
    format: str = Field(pattern=r"^[a-z][a-z0-9-]{0,63}$")
    digest: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)
    covers: Literal["file"] = "file"
    exporter: str = Field(min_length=1, max_length=200)
