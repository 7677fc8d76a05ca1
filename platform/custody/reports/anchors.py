"""Anchors: every cited entry's exact bytes with an inclusion proof to one freshly signed
checkpoint; and the seal, the report's own `report.exported/v1` entry proved to a later one.

Everything here verifies with `custody.ledger.verifier` alone (RFC 9162 proofs, C2SP notes).
"""

from __future__ import annotations

from typing import Any

from custody.home import Home
from custody.ledger.log import load_note
from custody.reports import entry_types  # noqa: F401  registers report.exported/v1
from custody.reports.claims import claims
from custody.trust.acting import Acting


def anchor(home: Home, content: dict[str, Any]) -> dict[str, Any]:
    """Proofs for every entry the content cites, all to one checkpoint signed now."""
    # with the witness cosignatures kept for it, if it was cosigned (`ledger checkpoint --witness`)
    note = home.ledger.with_cosignatures(home.checkpoint())
    checkpoint = load_note(note)
    indices = sorted({claim["ledger_index"] for claim in claims(content)})
    return {
        "origin": checkpoint.origin,
        "tree_size": checkpoint.size,
        "checkpoint": note,
        "entries": [home.ledger.anchored_entry(i, checkpoint.size) for i in indices],
    }


def seal(
    home: Home, subject: str, fmt: str, digest: str, size: int, anchored_size: int, actor: Acting | str | None = None
) -> dict[str, Any]:
    """Record the report's digest (naming who asked), sign a checkpoint covering it, and prove both."""
    index = home.record(
        "report.exported/v1",
        subject,
        {"subject": subject, "format": fmt, "digest": digest, "bytes": size, "covers": "report"},
        actor=actor,
    )
    note = home.checkpoint()
    checkpoint = load_note(note)
    return {
        **home.ledger.anchored_entry(index, checkpoint.size),
        "tree_size": checkpoint.size,
        "checkpoint": note,
        # the anchors' tree is a prefix of the seal's: one history, not a fork
        "consistency": [p.hex() for p in home.ledger.consistency_proof(anchored_size, checkpoint.size)],
    }
