"""PostgreSQL backend: the head row locked `FOR UPDATE` serializes writers across machines."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from custody.ledger.storage.base import Storage, StorageError
from custody.ledger.verifier import EMPTY_ROOT

DDL = [
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS entries (
        idx BIGINT PRIMARY KEY, entry BYTEA NOT NULL, leaf_hash BYTEA NOT NULL,
        type TEXT NOT NULL, ts TEXT NOT NULL, actor TEXT NOT NULL, subject TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS entries_by_type ON entries (type text_pattern_ops, idx)",
    "CREATE INDEX IF NOT EXISTS entries_by_subject ON entries (subject, idx)",
    "CREATE INDEX IF NOT EXISTS entries_by_subject_type ON entries (subject, type text_pattern_ops, idx)",
    """CREATE TABLE IF NOT EXISTS nodes (
        level INTEGER NOT NULL, idx BIGINT NOT NULL, hash BYTEA NOT NULL, PRIMARY KEY (level, idx))""",
    "CREATE TABLE IF NOT EXISTS checkpoints (size BIGINT PRIMARY KEY, root BYTEA NOT NULL, note TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS head (
        id INTEGER PRIMARY KEY CHECK (id = 0), size BIGINT NOT NULL, root BYTEA NOT NULL)""",
    """CREATE OR REPLACE FUNCTION custody_append_only() RETURNS trigger AS $$
        BEGIN RAISE EXCEPTION 'custody ledger table % is append-only', TG_TABLE_NAME; END;
        $$ LANGUAGE plpgsql""",
    "DROP TRIGGER IF EXISTS entries_append_only ON entries",
    """CREATE TRIGGER entries_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON entries
        FOR EACH STATEMENT EXECUTE FUNCTION custody_append_only()""",
    "DROP TRIGGER IF EXISTS nodes_append_only ON nodes",
    """CREATE TRIGGER nodes_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON nodes
        FOR EACH STATEMENT EXECUTE FUNCTION custody_append_only()""",
    "DROP TRIGGER IF EXISTS checkpoints_append_only ON checkpoints",
    """CREATE TRIGGER checkpoints_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON checkpoints
        FOR EACH STATEMENT EXECUTE FUNCTION custody_append_only()""",
    "INSERT INTO meta VALUES ('schema_version', '1') ON CONFLICT DO NOTHING",
]

# Witness cosignatures came later: also created on open, so older databases gain the table.
COSIGNATURES_DDL = [
    """CREATE TABLE IF NOT EXISTS cosignatures (
        size BIGINT NOT NULL, witness TEXT NOT NULL, key_id BYTEA NOT NULL, line TEXT NOT NULL,
        PRIMARY KEY (size, witness, key_id))""",
    "DROP TRIGGER IF EXISTS cosignatures_append_only ON cosignatures",
    """CREATE TRIGGER cosignatures_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON cosignatures
        FOR EACH STATEMENT EXECUTE FUNCTION custody_append_only()""",
]


class PostgresStorage(Storage):
    name = "postgresql"
    placeholder = "%s"

    def __init__(self, url: str, create: bool = False) -> None:
        import psycopg

        self._psycopg = psycopg
        self.url = url
        try:
            self._conn = psycopg.connect(url, autocommit=True)
            if create:
                self._create()
            self.head()
            self._ensure_cosignatures()
            self._ensure_subject_type_index()
        except psycopg.Error as exc:
            raise StorageError(f"{_redact(url)}: {str(exc).strip().splitlines()[0]}") from exc

    def _create(self) -> None:
        with self._conn.transaction():
            # Serialize concurrent `init`s on one database.
            self._conn.execute("SELECT pg_advisory_xact_lock(7264251)")
            for statement in DDL:
                self._conn.execute(statement)
            self._conn.execute("INSERT INTO head VALUES (0, 0, %s) ON CONFLICT DO NOTHING", (EMPTY_ROOT,))

    def _ensure_cosignatures(self) -> None:
        if self._conn.execute("SELECT to_regclass('cosignatures')").fetchone()[0] is not None:
            return
        with self._conn.transaction():
            self._conn.execute("SELECT pg_advisory_xact_lock(7264251)")  # the lock `init` takes
            for statement in COSIGNATURES_DDL:
                self._conn.execute(statement)

    def _ensure_subject_type_index(self) -> None:
        """One subject's entries of one type (its reviews, its takedowns) came later: the index is
        made on open when missing; a role that may not create it goes without (slower, not wrong)."""
        if self._conn.execute("SELECT to_regclass('entries_by_subject_type')").fetchone()[0] is not None:
            return
        try:
            with self._conn.transaction():
                self._conn.execute("SELECT pg_advisory_xact_lock(7264251)")  # the lock `init` takes
                self._conn.execute(next(s for s in DDL if "entries_by_subject_type" in s))
        except (self._psycopg.errors.InsufficientPrivilege, self._psycopg.errors.ReadOnlySqlTransaction):
            return

    def _execute(self, sql: str, params: Any = ()) -> Any:
        try:
            return self._conn.execute(sql, params)
        except self._psycopg.Error as exc:
            raise StorageError(f"{_redact(self.url)}: {str(exc).strip().splitlines()[0]}") from exc

    def _executemany(self, sql: str, rows: list[tuple]) -> None:
        try:
            with self._conn.cursor() as cursor:
                cursor.executemany(sql, rows)
        except self._psycopg.Error as exc:
            raise StorageError(f"{_redact(self.url)}: {str(exc).strip().splitlines()[0]}") from exc

    def insert_entries(self, rows: list[tuple]) -> None:
        self._copy(
            "entries (idx, entry, leaf_hash, type, ts, actor, subject)",
            ["int8", "bytea", "bytea", "text", "text", "text", "text"],
            rows,
        )

    def insert_nodes(self, nodes: list[tuple[int, int, bytes]]) -> None:
        self._copy("nodes (level, idx, hash)", ["int4", "int8", "bytea"], nodes)

    def _copy(self, target: str, types: list[str], rows: list[tuple]) -> None:
        """Binary COPY for batches (about twice executemany's rate); plain inserts for a few rows."""
        if not rows:
            return
        if len(rows) <= 8:
            marks = ", ".join(["%s"] * len(types))
            self._executemany(f"INSERT INTO {target} VALUES ({marks})", rows)
            return
        try:
            with self._conn.cursor() as cursor, cursor.copy(f"COPY {target} FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(types)
                for row in rows:
                    copy.write_row(row)
        except self._psycopg.Error as exc:
            raise StorageError(f"{_redact(self.url)}: {str(exc).strip().splitlines()[0]}") from exc

    def fetch_nodes(self, ids) -> dict:
        """All the nodes a proof needs in one round trip (leaves from entries, the rest from nodes)."""
        ids = list(ids)
        if not ids:
            return {}
        rows = self._execute(
            "SELECT q.level, q.idx, COALESCE(e.leaf_hash, n.hash) FROM unnest(%s::int4[], %s::int8[]) AS q(level, idx) "
            "LEFT JOIN entries e ON q.level = 0 AND e.idx = q.idx "
            "LEFT JOIN nodes n ON q.level > 0 AND n.level = q.level AND n.idx = q.idx",
            ([level for level, _ in ids], [idx for _, idx in ids]),
        ).fetchall()
        return {(int(level), int(idx)): bytes(h) for level, idx, h in rows if h is not None}

    @contextmanager
    def write_transaction(self) -> Iterator[tuple[int, bytes]]:
        try:
            with self._conn.transaction():
                rows = self._conn.execute("SELECT size, root FROM head WHERE id = 0 FOR UPDATE").fetchall()
                if len(rows) != 1:
                    raise StorageError("ledger head row is missing")
                yield int(rows[0][0]), bytes(rows[0][1])
        except self._psycopg.Error as exc:
            raise StorageError(f"{_redact(self.url)}: {str(exc).strip().splitlines()[0]}") from exc

    @contextmanager
    def read_snapshot(self) -> Iterator[None]:
        if self._conn.info.transaction_status != self._psycopg.pq.TransactionStatus.IDLE:
            yield
            return
        try:
            with self._conn.transaction():
                self._conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                yield
        except self._psycopg.Error as exc:
            raise StorageError(f"{_redact(self.url)}: {str(exc).strip().splitlines()[0]}") from exc

    def close(self) -> None:
        self._conn.close()


def _redact(url: str) -> str:
    """Never print a password from a connection URL."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':')[0]}:***@{host}" if ":" in creds else url
    return url
