"""Shared by the Merkle tests: the RFC 6962 test leaves and entries with exact raw bytes."""

from __future__ import annotations

from custody.ledger.entry import Entry

# The RFC 6962 test leaves that transparency-dev's vectors (../shared/data/merkle_vectors) use.
LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]


def raw_entry(raw: bytes) -> Entry:
    """An entry whose hashed bytes are exactly `raw` (bypassing make_entry on purpose)."""
    return Entry(raw=raw, type="test.leaf/v1", ts="", actor="t", subject="t", body={}, refs=[])
