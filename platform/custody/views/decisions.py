"""Gate decisions and reviews as the pages show them: compact, newest first."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from custody.home import Home
from custody.ledger.query import body, entries, newest
from custody.ledger.storage import EntryRow
from custody.policy import entry_types as _policy_types  # noqa: F401  registers the decision and review types
from custody.policy.refs import PolicyUsed, describe_used, identities, policies_used, statuses
from custody.views.common import when
from custody.views.signatures import signed_by_rows

DECISION = "policy.decision/"
REVIEW = "review.recorded/"


@dataclass(frozen=True)
class DecisionInfo:
    index: int
    ts: str
    requested_by: str
    decision: str
    policies: tuple[PolicyUsed, ...]  # every policy evaluated, by digest; empty: the purpose was unbound
    purpose: str
    subjects: tuple[str, ...]  # NAME@VERSION and run:NAME
    reasons: tuple[dict[str, Any], ...] = field(default=())
    lifted: tuple[dict[str, Any], ...] = field(default=())

    @property
    def policy(self) -> str:
        """Every policy by name, short digest and binding status (never the name alone)."""
        return describe_used(self.policies, self.purpose)

    @property
    def bound(self) -> bool:
        """Whether the policy an admin bound to the purpose judged this decision."""
        return any(p.bound for p in self.policies)

    def for_subject(self, subject: str) -> str:
        """This decision as it concerns one subject: its reasons' worst outcome, else allow."""
        outcomes = {r["outcome"] for r in self.reasons if r["subject"] == subject}
        return "deny" if "deny" in outcomes else "needs-review" if outcomes else "allow"

    def as_row(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "time": when(self.ts),
            "decision": self.decision,
            "subjects": ", ".join(self.subjects),
            "policy": identities(self.policies),
            "bound": statuses(self.policies, self.purpose),
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
        policies_used(data),
        data["purpose"],
        tuple(s["name"].removeprefix("dataset:") for s in data["subjects"]),
        tuple(result["reasons"]),
        tuple(result.get("waived", []) + result.get("approved", [])),
    )


def all_decisions(home: Home) -> list[DecisionInfo]:
    """Every gate decision, oldest first (one indexed scan over the decision type only)."""
    return [decision_info(row.idx, row.ts, body(row)) for row in entries(home.storage, DECISION)]


def latest_by_subject(decisions: list[DecisionInfo]) -> dict[str, DecisionInfo]:
    """Each subject's (dataset's or run's) most recent decision."""
    latest: dict[str, DecisionInfo] = {}
    for info in decisions:
        for subject in info.subjects:
            latest[subject] = info
    return latest


def recent_decisions(home: Home, limit: int = 10) -> list[DecisionInfo]:
    return [decision_info(row.idx, row.ts, body(row)) for row in newest(home.storage, DECISION, limit)]


def review_rows(home: Home, rows: list[EntryRow]) -> list[dict[str, Any]]:
    """Reviews as table rows, each saying who signed it: the reviewer's own key, or the dashboard."""
    signed = signed_by_rows(home, rows)
    return [
        {
            "index": row.idx,
            "time": when(row.ts),
            "action": body(row)["action"],
            "finding": body(row)["finding"],
            "reviewer": row.actor,
            "signed": signed[row.idx].label(),
            "reason": body(row)["reason"],
            "expires": body(row).get("expires") or "",
            "subject": row.subject.removeprefix("dataset:"),
        }
        for row in rows
    ]


def recent_reviews(home: Home, limit: int = 10, subject: str | None = None) -> list[dict[str, Any]]:
    """The newest reviews (optionally on one ledger subject), newest first."""
    return review_rows(home, newest(home.storage, REVIEW, limit, subject))


def reviews_of(home: Home, subject: str) -> list[dict[str, Any]]:
    """Every review on one ledger subject, oldest first."""
    return review_rows(home, list(entries(home.storage, REVIEW, subject)))
