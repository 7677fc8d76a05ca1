"""A check's per-record rows as Parquet: the fixed schema, a batching writer and the concatenation.

Shared by the check runner (pipeline/run_check.py) and every executor, so a shard's part has the same bytes
whichever machine wrote it.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from custody.checks.base import Check, RecordRow

ROW_SCHEMA = pa.schema(
    [
        ("dataset", pa.string()),
        ("record_id", pa.string()),
        ("content_hash", pa.string()),
        ("shard", pa.string()),
        ("position", pa.int64()),
        ("check", pa.string()),
        ("version", pa.string()),
        ("verdict", pa.string()),
        ("reason", pa.string()),
        ("score", pa.float64()),
        ("details", pa.string()),
    ]
)
BATCH_ROWS = 50_000


class RowWriter:
    """Batches rows into a Parquet file with a fixed schema (deterministic bytes for equal rows)."""

    def __init__(self, path: Path, dataset: str, check: Check) -> None:
        self.path, self.dataset, self.check = path, dataset, check
        self.writer = pq.ParquetWriter(path, ROW_SCHEMA, compression="zstd")
        self.batch: list[RecordRow] = []
        self.verdicts: Counter[str] = Counter()
        self.count = 0

    def emit(self, row: RecordRow) -> None:
        self.batch.append(row)
        self.verdicts[row.verdict] += 1
        self.count += 1
        if len(self.batch) >= BATCH_ROWS:
            self.flush()

    def flush(self) -> None:
        if not self.batch:
            return
        columns = {
            name: [getattr(r, name) for r in self.batch]
            for name in ("record_id", "content_hash", "shard", "position", "verdict", "reason", "score", "details")
        }
        n = len(self.batch)
        columns.update(dataset=[self.dataset] * n, check=[self.check.name] * n, version=[self.check.version] * n)
        self.writer.write_table(pa.table({f.name: columns[f.name] for f in ROW_SCHEMA}, schema=ROW_SCHEMA))
        self.batch = []

    def close(self) -> None:
        self.flush()
        self.writer.close()


def concatenate(parts: list[Path], path: Path) -> None:
    """One rows file from the shards' parts, re-batched so its bytes never depend on resumption."""
    with pq.ParquetWriter(path, ROW_SCHEMA, compression="zstd") as writer:
        pending: list[pa.RecordBatch] = []
        held = 0
        for part in parts:
            for batch in pq.ParquetFile(part).iter_batches(batch_size=BATCH_ROWS):
                pending.append(batch)
                held += batch.num_rows
                while held >= BATCH_ROWS:
                    table = pa.Table.from_batches(pending, schema=ROW_SCHEMA)
                    writer.write_table(table.slice(0, BATCH_ROWS))
                    rest = table.slice(BATCH_ROWS)
                    pending, held = rest.to_batches(), rest.num_rows
        if held:
            writer.write_table(pa.Table.from_batches(pending, schema=ROW_SCHEMA))
