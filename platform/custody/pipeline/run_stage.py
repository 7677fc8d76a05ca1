"""Running stages: derived datasets with lineage, per-record decisions and a stage entry each."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from custody.datasets.names import DatasetRef
from custody.datasets.registry import DatasetRegistry, RegisteredDataset, write_records_shard
from custody.home import Home
from custody.ledger.entry import canonical_json
from custody.stages import entry_types  # noqa: F401  registers stage.completed/v1
from custody.stages.base import Decision, Stage

if TYPE_CHECKING:
    from custody.executors.base import Executor, StageJob

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


class StageError(ValueError):
    """Unknown stage, bad stage configuration, or an output name already taken."""


@dataclass(frozen=True)
class StageResult:
    stage: str
    output: RegisteredDataset
    entry_index: int
    counts: dict[str, int]
    summary: dict


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
    from custody.datasets.readers import content_hash

    if decision.action == "drop":
        return None, None
    text = decision.text if decision.action == "modify" else decision.record.text
    row = {"id": decision.record.id, "text": text}
    if decision.record.license:
        row["license"] = decision.record.license
    if decision.record.source_url:
        row["source_url"] = decision.record.source_url
    return row, content_hash(text)


def _in_driver(
    stage: Stage, source: RegisteredDataset, decisions: DecisionWriter, progress: Callable[[int], None] | None
) -> Iterator[dict]:
    records = (record for _, record in source.records())
    for count, decision in enumerate(stage.process(records), start=1):
        row, new_hash = output_row(decision)
        if row is not None:
            yield row
        decisions.add(decision, new_hash)
        stage.observe(decision.action, decision.reason)
        if progress and count % 256 == 0:
            progress(256)


def _on_workers(job: StageJob, executor: Executor, stage: Stage, decisions: DecisionWriter) -> Iterator[dict]:
    """Shard parts from the workers, taken in shard order: the same rows, in the same order, as in the driver."""
    for part in executor.stage_parts(job):
        with open(part.records, "rb") as lines:
            for line in lines:
                yield json.loads(line)
        for row in pq.read_table(part.decisions).to_pylist():
            decisions.add_row(row)
            stage.observe(row["action"], row["reason"])


def run_stage(
    home: Home,
    stage: Stage,
    source: RegisteredDataset,
    output: DatasetRef,
    actor: str | None = None,
    progress: Callable[[int], None] | None = None,
    executor: Executor | None = None,
    options: dict[str, Any] | None = None,
) -> StageResult:
    """Apply one stage to `source` and register the result as `output` with lineage.

    With a distributed `executor` (Ray) and a per-record stage (`Stage.parallel`), the source's
    shards are processed on workers, each building the stage from its name and `options`; the
    output is the same bytes as in the driver. Other stages always run here.
    """
    registry = DatasetRegistry(home)
    if registry.find(output) is not None:
        raise StageError(f"{output} is already registered; choose another --output name or version")
    config = {"stage": stage.name, "version": stage.version, **stage.config()}
    with tempfile.TemporaryDirectory(prefix="custody-stage-") as tmp:
        decisions = DecisionWriter(Path(tmp) / "decisions.parquet")
        scratch = None
        if executor is not None and executor.distributed and stage.parallel:
            # Workers write their parts where every node sees them: the home's work area.
            scratch = home.path / "work" / "stages" / uuid.uuid4().hex
            scratch.mkdir(parents=True)
            from custody.executors.base import StageJob

            digest = hashlib.sha256(canonical_json(config)).hexdigest()
            job = StageJob(home, source, stage.name, dict(options or {}), digest, scratch)
            outputs = _on_workers(job, executor, stage, decisions)
        else:
            outputs = _in_driver(stage, source, decisions, progress)
        try:
            shard = write_records_shard(outputs, Path(tmp) / "part-00000.jsonl.zst")
        finally:
            decisions.close()
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
        if decisions.counts.get("drop", 0) == sum(decisions.counts.values()):
            raise StageError(f"stage {stage.name} dropped every record of {source.ref}; nothing to register")
        decisions_digest = home.store.put_file(Path(tmp) / "decisions.parquet")
        derived, _ = registry.register_derived(
            output, [source], stage.name, config, shard, decisions_digest=decisions_digest, actor=actor
        )
    summary = {
        "stage": stage.name,
        "version": stage.version,
        "input": str(source.ref),
        "output": str(output),
        "counts": {a: decisions.counts.get(a, 0) for a in ("keep", "modify", "drop")},
        "reasons": dict(decisions.reasons.most_common()),
        **stage.summarize(derived),
    }
    summary_digest = home.store.put_bytes(canonical_json(summary))
    body = {
        "stage": stage.name,
        "version": stage.version,
        "input": str(source.ref),
        "input_digest": source.digest,
        "output": str(output),
        "output_digest": derived.digest,
        "config_digest": derived.body["stage"]["config_digest"],
        "decisions_digest": decisions_digest,
        "summary_digest": summary_digest,
        "kept": summary["counts"]["keep"],
        "modified": summary["counts"]["modify"],
        "dropped": summary["counts"]["drop"],
    }
    refs = [f"sha256:{d}" for d in (source.digest, derived.digest, decisions_digest, summary_digest)]
    index = home.record("stage.completed/v1", output.subject, body, refs=refs, actor=actor)
    home.checkpoint()
    return StageResult(stage.name, derived, index, summary["counts"], summary)
