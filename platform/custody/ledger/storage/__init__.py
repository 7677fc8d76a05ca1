"""Ledger storage backends: one logical schema on SQLite and PostgreSQL."""

from __future__ import annotations

from custody.ledger.storage.base import EntryRow, Storage, StorageError


def open_storage(url: str, create: bool = False) -> Storage:
    """Open the backend a database URL names: `sqlite:///path` or `postgresql://...`."""
    if url.startswith(("postgresql://", "postgres://")):
        from custody.ledger.storage.postgres import PostgresStorage

        return PostgresStorage(url, create=create)
    if url.startswith("sqlite:///"):
        from custody.ledger.storage.sqlite import SqliteStorage

        return SqliteStorage(url.removeprefix("sqlite:///"), create=create)
    raise StorageError(f"database URL must start with sqlite:/// or postgresql://, not {url.split(':')[0]!r}")


__all__ = ["EntryRow", "Storage", "StorageError", "open_storage"]
