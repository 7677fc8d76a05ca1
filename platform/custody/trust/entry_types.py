"""Roster entries: an admin adds a person's key with roles, or revokes it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from custody.ledger.entry import EntryBody, entry_type

PERSON_NAME = r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$"
Role = Literal["engineer", "reviewer", "approver", "admin", "attestor"]


@entry_type("people.added/v1")
class PersonAdded(EntryBody):
    name: str = Field(pattern=PERSON_NAME)
    key: str = Field(pattern=r"^ssh-ed25519 [A-Za-z0-9+/=]+$")
    fingerprint: str = Field(pattern=r"^SHA256:[A-Za-z0-9+/]{43}$")
    roles: list[Role] = Field(min_length=1)


@entry_type("people.revoked/v1")
class PersonRevoked(EntryBody):
    name: str = Field(pattern=PERSON_NAME)
    fingerprint: str = Field(pattern=r"^SHA256:[A-Za-z0-9+/]{43}$")
    reason: str = Field(min_length=1, max_length=2000)
