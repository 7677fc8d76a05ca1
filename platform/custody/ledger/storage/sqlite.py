"""SQLite backend: one file, WAL, and `BEGIN IMMEDIATE` so exactly one writer holds the head."""

from __future__ import annotations

import heapq
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import Any

from custody.ledger.storage.base import EntryRow, Storage, StorageError
from custody.ledger.verifier import EMPTY_ROOT

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 60_000

DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    idx INTEGER PRIMARY KEY, entry BLOB NOT NULL, leaf_hash BLOB NOT NULL,
    type TEXT NOT NULL, ts TEXT NOT NULL, actor TEXT NOT NULL, subject TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS entries_by_type ON entries (type, idx);
CREATE INDEX IF NOT EXISTS entries_by_subject ON entries (subject, idx);
CREATE INDEX IF NOT EXISTS entries_by_subject_type ON entries (subject, type, idx);
CREATE TABLE IF NOT EXISTS nodes (
    level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL,
    PRIMARY KEY (level, idx)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (size INTEGER PRIMARY KEY, root BLOB NOT NULL, note TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS head (id INTEGER PRIMARY KEY CHECK (id = 0), size INTEGER NOT NULL, root BLOB NOT NULL);
CREATE TRIGGER IF NOT EXISTS entries_no_update BEFORE UPDATE ON entries
    BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;
CREATE TRIGGER IF NOT EXISTS entries_no_delete BEFORE DELETE ON entries
    BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;
CREATE TRIGGER IF NOT EXISTS nodes_no_update BEFORE UPDATE ON nodes
    BEGIN SELECT RAISE(ABORT, 'ledger nodes are write-once'); END;
CREATE TRIGGER IF NOT EXISTS nodes_no_delete BEFORE DELETE ON nodes
    BEGIN SELECT RAISE(ABORT, 'ledger nodes are write-once'); END;
CREATE TRIGGER IF NOT EXISTS checkpoints_no_update BEFORE UPDATE ON checkpoints
    BEGIN SELECT RAISE(ABORT, 'checkpoints are write-once'); END;
CREATE TRIGGER IF NOT EXISTS checkpoints_no_delete BEFORE DELETE ON checkpoints
    BEGIN SELECT RAISE(ABORT, 'checkpoints are write-once'); END;
"""

# One subject's entries of one type (its reviews, its takedowns) came later: created on open when
# missing (about 4 s at 1,000,000 entries, once), and a database that cannot be written goes without.
SUBJECT_TYPE_INDEX = "entries_by_subject_type"
SUBJECT_TYPE_DDL = f"CREATE INDEX IF NOT EXISTS {SUBJECT_TYPE_INDEX} ON entries (subject, type, idx)"

# Witness cosignatures came later: also created on open, so older databases gain the table.
COSIGNATURES_DDL = """
CREATE TABLE IF NOT EXISTS cosignatures (
    size INTEGER NOT NULL, witness TEXT NOT NULL, key_id BLOB NOT NULL, line TEXT NOT NULL,
    PRIMARY KEY (size, witness, key_id));
CREATE TRIGGER IF NOT EXISTS cosignatures_no_update BEFORE UPDATE ON cosignatures
    BEGIN SELECT RAISE(ABORT, 'cosignatures are write-once'); END;
CREATE TRIGGER IF NOT EXISTS cosignatures_no_delete BEFORE DELETE ON cosignatures
    BEGIN SELECT RAISE(ABORT, 'cosignatures are write-once'); END;
"""


class SqliteStorage(Storage):
    name = "sqlite"

    def __init__(self, path: str | Path, create: bool = False) -> None:
        self.path = Path(path)
        if not create and not self.path.exists():
            raise StorageError(f"{self.path}: ledger database does not exist (run `custody init`)")
        try:
            # isolation_level=None: we issue BEGIN ourselves, so the lock mode is explicit.
            self._conn = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
            self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")
            # LIKE must be case-sensitive, as on PostgreSQL (and so the type index is usable).
            self._conn.execute("PRAGMA case_sensitive_like = ON")
            # Fewer, larger WAL checkpoints: single-entry commits went from ~4,000/s to ~5,300/s
            # (the cost is a WAL of up to ~40 MB between checkpoints).
            self._conn.execute("PRAGMA wal_autocheckpoint = 10000")
            if create:
                self._create()
            self.head()
            self._ensure_cosignatures()
            self._ensure_subject_type_index()
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"{self.path}: not a readable custody ledger ({exc})") from exc

    def _create(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in DDL.split(";\n"):
                if statement.strip():
                    self._conn.execute(statement)
            self._conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            self._conn.execute("INSERT OR IGNORE INTO head VALUES (0, 0, ?)", (EMPTY_ROOT,))
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise

    def _ensure_cosignatures(self) -> None:
        found = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'cosignatures'"
        if self._conn.execute(found).fetchone():
            return  # the common case: no write lock taken just to open
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in COSIGNATURES_DDL.split(";\n"):
                if statement.strip():
                    self._conn.execute(statement)
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise

    def _ensure_subject_type_index(self) -> None:
        found = "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?"
        if self._conn.execute(found, (SUBJECT_TYPE_INDEX,)).fetchone():
            return
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute(SUBJECT_TYPE_DDL)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        except sqlite3.OperationalError:
            return  # read-only (or locked past the timeout): queries stay right, only slower

    def _execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        try:
            return self._conn.execute(sql, params)
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"{self.path}: {exc}") from exc

    def _executemany(self, sql: str, rows: list[tuple]) -> None:
        try:
            self._conn.executemany(sql, rows)
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"{self.path}: {exc}") from exc

    @contextmanager
    def write_transaction(self) -> Iterator[tuple[int, bytes]]:
        self._execute("BEGIN IMMEDIATE")
        try:
            yield self.head()
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        else:
            self._execute("COMMIT")

    @contextmanager
    def read_snapshot(self) -> Iterator[None]:
        if self._conn.in_transaction:
            yield
            return
        self._execute("BEGIN")  # deferred: the WAL snapshot is taken at the first read
        try:
            yield
        finally:
            self._conn.execute("COMMIT")

    def entries(
        self,
        start: int = 0,
        limit: int = 100,
        type_prefix: str | None = None,
        subject: str | None = None,
        actor: str | None = None,
        descending: bool = False,
    ) -> list[EntryRow]:
        """As `Storage.entries`; a type prefix is read one stored type at a time.

        Without statistics SQLite's planner answers `type LIKE 'x.%' ORDER BY idx` by walking the
        primary key and testing every row: 0.5 s at 1,000,000 entries for a type that has none or a
        hundred (`optout.imported/`, `policy.decision/`); with a subject it walks all of the
        subject's entries (a dataset checked 3,000 times, for its one review). `type = ?` (and
        `subject = ?`) `AND idx >= ? ORDER BY idx` is a seek in the (type, idx) or (subject, type,
        idx) index whatever the statistics say, so each type matching the prefix is read that way
        and the pages merged by index."""
        if not type_prefix:
            return super().entries(start, limit, type_prefix, subject, actor, descending)
        with self.read_snapshot():  # the types and their pages from one state of the ledger
            pages = []
            for type_ in self.types_with_prefix(type_prefix):
                where, params = ["type = ?"], [type_]
                for column, value in (("subject", subject), ("actor", actor)):
                    if value:
                        where.append(f"{column} = ?")
                        params.append(value)
                pages.append(self._page(where, params, start, limit, descending))
        merged = heapq.merge(*pages, key=lambda row: row.idx, reverse=descending)
        return list(islice(merged, limit))

    def types_with_prefix(self, prefix: str) -> list[str]:
        """The distinct stored types starting with `prefix`: one seek in the type index per type
        (BINARY collation orders UTF-8 bytes, so the types with a prefix are adjacent)."""
        found: list[str] = []
        rows = self._rows("SELECT type FROM entries WHERE type >= ? ORDER BY type LIMIT 1", (prefix,))
        while rows and rows[0][0].startswith(prefix):
            found.append(rows[0][0])
            rows = self._rows("SELECT type FROM entries WHERE type > ? ORDER BY type LIMIT 1", (found[-1],))
        return found

    def close(self) -> None:
        self._conn.close()
