"""Ledger entry schemas for takedown: passage indexes, requests, and their application."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from custody.ledger.entry import EntryBody, entry_type

DIGEST = r"^[0-9a-f]{64}$"
REQUEST_ID = r"^td-[0-9a-f]{8}$"


@entry_type("dataset.indexed/v1")
class DatasetIndexed(EntryBody):
    """A passage index of exactly these dataset bytes (custody.takedown.index)."""

    dataset: str
    dataset_digest: str = Field(pattern=DIGEST)
    index_digest: str = Field(pattern=DIGEST)
    format: str
    ngram: int = Field(ge=1)
    window: int = Field(ge=1)
    records: int = Field(ge=0)
    fingerprints: int = Field(ge=0)
    bytes: int = Field(ge=0)


class TakedownQuery(EntryBody):
    """What a request asks to remove, without the work itself: a passage's shingle hashes (by digest
    of their JSON artifact), a record's text SHA-256, or a source (every record from a URL prefix
    or a domain)."""

    kind: str = Field(pattern=r"^(text|record-hash|url-prefix|domain|field)$")
    # the normalised passage's words, the record text, the URL prefix or domain as given, or the
    # field's value (case-folded, spaces collapsed: takedown.find.field_value_digest)
    sha256: str = Field(pattern=DIGEST)
    field: str | None = Field(default=None, min_length=1, max_length=64)  # the record field, for kind field
    words: int | None = Field(default=None, ge=0)
    shingles_digest: str | None = Field(default=None, pattern=DIGEST)
    # how the shingle hashes were computed (takedown.fingerprints.FINGERPRINT); absent: custody-fp/1
    fingerprint: str | None = Field(default=None, max_length=40)
    url_prefix: str | None = Field(default=None, min_length=1, max_length=2000)
    domain: str | None = Field(default=None, min_length=1, max_length=253)


@entry_type("takedown.requested/v1")
class TakedownRequested(EntryBody):
    """Someone asks for a work to be removed; recorded by the person (key) who took the request."""

    id: str = Field(pattern=REQUEST_ID)
    requested_by: str = Field(min_length=1, max_length=200)  # who asks: an author, a site owner, a person
    reason: str = Field(min_length=1, max_length=2000)
    query: TakedownQuery


class VersionChange(EntryBody):
    """One dataset version a takedown replaced: the records it removed and the version without them."""

    old: str  # NAME@VERSION
    old_digest: str = Field(pattern=DIGEST)
    new: str | None = None  # None: nothing was left, no version replaces it
    new_digest: str | None = Field(default=None, pattern=DIGEST)
    how: Literal["removed", "re-derived"]  # the records dropped here, or derived again from a new parent
    removed: int = Field(ge=0)  # records of the old version that held the work
    absent: list[str] = Field(default_factory=list)  # their text SHA-256s, proved absent from `new`
    records: int = Field(ge=0)  # distinct record digests of `new`: the leaves of its sorted tree
    records_root: str = Field(pattern=DIGEST)  # root of the sorted-digest Merkle tree (takedown/absence.py)
    # the sorted digests themselves (32 bytes each, an artifact): proofs outlive the data's erasure
    digests_artifact: str = Field(pattern=DIGEST)


class TaintedRun(EntryBody):
    run_id: str
    started_index: int = Field(ge=0)
    read: list[str]  # the affected dataset versions it read
    inherits_from: str | None = None  # a tainted run whose checkpoint it started from


@entry_type("takedown.applied/v1")
class TakedownApplied(EntryBody):
    """A request carried out, signed by the person who decided it: every live version that held the
    work replaced by one without it, everything derived from them derived again, runs tainted."""

    id: str = Field(pattern=REQUEST_ID)
    request_index: int = Field(ge=0)
    versions: list[VersionChange]
    tainted_runs: list[TaintedRun] = Field(default_factory=list)
    residual_hits: int = Field(ge=0)  # holders found among the new versions afterwards: 0


@entry_type("dataset.removed/v1")
class DatasetTakenDown(EntryBody):
    """This version held a work under a takedown: the gate denies it (rule takedown.applied)."""

    takedown: str = Field(pattern=REQUEST_ID)
    digest: str = Field(pattern=DIGEST)
    replaced_by: str | None = None


@entry_type("run.tainted/v1")
class RunTainted(EntryBody):
    """This run (its checkpoints and model) was trained on data a takedown removed."""

    takedown: str = Field(pattern=REQUEST_ID)
    read: list[str]
    inherits_from: str | None = None
