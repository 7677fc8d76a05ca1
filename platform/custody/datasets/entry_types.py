"""Ledger entry schemas for datasets."""

from __future__ import annotations

from pydantic import Field

from custody.ledger.entry import EntryBody, entry_type

DIGEST = r"^[0-9a-f]{64}$"


class Parent(EntryBody):
    dataset: str
    digest: str = Field(pattern=DIGEST)


class Stage(EntryBody):
    name: str
    config_digest: str = Field(pattern=DIGEST)
    decisions_digest: str | None = Field(default=None, pattern=DIGEST)
    # The options the stage was built with (a JSON artifact), so a takedown can derive it again;
    # absent in registrations made before it was kept.
    options_digest: str | None = Field(default=None, pattern=DIGEST)


@entry_type("dataset.registered/v1")
class DatasetRegistered(EntryBody):
    name: str
    version: str
    manifest_digest: str = Field(pattern=DIGEST)
    card_digest: str = Field(pattern=DIGEST)
    records: int = Field(ge=0)
    bytes: int = Field(ge=0)
    shards: int = Field(ge=1)
    in_place: bool = False
    locations: dict[str, str] = Field(default_factory=dict)
    parents: list[Parent] = Field(default_factory=list)
    stage: Stage | None = None
