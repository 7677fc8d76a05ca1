"""The storage contract and the SQL both backends share.

Tables (same logical schema everywhere):
  entries(idx, entry, leaf_hash, type, ts, actor, subject)  contiguous from 0, append-only
  nodes(level, idx, hash)        write-once hashes of perfect subtrees, level >= 1
  checkpoints(size, root, note)  signed notes, verbatim
  head(id = 0, size, root)       the one mutable row; writers serialize on it
  cosignatures(size, witness, key_id, line)  witness cosignature lines of the checkpoint at size,
                                 write-once; created on open when an older database lacks it
`type`, `ts`, `actor` and `subject` are copies of envelope fields for filtering; verification
checks them against the entry bytes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

from custody.ledger.merkle import NodeId


class StorageError(Exception):
    """The database could not be opened, read or written."""


@dataclass(frozen=True)
class EntryRow:
    idx: int
    entry: bytes
    leaf_hash: bytes
    type: str
    ts: str
    actor: str
    subject: str


ENTRY_COLUMNS = "idx, entry, leaf_hash, type, ts, actor, subject"
IN_CHUNK = 400  # keep IN lists well below both engines' parameter limits


class Storage(ABC):
    """SQL shared by the backends; subclasses supply connections, DDL and locking."""

    name = "abstract"
    placeholder = "?"

    # -- provided by backends ---------------------------------------------------------------
    @abstractmethod
    def _execute(self, sql: str, params: Iterable[Any] = ()) -> Any:
        """Run one statement; return a cursor."""

    @abstractmethod
    def _executemany(self, sql: str, rows: list[tuple]) -> None:
        """Run one statement for many rows."""

    @abstractmethod
    def write_transaction(self) -> AbstractContextManager[tuple[int, bytes]]:
        """Begin a transaction holding the single-writer lock; yields the locked head."""

    @abstractmethod
    def close(self) -> None:
        """Close the connection."""

    @contextmanager
    def read_snapshot(self) -> Iterator[None]:
        """Reads inside see one state of the database, whatever other writers commit meanwhile
        (backends open a read transaction; inside a transaction already, nothing changes)."""
        yield

    # -- shared SQL -------------------------------------------------------------------------
    def _sql(self, sql: str) -> str:
        return sql if self.placeholder == "?" else sql.replace("?", self.placeholder)

    def _rows(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        return self._execute(self._sql(sql), tuple(params)).fetchall()

    def head(self) -> tuple[int, bytes]:
        rows = self._rows("SELECT size, root FROM head WHERE id = 0")
        if len(rows) != 1:
            raise StorageError("ledger head row is missing: the database is not a custody ledger")
        return int(rows[0][0]), bytes(rows[0][1])

    def entry_count(self) -> int:
        return int(self._rows("SELECT COUNT(*) FROM entries")[0][0])

    def max_index(self) -> int:
        value = self._rows("SELECT MAX(idx) FROM entries")[0][0]
        return -1 if value is None else int(value)

    def fetch_nodes(self, ids: Iterable[NodeId]) -> dict[NodeId, bytes]:
        ids = list(ids)
        found: dict[NodeId, bytes] = {}
        leaves = [idx for level, idx in ids if level == 0]
        inner = [(level, idx) for level, idx in ids if level > 0]
        for start in range(0, len(leaves), IN_CHUNK):
            chunk = leaves[start : start + IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            for idx, h in self._rows(f"SELECT idx, leaf_hash FROM entries WHERE idx IN ({marks})", chunk):
                found[(0, int(idx))] = bytes(h)
        for start in range(0, len(inner), IN_CHUNK):
            chunk = inner[start : start + IN_CHUNK]
            where = " OR ".join("(level = ? AND idx = ?)" for _ in chunk)
            params = [v for pair in chunk for v in pair]
            for level, idx, h in self._rows(f"SELECT level, idx, hash FROM nodes WHERE {where}", params):
                found[(int(level), int(idx))] = bytes(h)
        return found

    def insert_entries(self, rows: list[tuple]) -> None:
        """Rows as tuples in ENTRY_COLUMNS order (no per-row objects: this is the append hot path)."""
        self._executemany(self._sql(f"INSERT INTO entries ({ENTRY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"), rows)

    def insert_nodes(self, nodes: list[tuple[int, int, bytes]]) -> None:
        if nodes:
            self._executemany(self._sql("INSERT INTO nodes (level, idx, hash) VALUES (?, ?, ?)"), nodes)

    def set_head(self, size: int, root: bytes) -> None:
        self._execute(self._sql("UPDATE head SET size = ?, root = ? WHERE id = 0"), (size, root))

    def insert_checkpoint(self, size: int, root: bytes, note: str) -> None:
        self._execute(self._sql("INSERT INTO checkpoints (size, root, note) VALUES (?, ?, ?)"), (size, root, note))

    def checkpoint_at(self, size: int) -> tuple[int, bytes, str] | None:
        rows = self._rows("SELECT size, root, note FROM checkpoints WHERE size = ?", (size,))
        return (int(rows[0][0]), bytes(rows[0][1]), rows[0][2]) if rows else None

    def last_checkpoint(self) -> tuple[int, bytes, str] | None:
        rows = self._rows("SELECT size, root, note FROM checkpoints ORDER BY size DESC LIMIT 1")
        return (int(rows[0][0]), bytes(rows[0][1]), rows[0][2]) if rows else None

    def checkpoints(self) -> list[tuple[int, bytes, str]]:
        return [
            (int(s), bytes(r), n) for s, r, n in self._rows("SELECT size, root, note FROM checkpoints ORDER BY size")
        ]

    # -- witness cosignatures ---------------------------------------------------------------
    def insert_cosignature(self, size: int, witness: str, key_id: bytes, line: str) -> None:
        """Keep the first cosignature a witness key gave for a size (rows are never replaced)."""
        self._execute(
            self._sql(
                "INSERT INTO cosignatures (size, witness, key_id, line) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING"
            ),
            (size, witness, key_id, line),
        )

    def cosignatures_at(self, size: int) -> list[str]:
        """The cosignature lines kept for the checkpoint at `size`, in a stable order."""
        rows = self._rows("SELECT line FROM cosignatures WHERE size = ? ORDER BY witness, key_id", (size,))
        return [line for (line,) in rows]

    def last_cosigned_size(self, witness: str, key_id: bytes) -> int:
        """The largest size this witness key cosigned for this ledger, or 0."""
        rows = self._rows("SELECT MAX(size) FROM cosignatures WHERE witness = ? AND key_id = ?", (witness, key_id))
        return 0 if rows[0][0] is None else int(rows[0][0])

    def cosigned_sizes(self) -> list[int]:
        return [int(s) for (s,) in self._rows("SELECT DISTINCT size FROM cosignatures ORDER BY size")]

    def entry(self, idx: int) -> EntryRow | None:
        rows = self._rows(f"SELECT {ENTRY_COLUMNS} FROM entries WHERE idx = ?", (idx,))
        return _entry_row(rows[0]) if rows else None

    def entries(
        self,
        start: int = 0,
        limit: int = 100,
        type_prefix: str | None = None,
        subject: str | None = None,
        actor: str | None = None,
        descending: bool = False,
    ) -> list[EntryRow]:
        """A page of entries, filtered on the copied envelope fields."""
        where, params = [], []
        if type_prefix:
            where.append("type LIKE ? ESCAPE '\\'")
            params.append(_like_prefix(type_prefix))
        if subject:
            where.append("subject = ?")
            params.append(subject)
        if actor:
            where.append("actor = ?")
            params.append(actor)
        return self._page(where, params, start, limit, descending)

    def _page(self, where: list[str], params: list[Any], start: int, limit: int, descending: bool) -> list[EntryRow]:
        """Up to `limit` entries from index `start` on (down, when `descending`) matching every `where`."""
        bound = "idx <= ?" if descending else "idx >= ?"
        order = "DESC" if descending else "ASC"
        sql = f"SELECT {ENTRY_COLUMNS} FROM entries WHERE {' AND '.join([bound, *where])} ORDER BY idx {order} LIMIT ?"
        return [_entry_row(r) for r in self._rows(sql, [start, *params, limit])]

    def touched(self, start: int, stop: int) -> set[tuple[str, str]]:
        """The distinct (type, subject) of the entries with `start <= idx < stop` (no entry bytes read)."""
        rows = self._rows("SELECT DISTINCT type, subject FROM entries WHERE idx >= ? AND idx < ?", (start, stop))
        return {(type_, subject) for type_, subject in rows}

    def iter_entries(self, batch: int = 50_000) -> Iterator[EntryRow]:
        """Every entry in index order, in pages so memory stays flat."""
        after = -1
        while True:
            rows = self._rows(f"SELECT {ENTRY_COLUMNS} FROM entries WHERE idx > ? ORDER BY idx LIMIT ?", (after, batch))
            if not rows:
                return
            for row in rows:
                yield _entry_row(row)
            after = int(rows[-1][0])

    def iter_level(self, level: int, batch: int = 100_000) -> Iterator[tuple[int, bytes]]:
        after = -1
        while True:
            rows = self._rows(
                "SELECT idx, hash FROM nodes WHERE level = ? AND idx > ? ORDER BY idx LIMIT ?", (level, after, batch)
            )
            if not rows:
                return
            for idx, h in rows:
                yield int(idx), bytes(h)
            after = int(rows[-1][0])

    def max_level(self) -> int:
        value = self._rows("SELECT MAX(level) FROM nodes")[0][0]
        return 0 if value is None else int(value)


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def _entry_row(row: tuple) -> EntryRow:
    idx, entry, leaf, type_, ts, actor, subject = row
    return EntryRow(int(idx), bytes(entry), bytes(leaf), type_, ts, actor, subject)
