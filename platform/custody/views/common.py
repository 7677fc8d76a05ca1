"""Small helpers the read models share: decoding entries and paged, indexed reads."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from custody.home import Home
from custody.ledger.storage import EntryRow

PAGE = 1000


def when(ts: str) -> str:
    """A ledger time for a table: `2026-12-05 17:02:22Z` (to the second; the entry keeps the rest)."""
    date, sep, clock = ts.partition("T")
    return f"{date} {clock[:8]}Z" if sep and len(clock) >= 8 else ts


def envelope(row: EntryRow) -> dict[str, Any]:
    """The entry's JSON envelope (the stored bytes are canonical JSON)."""
    return json.loads(row.entry)


def body(row: EntryRow) -> dict[str, Any]:
    return envelope(row)["body"]


def newest(home: Home, type_prefix: str, limit: int, subject: str | None = None) -> list[EntryRow]:
    """The latest `limit` entries of a type (optionally on one subject), newest first."""
    size = home.storage.head()[0]
    if size == 0:
        return []
    return home.storage.entries(size - 1, limit, type_prefix=type_prefix, subject=subject, descending=True)


def scan(home: Home, type_prefix: str, subject: str | None = None, newest_first: bool = False) -> Iterator[EntryRow]:
    """Every entry of a type (optionally on one subject), a page at a time."""
    if newest_first:
        cursor = home.storage.head()[0] - 1
        while cursor >= 0:
            rows = home.storage.entries(cursor, PAGE, type_prefix=type_prefix, subject=subject, descending=True)
            yield from rows
            if len(rows) < PAGE:
                return
            cursor = rows[-1].idx - 1
        return
    start = 0
    while True:
        rows = home.storage.entries(start, PAGE, type_prefix=type_prefix, subject=subject)
        yield from rows
        if len(rows) < PAGE:
            return
        start = rows[-1].idx + 1
