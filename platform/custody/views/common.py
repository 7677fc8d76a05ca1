"""Small formatting helpers the read models share (reading the ledger is custody.ledger.query's)."""

from __future__ import annotations

from typing import Any


def when(ts: str) -> str:
    """A ledger time for a table: `2026-12-05 17:02:22Z` (to the second; the entry keeps the rest)."""
    date, sep, clock = ts.partition("T")
    return f"{date} {clock[:8]}Z" if sep and len(clock) >= 8 else ts


def without_empty(rows: list[dict[str, Any]], column: str) -> list[dict[str, Any]]:
    """The rows without `column` where no row has a value in it: a marker column such as "taken
    down" shows only once something carries the mark, rather than as an empty column."""
    if any(row.get(column) for row in rows):
        return rows
    return [{name: value for name, value in row.items() if name != column} for row in rows]
