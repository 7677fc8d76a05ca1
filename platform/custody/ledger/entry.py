"""Ledger entries: RFC 8785 (JCS) canonical JSON envelopes, validated per entry type.

An entry is stored as the exact bytes produced here and never re-serialized to verify.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import rfc8785
from pydantic import BaseModel, ConfigDict, ValidationError

ENVELOPE_VERSION = 1  # unsigned envelopes (homes made before signatures)
SIGNED_ENVELOPE_VERSION = 2  # v1's fields, an optional `attest`, and `sig`: an SSHSIG over the rest
MAX_SAFE_INTEGER = 2**53 - 1
_REF = re.compile(r"^(sha256:[0-9a-f]{64}|ledger:[0-9]+)$")
_TYPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+/v[1-9][0-9]*$")


class EntryError(ValueError):
    """An entry could not be built: unknown type, invalid body, non-canonicalizable value."""


def _fast_path_ok(value: Any) -> bool:
    """True when json.dumps(sort_keys=True) gives exactly the JCS bytes for `value`.

    That holds without floats (JCS formats numbers as ECMAScript does), with integers inside
    the IEEE-754 safe range, and with keys whose code point order equals UTF-16 order (no
    character at or above U+D800 in a key).
    """
    if isinstance(value, str) or value is None or isinstance(value, bool):
        return True
    if isinstance(value, int):
        return -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER
    if isinstance(value, dict):
        return all(
            isinstance(k, str) and (k.isascii() or max(k) < "\ud800") and _fast_path_ok(v) for k, v in value.items()
        )
    if isinstance(value, list | tuple):
        return all(_fast_path_ok(v) for v in value)
    return False


def canonical_json(value: Any) -> bytes:
    """RFC 8785 canonical JSON bytes; the rfc8785 package is the reference for every case."""
    if _fast_path_ok(value):
        try:
            return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        except UnicodeEncodeError:
            pass  # lone surrogates: let the reference implementation report them
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, ValueError, TypeError) as exc:
        raise EntryError(f"value cannot be canonicalized: {exc}") from exc


def json_digest(value: Any) -> str:
    """The hex SHA-256 of a value's canonical JSON: how a configuration or summary is named."""
    return hashlib.sha256(canonical_json(value)).hexdigest()


class EntryBody(BaseModel):
    """Base for entry body schemas: unknown fields are errors, never silently kept."""

    model_config = ConfigDict(extra="forbid", frozen=True)


_ENTRY_TYPES: dict[str, type[EntryBody]] = {}


def entry_type(name: str):
    """Class decorator registering a body schema under a versioned type name (`x.y/v1`)."""
    if not _TYPE.fullmatch(name):
        raise ValueError(f"entry type {name!r} must look like 'area.event/v1'")

    def register(model: type[EntryBody]) -> type[EntryBody]:
        if name in _ENTRY_TYPES:
            raise ValueError(f"entry type {name} registered twice")
        _ENTRY_TYPES[name] = model
        return model

    return register


def known_entry_types() -> list[str]:
    return sorted(_ENTRY_TYPES)


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Entry:
    """A decoded entry; `raw` is the canonical bytes that the ledger hashes."""

    raw: bytes
    type: str
    ts: str
    actor: str
    subject: str
    body: dict[str, Any]
    refs: list[str]
    v: int = ENVELOPE_VERSION
    attest: dict[str, Any] | None = None
    sig: str | None = None  # base64 of the SSHSIG blob (v2)

    @classmethod
    def decode(cls, raw: bytes) -> Entry:
        try:
            doc = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise EntryError(f"entry is not JSON: {exc}") from exc
        if not isinstance(doc, dict) or doc.get("v") not in (ENVELOPE_VERSION, SIGNED_ENVELOPE_VERSION):
            raise EntryError("entry is not a version 1 or 2 envelope")
        fields: dict[str, Any] = {}
        for key, kind in (("type", str), ("ts", str), ("actor", str), ("subject", str), ("body", dict), ("refs", list)):
            if not isinstance(doc.get(key), kind):
                raise EntryError(f"entry field '{key}' is missing or not a {kind.__name__}")
            fields[key] = doc[key]
        allowed = {"v", *fields}
        if doc["v"] == SIGNED_ENVELOPE_VERSION:
            if not isinstance(doc.get("sig"), str):
                raise EntryError("entry field 'sig' is missing or not a str")
            if "attest" in doc and not isinstance(doc["attest"], dict):
                raise EntryError("entry field 'attest' is not an object")
            allowed |= {"sig", "attest"}
            fields.update(sig=doc["sig"], attest=doc.get("attest"), v=doc["v"])
        if set(doc) - allowed:
            raise EntryError(f"entry has unexpected fields: {sorted(set(doc) - allowed)}")
        return cls(raw=raw, **fields)

    def as_dict(self) -> dict[str, Any]:
        return json.loads(self.raw)

    @property
    def signed_bytes(self) -> bytes:
        """What the signature covers: the canonical envelope without `sig`."""
        return signed_bytes(self.as_dict())

    @property
    def signature(self) -> bytes | None:
        return base64.b64decode(self.sig) if self.sig else None


def signed_bytes(envelope: dict[str, Any]) -> bytes:
    """The canonical JSON of an envelope without its signature: the bytes an SSHSIG covers."""
    return canonical_json({k: v for k, v in envelope.items() if k != "sig"})


Sign = Callable[[bytes], bytes]  # message -> SSHSIG blob


def make_entry(
    type: str,
    actor: str,
    subject: str,
    body: dict[str, Any] | EntryBody,
    refs: list[str] | None = None,
    ts: str | None = None,
    sign: Sign | None = None,
    attest: dict[str, Any] | None = None,
) -> Entry:
    """Validate `body` against the schema of `type` and build the canonical envelope.

    With `sign`, the envelope is version 2: `sign` gets the canonical bytes of every field but
    `sig` (an `attest` object included) and returns the SSHSIG blob stored as `sig`."""
    model = _ENTRY_TYPES.get(type)
    if model is None:
        raise EntryError(f"unknown entry type {type!r}; known: {', '.join(known_entry_types())}")
    try:
        validated = body if isinstance(body, model) else model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise EntryError(f"{type}: field '{where}': {first['msg']}") from exc
    if not actor or not subject:
        raise EntryError("an entry needs an actor and a subject")
    refs = list(refs or [])
    for ref in refs:
        if not _REF.fullmatch(ref):
            raise EntryError(f"reference {ref!r} must be 'sha256:<64 hex>' or 'ledger:<index>'")
    envelope = {
        "v": ENVELOPE_VERSION,
        "type": type,
        "ts": ts or utc_now(),
        "actor": actor,
        "subject": subject,
        "body": validated.model_dump(mode="json", exclude_none=True),
        "refs": refs,
    }
    if sign is None:
        if attest is not None:
            raise EntryError("an attested entry must be signed")
        raw = canonical_json(envelope)
        return Entry(raw, type, envelope["ts"], actor, subject, envelope["body"], refs)
    envelope["v"] = SIGNED_ENVELOPE_VERSION
    if attest is not None:
        envelope["attest"] = attest
    sig = base64.b64encode(sign(canonical_json(envelope))).decode()
    raw = canonical_json({**envelope, "sig": sig})
    return Entry(
        raw, type, envelope["ts"], actor, subject, envelope["body"], refs, SIGNED_ENVELOPE_VERSION, attest, sig
    )
