"""Ledger entries: RFC 8785 (JCS) canonical JSON envelopes, validated per entry type.

An entry is stored as the exact bytes produced here and never re-serialized to verify.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
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

    Exact types (what JSON decoding and pydantic's JSON-mode dump give) are checked inline, without
    a call per scalar; anything else (subclasses, tuples) goes to `_fast_path_ok_any`, which
    computes the same predicate with isinstance.
    """
    kind = type(value)
    if kind is dict:
        for key in value:
            if type(key) is not str and not isinstance(key, str):
                return False
            if not (key.isascii() or max(key) < "\ud800"):
                return False
        items = value.values()
    elif kind is list:
        items = value
    elif kind is str or kind is bool or value is None:
        return True
    elif kind is int:
        return -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER
    else:
        return _fast_path_ok_any(value)
    for item in items:  # a container's scalars inline, without a call each
        item_kind = type(item)
        if item_kind is str or item_kind is bool or item is None:
            continue
        if item_kind is int:
            if not -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:
                return False
        elif not _fast_path_ok(item):
            return False
    return True


def _fast_path_ok_any(value: Any) -> bool:
    """`_fast_path_ok` for any value, by isinstance: subclasses of str, int, dict and list, tuples."""
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


def _no_default(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False) without building a
# JSONEncoder and a C encoder per call. Only values that pass `_fast_path_ok` reach it, and those are
# trees of dicts, lists and scalars (a cycle would have exhausted the recursion limit there first),
# so it runs without the circular-reference markers.
_ENCODE = (
    json.encoder.c_make_encoder(None, _no_default, json.encoder.encode_basestring, None, ":", ",", True, False, True)
    if json.encoder.c_make_encoder is not None
    else None
)
_encode_str = json.encoder.encode_basestring  # a JSON string, escaped as JCS escapes it (no ASCII-only)


def _dumps(value: Any) -> str:
    """json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)."""
    if _ENCODE is None:  # an interpreter without the C accelerator
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if type(value) is str:
        return _encode_str(value)
    return "".join(_ENCODE(value, 0))


def canonical_json(value: Any) -> bytes:
    """RFC 8785 canonical JSON bytes; the rfc8785 package is the reference for every case."""
    if _fast_path_ok(value):
        try:
            return _dumps(value).encode()
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


_NOW_PREFIX: tuple[int, str] = (-1, "")  # (a second since the epoch, its "YYYY-MM-DDTHH:MM:SS.")


def utc_now() -> str:
    """Now as `YYYY-MM-DDTHH:MM:SS.ffffffZ`, the text of datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ").

    The same clock (microseconds, rounded down), with the date and time formatted once per second."""
    global _NOW_PREFIX
    second, micros = divmod(time.time_ns() // 1000, 1_000_000)
    cached = _NOW_PREFIX
    if cached[0] != second:
        cached = _NOW_PREFIX = (second, time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second)))
    return f"{cached[1]}{micros:06d}Z"


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
        # model.model_validate(body), without its Python wrapper
        validated = (
            model.__pydantic_validator__.validate_python(body)
            if isinstance(body, dict) or not isinstance(body, model)  # a dict is no model: skip its slower check
            else body
        )
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
    # validated.model_dump(mode="json", exclude_none=True), without its Python wrapper
    dumped = model.__pydantic_serializer__.to_python(validated, mode="json", exclude_none=True)
    ts = ts or utc_now()
    if sign is None and attest is None:
        raw = _envelope_bytes(type, ts, actor, subject, dumped, refs)
        if raw is not None:
            return _unsigned_entry(raw, type, ts, actor, subject, dumped, refs)
    envelope = {
        "v": ENVELOPE_VERSION,
        "type": type,
        "ts": ts,
        "actor": actor,
        "subject": subject,
        "body": dumped,
        "refs": refs,
    }
    if sign is None:
        if attest is not None:
            raise EntryError("an attested entry must be signed")
        return _unsigned_entry(canonical_json(envelope), type, ts, actor, subject, dumped, refs)
    envelope["v"] = SIGNED_ENVELOPE_VERSION
    if attest is not None:
        envelope["attest"] = attest
    sig = base64.b64encode(sign(canonical_json(envelope))).decode()
    raw = canonical_json({**envelope, "sig": sig})
    return Entry(
        raw, type, envelope["ts"], actor, subject, envelope["body"], refs, SIGNED_ENVELOPE_VERSION, attest, sig
    )


def _envelope_bytes(
    name: str, ts: str, actor: str, subject: str, body: dict[str, Any], refs: list[str]
) -> bytes | None:
    """canonical_json of an unsigned envelope, its keys written in JCS order; None where only the
    general path can tell (a value that is not a plain str, a body off the fast path, a lone surrogate).

    The type is a registered name (checked by `entry_type`) and every ref has passed `_REF`: both
    are ASCII with nothing to escape. The rest is escaped as `json.dumps` escapes it.
    """
    if not (type(ts) is str and type(actor) is str and type(subject) is str) or not _fast_path_ok(body):
        return None
    text = (
        '{"actor":'
        + _encode_str(actor)
        + ',"body":'
        + _dumps(body)
        + (',"refs":["' + '","'.join(refs) + '"],"subject":' if refs else ',"refs":[],"subject":')
        + _encode_str(subject)
        + ',"ts":'
        + _encode_str(ts)
        + ',"type":"'
        + name
        + '","v":1}'
    )
    try:
        return text.encode()
    except UnicodeEncodeError:
        return None


def _unsigned_entry(
    raw: bytes, type: str, ts: str, actor: str, subject: str, body: dict[str, Any], refs: list[str]
) -> Entry:
    """Entry(raw, type, ts, actor, subject, body, refs), a version 1 envelope, without the frozen
    dataclass's __init__ (an object.__setattr__ per field: a seventh of make_entry's time before)."""
    entry = object.__new__(Entry)
    entry.__dict__.update(
        raw=raw,
        type=type,
        ts=ts,
        actor=actor,
        subject=subject,
        body=body,
        refs=refs,
        v=ENVELOPE_VERSION,
        attest=None,
        sig=None,
    )
    return entry
