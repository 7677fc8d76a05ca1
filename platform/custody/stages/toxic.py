"""`drop-toxic`: drop records the toxicity scorer puts at or above the threshold.

Every dropped record leaves an exclusion row (id, content hash, score, top category) in the
stage's decisions, as datatrove's exclusion writer does; its text is not kept anywhere.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any

from custody.datasets.readers import Record
from custody.datasets.registry import RegisteredDataset
from custody.home import Home
from custody.stages.base import Decision, Stage

CHUNK = 1024


class DropToxic(Stage):
    name = "drop-toxic"
    parallel = True  # per record: shards can run on separate workers
    version = "1.0.0"

    def __init__(self, home: Home, threshold: float | None = None) -> None:
        super().__init__(home)
        from custody.toxicity.scorers import ToxicitySettings, select_scorer

        settings = ToxicitySettings.load(home, threshold=threshold)
        self.selection = select_scorer(settings, home)
        self.threshold = settings.threshold
        self.dropped_by: Counter[str] = Counter()

    def config(self) -> dict[str, Any]:
        scorer = self.selection.scorer
        return {
            "scorer": scorer.name,
            "scorer_digest": scorer.digest,
            "threshold": self.threshold,
            "scorer_settings": scorer.describe(),
        }

    def process(self, records: Iterable[Record]) -> Iterator[Decision]:
        iterator = iter(records)
        scorer = self.selection.scorer
        # Hand the scorer large chunks: it batches internally (detoxify by batch_size), and
        # profanity-check is several times faster on 1,024 texts than on 64.
        while batch := list(islice(iterator, CHUNK)):
            for record, scores in zip(batch, scorer.score_batch([r.text for r in batch]), strict=True):
                top, value = max(scores.items(), key=lambda item: item[1]) if scores else ("none", 0.0)
                details = json.dumps({k: round(v, 6) for k, v in sorted(scores.items())})
                if value >= self.threshold:
                    yield Decision(record, "drop", f"toxicity:{top}", score=value, details=details)
                else:
                    yield Decision(record, "keep", score=value, details=details)

    def observe(self, action: str, reason: str) -> None:
        if action == "drop":  # counted here, not in process: process may run on a Ray worker
            self.dropped_by[reason.removeprefix("toxicity:")] += 1

    def summarize(self, output: RegisteredDataset) -> dict[str, Any]:
        return {
            "scorer": self.selection.note,
            "threshold": self.threshold,
            "dropped_by_category": dict(self.dropped_by.most_common()),
        }
