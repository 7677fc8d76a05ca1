"""Ledger entry schemas for takedown: passage indexes of dataset versions."""

from __future__ import annotations

from pydantic import Field

from custody.ledger.entry import EntryBody, entry_type


@entry_type("dataset.indexed/v1")
class DatasetIndexed(EntryBody):
    """A passage index of exactly these dataset bytes (custody.takedown.index)."""

    dataset: str
    dataset_digest: str = Field(pattern=r"^[0-9a-f]{64}$")
    index_digest: str = Field(pattern=r"^[0-9a-f]{64}$")
    format: str
    ngram: int = Field(ge=1)
    window: int = Field(ge=1)
    records: int = Field(ge=0)
    fingerprints: int = Field(ge=0)
    bytes: int = Field(ge=0)
