"""`quality-filter`: Gopher quality and repetition rules (Rae et al., 2021), and optionally C4's (Raffel et al., 2020).

Rules run in the order FineWeb's pipeline runs them — Gopher repetition, Gopher quality, then C4 —
and the first one that fails drops the record. Its reason is the rule's id, named after the
setting that governs it (`gopher:min_words` is governed by `min_words`), so drops count per rule
in the stage summary; the measured value is the decision's score, and the details hold every
metric measured, the failing rule and its limit (numbers only, never text), so thresholds can be
reviewed against the recorded values without reading documents again.

The C4 rules are off by default: they were written for web pages, and they remove verse,
dialogue, lists and code (every line without terminal punctuation, every page with a `{`).
With `c4 = true` they modify records (offending lines and citation markers removed) and drop
pages that still fail a page rule. See quality_rules.py for the measurements and docs/stages.md.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from custody.datasets.readers import Record
from custody.home import Home
from custody.stages.base import Decision, Stage
from custody.stages.quality_rules import GOPHER_STOP_WORDS, c4_clean, gopher_quality, gopher_repetition

TOP_NGRAM = {"2": 0.20, "3": 0.18, "4": 0.16}  # Gopher Table A1
DUP_NGRAM = {"5": 0.15, "6": 0.14, "7": 0.13, "8": 0.12, "9": 0.11, "10": 0.10}  # Gopher Table A1


class Rule:
    """`metric` must stay below (`max_`) or reach (`min_`) `limit`; the id names the governing option."""

    def __init__(self, rule_id: str, metric: str, limit: float) -> None:
        self.id, self.metric, self.limit = rule_id, metric, limit
        self.fails: Callable[[float, float], bool] = operator.lt if ":min_" in rule_id else operator.gt


def _ngram_table(option: str, table: dict[str, float]) -> dict[int, float]:
    out = {}
    for key, limit in table.items():
        if not key.isdigit() or not 1 <= int(key) <= 20:
            raise ValueError(f"option '{option}': key {key!r} must be an n-gram size from 1 to 20")
        if not 0.0 <= limit <= 1.0:
            raise ValueError(f"option '{option}': limit for {key} must be a fraction from 0 to 1, not {limit}")
        out[int(key)] = limit
    return out


class QualityFilter(Stage):
    name = "quality-filter"
    parallel = True  # per record: shards can run on separate workers
    version = "1.0.0"

    def __init__(
        self,
        home: Home,
        *,
        min_words: int = 50,
        max_words: int = 100_000,
        min_mean_word_length: float = 3.0,
        max_mean_word_length: float = 10.0,
        max_hash_ratio: float = 0.1,
        max_ellipsis_ratio: float = 0.1,
        max_bullet_line_fraction: float = 0.9,
        max_ellipsis_line_fraction: float = 0.3,
        min_alpha_word_fraction: float = 0.8,
        min_stop_words: int = 2,
        stop_words: list[str] | None = None,
        max_dup_line_fraction: float = 0.30,
        max_dup_paragraph_fraction: float = 0.30,
        max_dup_line_char_fraction: float = 0.20,
        max_dup_paragraph_char_fraction: float = 0.20,
        max_top_ngram_char_fraction: dict[str, float] | None = None,
        max_dup_ngram_char_fraction: dict[str, float] | None = None,
        c4: bool = False,
        c4_min_words_per_line: int = 5,
        c4_min_sentences: int = 3,
        c4_drop_curly_bracket: bool = True,
        skip_rules: list[str] | None = None,
    ) -> None:
        super().__init__(home)
        self.stop_words = frozenset(w.lower() for w in (GOPHER_STOP_WORDS if stop_words is None else stop_words))
        self.top_ngrams = _ngram_table("max_top_ngram_char_fraction", max_top_ngram_char_fraction or TOP_NGRAM)
        self.dup_ngrams = _ngram_table("max_dup_ngram_char_fraction", max_dup_ngram_char_fraction or DUP_NGRAM)
        repetition = [
            ("max_dup_line_fraction", "dup_line_fraction", max_dup_line_fraction),
            ("max_dup_paragraph_fraction", "dup_paragraph_fraction", max_dup_paragraph_fraction),
            ("max_dup_line_char_fraction", "dup_line_char_fraction", max_dup_line_char_fraction),
            ("max_dup_paragraph_char_fraction", "dup_paragraph_char_fraction", max_dup_paragraph_char_fraction),
            *((f"max_top_{n}gram_char_fraction", f"top_{n}gram_char_fraction", v) for n, v in self.top_ngrams.items()),
            *((f"max_dup_{n}gram_char_fraction", f"dup_{n}gram_char_fraction", v) for n, v in self.dup_ngrams.items()),
        ]
        quality = [
            ("min_words", "words", min_words),
            ("max_words", "words", max_words),
            ("min_mean_word_length", "mean_word_length", min_mean_word_length),
            ("max_mean_word_length", "mean_word_length", max_mean_word_length),
            ("max_hash_ratio", "hash_ratio", max_hash_ratio),
            ("max_ellipsis_ratio", "ellipsis_ratio", max_ellipsis_ratio),
            ("max_bullet_line_fraction", "bullet_line_fraction", max_bullet_line_fraction),
            ("max_ellipsis_line_fraction", "ellipsis_line_fraction", max_ellipsis_line_fraction),
            ("min_alpha_word_fraction", "alpha_word_fraction", min_alpha_word_fraction),
            ("min_stop_words", "stop_words", min_stop_words),
        ]
        for option, _, limit in (*repetition[:4], *quality):
            if limit < 0:
                raise ValueError(f"option '{option}' must not be negative, not {limit}")
        self.rules = [Rule(f"gopher:{option}", metric, limit) for option, metric, limit in (*repetition, *quality)]
        self.c4 = c4
        self.c4_min_words_per_line, self.c4_min_sentences = c4_min_words_per_line, c4_min_sentences
        self.c4_drop_curly_bracket = c4_drop_curly_bracket
        known = {r.id for r in self.rules} | {"c4:lorem_ipsum", "c4:curly_bracket", "c4:min_sentences"}
        self.skip = frozenset(skip_rules or ())
        unknown = sorted(self.skip - known)
        if unknown:
            raise ValueError(f"option 'skip_rules': unknown rule {unknown[0]!r} (known: {', '.join(sorted(known))})")
        self.rules = [r for r in self.rules if r.id not in self.skip]
        # A skipped C4 page rule is switched off where it is measured.
        self._c4_lorem = "c4:lorem_ipsum" not in self.skip
        self._c4_curly = c4_drop_curly_bracket and "c4:curly_bracket" not in self.skip
        self._c4_sentences = 0 if "c4:min_sentences" in self.skip else c4_min_sentences

    def config(self) -> dict[str, Any]:
        return {
            "rules": [{"id": r.id, "metric": r.metric, "limit": r.limit} for r in self.rules],
            "stop_words": sorted(self.stop_words),
            "c4": self.c4,
            "c4_min_words_per_line": self.c4_min_words_per_line,
            "c4_min_sentences": self.c4_min_sentences,
            "c4_drop_curly_bracket": self.c4_drop_curly_bracket,
            "skip_rules": sorted(self.skip),
            "order": ["gopher-repetition", "gopher-quality", "c4"],
        }

    def process(self, records: Iterable[Record]) -> Iterator[Decision]:
        top_ns, dup_ns = sorted(self.top_ngrams), sorted(self.dup_ngrams)
        for record in records:
            metrics = {
                **gopher_repetition(record.text, top_ns, dup_ns),
                **gopher_quality(record.text, self.stop_words),
            }
            details: dict[str, Any] = {k: round(v, 4) for k, v in metrics.items()}
            failed = next((r for r in self.rules if r.fails(metrics[r.metric], r.limit)), None)
            if failed is not None:
                details.update(rule=failed.id, limit=failed.limit)
                value = metrics[failed.metric]
                yield Decision(record, "drop", failed.id, score=value, details=json.dumps(details))
                continue
            if not self.c4:
                yield Decision(record, "keep", details=json.dumps(details))
                continue
            cleaned = c4_clean(
                record.text, self.c4_min_words_per_line, self._c4_sentences, self._c4_lorem, self._c4_curly
            )
            details["c4_sentences"] = cleaned.sentences
            if cleaned.page_rule:
                details["rule"] = cleaned.page_rule
                score = None
                if cleaned.page_rule == "c4:min_sentences":
                    details["limit"], score = self._c4_sentences, float(cleaned.sentences)
                yield Decision(record, "drop", cleaned.page_rule, score=score, details=json.dumps(details))
            elif cleaned.text != record.text:
                details.update(c4_lines_removed=cleaned.lines_removed, c4_citations_removed=cleaned.citations_removed)
                yield Decision(record, "modify", "c4:lines_removed", text=cleaned.text, details=json.dumps(details))
            else:
                yield Decision(record, "keep", details=json.dumps(details))
