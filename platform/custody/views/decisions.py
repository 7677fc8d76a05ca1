"""Gate decisions and reviews as the pages show them: compact, newest first."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from custody.home import Home
from custody.policy import entry_types as _policy_types  # noqa: F401  registers the decision and review types
from custody.views.common import body, newest, scan

DECISION = "policy.decision/"
REVIEW = "review.recorded/"


@dataclass(frozen=True)
class DecisionInfo:
    index: int
    ts: str
    requested_by: str
    decision: str
    policy: str
    purpose: str
    subjects: tuple[str, ...]  # NAME@VERSION and run:NAME
    reasons: tuple[dict[str, Any], ...] = field(default=())
    lifted: tuple[dict[str, Any], ...] = field(default=())

    def for_subject(self, subject: str) -> str:
        """This decision as it concerns one subject: its reasons' worst outcome, else allow."""
        outcomes = {r["outcome"] for r in self.reasons if r["subject"] == subject}
        return "deny" if "deny" in outcomes else "needs-review" if outcomes else "allow"

    def as_row(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "time": self.ts,
            "decision": self.decision,
            "subjects": ", ".join(self.subjects),
            "policy": self.policy,
            "purpose": self.purpose,
            "reasons": len(self.reasons),
            "requested by": self.requested_by,
        }


def decision_info(index: int, ts: str, data: dict[str, Any]) -> DecisionInfo:
    result = data["result"]
    return DecisionInfo(
        index,
        ts,
        data["requested_by"],
        result["decision"],
        data["policy"]["name"],
        data["purpose"],
        tuple(s["name"].removeprefix("dataset:") for s in data["subjects"]),
        tuple(result["reasons"]),
        tuple(result.get("waived", []) + result.get("approved", [])),
    )


def all_decisions(home: Home) -> list[DecisionInfo]:
    """Every gate decision, oldest first (one indexed scan over the decision type only)."""
    return [decision_info(row.idx, row.ts, body(row)) for row in scan(home, DECISION)]


def latest_by_subject(decisions: list[DecisionInfo]) -> dict[str, DecisionInfo]:
    """Each subject's (dataset's or run's) most recent decision."""
    latest: dict[str, DecisionInfo] = {}
    for info in decisions:
        for subject in info.subjects:
            latest[subject] = info
    return latest


def recent_decisions(home: Home, limit: int = 10) -> list[DecisionInfo]:
    return [decision_info(row.idx, row.ts, body(row)) for row in newest(home, DECISION, limit)]


def review_row(index: int, ts: str, actor: str, subject: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "index": index,
        "time": ts,
        "action": data["action"],
        "finding": data["finding"],
        "reviewer": actor,
        "reason": data["reason"],
        "expires": data.get("expires") or "",
        "subject": subject.removeprefix("dataset:"),
    }


def recent_reviews(home: Home, limit: int = 10, subject: str | None = None) -> list[dict[str, Any]]:
    return [review_row(r.idx, r.ts, r.actor, r.subject, body(r)) for r in newest(home, REVIEW, limit, subject)]
