"""Entity-level scoring of PII spans against the shared gold sets (used by both benchmarks and the tests).

Type mapping, gold -> ours:

pii_presidio_synth (17 gold types)
    PERSON -> PERSON; GPE -> LOCATION; STREET_ADDRESS -> LOCATION; EMAIL_ADDRESS, PHONE_NUMBER,
    CREDIT_CARD, US_SSN, IBAN_CODE, IP_ADDRESS -> the same name.
    Not scored (we do not detect them): ORGANIZATION, DATE_TIME, TITLE, AGE, NRP, ZIP_CODE,
    DOMAIN_NAME, US_DRIVER_LICENSE. Their gold spans are dropped.
pii_wnut17_emerging_entities (6 gold types)
    person -> PERSON; location -> LOCATION. Not scored: group, corporation, product, creative-work.

Predictions are scored only for the types that have gold after mapping (the *scored types*);
predictions of any other type (DATE_TIME, URL, API_KEY, ...) are ignored and counted apart.

Matching rule (overlap, the headline): a prediction is correct when its character range
overlaps a gold span of the same type (half-open ranges [start, end) sharing at least one
character); a gold span is found when some prediction of its type overlaps it.
precision = correct predictions / predictions, recall = found gold spans / gold spans,
F1 = 2PR / (P + R). Micro-averaged: counts are summed over documents (and over types for
"overall"). Exact rule, reported beside it: a prediction is correct only when its
(type, start, end) equals a gold span's.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SYNTH_MAPPING = {
    "PERSON": "PERSON",
    "GPE": "LOCATION",
    "STREET_ADDRESS": "LOCATION",
    "EMAIL_ADDRESS": "EMAIL_ADDRESS",
    "PHONE_NUMBER": "PHONE_NUMBER",
    "CREDIT_CARD": "CREDIT_CARD",
    "US_SSN": "US_SSN",
    "IBAN_CODE": "IBAN_CODE",
    "IP_ADDRESS": "IP_ADDRESS",
}
SYNTH_EXCLUDED = (
    "ORGANIZATION",
    "DATE_TIME",
    "TITLE",
    "AGE",
    "NRP",
    "ZIP_CODE",
    "DOMAIN_NAME",
    "US_DRIVER_LICENSE",
)
WNUT_MAPPING = {"person": "PERSON", "location": "LOCATION"}
WNUT_EXCLUDED = ("group", "corporation", "product", "creative-work")

MATCHING_RULE = (
    "overlap: a prediction is correct if its [start, end) overlaps a gold span of the same type; "
    "a gold span is found if a same-type prediction overlaps it; micro P/R/F1 over documents. "
    "exact: (type, start, end) equal."
)

Span = tuple[str, int, int]  # (type, start, end)


@dataclass
class GoldSet:
    name: str
    texts: list[str]
    gold: list[list[Span]]  # mapped types only
    scored_types: tuple[str, ...]
    excluded: Counter = field(default_factory=Counter)  # gold spans dropped, by original type
    mapping: dict[str, str] = field(default_factory=dict)


def load_gold(path: Path, mapping: dict[str, str], limit: int | None = None, name: str | None = None) -> GoldSet:
    """Read a shared PII JSONL file (text + spans) and map its gold types; `limit` takes the first N rows."""
    texts: list[str] = []
    gold: list[list[Span]] = []
    excluded: Counter = Counter()
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if limit is not None and len(texts) >= limit:
                break
            row = json.loads(line)
            texts.append(row["text"])
            spans = []
            for span in row["spans"]:
                ours = mapping.get(span["entity_type"])
                if ours is None:
                    excluded[span["entity_type"]] += 1
                else:
                    spans.append((ours, int(span["start"]), int(span["end"])))
            gold.append(spans)
    scored = tuple(sorted(set(mapping.values())))
    return GoldSet(name or Path(path).parent.name, texts, gold, scored, excluded, dict(mapping))


def load_synth(shared: Path, limit: int | None = None) -> GoldSet:
    return load_gold(shared / "pii_presidio_synth" / "data.jsonl", SYNTH_MAPPING, limit, "pii_presidio_synth")


def load_wnut(shared: Path, limit: int | None = None) -> GoldSet:
    return load_gold(
        shared / "pii_wnut17_emerging_entities" / "data.jsonl", WNUT_MAPPING, limit, "pii_wnut17_emerging_entities"
    )


@dataclass
class Tally:
    predicted: int = 0
    correct: int = 0  # predictions overlapping a same-type gold span
    gold: int = 0
    found: int = 0  # gold spans overlapped by a same-type prediction
    exact: int = 0  # predictions equal to a gold span

    def add(self, other: Tally) -> None:
        self.predicted += other.predicted
        self.correct += other.correct
        self.gold += other.gold
        self.found += other.found
        self.exact += other.exact

    def as_dict(self) -> dict:
        p = self.correct / self.predicted if self.predicted else 0.0
        r = self.found / self.gold if self.gold else 0.0
        ep = self.exact / self.predicted if self.predicted else 0.0
        er = self.exact / self.gold if self.gold else 0.0
        return {
            "gold": self.gold,
            "predicted": self.predicted,
            "precision": round(p, 4),
            "recall": round(r, 4),
            "f1": round(_f1(p, r), 4),
            "exact_precision": round(ep, 4),
            "exact_recall": round(er, 4),
            "exact_f1": round(_f1(ep, er), 4),
        }


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def _overlaps(a: Span, b: Span) -> bool:
    return a[1] < b[2] and b[1] < a[2]


def score(gold_set: GoldSet, predictions: Sequence[Iterable[Sequence]]) -> dict:
    """Score predictions (per document: spans as (type, start, end[, score]) ) against `gold_set`."""
    if len(predictions) != len(gold_set.gold):
        raise ValueError(f"{len(predictions)} predictions for {len(gold_set.gold)} documents")
    scored = set(gold_set.scored_types)
    per_type = {t: Tally() for t in gold_set.scored_types}
    ignored: Counter = Counter()
    for gold, predicted in zip(gold_set.gold, predictions, strict=True):
        preds: list[Span] = []
        for p in predicted:
            if p[0] in scored:
                preds.append((p[0], int(p[1]), int(p[2])))
            else:
                ignored[p[0]] += 1
        gold_exact = set(gold)
        for g in gold:
            tally = per_type[g[0]]
            tally.gold += 1
            if any(p[0] == g[0] and _overlaps(p, g) for p in preds):
                tally.found += 1
        for p in preds:
            tally = per_type[p[0]]
            tally.predicted += 1
            if any(g[0] == p[0] and _overlaps(p, g) for g in gold):
                tally.correct += 1
            if p in gold_exact:
                tally.exact += 1
    overall = Tally()
    for tally in per_type.values():
        overall.add(tally)
    return {
        "dataset": gold_set.name,
        "documents": len(gold_set.gold),
        "matching_rule": MATCHING_RULE,
        "overall": overall.as_dict(),
        "per_type": {t: per_type[t].as_dict() for t in gold_set.scored_types},
        "type_mapping": gold_set.mapping,
        "excluded_gold_spans": dict(sorted(gold_set.excluded.items())),
        "ignored_predictions": dict(sorted(ignored.items())),
    }
