"""The review queue: open findings, their evidence shown safely, and acting on them.

Acting goes through `custody.policy.reviews.record_review`, the code path `custody review`
uses, so separation of duties (by key) and every validation are the same in the dashboard and
the CLI. The dashboard records each review signed with its own key, attesting the signed-in
person (custody.views.identity); the person's roster roles decide what they may do.
Evidence never shows a detected PII value: spans are masked from the check's own offsets. Text
a toxicity check flagged is returned with `sensitive=True`; the page keeps it hidden until the
reviewer reveals it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pyarrow.parquet as pq

from custody.datasets.names import parse_ref
from custody.datasets.registry import DatasetNotFound, DatasetRegistry, RegisteredDataset
from custody.home import Home
from custody.ledger.query import body
from custody.policy.reviews import (
    Action,
    Owner,
    ReportedFinding,
    ReviewError,
    ledger_subject,
    open_findings,
    owner_of,
    record_review,
)
from custody.trust.permissions import person_roles
from custody.views.identity import Service, SignedIn, Standing, acting_standing, attested
from custody.wording import plural

MAX_TEXT = 1200  # characters of a record shown as evidence
RULE_CHECKS = {"pii.max-rate": "pii", "toxicity.max-rate": "toxicity", "license.allowed": "license"}
NOBODY = Owner("", None)


@dataclass(frozen=True)
class QueueItem:
    finding: ReportedFinding
    owner: Owner  # who registered the dataset (or requested the run), by name and key: may not approve or waive

    def as_row(self) -> dict[str, Any]:
        f = self.finding
        return {
            "finding": f.finding,
            "outcome": f.outcome,
            "rule": f.rule,
            "subject": f.subject,
            "decision": f.decision_index,
            "registered by": self.owner.name,
            "message": f.message,
        }

    def owned_by(self, who: Standing) -> bool:
        return self.owner.is_(who.name, who.key)


def queue(home: Home, include_deny: bool = False) -> list[QueueItem]:
    """Findings that need a person: open review reasons (and, on request, liftable denies)."""
    items, owners = [], {}
    for finding in open_findings(home, include_deny):
        if finding.subject not in owners:
            try:
                owners[finding.subject] = owner_of(home, finding)
            except (DatasetNotFound, ReviewError, ValueError):
                owners[finding.subject] = NOBODY
        items.append(QueueItem(finding, owners[finding.subject]))
    return items


def permitted(item: QueueItem, roles: frozenset[str]) -> list[str]:
    """The actions the finding admits that these roster roles permit (approve, waive, reject)."""
    actions = ["reject"]
    if item.finding.liftable:
        actions.insert(0, "waive")
        if item.finding.outcome == "review":
            actions.insert(0, "approve")
    subject = ledger_subject(item.finding.subject)
    return [a for a in actions if roles & (person_roles("review.recorded/v1", subject, {"action": a}) or frozenset())]


def allowed_actions(item: QueueItem, who: Standing | None) -> list[str]:
    """What this person may do with this finding (record_review and the ledger check again)."""
    if who is None or who.problem:
        return []
    actions = permitted(item, who.roles)
    if item.owned_by(who):
        return [a for a in actions if a == "reject"]  # separation of duties: a registrant may still reject
    return actions


def act(
    home: Home,
    signed_in: SignedIn | None,
    service: Service,
    finding: str,
    action: Action,
    reason: str,
    expires: str | None = None,
) -> int:
    """Record a review for the signed-in person, signed by the dashboard's key attesting them.

    The account is read again (its role now, not as it was at sign-in), and the person's roster
    roles must permit the action: the dashboard account's role can only narrow them."""
    acting_standing(home, signed_in, service, "sign in to act on findings")
    return record_review(home, finding, action, reason, reviewer=attested(signed_in, service), expires=expires)


# -- evidence -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    record_id: str
    shard: str
    position: int
    score: float | None
    reason: str
    text: str  # PII masked; toxic text still present (see `sensitive`)
    spans: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Evidence:
    kind: str  # pii | toxicity | license | summary
    check: str | None
    sensitive: bool  # the samples hold text that must stay hidden until revealed
    samples: list[Sample]
    summary: dict[str, Any]
    note: str = ""


def mask(text: str, spans: list[dict[str, Any]]) -> str:
    """Replace every detected span with its entity type, e.g. `[EMAIL_ADDRESS]`."""
    out, cursor = [], 0
    for span in sorted(spans, key=lambda s: (s["start"], -s["end"])):
        start, end = max(span["start"], cursor), span["end"]
        if end <= start:
            continue  # inside a span already masked
        out.append(text[cursor:start])
        out.append(f"[{span['type']}]")
        cursor = end
    out.append(text[cursor:])
    return "".join(out)


def _check_for(finding: ReportedFinding) -> str | None:
    if finding.rule in RULE_CHECKS:
        return RULE_CHECKS[finding.rule]
    tail = finding.finding.split("/", 1)[-1]  # SUBJECT/CHECK-FINDING for findings.* rules
    prefix = tail.split(".", 1)[0]
    return prefix if prefix in ("pii", "toxicity", "license", "provenance") else None


def _decision_checks(home: Home, finding: ReportedFinding) -> dict[str, dict[str, Any]]:
    """The check results the decision that reported the finding used, by check name."""
    data = body(home.ledger.entry(finding.decision_index))
    return {c["name"]: c for c in data["checks"] if c["dataset"] == finding.subject}


def _flagged_rows(home: Home, result_digest: str, limit: int, entity: str | None = None) -> list[dict[str, Any]]:
    table = pq.read_table(
        home.store.path_for(result_digest),
        columns=["record_id", "shard", "position", "verdict", "reason", "score", "details"],
        filters=[("verdict", "=", "flag")],
    )
    rows = []
    for row in table.to_pylist():
        if entity and entity not in {s["type"] for s in json.loads(row["details"] or "[]")}:
            continue
        rows.append(row)
    if not entity:  # toxicity: the worst first
        rows.sort(key=lambda r: -(r["score"] or 0.0))
    return rows[:limit]


def _pii_spans(home: Home, result_digest: str, record_ids: set[str]) -> dict[str, list[dict[str, Any]]]:
    table = pq.read_table(
        home.store.path_for(result_digest), columns=["record_id", "details"], filters=[("verdict", "=", "flag")]
    )
    return {r["record_id"]: json.loads(r["details"] or "[]") for r in table.to_pylist() if r["record_id"] in record_ids}


def _texts(dataset: RegisteredDataset, wanted: list[tuple[str, int]]) -> dict[tuple[str, int], str]:
    """Record texts by (shard, position), reading each shard only as far as needed."""
    found: dict[tuple[str, int], str] = {}
    by_shard: dict[str, set[int]] = {}
    for shard, position in wanted:
        by_shard.setdefault(shard, set()).add(position)
    for shard in dataset.manifest.shards:
        positions = by_shard.get(shard.name)
        if not positions:
            continue
        for record in dataset.shard_records(shard):
            if record.position in positions:
                found[(shard.name, record.position)] = record.text
                if len(found) == len(wanted):
                    return found
    return found


def evidence(home: Home, finding: ReportedFinding, limit: int = 5) -> Evidence:
    """Samples and counts behind a finding, from the exact check results its decision used."""
    check = _check_for(finding)
    if finding.subject.startswith("run:") or check is None:
        return Evidence("summary", check, False, [], {}, "this finding is judged from the message above")
    used = _decision_checks(home, finding)
    if check not in used:
        return Evidence("summary", check, False, [], {}, f"the decision used no {check} result for this dataset")
    result = used[check]
    summary = json.loads(home.store.read_bytes(result["summary_digest"]["sha256"]))
    if check not in ("pii", "toxicity"):
        return Evidence(check, check, False, [], summary)
    dataset = DatasetRegistry(home).get(parse_ref(finding.subject))
    entity = finding.finding.rsplit(":", 1)[-1] if check == "pii" and ":" in finding.finding else None
    rows = _flagged_rows(home, result["result_digest"]["sha256"], limit, entity)
    texts = _texts(dataset, [(r["shard"], r["position"]) for r in rows])
    pii_spans: dict[str, list[dict[str, Any]]] = {}
    if check == "toxicity" and "pii" in used:  # mask personal data in toxic samples too
        pii_spans = _pii_spans(home, used["pii"]["result_digest"]["sha256"], {r["record_id"] for r in rows})
    samples = []
    for row in rows:
        spans = json.loads(row["details"] or "[]") if check == "pii" else pii_spans.get(row["record_id"], [])
        text = texts.get((row["shard"], row["position"]), "")
        samples.append(
            Sample(
                row["record_id"],
                row["shard"],
                row["position"],
                row["score"],
                row["reason"],
                _clip(mask(text, spans)),
                spans if check == "pii" else [],
            )
        )
    note = f"{plural(len(samples), 'flagged record')} shown" + (f" containing {entity}" if entity else "")
    return Evidence(check, check, check == "toxicity", samples, summary, note)


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + " …"
