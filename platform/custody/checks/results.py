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
from custody.checks.base import Check, CheckReport, RecordRow, worst
from custody.checks.work import ShardWork
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


def _concatenate(parts: list[Path], path: Path) -> None:
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


def run_check(
    home: Home,
    dataset: RegisteredDataset,
    check: Check,
    actor: str | None = None,
    progress: Callable[[int], None] | None = None,
    on_resume: Callable[[int, int], None] | None = None,
) -> CheckResult:
    """Run one check over a dataset and record it; nothing is recorded if the check fails.

    Each finished shard's rows and tally are kept in the home's work area (`ShardWork`), so a
    run that crashed resumes at its first unfinished shard; `on_resume(done, total)` is told
    how many shards were already done. The recorded result is byte-identical either way.
    """
    check.open(dataset)
    try:
        config = check.config()
        config_digest = home.store.put_bytes(canonical_json(config))
        with ShardWork.claim(home, dataset, check, config_digest) as work:
            shards = dataset.manifest.shards
            done = work.completed()
            if done and on_resume:
                on_resume(len(done), len(shards))
            tallies, verdicts = [], Counter()
            for number, shard in enumerate(shards):
                finished = done.get(number)
                if finished is None:
                    writer = _RowWriter(work.part_path(number, temporary=True), str(dataset.ref), check)
                    try:
                        tally = check.scan_shard(dataset, shard, writer.emit)
                    finally:
                        writer.close()
                    finished = work.finish_shard(number, shard, writer.path, tally, writer.verdicts, writer.count)
                tallies.append(finished.tally)
                verdicts.update(finished.verdicts)
                if progress:
                    progress(shard.bytes)
            report = check.finish(dataset, tallies)
            with tempfile.TemporaryDirectory(prefix="custody-check-") as tmp:
                rows = Path(tmp) / "rows.parquet"
                _concatenate([work.part_path(n) for n in range(len(shards))], rows)
                result_digest = home.store.put_file(rows)
            result = _record(home, dataset, check, report, verdicts, config_digest, result_digest, actor)
            work.remove()
            return result
    finally:
        check.close()


def _record(
    home: Home,
    dataset: RegisteredDataset,
    check: Check,
    report: CheckReport,
    verdicts: Counter[str],
    config_digest: str,
    result_digest: str,
    actor: str | None,
) -> CheckResult:
    records = sum(verdicts.values())
    status = worst([f.severity for f in report.findings] + [v for v in verdicts if verdicts[v]])
    summary = {
        "check": check.name,
        "version": check.version,
        "dataset": str(dataset.ref),
        "dataset_digest": dataset.digest,
        "records": records,
        "verdicts": dict(sorted(verdicts.items())),
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
        "records": records,
        "verdicts": dict(sorted(verdicts.items())),
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
