"""Checking who signed each entry, against the roster as it stood at that entry.

`entry_problem` is the rule, used both when an entry is admitted (under the writer lock) and
when `custody ledger verify` re-checks a whole ledger. The rule, for an entry at index i:

- a home made with signatures (its first entry is `home.initialized/v2`) holds only v2 entries;
- the SSHSIG must verify over the canonical envelope without `sig`, in namespace `custody`;
- signed by the service key: only entries machines write (never a person's action);
- signed by a person's key: the key is on the roster before i and not yet revoked, bound to the
  entry's actor, with a role that permits this entry;
- signed by an attestor (the dashboard) with an `attest` object: the attestor's key is on the
  roster with role `attestor`, and the attested actor is on the roster with a permitting role.
"""

from __future__ import annotations

import base64
import copy
import json
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

from custody.ledger.entry import signed_bytes
from custody.ledger.query import envelope
from custody.ledger.storage import Storage
from custody.trust import sshsig
from custody.trust.permissions import person_roles
from custody.trust.roster import Roster

CHUNK = 4096  # signatures per job handed to a worker process


@dataclass(frozen=True)
class SignerKind:
    kind: str  # service | person | attested
    name: str  # the roster name that signed (the attestor for attested entries)


def classify(index: int, doc: dict, roster: Roster) -> tuple[SignerKind | None, str | None]:
    """Who must have signed this entry and whether they may: (signer, None) or (None, problem).

    The signature's cryptographic check is separate (`signature_problem`) so that a full
    verification can run it in parallel; this part walks the roster in order."""
    if doc.get("v") != 2:
        return None, "entry is unsigned (v1 envelope) in a home whose entries are all signed"
    try:
        sig = sshsig.parse(_b64(doc["sig"]))
    except (sshsig.SignatureFormatError, ValueError) as exc:
        return None, f"signature is malformed: {exc}"
    kind, subject, body, actor = doc["type"], doc["subject"], doc["body"], doc["actor"]
    needed = person_roles(kind, subject, body)
    attest = doc.get("attest")
    fingerprint = sig.public.fingerprint
    if roster.service_key is not None and sig.public == roster.service_key:
        if attest is not None:
            return None, "the service key cannot attest for a person"
        if needed is not None:
            return None, f"{kind} is a person's action; it must carry {actor}'s own signature, not the service key's"
        return SignerKind("service", "service"), None
    member = roster.by_key(fingerprint)
    if member is None or not member.active_at(index):
        return None, f"signed by key {fingerprint}, which the roster does not hold at this index (unknown or revoked)"
    if needed is None:
        return None, f"{kind} is written by the service; {member.name} cannot sign it"
    if attest is not None:
        if "attestor" not in member.roles:
            return None, f"{member.name} signed an attestation without the attestor role"
        if attest.get("via") != member.name:
            return None, f"attestation names {attest.get('via')!r} but {member.name} signed it"
        person = roster.by_name(actor)
        if person is None or not person.active_at(index):
            return None, f"attested actor {actor!r} is not on the roster at this index"
        if not needed & person.roles:
            return None, f"{actor} ({', '.join(sorted(person.roles))}) may not cause {kind}; needs {_one_of(needed)}"
        return SignerKind("attested", member.name), None
    if member.name != actor:
        return None, f"signed with {member.name}'s key but names {actor!r} as the actor"
    if not needed & member.roles:
        return None, f"{actor} ({', '.join(sorted(member.roles))}) may not cause {kind}; needs {_one_of(needed)}"
    return SignerKind("person", member.name), None


def _one_of(roles: frozenset[str]) -> str:
    return "role " + " or ".join(sorted(roles))


def _b64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def signature_problem(doc: dict) -> str | None:
    """None when the SSHSIG verifies over the envelope without `sig`."""
    try:
        sshsig.verify(_b64(doc["sig"]), signed_bytes(doc))
    except (sshsig.BadSignature, sshsig.SignatureFormatError, ValueError) as exc:
        return f"signature does not verify: {exc}"
    return None


def entry_problem(index: int, doc: dict, roster: Roster) -> str | None:
    """Everything the rule says about one entry, the cryptographic check included."""
    _, problem = classify(index, doc, roster)
    return problem or signature_problem(doc)


@dataclass
class SignatureReport:
    entries: int = 0
    signed_home: bool = True
    by_kind: dict[str, int] = field(default_factory=dict)
    problems: list[tuple[int, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def first_problem(self) -> str:
        index, what = min(self.problems)
        return f"first bad index {index}: {what}"


Chunk = tuple[Roster, list[tuple[int, bytes]]]  # the roster before its rows, and the rows


def _check_chunk(chunk: Chunk) -> tuple[list[tuple[int, str]], dict[str, int]]:
    """Signer, role and signature of every row of a chunk (no roster change happens inside one)."""
    roster, rows = chunk
    problems, kinds = [], {}
    for index, raw in rows:
        doc = json.loads(raw)
        signer, problem = classify(index, doc, roster)
        problem = problem or signature_problem(doc)
        if problem:
            problems.append((index, problem))
        else:
            kinds[signer.kind] = kinds.get(signer.kind, 0) + 1
    return problems, kinds


def _chunks(storage: Storage, report: SignatureReport) -> Iterator[Chunk]:
    """The ledger in chunks, each with the roster in force for it. Only roster entries are decoded
    here (they change the roster, in index order); everything else is the workers' job."""
    roster, rows = Roster(), []
    for row in storage.iter_entries():
        report.entries += 1
        if row.idx == 0:
            roster.apply(0, envelope(row))
            if not roster.signed:
                report.signed_home = False
                return  # a home made before signatures: nothing to check
        if row.type.startswith("people."):
            if rows:
                yield roster, rows
            yield roster, [(row.idx, row.entry)]  # judged by the roster before it...
            roster = copy.deepcopy(roster)  # ...which it then changes (earlier chunks keep theirs)
            roster.apply(row.idx, envelope(row))
            rows = []
            continue
        rows.append((row.idx, row.entry))
        if len(rows) == CHUNK:
            yield roster, rows
            rows = []
    if rows:
        yield roster, rows


def verify_signatures(storage: Storage, workers: int | None = None) -> SignatureReport:
    """Re-check every entry's signer and role against the roster at its index, and its signature,
    in parallel over chunks of the ledger."""
    report = SignatureReport()

    def take(result: tuple[list[tuple[int, str]], dict[str, int]]) -> None:
        problems, kinds = result
        report.problems.extend(problems)
        for kind, count in kinds.items():
            report.by_kind[kind] = report.by_kind.get(kind, 0) + count

    workers = workers if workers is not None else min(os.cpu_count() or 1, 8)
    if workers <= 1:
        for chunk in _chunks(storage, report):
            take(_check_chunk(chunk))
    else:
        with ProcessPoolExecutor(workers) as pool:
            pending: deque = deque()
            for chunk in _chunks(storage, report):
                pending.append(pool.submit(_check_chunk, chunk))
                if len(pending) > 4 * workers:  # bounded: memory stays flat on any ledger size
                    take(pending.popleft().result())
            for future in pending:
                take(future.result())
    report.problems.sort()
    return report
