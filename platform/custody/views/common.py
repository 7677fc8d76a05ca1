"""Small formatting helpers the read models share (reading the ledger is custody.ledger.query's)."""

from __future__ import annotations


def when(ts: str) -> str:
    """A ledger time for a table: `2026-12-05 17:02:22Z` (to the second; the entry keeps the rest)."""
    date, sep, clock = ts.partition("T")
    return f"{date} {clock[:8]}Z" if sep and len(clock) >= 8 else ts
