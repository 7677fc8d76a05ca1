"""Presidio's stock way, for comparison: `AnalyzerEngine.analyze` once per document.

The engine is presidio's default configuration (conf/default.yaml: every predefined English
recognizer, all entities, no score threshold) with only the spaCy model name replaced, so the
benchmark compares like with like.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from custody.pii.engine import PiiSpan, build_analyzer, select_model, to_spans


class StockScanner:
    def __init__(self, model: str | None = None) -> None:
        self.model = select_model(model)
        self.analyzer = build_analyzer(self.model, entities=None, stock=True)

    def scan_one(self, text: str) -> list[PiiSpan]:
        return to_spans(self.analyzer.analyze(text=text, language="en"))

    def scan(self, texts: Iterable[str]) -> Iterator[list[PiiSpan]]:
        for text in texts:
            yield self.scan_one(text)
