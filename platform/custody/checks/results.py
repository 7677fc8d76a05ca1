"""Running a check: rows to Parquet, summary to JSON, both to the store, one ledger entry."""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from custody.checks import entry_types  # noqa: F401  registers check.completed/v1
from custody.checks.base import Check, RecordRow, worst
from custody.datasets.registry import RegisteredDataset
from custody.home import Home
from custody.ledger.entry import canonical_json

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
COMPLETED = "check.completed/"


@dataclass(frozen=True)
class CheckResult:
    check: str
    version: str
    dataset: str
    dataset_digest: str
    entry_index: int
    result_digest: str
    summary_digest: str
    config_digest: str
    status: str
    records: int
    body: dict

    def summary(self, home: Home) -> dict:
        return json.loads(home.store.read_bytes(self.summary_digest))


class _RowWriter:
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


def run_check(
    home: Home,
    dataset: RegisteredDataset,
    check: Check,
    actor: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> CheckResult:
    """Run one check over a dataset and record it; nothing is recorded if the check fails."""
    with tempfile.TemporaryDirectory(prefix="custody-check-") as tmp:
        writer = _RowWriter(Path(tmp) / "rows.parquet", str(dataset.ref), check)
        try:
            report = check.run(dataset, writer.emit, progress)
        finally:
            writer.close()
        result_digest = home.store.put_file(writer.path)
    config = check.config()
    config_digest = home.store.put_bytes(canonical_json(config))
    status = worst([f.severity for f in report.findings] + [v for v in writer.verdicts if writer.verdicts[v]])
    summary = {
        "check": check.name,
        "version": check.version,
        "dataset": str(dataset.ref),
        "dataset_digest": dataset.digest,
        "records": writer.count,
        "verdicts": dict(sorted(writer.verdicts.items())),
        "status": status,
        "findings": [asdict(f) for f in report.findings],
        **report.summary,
    }
    summary_digest = home.store.put_bytes(canonical_json(summary))
    body = {
        "check": check.name,
        "version": check.version,
        "dataset": str(dataset.ref),
        "dataset_digest": dataset.digest,
        "config_digest": config_digest,
        "model_digest": check.model_digest(),
        "result_digest": result_digest,
        "summary_digest": summary_digest,
        "records": writer.count,
        "verdicts": dict(sorted(writer.verdicts.items())),
        "status": status,
        "findings": [{"id": f.id, "severity": f.severity} for f in report.findings],
    }
    refs = [f"sha256:{d}" for d in (dataset.digest, config_digest, result_digest, summary_digest)]
    index = home.record("check.completed/v1", dataset.ref.subject, body, refs=refs, actor=actor)
    home.checkpoint()
    return _result(index, body)


def _result(index: int, body: dict) -> CheckResult:
    return CheckResult(
        body["check"],
        body["version"],
        body["dataset"],
        body["dataset_digest"],
        index,
        body["result_digest"],
        body["summary_digest"],
        body["config_digest"],
        body["status"],
        body["records"],
        body,
    )


def latest_results(home: Home, dataset: RegisteredDataset) -> dict[str, CheckResult]:
    """The most recent recorded result of each check for this dataset."""
    latest: dict[str, CheckResult] = {}
    start = 0
    while True:
        rows = home.storage.entries(start, 1000, type_prefix=COMPLETED, subject=dataset.ref.subject)
        for row in rows:
            body = json.loads(row.entry)["body"]
            latest[body["check"]] = _result(row.idx, body)
        if len(rows) < 1000:
            return latest
        start = rows[-1].idx + 1
