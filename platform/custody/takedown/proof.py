"""Proofs of removal: one JSON file that shows, offline and with nothing but the ledger's verifier
key, that a takedown was requested, that it was applied, and that no new version holds a removed
record.

The file holds the request's and each application's ledger entries (exact bytes) with inclusion
proofs to one signed checkpoint, and, per new dataset version, an absence proof for every record
the application removed (takedown/absence.py) against the sorted-digest root that the signed
`takedown.applied` entry records. The verifier reads roots, sizes and the list of removed records
from the verified entries only, never from the file's own copies, and needs every removed record
to be proved absent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from custody.home import Home
from custody.ledger.log import load_note
from custody.ledger.verifier import (
    MalformedInput,
    ProofError,
    VerificationError,
    VerifierKey,
    verify_anchored_entry,
    verify_checkpoint,
)
from custody.takedown.absence import DigestTree, verify_absence
from custody.takedown.apply import applied
from custody.takedown.requests import get

PROOF_FORMAT = "custody-takedown-proof/1"


class NotApplied(ValueError):
    """The request has not been applied: there is no removal to prove yet."""


def build_proof(home: Home, request_id: str) -> dict[str, Any]:
    """The proof file for a request that has been applied (NotApplied otherwise)."""
    taken = get(home, request_id)
    applications = applied(home, taken.id)
    if not applications:
        raise NotApplied(f"request {taken.id} has not been applied (`custody takedown apply {taken.id}`)")
    note = home.ledger.with_cosignatures(home.checkpoint())
    size = load_note(note).size
    removals = []
    for index, body in applications:
        for version in body["versions"]:
            if version["new"] is None:
                continue  # nothing replaced it: there is no version to prove anything about
            tree = DigestTree.unpack(home.store.read_bytes(version["digests_artifact"]))
            if tree.root() != version["records_root"]:
                raise ProofError(f"{version['new']}: the stored digest list does not give the recorded root")
            removals.append(
                {
                    "applied_index": index,
                    "old": version["old"],
                    "new": version["new"],
                    "absences": [tree.absence(digest) for digest in version["absent"]],
                }
            )
    return {
        "format": PROOF_FORMAT,
        "request": taken.id,
        "origin": load_note(note).origin,
        "tree_size": size,
        "checkpoint": note,
        "entries": [home.ledger.anchored_entry(i, size) for i in [taken.ledger_index] + [i for i, _ in applications]],
        "removals": removals,
    }


@dataclass
class VerifiedRemoval:
    request: str
    requested_by: str
    reason: str
    tree_size: int
    applications: list[dict] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "request": self.request,
            "requested_by": self.requested_by,
            "reason": self.reason,
            "tree_size": self.tree_size,
            "applications": self.applications,
        }


def verify_proof(data: bytes, key: VerifierKey) -> VerifiedRemoval:
    """Check a proof file offline. MalformedInput: not a proof file; VerificationError: it fails."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedInput(f"not JSON: {str(exc)[:120]}") from None
    if not isinstance(doc, dict) or doc.get("format") != PROOF_FORMAT:
        raise MalformedInput(f"not a {PROOF_FORMAT} file")
    if not isinstance(doc.get("checkpoint"), str) or not isinstance(doc.get("entries"), list):
        raise MalformedInput("a proof file needs 'checkpoint' and 'entries'")
    checkpoint = verify_checkpoint(doc["checkpoint"], key)
    if doc.get("tree_size") != checkpoint.size:
        raise ProofError(f"the file says tree size {doc.get('tree_size')}, its checkpoint {checkpoint.size}")
    envelopes = {}
    for n, item in enumerate(doc["entries"]):
        try:
            envelopes[item["index"]] = verify_anchored_entry(item, checkpoint.size, checkpoint)
        except (VerificationError, KeyError, TypeError) as exc:
            raise ProofError(f"entries[{n}]: {exc}") from None
    request = doc.get("request")
    asked = [
        (i, e) for i, e in envelopes.items() if e["type"] == "takedown.requested/v1" and e["body"]["id"] == request
    ]
    if len(asked) != 1:
        raise ProofError(f"the file does not hold the signed request {request}")
    request_index, requested = asked[0]
    done = sorted(
        (i, e["body"])
        for i, e in envelopes.items()
        if e["type"] == "takedown.applied/v1"
        and e["body"]["id"] == request
        and e["body"]["request_index"] == request_index
    )
    if not done:
        raise ProofError(f"the file holds no signed application of {request}")
    removals = doc.get("removals")
    if not isinstance(removals, list):
        raise MalformedInput("a proof file needs 'removals'")
    result = VerifiedRemoval(request, requested["body"]["requested_by"], requested["body"]["reason"], checkpoint.size)
    for index, body in done:
        versions = []
        for version in body["versions"]:
            if version["new"] is not None:
                _check_version(version, index, removals)
            versions.append({"old": version["old"], "new": version["new"], "absent": len(version["absent"])})
        applied_by = envelopes[index]["actor"]
        result.applications.append({"ledger_index": index, "applied_by": applied_by, "versions": versions})
    return result


def _check_version(version: dict, index: int, removals: list) -> None:
    """Every record the signed entry says was removed is proved absent from the new version."""
    mine = [
        r for r in removals if isinstance(r, dict) and (r.get("applied_index"), r.get("old")) == (index, version["old"])
    ]
    if len(mine) != 1:
        raise ProofError(f"no absence proofs for {version['new']} (applied at ledger index {index})")
    absences = mine[0].get("absences")
    if not isinstance(absences, list):
        raise MalformedInput(f"{version['new']}: 'absences' is not a list")
    proved = {}
    for absence in absences:
        try:
            proved[absence["digest"]] = verify_absence(absence, version["records_root"], version["records"])
        except (ProofError, KeyError, TypeError) as exc:
            raise ProofError(f"{version['new']}: {exc}") from None
    missing = sorted(set(version["absent"]) - set(proved))
    if missing:
        raise ProofError(f"{version['new']}: record {missing[0]} is not proved absent")
