"""Takedown requests: who asks for what to be removed, and why, recorded before anything changes.

The passage itself is never recorded: the ledger entry holds the SHA-256 of its normalised words
and the digest of its shingle hashes (a JSON artifact of 64-bit hashes, from which no word can be
read back), enough to find every holder again, and to prove later which request a removal answers.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass

import numpy as np

from custody.home import Home
from custody.ledger import query
from custody.ledger.entry import canonical_json
from custody.takedown import entry_types  # noqa: F401  registers takedown.requested/v1
from custody.takedown.find import (
    RECORD_HASH,
    FindError,
    Found,
    field_query,
    find_field,
    find_record_hash,
    find_shingles,
    find_source,
    passage_shingles,
    source_query,
)
from custody.takedown.fingerprints import FINGERPRINT, words

REQUEST_ID = re.compile(r"^td-[0-9a-f]{8}$")


class RequestError(ValueError):
    """A request that cannot be recorded or looked up; the message names the field."""


@dataclass(frozen=True)
class TakedownRequest:
    id: str
    ledger_index: int
    ts: str
    actor: str
    body: dict

    def as_json(self) -> dict:
        return {"id": self.id, "ledger_index": self.ledger_index, "ts": self.ts, "recorded_by": self.actor, **self.body}


def _subject(request_id: str) -> str:
    return f"takedown:{request_id}"


def request(
    home: Home,
    requested_by: str,
    reason: str,
    passage: str | None = None,
    record_hash: str | None = None,
    actor=None,
    url_prefix: str | None = None,
    domain: str | None = None,
    field: str | None = None,
) -> TakedownRequest:
    """Record a takedown request for a passage, a record, a source or a field value (exactly one;
    `field` is KEY=VALUE, kept as the key and the value's digest)."""
    if not requested_by.strip():
        raise RequestError("--by: say who asks (a person, an author, a site owner)")
    if not reason.strip():
        raise RequestError("--reason: say why (copyright, opt-out, personal data, ...)")
    if sum(x is not None for x in (passage, record_hash, url_prefix, domain, field)) != 1:
        raise RequestError("give one of --text-file, --record-hash, --url-prefix, --domain or --field")
    if field is not None:
        try:
            the_query = field_query(field)
        except FindError as exc:
            raise RequestError(str(exc)) from None
    elif url_prefix is not None or domain is not None:
        try:
            the_query = source_query(url_prefix, domain)
        except FindError as exc:
            raise RequestError(str(exc)) from None
        given = the_query.get("url_prefix") or the_query["domain"]
        the_query["sha256"] = hashlib.sha256(given.encode("utf-8")).hexdigest()
    elif passage is not None:
        shingles = passage_shingles(passage)  # FindError for a passage too short to be found
        passage_words = words(passage).words
        digest = home.store.put_bytes(canonical_json([format(int(h), "016x") for h in shingles]))
        the_query = {
            "kind": "text",
            "sha256": hashlib.sha256(" ".join(passage_words).encode("utf-8")).hexdigest(),
            "words": len(passage_words),
            "shingles_digest": digest,
            "fingerprint": FINGERPRINT,
        }
    else:
        record_hash = record_hash.strip().lower().removeprefix("sha256:")
        if not RECORD_HASH.fullmatch(record_hash):
            raise RequestError(f"--record-hash {record_hash!r} is not a SHA-256 (64 hexadecimal characters)")
        the_query = {"kind": "record-hash", "sha256": record_hash}
    request_id = f"td-{uuid.uuid4().hex[:8]}"
    body = {"id": request_id, "requested_by": requested_by.strip(), "reason": reason.strip(), "query": the_query}
    home.record("takedown.requested/v1", _subject(request_id), body, actor=actor)
    return get(home, request_id)


def _from_row(row) -> TakedownRequest:
    found = query.body(row)
    return TakedownRequest(found["id"], row.idx, row.ts, row.actor, found)


def all_requests(home: Home) -> list[TakedownRequest]:
    return [_from_row(row) for row in query.entries(home.storage, "takedown.requested/")]


def get(home: Home, request_id: str) -> TakedownRequest:
    if not REQUEST_ID.fullmatch(request_id):
        raise RequestError(f"{request_id!r} is not a takedown request id (td- and 8 hexadecimal characters)")
    row = query.first(home.storage, "takedown.requested/", _subject(request_id))
    if row is None:
        raise RequestError(f"no takedown request {request_id} (see `custody takedown list`)")
    return _from_row(row)


def affected(home: Home, taken: TakedownRequest, actor=None) -> Found:
    """Where the requested work is now: `custody find` with what the request kept."""
    wanted = taken.body["query"]
    if wanted["kind"] == "record-hash":
        return find_record_hash(home, wanted["sha256"], actor)
    if wanted["kind"] == "field":
        return find_field(home, wanted["field"], wanted["sha256"], actor)
    if wanted["kind"] in ("url-prefix", "domain"):
        return find_source(home, wanted.get("url_prefix"), wanted.get("domain"), actor)
    made_with = wanted.get("fingerprint", "custody-fp/1")
    if made_with != FINGERPRINT:
        raise RequestError(
            f"request {taken.id} keeps shingle hashes of fingerprint {made_with}, this custody computes "
            f"{FINGERPRINT}: record the request again with the passage (--text-file)"
        )
    stored = json.loads(home.store.read_bytes(wanted["shingles_digest"]))
    try:
        return find_shingles(home, np.array([int(h, 16) for h in stored], dtype=np.uint64), actor)
    except FindError as exc:
        raise RequestError(f"request {taken.id}: {exc}") from exc
