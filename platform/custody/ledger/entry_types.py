"""Body schemas of the ledger's own entry types. Other areas register theirs beside their code."""

from __future__ import annotations

from pydantic import Field

from custody.ledger.entry import EntryBody, entry_type


@entry_type("home.initialized/v1")
class HomeInitialized(EntryBody):
    origin: str
    verifier_key: str
    backend: str


class FirstAdmin(EntryBody):
    name: str
    key: str = Field(pattern=r"^ssh-ed25519 [A-Za-z0-9+/=]+$")
    fingerprint: str
    roles: list[str] = Field(min_length=1)


@entry_type("home.initialized/v2")
class HomeInitializedWithRoster(EntryBody):
    """A home whose entries are all signed: the service key signs this one, and names the first admin."""

    origin: str
    verifier_key: str
    backend: str
    service_key: str = Field(pattern=r"^ssh-ed25519 [A-Za-z0-9+/=]+$")
    admin: FirstAdmin | None = None


@entry_type("ledger.note/v1")
class LedgerNote(EntryBody):
    text: str = Field(min_length=1, max_length=10_000)


@entry_type("artifact.erased/v1")
class ArtifactErased(EntryBody):
    digest: str = Field(pattern=r"^[0-9a-f]{64}$")
    reason: str = Field(min_length=1)
