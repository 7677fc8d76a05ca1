"""PII check: personal data and secrets per record, as types and offsets only.

Every record's text goes through the fast scanner (`custody.pii.fast`): presidio's recognizers
on a spaCy NER pipeline, plus custody's card-number and secrets recognizers. A record with at
least one detection at or above the score threshold is flagged; its row lists each detection as
{"type", "start", "end", "score"} (character offsets into the record's text). The matched text
is never copied anywhere: not into rows, the summary, findings, the ledger or logs.

Every detection is rated by pii-codex (`custody.pii.risk`): its row detail carries the level
(1 non-identifiable, 2 semi-identifiable, 3 identifiable), and the summary's `risk` gives the
dataset's pii-codex risk score (the mean over records of each record's mean level, 1 for a record
without findings), findings by level and by category, and each entity type's rating. `redaction`
names the dataset that ran the redact-pii stage when these bytes come from its output (directly,
or through later stages whose every input did); a policy counts such findings as redacted.

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
from custody.datasets.registry import DatasetNotFound, DatasetRegistry, RegisteredDataset
from custody.pii import risk
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
REDACT_STAGE = "redact-pii"  # the stage whose output counts as redacted (stages/redact.py)


@dataclass(kw_only=True)
class PiiCheck(Check):
    name = "pii"
    version = "1.1.0"  # 1.1: pii-codex risk ratings in rows and summary
    finish_needs_open = False  # open loads the scanner; config, model_digest and finish never use it
    open_reads = "home"  # nothing of the dataset: the scanner depends on the fields above only
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
            "risk_ratings": risk.source(),
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
        by_level: Counter[str] = Counter()  # findings per pii-codex level ("1", "2", "3")
        records_by_level: Counter[str] = Counter()  # flagged records per highest level
        by_category: Counter[str] = Counter()  # findings per pii-codex category
        unrated: Counter[str] = Counter()  # findings of a type pii-codex does not rate
        records = flagged = empty = characters = 0
        risk_score_sum = 0.0
        items = (
            ((r.id, r.content_hash, r.position, len(r.text or "")), r.text or "") for r in dataset.shard_records(shard)
        )
        for (record_id, content_hash, position, length), spans in scanner.scan_items(items):
            records += 1
            characters += length
            if length == 0:
                empty += 1
            risk_score_sum += risk.record_score([s.entity_type for s in spans])
            if not spans:
                emit(RecordRow(record_id, content_hash, shard.name, position, "pass"))
                continue
            flagged += 1
            types = sorted({s.entity_type for s in spans})
            levels = []
            for s in spans:
                spans_by_type[s.entity_type] += 1
                rating = risk.rate(s.entity_type)
                if rating is None:
                    unrated[s.entity_type] += 1
                    levels.append(None)
                    continue
                levels.append(rating.level)
                by_level[str(rating.level)] += 1
                by_category[rating.category] += 1
            records_by_type.update(types)
            if any(level is not None for level in levels):
                records_by_level[str(max(level for level in levels if level is not None))] += 1
            details = [
                {"type": s.entity_type, "start": s.start, "end": s.end, "score": s.score, "risk": level}
                for s, level in zip(spans, levels, strict=True)
            ]
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
            "risk_score_sum": risk_score_sum,
            "findings_by_level": dict(by_level),
            "records_by_level": dict(records_by_level),
            "findings_by_category": dict(by_category),
            "unrated": dict(unrated),
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
            "risk": self._risk_summary(tallies, records, spans_by_type),
            "redaction": redaction(dataset),
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

    def _risk_summary(self, tallies: list[Tally], records: int, spans_by_type: Counter[str]) -> dict[str, Any]:
        by_level, records_by_level = _summed(tallies, "findings_by_level"), _summed(tallies, "records_by_level")
        score_sum = sum(t.get("risk_score_sum", 0.0) for t in tallies)
        entities = {}
        for entity in sorted(set(self.entities) | set(spans_by_type)):
            rating = risk.rate(entity)
            entities[entity] = rating.as_json() if rating is not None else None
        found = [int(level) for level in by_level]
        return {
            "source": risk.source(),
            "score_mean": round(score_sum / records, 6) if records else None,
            "max_level": max(found, default=None),
            "levels": {str(n): name for n, name in risk.LEVELS.items()},
            "findings_by_level": {str(n): by_level.get(str(n), 0) for n in risk.LEVELS},
            "records_by_level": {str(n): records_by_level.get(str(n), 0) for n in risk.LEVELS},
            "findings_by_category": dict(sorted(_summed(tallies, "findings_by_category").items())),
            "entities": entities,
            "unrated": dict(sorted(_summed(tallies, "unrated").items())),
        }


def _summed(tallies: list[Tally], key: str) -> Counter[str]:
    return sum((Counter(t.get(key, {})) for t in tallies), Counter())


def redaction(dataset: RegisteredDataset) -> dict[str, str] | None:
    """The dataset whose registration ran the redact-pii stage, when these bytes descend from its
    output through stages only (every input of every stage on the way redacted); else None."""
    registry: DatasetRegistry | None = None

    def walk(node: RegisteredDataset, depth: int) -> str | None:
        nonlocal registry
        stage = (node.body.get("stage") or {}).get("name")
        if stage == REDACT_STAGE:
            return str(node.ref)
        if stage is None or not node.parents or depth > 64:
            return None  # registered from files (or a cycle that cannot be): not known to be redacted
        registry = registry or DatasetRegistry(node.home)
        first = None
        for parent in node.parents:
            try:
                registered = registry.get(parent["dataset"])
            except DatasetNotFound:
                return None
            by = walk(registered, depth + 1) if registered.digest == parent["digest"] else None
            if by is None:
                return None  # one input not known to be redacted: neither is the output
            first = first or by
        return first

    by = walk(dataset, 0)
    return {"stage": REDACT_STAGE, "dataset": by} if by else None
