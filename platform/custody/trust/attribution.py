"""Who an entry speaks for, by key: the answer separation of duties and the dashboard need.

For a person's own signature the key is the one that signed; for an attestation, or for machine
work a person requested, it is the key the roster bound to that person at the entry's index.
"""

from __future__ import annotations

from dataclasses import dataclass

from custody.trust.audit import entry_problem
from custody.trust.roster import Roster
from custody.trust.sshsig import SignatureFormatError, parse


@dataclass(frozen=True)
class Attribution:
    kind: str  # person | attested | service | unsigned
    actor: str
    key: str | None  # fingerprint of the actor's own key, when the roster knows one
    via: str | None = None  # who attested, for attested entries
    problem: str | None = None  # why the entry would not be admitted now (None: valid)

    @property
    def personal(self) -> bool:
        return self.kind == "person"

    def as_json(self) -> dict:
        doc = {"kind": self.kind, "actor": self.actor, "key": self.key}
        if self.via:
            doc["via"] = self.via
        if self.problem:
            doc["problem"] = self.problem
        return doc


def attribute(index: int, doc: dict, roster: Roster) -> Attribution:
    """Attribute the entry at `index`; `roster` must be the roster as it stood before it."""
    actor = doc.get("actor", "")
    member = roster.by_name(actor)
    roster_key = member.key.fingerprint if member is not None and member.active_at(index) else None
    if doc.get("v") != 2:
        return Attribution("unsigned", actor, roster_key, problem=None if not roster.signed else "unsigned entry")
    problem = entry_problem(index, doc, roster)
    try:
        signing_key = parse(_b64(doc["sig"])).public
    except (SignatureFormatError, ValueError):
        return Attribution("unsigned", actor, roster_key, problem=problem or "malformed signature")
    if roster.service_key is not None and signing_key == roster.service_key:
        return Attribution("service", actor, roster_key, problem=problem)
    attest = doc.get("attest")
    if attest is not None:
        return Attribution("attested", actor, roster_key, via=attest.get("via"), problem=problem)
    return Attribution("person", actor, signing_key.fingerprint, problem=problem)


def _b64(text: str) -> bytes:
    import base64

    return base64.b64decode(text, validate=True)
