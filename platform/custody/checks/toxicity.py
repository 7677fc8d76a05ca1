"""Toxicity check: a probability per record and category, flagged at or above a threshold.

The scorer is detoxify when a checkpoint is configured and available, else alt-profanity-check
(see `custody.toxicity.scorers` and docs/toxicity.md); the summary, the config and the ledger
entry's model digest say which one ran. Records stream shard by shard in chunks of at most
CHUNK_RECORDS records and CHUNK_CHARS characters (plus one record), so memory is bounded by the
chunk, not by the dataset; the scorer splits a chunk into model batches of `batch_size`, similar
lengths together (detoxify). Per record: score = the highest
category probability, verdict `flag` when it is >= the threshold, reason = that category,
details = the per-category probabilities as JSON numbers. No record text is ever written.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import asdict, dataclass, field
from typing import Any

from custody.checks.base import Check, CheckReport, Emit, Finding, RecordRow, Tally
from custody.datasets.manifest import ShardInfo
from custody.datasets.registry import RegisteredDataset
from custody.toxicity.scorers import Scorer, Selection, ToxicitySettings, clean_score, select_scorer

HISTOGRAM_BINS = 10
FINE_BINS = 1000  # quantiles come from this histogram: bounded memory, 0.001 resolution
QUANTILES = (0.5, 0.9, 0.95, 0.99)
NON_TEXT_SAMPLE = 4096
CHUNK_RECORDS = 1024  # records handed to the scorer at once (it batches them for the model)
CHUNK_CHARS = 8 << 20
_TEXT_CONTROLS = {"\t", "\n", "\r"}


def mostly_non_text(text: str) -> bool:
    """More than half of the first characters are controls, unassigned, private-use or U+FFFD."""
    sample = text[:NON_TEXT_SAMPLE]
    if not sample:
        return False
    odd = sum(
        1
        for ch in sample
        if ch == "\ufffd" or (unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cn") and ch not in _TEXT_CONTROLS)
    )
    return odd * 2 > len(sample)


@dataclass
class _Stats:
    threshold: float
    categories: tuple[str, ...]
    records: int = 0
    scored: int = 0
    empty: int = 0
    unscored: int = 0
    non_text: int = 0
    above: int = 0
    total: float = 0.0
    maximum: float = 0.0
    coarse: list[int] = field(default_factory=lambda: [0] * HISTOGRAM_BINS)
    fine: list[int] = field(default_factory=lambda: [0] * FINE_BINS)
    category_above: dict[str, int] = field(default_factory=dict)
    category_total: dict[str, float] = field(default_factory=dict)

    def add(self, score: float, scores: dict[str, float]) -> None:
        self.scored += 1
        self.total += score
        self.maximum = max(self.maximum, score)
        self.coarse[min(int(score * HISTOGRAM_BINS), HISTOGRAM_BINS - 1)] += 1
        self.fine[min(int(score * FINE_BINS), FINE_BINS - 1)] += 1
        if score >= self.threshold:
            self.above += 1
        for name, value in scores.items():
            self.category_total[name] = self.category_total.get(name, 0.0) + value
            if value >= self.threshold:
                self.category_above[name] = self.category_above.get(name, 0) + 1

    def tally(self) -> dict[str, Any]:
        """This shard's counts, JSON-ready (threshold and categories are the check's, not the shard's)."""
        return {k: v for k, v in asdict(self).items() if k not in ("threshold", "categories")}

    def merge(self, tally: dict[str, Any]) -> None:
        for name in ("records", "scored", "empty", "unscored", "non_text", "above", "total"):
            setattr(self, name, getattr(self, name) + tally[name])
        self.maximum = max(self.maximum, tally["maximum"])
        self.coarse = [a + b for a, b in zip(self.coarse, tally["coarse"], strict=True)]
        self.fine = [a + b for a, b in zip(self.fine, tally["fine"], strict=True)]
        for name, count in tally["category_above"].items():
            self.category_above[name] = self.category_above.get(name, 0) + count
        for name, total in tally["category_total"].items():
            self.category_total[name] = self.category_total.get(name, 0.0) + total

    def quantile(self, q: float) -> float:
        """Upper edge of the fine bin holding the q-quantile of the scored records' scores."""
        rank, seen = q * self.scored, 0
        for i, count in enumerate(self.fine):
            seen += count
            if count and seen >= rank:
                return round(min((i + 1) / FINE_BINS, self.maximum), 4)
        return round(self.maximum, 4)

    def summary(self) -> dict[str, Any]:
        counted = self.scored + self.empty  # empty records are scored 0
        quantiles: dict[str, float | None] = {f"p{round(q * 100)}": None for q in QUANTILES}
        if self.scored:
            quantiles = {f"p{round(q * 100)}": self.quantile(q) for q in QUANTILES}
        return {
            "threshold": self.threshold,
            "scored": self.scored,
            "empty": self.empty,
            "unscored": self.unscored,
            "mostly_non_text": self.non_text,
            "above_threshold": self.above,
            "rate_above_threshold": round(self.above / self.records, 6) if self.records else 0.0,
            "by_category": {
                name: {
                    "above_threshold": self.category_above.get(name, 0),
                    "rate_above_threshold": round(self.category_above.get(name, 0) / self.records, 6)
                    if self.records
                    else 0.0,
                    "mean": round(self.category_total.get(name, 0.0) / counted, 6) if counted else None,
                }
                for name in self.categories
            },
            "score_histogram": {
                "edges": [round(i / HISTOGRAM_BINS, 2) for i in range(HISTOGRAM_BINS + 1)],
                "counts": self.coarse,
                "of": "max category score of each non-empty record",
            },
            "score_quantiles": {
                **quantiles,
                "max": round(self.maximum, 6) if self.scored else None,
                "mean": round(self.total / self.scored, 6) if self.scored else None,
                "resolution": 1 / FINE_BINS,
            },
        }


@dataclass(kw_only=True)
class ToxicityCheck(Check):
    """Scores every record; `settings` default to HOME/toxicity.toml and CUSTODY_* variables.

    A `scorer` given here is used as is (tests, benchmarks); otherwise one is chosen by
    `select_scorer` on first use, with the dataset's home for the released-checkpoint cache.
    """

    name = "toxicity"
    version = "1.0.0"
    open_reads = "home"  # HOME/toxicity.toml and the home's model cache
    settings: ToxicitySettings | None = None
    # Collaborators, not settings: positional, so the registry does not list them as options.
    scorer: Scorer | None = field(default=None, kw_only=False)
    selection: Selection | None = field(default=None, repr=False, kw_only=False)

    def _select(self, home: Any | None = None) -> Selection:
        if self.selection is None:
            settings = self.settings or ToxicitySettings.load(home)
            self.settings = settings
            if self.scorer is not None:
                self.selection = Selection(self.scorer, f"{self.scorer.name} (given)", settings=settings)
            else:
                self.selection = select_scorer(settings, home)
                self.scorer = self.selection.scorer
        return self.selection

    def config(self) -> dict[str, Any]:
        selection = self._select()
        settings = selection.settings
        scorer = selection.scorer
        config = {
            "scorer": scorer.name,
            "threshold": settings.threshold,
            "batch_size": settings.batch_size,
            "categories": list(scorer.categories),
            "scorer_details": scorer.describe(),
        }
        if scorer.name == "detoxify":
            config["checkpoint_sha256"] = scorer.digest
        return config

    def model_digest(self) -> str | None:
        return self._select().scorer.digest

    def open(self, dataset: RegisteredDataset) -> None:
        self._select(dataset.home)  # HOME/toxicity.toml and the home's model cache

    def scan_shard(self, dataset: RegisteredDataset, shard: ShardInfo, emit: Emit) -> Tally:
        selection = self._select(dataset.home)
        scorer, settings = selection.scorer, selection.settings
        stats = _Stats(settings.threshold, tuple(scorer.categories))
        batch: list[tuple[int, str, str, str]] = []  # position, id, content hash, text
        chars = 0

        def flush() -> None:
            nonlocal chars
            texts = [text for *_, text in batch]
            todo = [i for i, text in enumerate(texts) if text and not text.isspace()]
            scored = scorer.score_batch([texts[i] for i in todo]) if todo else []
            by_index = dict(zip(todo, scored, strict=True))
            for i, (position, record_id, content_hash, text) in enumerate(batch):
                stats.records += 1
                if mostly_non_text(text):
                    stats.non_text += 1
                if i not in by_index:
                    stats.empty += 1
                    zeros = {name: 0.0 for name in scorer.categories}
                    row = RecordRow(
                        record_id, content_hash, shard.name, position, "pass", "empty", 0.0, json.dumps(zeros)
                    )
                    emit(row)
                    continue
                raw = by_index[i]
                cleaned = {name: clean_score(raw.get(name)) for name in scorer.categories}
                if any(value is None for value in cleaned.values()):
                    stats.unscored += 1
                    emit(RecordRow(record_id, content_hash, shard.name, position, "flag", "unscored", None, None))
                    continue
                scores = {name: round(value, 6) for name, value in cleaned.items()}
                top = max(scores, key=scores.__getitem__)
                score = scores[top]
                stats.add(score, scores)
                verdict = "flag" if score >= settings.threshold else "pass"
                emit(RecordRow(record_id, content_hash, shard.name, position, verdict, top, score, json.dumps(scores)))
            batch.clear()
            chars = 0

        for record in dataset.shard_records(shard):  # re-hashed against the manifest first
            batch.append((record.position, record.id, record.content_hash, record.text))
            chars += len(record.text)
            if len(batch) >= max(CHUNK_RECORDS, settings.batch_size) or chars >= CHUNK_CHARS:
                flush()
        flush()
        return stats.tally()

    def finish(self, dataset: RegisteredDataset, tallies: list[Tally]) -> CheckReport:
        selection = self._select(dataset.home)
        scorer, settings = selection.scorer, selection.settings
        stats = _Stats(settings.threshold, tuple(scorer.categories))
        for tally in tallies:
            stats.merge(tally)
        summary = {
            "scorer": {
                "name": scorer.name,
                "digest": scorer.digest,
                "categories": list(scorer.categories),
                "fallback": selection.fallback,
                "note": selection.note,
            },
            "batch_size": settings.batch_size,
            **stats.summary(),
        }
        findings: list[Finding] = []
        if stats.above:
            findings.append(
                Finding(
                    "toxicity.above_threshold",
                    "flag",
                    f"{stats.above} of {stats.records} records ({stats.above / stats.records:.2%}) score "
                    f">= {settings.threshold} by {scorer.name}",
                )
            )
        if stats.unscored:
            findings.append(
                Finding("toxicity.unscored", "flag", f"{stats.unscored} records got no valid score from {scorer.name}")
            )
        return CheckReport(summary, findings)
