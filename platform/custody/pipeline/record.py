"""How every completed job ends: its summary into the store, one ledger entry, a checkpoint.

Checks and stages both finish here, so a completed job's entry always names its summary by
digest, refers to every artifact it read or wrote, and is covered by a signed checkpoint.
"""

from __future__ import annotations

from typing import Any

from custody.home import Home
from custody.ledger.entry import canonical_json


def record_completed(
    home: Home,
    entry_type: str,
    subject: str,
    summary: dict[str, Any],
    body: dict[str, Any],
    artifacts: list[str],
    actor: str | None = None,
) -> tuple[int, dict[str, Any]]:
    """Store `summary`, append `entry_type` about `subject` with `body` plus the summary's digest,
    refer to `artifacts` (sha256 digests) and the summary, and checkpoint. Returns the entry's
    index and its body."""
    summary_digest = home.store.put_bytes(canonical_json(summary))
    body = {**body, "summary_digest": summary_digest}
    refs = [f"sha256:{digest}" for digest in (*artifacts, summary_digest)]
    index = home.record(entry_type, subject, body, refs=refs, actor=actor)
    home.checkpoint()
    return index, body
