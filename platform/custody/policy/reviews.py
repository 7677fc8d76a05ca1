"""Reviews: a person approves, rejects or waives a finding the gate reported.

Each action is a `review.recorded/v1` entry whose actor is the reviewer, on the subject of the
finding (`dataset:NAME@VERSION` or `run:NAME`). The latest valid review of a finding decides:
  approve  lifts a needs-review reason (optionally until an expiry)
  reject   turns the reason into a deny
  waive    lifts a needs-review or deny reason until its expiry (required)
A `block` reason (and an unrecorded decision) cannot be lifted. Separation of duties, by key:
whoever registered a dataset (or requested a run) cannot approve or waive its findings, whatever
name they give; rejecting is always allowed. The reviewer signs with their own key (or the
dashboard attests them), and their roles must permit the action. The gate applies the same
rules again when it evaluates, so an entry written behind this module's back does not count.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from custody.datasets.names import DatasetRefError, parse_ref
from custody.datasets.registry import DatasetRegistry
from custody.home import Home, actor_name
from custody.ledger import query
from custody.policy import entry_types  # noqa: F401  registers policy.decision/v1 and review.recorded/v1
from custody.policy.evaluate import end_of_day, format_instant
from custody.policy.inputs import reviews_on
from custody.trust.acting import Acting, NotPermitted, Person
from custody.trust.permissions import person_roles

DECISION_TYPE = "policy.decision/"
Action = Literal["approve", "reject", "waive"]


class ReviewError(ValueError):
    """A review that cannot be recorded: unknown finding, wrong action, bad expiry."""


class SeparationOfDuties(ReviewError):
    """The reviewer registered the dataset (or requested the run) whose finding this is."""


@dataclass(frozen=True)
class ReportedFinding:
    """A finding as the latest decision that mentions it reported it."""

    finding: str
    rule: str
    outcome: str
    subject: str
    message: str
    action: str | None
    decision_index: int
    requested_by: str
    state: str  # open (a reason) or lifted (waived or approved in that decision)

    @property
    def liftable(self) -> bool:
        return self.action != "block" and not self.rule.startswith("gate.")

    def as_json(self) -> dict[str, Any]:
        return {
            "finding": self.finding,
            "rule": self.rule,
            "outcome": self.outcome,
            "subject": self.subject,
            "message": self.message,
            "action": self.action,
            "decision_index": self.decision_index,
            "state": self.state,
        }


def ledger_subject(subject: str) -> str:
    """`web@1` -> `dataset:web@1`; `run:x` stays."""
    return subject if subject.startswith("run:") else f"dataset:{subject}"


def decisions(home: Home, newest_first: bool = False) -> Iterator[tuple[int, dict]]:
    """Every recorded gate decision as (ledger index, body)."""
    for row in query.entries(home.storage, DECISION_TYPE, newest_first=newest_first):
        yield row.idx, query.body(row)


def _reported(index: int, body: dict) -> Iterator[ReportedFinding]:
    result = body["result"]
    for reason in result["reasons"]:
        yield ReportedFinding(
            reason["finding"],
            reason["rule"],
            reason["outcome"],
            reason["subject"],
            reason["message"],
            reason.get("action"),
            index,
            body["requested_by"],
            "open",
        )
    for lifted in result.get("waived", []) + result.get("approved", []):
        subject = lifted["finding"].split("/", 1)[0]
        yield ReportedFinding(
            lifted["finding"],
            lifted["rule"],
            lifted["outcome"],
            subject,
            f"lifted by {lifted['by']} ({lifted['reviewer']})",
            None,
            index,
            body["requested_by"],
            "lifted",
        )


def find_finding(home: Home, finding: str) -> ReportedFinding | None:
    """The finding as the latest decision that mentions it reported it."""
    for index, body in decisions(home, newest_first=True):
        for reported in _reported(index, body):
            if reported.finding == finding:
                return reported
    return None


def open_findings(home: Home, include_deny: bool = False) -> list[ReportedFinding]:
    """Reasons of each subject's latest decision that need a person and no one has acted on.

    A needs-review reason is open until a review of it is recorded after that decision;
    `include_deny` adds deny reasons that a waiver could lift."""
    latest: dict[str, tuple[int, dict]] = {}
    for index, body in decisions(home):
        for subject in body["subjects"]:
            name = subject["name"].removeprefix("dataset:")
            latest[name] = (index, body)
    found = []
    for subject, (index, body) in sorted(latest.items()):
        reviews = reviews_on(home, [ledger_subject(subject)], after=index)
        for reported in _reported(index, body):
            if reported.subject != subject or reported.state != "open":
                continue
            if reviews and any(_counts(home, r, reported) for r in reviews if r["finding"] == reported.finding):
                continue
            if reported.outcome == "review" or (include_deny and reported.liftable):
                found.append(reported)
    return found


def _counts(home: Home, review: dict, reported: ReportedFinding) -> bool:
    """Whether a review addresses the finding (the gate ignores an owner's approval or waiver)."""
    return review["action"] == "reject" or not owner_of(home, reported).is_(
        review["reviewer"], review.get("reviewer_key")
    )


def parse_expires(text: str, now: dt.datetime) -> dt.datetime:
    """`YYYY-MM-DD` counts through that day (UTC); a date and time needs a zone (or is UTC)."""
    try:
        if len(text) == 10:
            moment = end_of_day(dt.date.fromisoformat(text))
        else:
            moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=dt.UTC)
    except ValueError as exc:
        raise ReviewError(f"--expires {text!r}: not a date (YYYY-MM-DD) or an ISO 8601 date and time") from exc
    if moment <= now:
        raise ReviewError(f"--expires {text!r} is not in the future")
    return moment


@dataclass(frozen=True)
class Owner:
    """Who registered the dataset (or requested the run), by name and by key."""

    name: str
    key: str | None

    def is_(self, name: str, key: str | None) -> bool:
        return name == self.name or (key is not None and key == self.key)


def owner_of(home: Home, reported: ReportedFinding) -> Owner:
    """Who may not approve or waive this finding."""
    if reported.subject.startswith("run:"):
        return Owner(reported.requested_by, home.key_of(reported.requested_by, reported.decision_index))
    try:
        dataset = DatasetRegistry(home).get(parse_ref(reported.subject))
    except DatasetRefError as exc:
        raise ReviewError(f"finding subject {reported.subject!r} is not a dataset reference") from exc
    return Owner(dataset.actor, home.attribute(home.ledger.entry(dataset.index)).key)


def acting_key(home: Home, reviewer: Acting | str | None) -> str | None:
    """The key that speaks for the reviewer: their own, or (attested) the one the roster binds to them."""
    if isinstance(reviewer, Person):
        return reviewer.fingerprint
    return home.key_of(actor_name(reviewer))


def record_review(
    home: Home,
    finding: str,
    action: Action,
    reason: str,
    reviewer: Acting | str | None,
    expires: str | None = None,
    now: dt.datetime | None = None,
) -> int:
    """Validate and record one review, signed by the reviewer; return its ledger index."""
    now = now or dt.datetime.now(dt.UTC)
    name = actor_name(reviewer)
    if not reason.strip():
        raise ReviewError("--reason must say why")
    reported = find_finding(home, finding)
    if reported is None:
        raise ReviewError(f"no gate decision reported finding {finding!r} (see `custody review list --all`)")
    subject = ledger_subject(reported.subject)
    _check_role(home, reviewer, subject, action)
    if action != "reject" and not reported.liftable:
        raise ReviewError(f"{finding} cannot be approved or waived ({reported.action or reported.rule})")
    if action == "approve" and reported.outcome == "deny":
        raise ReviewError(
            f"{finding} is a deny reason: an approval cannot lift it (waive it with --expires, or fix the cause)"
        )
    if action == "waive" and expires is None:
        raise ReviewError("a waiver needs --expires DATE: it counts until then")
    if action == "reject" and expires is not None:
        raise ReviewError("a rejection does not expire; leave out --expires")
    until = parse_expires(expires, now) if expires else None
    owner = owner_of(home, reported)
    if action != "reject" and owner.is_(name, acting_key(home, reviewer)):
        what = "requested" if reported.subject.startswith("run:") else "registered"
        same = "" if owner.name == name else f" (the key of {owner.name})"
        raise SeparationOfDuties(
            f"{name}{same} {what} {reported.subject} and cannot {action} its findings (separation of duties); "
            "another reviewer must"
        )
    body: dict[str, Any] = {
        "finding": finding,
        "rule": reported.rule,
        "action": action,
        "reason": reason,
        "decision_index": reported.decision_index,
    }
    if until is not None:
        body["expires"] = format_instant(until)
    index = home.record("review.recorded/v1", subject, body, refs=[f"ledger:{reported.decision_index}"], actor=reviewer)
    home.checkpoint()
    return index


def _check_role(home: Home, reviewer: Acting | str | None, subject: str, action: str) -> None:
    """Refuse early, in words, what the ledger would refuse: a role that does not permit the action."""
    if not home.roster().signed or isinstance(reviewer, str | None):
        return
    roles = reviewer.roles if isinstance(reviewer, Person) else _roles_of(home, reviewer.person)
    needed = person_roles("review.recorded/v1", subject, {"action": action})
    if needed and not roles & needed:
        what = "a training run's findings" if subject.startswith("run:") else "findings"
        raise NotPermitted(
            f"{actor_name(reviewer)} ({', '.join(sorted(roles)) or 'no role'}) may not {action} {what}; "
            f"needs role {' or '.join(sorted(needed))}"
        )


def _roles_of(home: Home, name: str) -> frozenset[str]:
    member = home.roster().by_name(name)
    return member.roles if member is not None else frozenset()
