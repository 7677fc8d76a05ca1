"""Hand-over consistency proofs: show someone holding an old checkpoint that today's log extends it.

The document (`custody.consistency-proof/v1`) carries both signed notes, the new one with the
witness cosignatures kept for it, and the RFC 9162 consistency proof between them; it verifies
offline with `verifier.verify_consistency_bundle` and nothing but the log's key (and witness keys).
"""

from __future__ import annotations

import base64
import json

from custody.home import Home
from custody.ledger.log import load_note
from custody.ledger.verifier import CONSISTENCY_FORMAT, verify_checkpoint, verify_consistency_bundle
from custody.ledger.witness import check_extends


def consistency_document(home: Home, old_note: str) -> dict:
    """The proof that the latest checkpoint (signed now if the head moved) extends `old_note`.

    Raises VerificationError when `old_note` is not this log's, ForkDetected when the log does not
    extend it (the two notes are the evidence)."""
    key = home.verifier_key
    old = verify_checkpoint(old_note, key)
    current = home.ledger.latest_checkpoint()
    if current is None or load_note(current).size != home.ledger.size:
        current = home.checkpoint()
    new = check_extends(old_note, current, key, home.ledger.consistency_proof)
    proof = home.ledger.consistency_proof(old.size, new.size) if 0 < old.size < new.size else []
    document = {
        "format": CONSISTENCY_FORMAT,
        "origin": new.origin,
        "old_size": old.size,
        "new_size": new.size,
        "old_checkpoint": old_note,
        "new_checkpoint": home.ledger.with_cosignatures(current),
        "proof": [base64.b64encode(p).decode() for p in proof],
    }
    verify_consistency_bundle(json.dumps(document), key)  # never hand over what does not verify
    return document
