"""Standard exports of a report's content: each module has `export(content) -> bytes`."""

from __future__ import annotations

from typing import Any


def dataset_sections(content: dict[str, Any]) -> list[dict[str, Any]]:
    """(registration, checks, lineage) of every dataset a report describes, the report's own first."""
    if content["kind"] == "dataset":
        return [{"reg": content["dataset"], "checks": content["checks"], "lineage": content["lineage"]}]
    return [
        {"reg": item["read"], "checks": item["checks"], "lineage": item}
        for item in content["datasets"]
        if "read" in item
    ]


def root_registrations(section: dict[str, Any]) -> list[dict[str, Any]]:
    """The dataset and its registered ancestors: where cards with sources live."""
    return [section["reg"]] + [a["dataset"] for a in section["lineage"].get("ancestors", []) if "dataset" in a]


def stages(section: dict[str, Any]) -> list[str]:
    """Names of the custody stages that made this dataset, oldest first."""
    regs = root_registrations(section)
    return [r["stage"]["name"] for r in reversed(regs) if r.get("stage")]
