"""Body schemas of the ledger's own entry types. Other areas register theirs beside their code."""

from __future__ import annotations

from pydantic import Field

from custody.ledger.entry import EntryBody, entry_type


@entry_type("home.initialized/v1")
class HomeInitialized(EntryBody):
    origin: str
    verifier_key: str
    backend: str


@entry_type("ledger.note/v1")
class LedgerNote(EntryBody):
    text: str = Field(min_length=1, max_length=10_000)


@entry_type("artifact.erased/v1")
class ArtifactErased(EntryBody):
    digest: str = Field(pattern=r"^[0-9a-f]{64}$")
    reason: str = Field(min_length=1)
