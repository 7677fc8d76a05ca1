"""Ledger entry schemas for completed checks: v1, and v2 with the check's measured emissions."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from custody.emissions import Emissions
from custody.ledger.entry import EntryBody, entry_type

DIGEST = r"^[0-9a-f]{64}$"


class FindingRef(EntryBody):
    id: str
    severity: Literal["flag", "fail"]


@entry_type("check.completed/v1")
class CheckCompleted(EntryBody):
    check: str
    version: str
    dataset: str
    dataset_digest: str = Field(pattern=DIGEST)
    config_digest: str = Field(pattern=DIGEST)
    model_digest: str | None = Field(default=None, pattern=DIGEST)
    result_digest: str = Field(pattern=DIGEST)
    summary_digest: str = Field(pattern=DIGEST)
    records: int = Field(ge=0)
    verdicts: dict[str, int]
    status: Literal["pass", "flag", "fail"]
    findings: list[FindingRef] = Field(default_factory=list)


@entry_type("check.completed/v2")
class CheckCompletedV2(CheckCompleted):
    """v1, plus the energy, CO2e and water of the whole check, measured by one CodeCarbon tracker
    around it in the driver (custody.emissions; on Ray the driver's machine only, docs/scale.md)."""

    emissions: Emissions
