"""Evaluating a policy: a pure function of the policy and the input document.

Nothing here reads the home, the clock or the environment: "now" is the document's
`evaluated_at`, so evaluating a recorded document again gives the same decision (replay).

Order: every rule produces its violations as reasons (outcome `deny` or `review`, from the
rule's `on_fail`; a `block` action, and a rule that cannot be judged for want of facts such as
a missing check result, always deny); then, per finding, the latest valid review
in the ledger applies (reject -> deny, approve -> lifts a review reason, waive -> lifts a
review or deny reason while in force); then the policy's own waivers. The decision is `deny`
if any reason denies, else `needs-review` if any reason needs review, else `allow`.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from dataclasses import dataclass
from typing import Any, Literal

from custody.policy.rules import ALSO_ON_RUNS, MissingResult, Violation, rule_function
from custody.policy.schema import Policy

EVALUATOR = "custody.policy/2"  # bump when evaluation semantics change; replay reports it
Outcome = Literal["deny", "review"]
DECISION_EXIT = {"allow": 0, "deny": 3, "needs-review": 4}


def parse_instant(text: str) -> dt.datetime:
    """An RFC 3339 UTC instant as written by custody (`...Z`)."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(dt.UTC)


def format_instant(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def end_of_day(day: dt.date) -> dt.datetime:
    """The first instant after `day` (UTC): something that expires on a date counts through it."""
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)


def finding_id(subject: str, rule: str, qualifier: str | None) -> str:
    return f"{subject}/{rule}" + (f":{qualifier}" if qualifier else "")


@dataclass(frozen=True)
class Reason:
    rule: str
    outcome: Outcome
    subject: str  # NAME@VERSION, or run:NAME
    finding: str  # stable id a reviewer types: SUBJECT/RULE[:QUALIFIER] or SUBJECT/CHECK-FINDING
    message: str
    action: str | None = None  # redact | drop | block

    def as_json(self) -> dict[str, Any]:
        doc = {
            "rule": self.rule,
            "outcome": self.outcome,
            "subject": self.subject,
            "finding": self.finding,
            "message": self.message,
        }
        if self.action:
            doc["action"] = self.action
        return doc

    @property
    def liftable(self) -> bool:
        """A waiver can lift it (a block action cannot be lifted, nor an unrecorded decision)."""
        return self.action != "block" and not self.rule.startswith("gate.")


@dataclass(frozen=True)
class Decision:
    decision: Literal["allow", "deny", "needs-review"]
    reasons: tuple[Reason, ...]
    waived: tuple[dict, ...] = ()
    approved: tuple[dict, ...] = ()
    not_applied: tuple[dict, ...] = ()  # reviews or waivers that did not count, and why

    def as_json(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "reasons": [r.as_json() for r in self.reasons],
            "waived": list(self.waived),
            "approved": list(self.approved),
            "not_applied": list(self.not_applied),
        }

    @property
    def exit_code(self) -> int:
        return DECISION_EXIT[self.decision]


def verdict(reasons: list[Reason] | tuple[Reason, ...]) -> Literal["allow", "deny", "needs-review"]:
    if any(r.outcome == "deny" for r in reasons):
        return "deny"
    if reasons:
        return "needs-review"
    return "allow"


def _reason(rule_id: str, on_fail: Outcome, subject: str, violation: Violation) -> Reason:
    if violation.finding:  # a check's own finding id is already stable and unique per dataset
        finding = f"{subject}/{violation.finding}"
    else:
        finding = finding_id(subject, rule_id, violation.qualifier)
    outcome: Outcome = "deny" if violation.action == "block" or violation.undecidable else on_fail
    return Reason(rule_id, outcome, subject, finding, violation.message, violation.action)


def raw_reasons(policy: Policy, doc: dict) -> list[Reason]:
    """Every rule's violations as reasons, before reviews and waivers."""
    reasons: list[Reason] = []
    for rule_id, rule in policy.enforced_rules().items():
        check, for_runs = rule_function(rule_id)
        if for_runs:
            targets = [(f"run:{doc['run']['name']}", doc["run"])] if doc.get("run") else []
        else:
            targets = [(ds["dataset"], ds) for ds in doc["datasets"]]
        checks = [(check, subject, facts) for subject, facts in targets]
        if rule_id in ALSO_ON_RUNS and doc.get("run"):
            checks.append((ALSO_ON_RUNS[rule_id], f"run:{doc['run']['name']}", doc["run"]))
        for check, subject, facts in checks:
            try:
                violations = check(rule, facts, doc)
            except MissingResult as missing:
                violations = [
                    Violation(
                        None,
                        f"needs a {missing.check} result (run `custody check {subject} --checks {missing.check}`)",
                        undecidable=True,
                    )
                ]
            reasons += [_reason(rule_id, rule.on_fail, subject, v) for v in violations]
    # One reason per finding: a check finding matched by both findings rules keeps the severer.
    unique: dict[str, Reason] = {}
    for reason in reasons:
        kept = unique.get(reason.finding)
        if kept is None or (kept.outcome == "review" and reason.outcome == "deny"):
            unique[reason.finding] = reason
    return sorted(unique.values(), key=lambda r: (r.subject, r.rule, r.finding))


def _owners(doc: dict) -> dict[str, tuple[str, str | None]]:
    """Who may not approve or waive a subject's findings, as (name, key fingerprint): its
    registrant (or the run's requester). Documents from before keys have names only."""
    owners = {ds["dataset"]: (ds["registered_by"], ds.get("registered_key")) for ds in doc["datasets"]}
    if doc.get("run"):
        run = doc["run"]
        owners[f"run:{run['name']}"] = (run["requested_by"], run.get("requested_key"))
    return owners


def _is_owner(review: dict, owner: tuple[str, str | None] | None) -> bool:
    if owner is None:
        return False
    name, key = owner
    return review["reviewer"] == name or (key is not None and review.get("reviewer_key") == key)


def _lifted(reason: Reason, by: str, reviewer: str, expires: str | None) -> dict:
    lifted = {"finding": reason.finding, "rule": reason.rule, "outcome": reason.outcome, "by": by, "reviewer": reviewer}
    if expires:
        lifted["expires"] = expires
    return lifted


def _latest_valid_review(
    reason: Reason, reviews: list[dict], owners: dict[str, tuple[str, str | None]], not_applied: list[dict]
) -> dict | None:
    """The latest review of this reason's finding that may count; skipped ones go to not_applied."""
    for review in reversed(reviews):
        why = None
        if review.get("invalid"):
            why = f"not a valid signed review: {review['invalid']}"
        elif review["action"] != "reject" and _is_owner(review, owners.get(reason.subject)):
            why = f"separation of duties: {review['reviewer']} registered or requested {reason.subject}"
        elif review["action"] == "approve" and reason.outcome == "deny":
            why = "an approval cannot lift a deny reason (a waiver can)"
        elif review["action"] != "reject" and not reason.liftable:
            why = "this reason cannot be lifted (block)"
        if why is None:
            return review
        not_applied.append({"finding": reason.finding, "by": f"ledger:{review['ledger_index']}", "why": why})
    return None


def evaluate(policy: Policy, doc: dict) -> Decision:
    at = parse_instant(doc["evaluated_at"])
    owners = _owners(doc)
    reviews: dict[str, list[dict]] = {}
    for review in sorted(doc.get("reviews", []), key=lambda r: r["ledger_index"]):
        reviews.setdefault(review["finding"], []).append(review)

    final: list[Reason] = []
    waived: list[dict] = []
    approved: list[dict] = []
    not_applied: list[dict] = []
    for reason in raw_reasons(policy, doc):
        review = _latest_valid_review(reason, reviews.get(reason.finding, []), owners, not_applied)
        if review is not None:
            by = f"ledger:{review['ledger_index']}"
            if review["action"] == "reject":
                message = f"{reason.message} — rejected by {review['reviewer']} ({by}): {review['reason']}"
                final.append(Reason(reason.rule, "deny", reason.subject, reason.finding, message, reason.action))
                continue
            expires = review.get("expires")
            if expires and parse_instant(expires) <= at:
                not_applied.append({"finding": reason.finding, "by": by, "why": f"expired at {expires}"})
            else:
                target = approved if review["action"] == "approve" else waived
                target.append(_lifted(reason, by, review["reviewer"], expires))
                continue
        waiver = _policy_waiver(policy, reason, at, not_applied)
        if waiver is not None:
            waived.append(waiver)
        else:
            final.append(reason)
    return Decision(verdict(final), tuple(final), tuple(waived), tuple(approved), tuple(not_applied))


def _policy_waiver(policy: Policy, reason: Reason, at: dt.datetime, not_applied: list[dict]) -> dict | None:
    if not reason.liftable:
        return None
    for i, waiver in enumerate(policy.waivers):
        if waiver.rule != reason.rule or not any(fnmatch.fnmatchcase(reason.subject, p) for p in waiver.datasets):
            continue
        by = f"policy:waivers[{i}]"
        if end_of_day(waiver.expires) <= at:
            not_applied.append({"finding": reason.finding, "by": by, "why": f"expired after {waiver.expires}"})
            continue
        return _lifted(reason, by, waiver.approved_by, format_instant(end_of_day(waiver.expires)))
    return None
