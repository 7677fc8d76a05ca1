"""Running stages: derived datasets with lineage, per-record decisions and a stage entry each."""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from custody.datasets.names import DatasetRef
from custody.datasets.registry import DatasetRegistry, RegisteredDataset, write_records_shard
from custody.home import Home
from custody.ledger.entry import canonical_json
from custody.stages import entry_types  # noqa: F401  registers stage.completed/v1
from custody.stages.base import Decision, Stage

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


class _DecisionWriter:
    def __init__(self, path: Path) -> None:
        self.writer = pq.ParquetWriter(path, DECISION_SCHEMA, compression="zstd")
        self.rows: list[dict] = []
        self.counts: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()

    def add(self, decision: Decision, new_hash: str | None) -> None:
        self.counts[decision.action] += 1
        if decision.reason:
            self.reasons[decision.reason] += 1
        self.rows.append(
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
        if len(self.rows) >= BATCH:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.writer.write_table(pa.Table.from_pylist(self.rows, schema=DECISION_SCHEMA))
            self.rows = []

    def close(self) -> None:
        self.flush()
        self.writer.close()


def run_stage(
    home: Home,
    stage: Stage,
    source: RegisteredDataset,
    output: DatasetRef,
    actor: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> StageResult:
    """Apply one stage to `source` and register the result as `output` with lineage."""
    from custody.datasets.readers import content_hash

    registry = DatasetRegistry(home)
    if registry.find(output) is not None:
        raise StageError(f"{output} is already registered; choose another --as name or version")
    with tempfile.TemporaryDirectory(prefix="custody-stage-") as tmp:
        decisions = _DecisionWriter(Path(tmp) / "decisions.parquet")

        def outputs() -> Iterator[dict]:
            records = (record for _, record in source.records())
            for count, decision in enumerate(stage.process(records), start=1):
                new_hash = None
                if decision.action != "drop":
                    text = decision.text if decision.action == "modify" else decision.record.text
                    new_hash = content_hash(text)
                    row = {"id": decision.record.id, "text": text}
                    if decision.record.license:
                        row["license"] = decision.record.license
                    if decision.record.source_url:
                        row["source_url"] = decision.record.source_url
                    yield row
                decisions.add(decision, new_hash)
                if progress and count % 256 == 0:
                    progress(256)

        try:
            shard = write_records_shard(outputs(), Path(tmp) / "part-00000.jsonl.zst")
        finally:
            decisions.close()
        if decisions.counts.get("drop", 0) == sum(decisions.counts.values()):
            raise StageError(f"stage {stage.name} dropped every record of {source.ref}; nothing to register")
        decisions_digest = home.store.put_file(Path(tmp) / "decisions.parquet")
        config = {"stage": stage.name, "version": stage.version, **stage.config()}
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
