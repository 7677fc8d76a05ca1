"""The JSON report: the report document itself (no human-readable part to digest)."""

from __future__ import annotations

from typing import Any


def render(content: dict[str, Any]) -> tuple[str, str]:
    return "", ""
