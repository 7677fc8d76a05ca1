"""A dataset's license mix as people read it: records per license, the card's included.

The license check counts records with their own `license` field in `record_licenses` and only
tallies the ones that take the card's license (the usual case) in `records_inheriting_declared`.
A mix built from `record_licenses` alone is empty for most datasets, so the inheriting records
are counted here under the card's declared expression (and its category).
"""

from __future__ import annotations

from typing import Any

NO_CARD_LICENSE = "none declared on the card"


def _card_label(declared: dict[str, Any]) -> str:
    """The name the inheriting records go under: the normalized expression, or why there is none."""
    if declared.get("normalized"):
        return str(declared["normalized"])
    if declared.get("expression"):  # a card from before registration refused invalid SPDX
        return f"{declared['expression']} (not valid SPDX)"
    return NO_CARD_LICENSE


def _merged(counts: dict[str, int], label: str, inherited: int) -> dict[str, int]:
    merged = dict(counts)
    if inherited:
        merged[label] = merged.get(label, 0) + inherited
    return dict(sorted(merged.items(), key=lambda kv: (-kv[1], kv[0])))


def license_mix(summary: dict[str, Any]) -> dict[str, int]:
    """Records per license expression, largest first; empty when there is no license summary."""
    declared = summary.get("declared") or {}
    inherited = int(summary.get("records_inheriting_declared") or 0)
    return _merged(summary.get("record_licenses") or {}, _card_label(declared), inherited)


def license_categories(summary: dict[str, Any]) -> dict[str, int]:
    """Records per license category (permissive, non-commercial, ...), the card's records included."""
    declared = summary.get("declared") or {}
    inherited = int(summary.get("records_inheriting_declared") or 0)
    return _merged(summary.get("record_categories") or {}, str(declared.get("category") or "unknown"), inherited)
