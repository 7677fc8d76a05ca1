"""Ledger entry schemas for completed preparation stages: v1, and v2 with the stage's measured emissions."""

from __future__ import annotations

from pydantic import Field

from custody.emissions import Emissions
from custody.ledger.entry import EntryBody, entry_type

DIGEST = r"^[0-9a-f]{64}$"


@entry_type("stage.completed/v1")
class StageCompleted(EntryBody):
    stage: str
    version: str
    input: str
    input_digest: str = Field(pattern=DIGEST)
    output: str
    output_digest: str = Field(pattern=DIGEST)
    config_digest: str = Field(pattern=DIGEST)
    decisions_digest: str = Field(pattern=DIGEST)
    summary_digest: str = Field(pattern=DIGEST)
    kept: int = Field(ge=0)
    modified: int = Field(ge=0)
    dropped: int = Field(ge=0)


@entry_type("stage.completed/v2")
class StageCompletedV2(StageCompleted):
    """v1, plus the energy, CO2e and water of the whole stage, measured by one CodeCarbon tracker
    around it in the driver (custody.emissions; on Ray the driver's machine only, docs/scale.md)."""

    emissions: Emissions
