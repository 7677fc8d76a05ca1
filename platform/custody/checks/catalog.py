"""The checks custody ships, each declared once: name, class and what it answers.

Third-party packages add checks under the `custody.checks` entry-point group (docs/architecture.md).
"""

from __future__ import annotations

from typing import Any

from custody.checks.base import Check
from custody.registry import Entry, Registry


class CheckError(ValueError):
    """An unknown check, or a check's settings that do not fit it."""


CHECKS = Registry(
    "check",
    group="custody.checks",
    error=CheckError,
    built_in=(
        Entry(
            "provenance",
            "custody.checks.provenance:ProvenanceCheck",
            "the dataset card is complete, its sources allowed, no record reserved from AI training or opted out",
        ),
        Entry(
            "license", "custody.checks.license:LicenseCheck", "each record's license, detected and categorized by SPDX"
        ),
        Entry("toxicity", "custody.checks.toxicity:ToxicityCheck", "each record's toxicity score against a threshold"),
        Entry(
            "pii", "custody.checks.pii:PiiCheck", "personal data in each record (presidio), by entity type and offset"
        ),
    ),
)


def available_checks() -> list[str]:
    return CHECKS.names()


def build_check(name: str, options: dict[str, Any] | None = None) -> Check:
    """The named check with its default settings, or with `options` checked against them."""
    return CHECKS.build(name, options=options)
