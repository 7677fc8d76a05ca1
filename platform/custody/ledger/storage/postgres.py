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
        except psycopg.Error as exc:
            raise StorageError(f"{_redact(url)}: {str(exc).strip().splitlines()[0]}") from exc

    def _create(self) -> None:
        with self._conn.transaction():
            # Serialize concurrent `init`s on one database.
            self._conn.execute("SELECT pg_advisory_xact_lock(7264251)")
            for statement in DDL:
                self._conn.execute(statement)
            self._conn.execute("INSERT INTO head VALUES (0, 0, %s) ON CONFLICT DO NOTHING", (EMPTY_ROOT,))

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

    def close(self) -> None:
        self._conn.close()


def _redact(url: str) -> str:
    """Never print a password from a connection URL."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':')[0]}:***@{host}" if ":" in creds else url
    return url
