"""The ledger explorer: filtered pages, one entry, its inclusion proof, checkpoints, verification."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from custody.home import Home
from custody.ledger.entry import known_entry_types
from custody.ledger.log import LedgerRangeError, load_note
from custody.ledger.query import envelope, window
from custody.ledger.verifier import VerificationError, verify_checkpoint
from custody.views.common import when
from custody.views.signatures import SignedBy, signed_by, signed_by_rows
from custody.wording import plural


@dataclass(frozen=True)
class EntryFilter:
    type_prefix: str = ""
    subject: str = ""
    actor: str = ""


def entry_page(home: Home, flt: EntryFilter, before: int | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """Up to `limit` matching entries at or below index `before` (default: the newest), newest first."""
    size = home.storage.head()[0]
    top = size - 1 if before is None else min(before, size - 1)
    if top < 0:
        return []
    rows = window(
        home.storage,
        limit,
        flt.type_prefix or None,
        flt.subject or None,
        flt.actor or None,
        stop=top + 1,
        newest_first=True,
    )
    signed = signed_by_rows(home, rows)
    return [
        {
            "index": r.idx,
            "time": when(r.ts),
            "type": r.type,
            "actor": r.actor,
            "signed": signed[r.idx].label(),
            "subject": r.subject,
        }
        for r in rows
    ]


def entry_types() -> list[str]:
    """Type filters a user can pick: every area (`dataset.`) and every registered type."""
    types = known_entry_types()
    areas = sorted({t.split(".", 1)[0] + "." for t in types})
    return areas + types


def entry_json(home: Home, index: int) -> dict[str, Any]:
    row = home.ledger.entry(index)
    return {"index": row.idx, "leaf_hash": row.leaf_hash.hex(), "envelope": envelope(row)}


def entry_signature(home: Home, index: int) -> SignedBy:
    """Who signed one entry: a person with their own key, the dashboard attesting them, or the service."""
    return signed_by(home, home.ledger.entry(index))


@dataclass(frozen=True)
class ProofResult:
    proof: dict[str, Any] | None
    error: str | None = None

    def as_bytes(self) -> bytes:
        return json.dumps(self.proof, indent=2, sort_keys=True).encode()


def inclusion_proof(home: Home, index: int) -> ProofResult:
    """Entry bytes, inclusion proof and the latest signed checkpoint covering it (nothing is signed here)."""
    try:
        return ProofResult(home.ledger.export_proof(index))
    except LedgerRangeError as exc:
        return ProofResult(None, str(exc))


@dataclass(frozen=True)
class CheckpointInfo:
    size: int
    root: str
    note: str
    signature_ok: bool
    problem: str = ""
    entries_since: int = 0

    def since(self) -> str:
        """What came after it, in words: `it covers every entry`, `1 entry came after it`."""
        if self.entries_since <= 0:
            return "it covers every entry"
        return f"{plural(self.entries_since, 'entry')} came after it"

    def covers(self, index: int) -> bool:
        return index < self.size


def first_proof_index(home: Home) -> int:
    """The entry the page proves first: the newest one a signed checkpoint covers, so the first
    view shows a proof rather than a warning whenever the head has moved past the checkpoint."""
    size = home.storage.head()[0]
    last = home.storage.last_checkpoint()
    return max((last[0] if last else size) - 1, 0)


def latest_checkpoint(home: Home) -> CheckpointInfo | None:
    last = home.storage.last_checkpoint()
    if last is None:
        return None
    size, root, note = last
    behind = home.storage.head()[0] - size
    try:
        body = verify_checkpoint(note, home.verifier_key)
        ok = body.size == size and body.root == root and body.origin == home.config.origin
        problem = "" if ok else "the stored size or root differs from the signed note"
    except VerificationError as exc:
        ok, problem = False, str(exc)
        body = load_note(note) if "\n\n" in note else None
    return CheckpointInfo(size, root.hex(), note, ok, problem, behind)


@dataclass(frozen=True)
class Health:
    size: int
    root: str
    consistent: bool  # the stored tree folds to the head and matches the last checkpoint
    problem: str
    checkpoint: CheckpointInfo | None


def health(home: Home) -> Health:
    """Cheap checks for every page load; `verify` re-hashes everything."""
    size, root = home.storage.head()
    corruption = home.ledger.corruption
    checkpoint = latest_checkpoint(home)
    problem = corruption or (checkpoint.problem if checkpoint and not checkpoint.signature_ok else "")
    return Health(size, root.hex(), not problem, problem or "", checkpoint)


@dataclass(frozen=True)
class Verification:
    ok: bool
    size: int
    checkpoints_checked: int
    problems: list[str]
    seconds: float


def verify(home: Home) -> Verification:
    """Full verification: every entry re-hashed, every node rebuilt, checkpoints and witness checked."""
    started = time.perf_counter()
    report = home.ledger.verify(home.verifier_key, home.witness.remembered())
    problems = [f"index {idx}: {what}" for idx, what in sorted(report.problems)]
    return Verification(report.ok, report.size, report.checkpoints_checked, problems, time.perf_counter() - started)
