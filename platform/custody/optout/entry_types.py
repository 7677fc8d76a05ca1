"""Ledger entry schemas for opt-out registries."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from custody.ledger.entry import EntryBody, entry_type

DIGEST = r"^[0-9a-f]{64}$"
REGISTRY_NAME = r"^[a-z0-9][a-z0-9._-]{0,63}$"


class Affected(EntryBody):
    """A registered dataset version the import's entries match records of."""

    dataset: str  # NAME@VERSION
    digest: str = Field(pattern=DIGEST)
    records: int = Field(ge=0)  # records the imported registry matches
    new: int = Field(ge=0)  # of which the registry's previous import did not match
    kinds: dict[str, int] = Field(default_factory=dict)  # records matched per kind of entry


class Unread(EntryBody):
    """A registered dataset version whose records could not be read to be matched."""

    dataset: str
    digest: str = Field(pattern=DIGEST)
    problem: str


@entry_type("optout.imported/v1")
class OptOutImported(EntryBody):
    """A version of an opt-out registry, imported by a person: the file (in the artifact store),
    its entries as checked, what changed since the registry's previous import, and the dataset
    versions it affected then. The newest import of each registry is the one in force."""

    registry: str = Field(pattern=REGISTRY_NAME)
    file_name: str = Field(min_length=1, max_length=255)
    file_digest: str = Field(pattern=DIGEST)
    format: Literal["csv", "jsonl"]
    entries: int = Field(ge=1)
    entries_digest: str = Field(pattern=DIGEST)  # canonical JSON of the checked entries
    kinds: dict[str, int]
    replaces: int | None = Field(default=None, ge=0)  # ledger index of the registry's previous import
    added: int = Field(ge=0)  # entries the previous import did not have
    withdrawn: int = Field(ge=0)  # entries of the previous import this one drops (lifting them)
    affected: list[Affected] = Field(default_factory=list)
    unread: list[Unread] = Field(default_factory=list)
