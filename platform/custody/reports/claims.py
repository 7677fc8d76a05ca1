"""Claims: the parts of a report that cite the ledger, so a verifier can check each one.

A claim is a dict with an integer `ledger_index`. Its other keys are the cited entry's body fields
and envelope fields (`type`, `ts`, `actor`, `subject`), copied unchanged, plus artifact keys
(`summary`, `card`, `manifest`, `metrics`) whose canonical JSON must hash to the digest the entry
names. A signed claim (`cite_signed`, for reviews) also says who signed: `signed_with`, the
fingerprint of the key whose SSHSIG is on the entry (checked by verifying that signature), and,
for an entry the dashboard attested, `attest` (how and when the person signed in to it), copied
from the envelope. A verifier compares every key; a key it cannot check is an error, so a report
cannot carry an unchecked statement inside a claim. Claims are not nested: the walk stops at a claim.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

from custody.ledger.entry import canonical_json, json_digest
from custody.ledger.query import envelope
from custody.ledger.storage import EntryRow
from custody.trust import sshsig
from custody.trust.audit import signature_problem

ENVELOPE_KEYS = ("type", "ts", "actor", "subject")
SIGNATURE_KEYS = ("signed_with", "attest")  # who signed: only in claims made by cite_signed
# artifact key in a claim -> the body field of the cited entry naming its digest
ARTIFACT_KEYS = {
    "summary": "summary_digest",
    "card": "card_digest",
    "manifest": "manifest_digest",
    "metrics": "metrics_digest",
}


def cite(row: EntryRow, **artifacts: Any) -> dict[str, Any]:
    """A claim citing one ledger entry: its envelope fields, its body, and artifacts by digest."""
    doc = envelope(row)
    claim: dict[str, Any] = {"ledger_index": row.idx}
    claim.update({key: doc[key] for key in ENVELOPE_KEYS})
    claim.update(doc["body"])
    for key, value in artifacts.items():
        if key not in ARTIFACT_KEYS:
            raise ValueError(f"{key!r} is not an artifact a claim can carry")
        claim[key] = value
    return claim


def cite_signed(row: EntryRow, **artifacts: Any) -> dict[str, Any]:
    """A claim that also says who signed the entry: the key, and the dashboard's attestation if any."""
    doc = envelope(row)
    claim = cite(row, **artifacts)
    fingerprint = signing_key(doc)
    if fingerprint is not None:
        claim["signed_with"] = fingerprint
    if doc.get("attest") is not None:
        claim["attest"] = doc["attest"]
    return claim


def signing_key(envelope: dict[str, Any]) -> str | None:
    """The fingerprint of the key whose signature is on the entry (None: unsigned or unreadable)."""
    try:
        return sshsig.parse(base64.b64decode(envelope["sig"], validate=True)).public.fingerprint
    except (KeyError, TypeError, ValueError, sshsig.SignatureFormatError):
        return None


def claims(value: Any) -> Iterator[dict[str, Any]]:
    """Every claim in a report body, depth first, not looking inside claims."""
    if isinstance(value, dict):
        if isinstance(value.get("ledger_index"), int) and not isinstance(value.get("ledger_index"), bool):
            yield value
            return
        for item in value.values():
            yield from claims(item)
    elif isinstance(value, list):
        for item in value:
            yield from claims(item)


def mismatch(claim: dict[str, Any], envelope: dict[str, Any]) -> str | None:
    """Why a claim does not match the entry it cites, or None."""
    body = envelope.get("body", {})
    for key, value in claim.items():
        if key == "ledger_index":
            continue
        if key in ARTIFACT_KEYS:
            digest = body.get(ARTIFACT_KEYS[key])
            if not isinstance(digest, str) or json_digest(value) != digest:
                return f"its {key} does not hash to the entry's {ARTIFACT_KEYS[key]}"
        elif key in body:
            if value != body[key] or _types_differ(value, body[key]):
                return f"field '{key}' differs from the entry"
        elif key in ENVELOPE_KEYS:
            if value != envelope.get(key):
                return f"field '{key}' differs from the entry"
        elif key in SIGNATURE_KEYS:
            why = _signature_mismatch(key, value, envelope)
            if why:
                return why
        else:
            return f"field '{key}' is not in the entry"
    for key in body:  # a claim that drops a field (e.g. a reason) misstates the entry
        if key not in claim:
            return f"field '{key}' of the entry is missing"
    return None


def _signature_mismatch(key: str, value: Any, envelope: dict[str, Any]) -> str | None:
    if key == "attest":
        return None if value == envelope.get("attest") else "its attestation differs from the entry's"
    if signing_key(envelope) != value:
        return "it names another signing key than the entry's signature"
    problem = signature_problem(envelope)  # the claim says the key signed: the signature must verify
    return f"the entry's {problem}" if problem else None


def _types_differ(a: Any, b: Any) -> bool:
    """1 == 1.0 == True in Python; in a report they are different statements."""
    return canonical_json(a) != canonical_json(b)
