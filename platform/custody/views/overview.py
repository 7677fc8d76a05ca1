"""The overview: compliance posture at a glance."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from custody.home import Home
from custody.policy.reviews import open_findings
from custody.views.datasets import DatasetRow, by_decision, list_datasets, visible
from custody.views.decisions import all_decisions, recent_decisions, recent_reviews
from custody.views.ledger import Health, health

RECENT = 10


@dataclass(frozen=True)
class Posture:
    datasets: int  # intermediate stage outputs counted only when asked for
    by_decision: dict[str, int]  # allow / needs-review / deny / not gated -> datasets
    intermediate_hidden: int  # intermediate stage outputs left out of the two above
    open_findings: int
    liftable_denies: int
    recent_decisions: list[dict[str, Any]]
    recent_reviews: list[dict[str, Any]]
    health: Health


def posture(home: Home, rows: list[DatasetRow] | None = None, include_intermediate: bool = False) -> Posture:
    every = list_datasets(home, all_decisions(home)) if rows is None else rows
    rows = visible(every, include_intermediate)
    open_items = open_findings(home, include_deny=True)
    reviews_needed = sum(1 for item in open_items if item.outcome == "review")
    return Posture(
        len(rows),
        by_decision(rows),
        len(every) - len(rows),
        reviews_needed,
        len(open_items) - reviews_needed,
        [d.as_row() for d in recent_decisions(home, RECENT)],
        recent_reviews(home, RECENT),
        health(home),
    )
