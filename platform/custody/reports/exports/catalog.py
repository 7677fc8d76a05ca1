"""The standard exports custody ships, each declared once: a module with `name` and
`export(content) -> bytes`. Third-party packages add formats under `custody.exporters`."""

from __future__ import annotations

from custody.registry import Entry, Registry
from custody.reports import ExportError

EXPORTERS = Registry(
    "exporter",
    group="custody.exporters",
    error=ExportError,
    built_in=(
        Entry("spdx", "custody.reports.exports.spdx", "SPDX 3.0.1 JSON-LD with the Dataset and AI profiles"),
        Entry("cyclonedx", "custody.reports.exports.cyclonedx", "CycloneDX 1.6 JSON: the dataset as a data component"),
        Entry(
            "hf-card", "custody.reports.exports.hf_card", "a Hugging Face dataset card: README.md with YAML metadata"
        ),
        Entry(
            "ai-act-summary",
            "custody.reports.exports.ai_act",
            "the EU AI Act public summary of training content (Art. 53(1)(d)), Markdown",
        ),
        Entry("openlineage", "custody.reports.exports.openlineage", "OpenLineage run events, one JSON per line"),
        Entry(
            "croissant",
            "custody.reports.exports.croissant",
            "Croissant 1.1 JSON-LD with the Responsible-AI (RAI) vocabulary filled from custody's records",
        ),
    ),
)
