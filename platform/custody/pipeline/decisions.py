"""A stage's per-record decisions as Parquet, and the output record each decision keeps.

Shared by the stage runner and every executor, so a shard's decisions have the same bytes
whichever machine made them.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from custody.datasets.readers import content_hash
from custody.stages.base import Decision

DECISION_SCHEMA = pa.schema(
    [
        ("record_id", pa.string()),
        ("content_hash", pa.string()),
        ("action", pa.string()),
        ("reason", pa.string()),
        ("score", pa.float64()),
        ("details", pa.string()),
        ("new_content_hash", pa.string()),
    ]
)
BATCH = 10_000


class DecisionWriter:
    """The decisions Parquet, batched the same way whoever made the decisions (bytes depend on rows only)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.writer = pq.ParquetWriter(path, DECISION_SCHEMA, compression="zstd")
        self.rows: list[dict] = []
        self.counts: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()

    def add(self, decision: Decision, new_hash: str | None) -> None:
        self.add_row(
            {
                "record_id": decision.record.id,
                "content_hash": decision.record.content_hash,
                "action": decision.action,
                "reason": decision.reason,
                "score": decision.score,
                "details": decision.details,
                "new_content_hash": new_hash,
            }
        )

    def add_row(self, row: dict) -> None:
        self.counts[row["action"]] += 1
        if row["reason"]:
            self.reasons[row["reason"]] += 1
        self.rows.append(row)
        if len(self.rows) >= BATCH:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.writer.write_table(pa.Table.from_pylist(self.rows, schema=DECISION_SCHEMA))
            self.rows = []

    def close(self) -> None:
        self.flush()
        self.writer.close()


def output_row(decision: Decision) -> tuple[dict | None, str | None]:
    """The output record a decision keeps (None for a drop) and its new content hash."""
    if decision.action == "drop":
        return None, None
    text = decision.text if decision.action == "modify" else decision.record.text
    row = {"id": decision.record.id, "text": text}
    if decision.record.license:
        row["license"] = decision.record.license
    if decision.record.source_url:
        row["source_url"] = decision.record.source_url
    return row, content_hash(text)
