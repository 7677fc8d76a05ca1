"""The gate's input document: every fact a decision depends on, gathered from a home.

The document is canonical JSON (RFC 8785) stored in the artifact store; the decision entry
carries its digest. Evaluation reads nothing else, so replay evaluates the stored document
again. It holds, per dataset: the registered digest and registrant, the card, the latest result
of every check (digests, versions and the summary, which has counts and rates, never a raw
personal value); who registered it, by name and key fingerprint; the versions of the checks
this custody runs now; the takedowns that removed a work from it (`dataset.removed`); the
reviews recorded on the subjects, with who signed each and whether its signature and role hold;
the purpose, the optional run, and `evaluated_at`, the "now" that expiry is judged at.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

from custody.checks.catalog import CHECKS
from custody.checks.results import CheckResult, latest_results
from custody.datasets.registry import RegisteredDataset
from custody.home import Home
from custody.ledger import query
from custody.ledger.entry import canonical_json
from custody.optout import registry as optout_registry
from custody.policy.evaluate import format_instant

INPUT_FORMAT = "custody.gate-input/1"
REVIEW_TYPE_PREFIX = "review."


@dataclass(frozen=True)
class RunContext:
    """A training run asking to start: its name, who asks, its energy and carbon estimates, the
    checkpoint it starts from (fine-tuning, transfer), and how much of each evaluation set its
    training data holds."""

    name: str
    requested_by: str
    estimated_kwh: float | None = None
    estimated_kg_co2e: float | None = None
    requested_key: str | None = None  # fingerprint of the requester's key: duties compare keys
    start_checkpoint: str | None = None  # sha256 of the checkpoint a fine-tune or transfer starts from
    release: dict[str, Any] | None = None  # for `custody release`: the weights and their evaluations
    # for `custody run` with evaluation sets: each set's overlap with the prepared training data,
    # measured before the gate (`eval.contamination/v2`, evalsets/contamination.py `facts`)
    contamination: list[dict[str, Any]] | None = None
    # for reward-model and DPO runs: the roster names and key fingerprints of the people whose
    # judgements the preference data carries (runs/preference_data.py)
    preference_reviewers: dict[str, str] | None = None

    @property
    def subject(self) -> str:
        return f"run:{self.name}"

    def as_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"name": self.name, "requested_by": self.requested_by}
        if self.requested_key is not None:
            doc["requested_key"] = self.requested_key
        if self.estimated_kwh is not None:
            doc["estimated_kwh"] = self.estimated_kwh
        if self.estimated_kg_co2e is not None:
            doc["estimated_kg_co2e"] = self.estimated_kg_co2e
        if self.start_checkpoint is not None:
            doc["start_checkpoint"] = self.start_checkpoint
        if self.release is not None:
            doc["release"] = self.release
        if self.contamination is not None:  # only then: runs without evaluation sets keep their bytes
            doc["contamination"] = self.contamination
        if self.preference_reviewers is not None:
            doc["preference_reviewers"] = self.preference_reviewers
        return doc


def start_taints(home: Home, checkpoint: str) -> list[dict[str, Any]]:
    """The takedowns that tainted the run which wrote `checkpoint` (as a checkpoint or its model)."""
    writers = set()
    for row in query.entries(home.storage, "run.checkpoint/"):
        if query.body(row)["checkpoint_digest"] == checkpoint:
            writers.add(row.subject)
    for row in query.entries(home.storage, "run.finished/"):
        if query.body(row).get("model_digest") == checkpoint:
            writers.add(row.subject)
    return [
        {"takedown": query.body(row)["takedown"], "run_id": subject.removeprefix("run:"), "ledger_index": row.idx}
        for subject in sorted(writers)
        for row in query.entries(home.storage, "run.tainted/", subject=subject)
    ]


def current_check_versions() -> dict[str, str]:
    """The version of every check custody runs now; an older result is stale."""
    return {name: CHECKS.version(name) for name in CHECKS.names()}


def license_categories(summary: dict) -> dict[str, str]:
    # The license summary counts records per expression but not per category and expression;
    # the category of each expression is resolved here once and kept in the document.
    from custody.licenses.categories import category_of_expression
    from custody.licenses.spdx import parse_expression

    return {expr: category_of_expression(parse_expression(expr)) for expr in summary.get("record_licenses", {})}


def check_facts(home: Home, result: CheckResult) -> dict[str, Any]:
    """One check's newest result as a dataset's facts hold it (views/gate_facts.py folds new
    results in with this too, so both write the same bytes)."""
    return {
        "version": result.version,
        "dataset_digest": result.dataset_digest,
        "ledger_index": result.entry_index,
        "config_digest": result.config_digest,
        "result_digest": result.result_digest,
        "summary_digest": result.summary_digest,
        "status": result.status,
        "summary": result.summary(home),
    }


def dataset_facts(home: Home, dataset: RegisteredDataset, verify_bytes: bool = False) -> dict[str, Any]:
    checks = {name: check_facts(home, result) for name, result in sorted(latest_results(home, dataset).items())}
    facts: dict[str, Any] = {
        "dataset": str(dataset.ref),
        "digest": dataset.digest,
        "ledger_index": dataset.index,
        "registered_by": dataset.actor,
        "registered_key": home.attribute(home.ledger.entry(dataset.index)).key,
        "card_digest": dataset.body["card_digest"],
        "card": dataset.card.as_json(),
        "parents": dataset.parents,
        "checks": checks,
    }
    if "license" in checks:
        facts["license_categories"] = license_categories(checks["license"]["summary"])
    removed = [
        {"takedown": body["takedown"], "ledger_index": row.idx, "replaced_by": body.get("replaced_by")}
        for row in query.entries(home.storage, "dataset.removed/", subject=dataset.ref.subject)
        if (body := query.body(row))["digest"] == dataset.digest
    ]
    if removed:  # only then: documents of datasets no takedown touched keep their exact bytes
        facts["taken_down"] = removed
    registries = optout_registry.current(home)
    if registries.imports:  # only then, as above: the opt-out registries in force, which a
        # provenance result must have read (rule provenance.reserved)
        newest = max(i.ledger_index for i in registries.imports)
        facts["opt_out_registry"] = {"digest": registries.digest, "ledger_index": newest}
    if verify_bytes:
        facts["shard_problems"] = [list(problem) for problem in dataset.verify_shards()]
    return facts


def reviews_on(home: Home, ledger_subjects: list[str], after: int = -1) -> list[dict[str, Any]]:
    """Review entries recorded on these ledger subjects (`dataset:x@1`, `run:y`), oldest first."""
    found = []
    for subject in ledger_subjects:
        for row in query.entries(home.storage, REVIEW_TYPE_PREFIX, subject=subject, start=after + 1):
            body = query.body(row)
            who = home.attribute(row)
            review = {
                "ledger_index": row.idx,
                "finding": body["finding"],
                "rule": body["rule"],
                "action": body["action"],
                "reviewer": row.actor,
                "reviewer_key": who.key,
                "signed": who.kind,
                "reason": body["reason"],
                "expires": body.get("expires"),
                "ts": row.ts,
            }
            if who.problem:  # written behind the library's back: the gate does not count it
                review["invalid"] = who.problem
            found.append(review)
    return sorted(found, key=lambda r: r["ledger_index"])


def gather(
    home: Home,
    datasets: list[RegisteredDataset],
    purpose: str,
    now: dt.datetime,
    run: RunContext | None = None,
    verify_bytes: bool = False,
) -> dict[str, Any]:
    datasets = sorted(datasets, key=lambda d: (d.ref.name, d.ref.version))
    subjects = [d.ref.subject for d in datasets] + ([run.subject] if run else [])
    return {
        "format": INPUT_FORMAT,
        "evaluated_at": format_instant(now),
        "purpose": purpose,
        "check_versions": current_check_versions(),
        "datasets": [dataset_facts(home, d, verify_bytes) for d in datasets],
        "reviews": reviews_on(home, subjects),
        "run": _run_facts(home, run) if run else None,
    }


def _run_facts(home: Home, run: RunContext) -> dict[str, Any]:
    facts = run.as_json()
    if run.start_checkpoint is not None:
        taints = start_taints(home, run.start_checkpoint)
        if taints:
            facts["start_tainted"] = taints
        imported = imported_origin(home, run.start_checkpoint)
        if imported is not None:
            facts["start_model"] = imported
    return facts


def imported_origin(home: Home, checkpoint: str, depth: int = 16) -> dict[str, Any] | None:
    """The outside model (`custody import-model`) the checkpoint's weights descend from, if any: the
    checkpoint itself, or the start of the run that wrote it, followed back through fine-tunes and
    transfers. Its license is judged like a dataset's (rule license.allowed)."""
    for _ in range(depth):
        row = query.first(home.storage, "model.imported/", f"model:{checkpoint}")
        if row is not None:
            body = query.body(row)
            return {
                "digest": checkpoint,
                "source": body["source"],
                "license": body["license"],
                "license_category": body["license_category"],
                "ledger_index": row.idx,
            }
        run_id = _run_of(home, checkpoint)
        started = query.first(home.storage, "run.started/", f"run:{run_id}") if run_id else None
        parent = query.body(started).get("init_checkpoint_digest") if started is not None else None
        if not parent:
            return None
        checkpoint = parent
    return None


def _run_of(home: Home, checkpoint: str) -> str | None:
    """The run that wrote `checkpoint` (as one of its checkpoints or as its model), if any."""
    for row in query.entries(home.storage, "run.checkpoint/"):
        if query.body(row)["checkpoint_digest"] == checkpoint:
            return row.subject.removeprefix("run:")
    for row in query.entries(home.storage, "run.finished/"):
        if query.body(row).get("model_digest") == checkpoint:
            return row.subject.removeprefix("run:")
    return None


def document_bytes(doc: dict[str, Any]) -> bytes:
    return canonical_json(doc)


def document_digest(doc: dict[str, Any]) -> str:
    return hashlib.sha256(document_bytes(doc)).hexdigest()
