"""PII check: personal data and secrets per record, as types and offsets only.

Every record's text goes through the fast scanner (`custody.pii.fast`): presidio's recognizers
on a spaCy NER pipeline, plus custody's card-number and secrets recognizers. A record with at
least one detection at or above the score threshold is flagged; its row lists each detection as
{"type", "start", "end", "score"} (character offsets into the record's text). The matched text
is never copied anywhere: not into rows, the summary, findings, the ledger or logs.

Records stream shard by shard in chunks over a pool of processes (every core by default);
memory stays bounded by the chunks in flight, whatever the dataset's size. Empty records pass;
very long records are scanned in overlapping windows; non-English text and binary junk are
scanned like anything else (they rarely match).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from custody.checks.base import Check, CheckReport, Emit, Finding, RecordRow, Tally
from custody.datasets.manifest import ShardInfo
from custody.datasets.registry import RegisteredDataset
from custody.pii.engine import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CHUNK_SIZE,
    DEFAULT_ENTITIES,
    DEFAULT_OVERLAP,
    DEFAULT_SCORE_THRESHOLD,
    DEFAULT_SENTENCES,
    DEFAULT_WINDOW,
    SECRET_ENTITIES,
    model_digest,
    select_model,
)

SCANNER = "custody.pii.fast/1"


@dataclass(kw_only=True)
class PiiCheck(Check):
    name = "pii"
    version = "1.0.0"
    entities: tuple[str, ...] = DEFAULT_ENTITIES
    score_threshold: float = DEFAULT_SCORE_THRESHOLD
    model: str | None = None  # None: $CUSTODY_SPACY_MODEL, else the preferred installed model
    batch_size: int = DEFAULT_BATCH_SIZE  # nlp.pipe batch size
    processes: int | None = None  # None: every core
    chunk_size: int = DEFAULT_CHUNK_SIZE  # records per unit of work sent to a worker
    sentences: str = DEFAULT_SENTENCES  # sentence boundaries for NER: parser | senter | none
    window: int = DEFAULT_WINDOW  # characters per NER window for long records
    overlap: int = DEFAULT_OVERLAP
    _resolved: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    def _config(self):
        from custody.pii.fast import ScannerConfig

        return ScannerConfig(
            model=self.resolved_model(),
            entities=tuple(self.entities),
            score_threshold=self.score_threshold,
            batch_size=self.batch_size,
            sentences=self.sentences,
            window=self.window,
            overlap=self.overlap,
        )

    def resolved_model(self) -> str:
        if "model" not in self._resolved:
            self._resolved["model"] = select_model(self.model)
        return self._resolved["model"]

    def resolved_processes(self) -> int:
        from custody.pii.fast import default_processes

        return self.processes if self.processes is not None else default_processes()

    def config(self) -> dict[str, Any]:
        # The process count is left out: results are identical for any count (tested), and the
        # config digest must not differ between machines.
        return {
            "scanner": SCANNER,
            "model": self.resolved_model(),
            "entities": sorted(self.entities),
            "score_threshold": self.score_threshold,
            "batch_size": self.batch_size,
            "chunk_size": self.chunk_size,
            "sentences": self.sentences,
            "window": self.window,
            "overlap": self.overlap,
        }

    def model_digest(self) -> str | None:
        return model_digest(self.resolved_model())

    def open(self, dataset: RegisteredDataset) -> None:
        from custody.pii.fast import ParallelScanner

        self._resolved["scanner"] = ParallelScanner(
            self._config(), processes=self.resolved_processes(), chunk_size=self.chunk_size
        )

    def close(self) -> None:
        scanner = self._resolved.pop("scanner", None)
        if scanner is not None:
            scanner.close()

    def scan_shard(self, dataset: RegisteredDataset, shard: ShardInfo, emit: Emit) -> Tally:
        scanner = self._resolved["scanner"]
        spans_by_type: Counter[str] = Counter()
        records_by_type: Counter[str] = Counter()
        records = flagged = empty = characters = 0
        items = (
            ((r.id, r.content_hash, r.position, len(r.text or "")), r.text or "") for r in dataset.shard_records(shard)
        )
        for (record_id, content_hash, position, length), spans in scanner.scan_items(items):
            records += 1
            characters += length
            if length == 0:
                empty += 1
            if not spans:
                emit(RecordRow(record_id, content_hash, shard.name, position, "pass"))
                continue
            flagged += 1
            types = sorted({s.entity_type for s in spans})
            for s in spans:
                spans_by_type[s.entity_type] += 1
            records_by_type.update(types)
            details = [{"type": s.entity_type, "start": s.start, "end": s.end, "score": s.score} for s in spans]
            emit(
                RecordRow(
                    record_id,
                    content_hash,
                    shard.name,
                    position,
                    "flag",
                    "pii: " + ", ".join(types),
                    score=max(s.score for s in spans),
                    details=json.dumps(details, separators=(",", ":")),
                )
            )
        return {
            "records": records,
            "flagged": flagged,
            "empty": empty,
            "characters": characters,
            "spans_by_type": dict(spans_by_type),
            "records_by_type": dict(records_by_type),
        }

    def finish(self, dataset: RegisteredDataset, tallies: list[Tally]) -> CheckReport:
        records = sum(t["records"] for t in tallies)
        flagged = sum(t["flagged"] for t in tallies)
        empty = sum(t["empty"] for t in tallies)
        characters = sum(t["characters"] for t in tallies)
        spans_by_type: Counter[str] = sum((Counter(t["spans_by_type"]) for t in tallies), Counter())
        records_by_type: Counter[str] = sum((Counter(t["records_by_type"]) for t in tallies), Counter())

        def rate(n: int) -> float:
            return round(n / records, 6) if records else 0.0

        summary = {
            "model": self.resolved_model(),
            "entities": sorted(self.entities),
            "score_threshold": self.score_threshold,
            "records_scanned": records,
            "records_empty": empty,
            "characters": characters,
            "records_with_pii": flagged,
            "rate": rate(flagged),
            "entity_counts": dict(sorted(spans_by_type.items())),
            "records_by_entity": dict(sorted(records_by_type.items())),
            "record_rate_by_entity": {t: rate(n) for t, n in sorted(records_by_type.items())},
        }
        findings = []
        if flagged:
            listed = ", ".join(f"{t} {n}" for t, n in sorted(records_by_type.items()))
            findings.append(
                Finding(
                    "pii.present",
                    "flag",
                    f"{flagged} of {records} records ({rate(flagged):.2%}) contain PII (records by type: {listed})",
                )
            )
        secrets = {t: n for t, n in records_by_type.items() if t in SECRET_ENTITIES}
        if secrets:
            listed = ", ".join(f"{t} {n}" for t, n in sorted(secrets.items()))
            findings.append(
                Finding("pii.secrets", "flag", f"credentials or keys found in records (records by type: {listed})")
            )
        return CheckReport(summary, findings)
