"""Reading the ledger: entries filtered by type, subject, actor and index range, a page at a time,
oldest or newest first, and their envelopes and bodies decoded.

Every module that reads entries goes through here, so paging and decoding are written once. The
filters run in the database on the columns copied from each envelope (`type`, `subject`,
`actor`); verification checks those copies against the entry bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import islice
from typing import Any, Protocol

from custody.ledger.storage import EntryRow, Storage

PAGE = 1000  # rows per database round trip; memory stays flat however long the ledger is
# The first round trip asks for this many rows and each next one for GROWTH times more, up to the
# page: a reader that stops early (the newest result of each check) fetches a few rows, not a
# thousand entries' bytes, and a full scan pays three extra round trips.
FIRST_PAGE, GROWTH = 16, 4


class HasEntry(Protocol):
    """A stored row, or anything else carrying an entry's bytes (an entry out of a proof file)."""

    @property
    def entry(self) -> bytes: ...


def envelope(row: HasEntry) -> dict[str, Any]:
    """The entry's JSON envelope (the stored bytes are canonical JSON)."""
    return json.loads(row.entry)


def body(row: HasEntry) -> dict[str, Any]:
    """The entry's body: what the entry type says."""
    return envelope(row)["body"]


def entries(
    storage: Storage,
    type_prefix: str | None = None,
    subject: str | None = None,
    actor: str | None = None,
    start: int = 0,
    stop: int | None = None,
    newest_first: bool = False,
    page: int = PAGE,
    first_page: int = FIRST_PAGE,
) -> Iterator[EntryRow]:
    """Entries with `start <= index < stop` whose type starts with `type_prefix` (a family such as
    "check." or one type such as "run.started/v1"), optionally about one subject or by one actor.
    Round trips ask for `first_page` rows, then GROWTH times more each, up to `page`."""
    filters = {"type_prefix": type_prefix, "subject": subject, "actor": actor}
    size = max(1, min(first_page, page))
    if newest_first:
        cursor = storage.head()[0] - 1 if stop is None else stop - 1
        while cursor >= start:
            rows = storage.entries(cursor, size, descending=True, **filters)
            for row in rows:
                if row.idx < start:
                    return
                yield row
            if len(rows) < size:
                return
            cursor = rows[-1].idx - 1
            size = min(size * GROWTH, page)
        return
    cursor = start
    while stop is None or cursor < stop:
        rows = storage.entries(cursor, size, **filters)
        for row in rows:
            if stop is not None and row.idx >= stop:
                return
            yield row
        if len(rows) < size:
            return
        cursor = rows[-1].idx + 1
        size = min(size * GROWTH, page)


def window(
    storage: Storage,
    limit: int,
    type_prefix: str | None = None,
    subject: str | None = None,
    actor: str | None = None,
    start: int = 0,
    stop: int | None = None,
    newest_first: bool = False,
) -> list[EntryRow]:
    """The first `limit` entries `entries` would yield: one round trip when `limit <= PAGE` (a
    screenful, a CLI listing)."""
    if limit <= 0:
        return []
    size = min(limit, PAGE)
    found = entries(storage, type_prefix, subject, actor, start, stop, newest_first, page=size, first_page=size)
    return list(islice(found, limit))


def newest(
    storage: Storage, type_prefix: str | None = None, limit: int = 1, subject: str | None = None
) -> list[EntryRow]:
    """The latest `limit` entries of a type (optionally about one subject), newest first."""
    return window(storage, limit, type_prefix, subject, newest_first=True)


def first(storage: Storage, type_prefix: str | None = None, subject: str | None = None) -> EntryRow | None:
    """The oldest entry of a type about a subject, or None."""
    return next(entries(storage, type_prefix, subject, page=1), None)


def latest(storage: Storage, type_prefix: str | None = None, subject: str | None = None) -> EntryRow | None:
    """The newest entry of a type about a subject, or None."""
    return next(entries(storage, type_prefix, subject, newest_first=True, page=1), None)


def at(storage: Storage, index: int) -> EntryRow | None:
    """The entry at `index`, or None past the end."""
    return storage.entry(index)


def touched(storage: Storage, start: int, stop: int) -> set[tuple[str, str]]:
    """(type, subject) of every entry with `start <= index < stop`, each pair once: what a summary
    carried forward from `start` must look at (`ledger/summary.py`)."""
    return storage.touched(start, stop) if start < stop else set()
