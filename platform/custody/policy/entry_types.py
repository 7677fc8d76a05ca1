"""Ledger entry schemas for gate decisions and reviews.

Neither carries personal data: a decision holds digests, rule ids and messages built from
counts and rates; a review holds the finding id, the action and the reviewer's reason.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from custody.ledger.entry import EntryBody, entry_type

DIGEST = r"^[0-9a-f]{64}$"


class Digest(EntryBody):
    sha256: str = Field(pattern=DIGEST)


class Subject(EntryBody):
    name: str  # dataset:NAME@VERSION or run:NAME
    digest: Digest | None = None


class PolicyRef(EntryBody):
    model_config = ConfigDict(extra="forbid", frozen=True, serialize_by_alias=True)

    path: str
    name: str
    digest: Digest
    schema_: int = Field(alias="schema")


class InputRef(EntryBody):
    digest: Digest
    artifact: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")


class CheckUsed(EntryBody):
    dataset: str
    name: str
    version: str
    result_digest: Digest
    summary_digest: Digest
    ledger_index: int = Field(ge=0)


class ReviewUsed(EntryBody):
    ledger_index: int = Field(ge=0)


class ReasonBody(EntryBody):
    rule: str
    outcome: Literal["deny", "review"]
    subject: str
    finding: str
    message: str
    action: Literal["redact", "drop", "block"] | None = None


class Lifted(EntryBody):
    finding: str
    rule: str
    outcome: Literal["deny", "review"]
    by: str  # ledger:N (a review) or policy:waivers[i]
    reviewer: str
    expires: str | None = None


class NotApplied(EntryBody):
    finding: str
    by: str
    why: str


class Result(EntryBody):
    decision: Literal["allow", "deny", "needs-review"]
    reasons: list[ReasonBody]
    waived: list[Lifted] = Field(default_factory=list)
    approved: list[Lifted] = Field(default_factory=list)
    not_applied: list[NotApplied] = Field(default_factory=list)


@entry_type("policy.decision/v1")
class PolicyDecision(EntryBody):
    decision_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    requested_by: str
    purpose: Literal["commercial", "research"]
    subjects: list[Subject] = Field(min_length=1)
    policy: PolicyRef
    input: InputRef
    checks: list[CheckUsed]
    reviews: list[ReviewUsed]
    result: Result
    evaluated_at: str
    evaluator: str


class PolicyUse(PolicyRef):
    """One policy a decision evaluated: the one bound to the purpose, or the spec's own."""

    role: Literal["bound", "spec"]
    binding_index: int | None = Field(default=None, ge=0)  # the policy.bound entry, for role bound


@entry_type("policy.decision/v2")
class PolicyDecisionV2(EntryBody):
    """v1, plus every policy evaluated and whether it is the one an admin bound to the purpose.

    `policy` is the governing policy (the bound one when there is one), None when the purpose is
    unbound and the request named no policy; the decision is then a deny."""

    decision_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    requested_by: str
    purpose: Literal["commercial", "research"]
    subjects: list[Subject] = Field(min_length=1)
    policy: PolicyRef | None = None
    policies: list[PolicyUse]
    input: InputRef
    checks: list[CheckUsed]
    reviews: list[ReviewUsed]
    result: Result
    evaluated_at: str
    evaluator: str


@entry_type("policy.bound/v1")
class PolicyBound(EntryBody):
    """An admin binds a purpose to a policy (its exact bytes are in the store under the digest)."""

    purpose: Literal["commercial", "research"]
    policy: PolicyRef
    rules: list[str] = Field(min_length=1)


@entry_type("review.recorded/v1")
class ReviewRecorded(EntryBody):
    finding: str = Field(min_length=3, max_length=1000)
    rule: str
    action: Literal["approve", "reject", "waive"]
    reason: str = Field(min_length=1, max_length=10_000)
    expires: str | None = None  # RFC 3339 UTC: the first instant it no longer counts
    decision_index: int = Field(ge=0)  # the decision that reported the finding
