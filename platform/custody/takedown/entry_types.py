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


class TakedownQuery(EntryBody):
    """What a request asks to remove, without the work itself: a passage's shingle hashes (by digest
    of their JSON artifact) or a record's text SHA-256."""

    kind: str = Field(pattern=r"^(text|record-hash)$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")  # the normalised passage's words, or the record text
    words: int | None = Field(default=None, ge=0)
    shingles_digest: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")


@entry_type("takedown.requested/v1")
class TakedownRequested(EntryBody):
    """Someone asks for a work to be removed; recorded by the person (key) who took the request."""

    id: str = Field(pattern=r"^td-[0-9a-f]{8}$")
    requested_by: str = Field(min_length=1, max_length=200)  # who asks: an author, a site owner, a person
    reason: str = Field(min_length=1, max_length=2000)
    query: TakedownQuery
