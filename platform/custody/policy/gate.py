"""The gate: evaluate a policy over datasets (and optionally a run), record the decision, and
fail closed.

The decision is appended to the ledger as `policy.decision/v1` before the caller learns it.
The input document and the policy file's exact bytes go to the artifact store first, so the
entry's digests always name something replay can load. If anything on the way to the committed
entry fails, the gate answers deny (`gate.recorded`) whatever the policy said: an unrecorded
decision allows nothing.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, replace
from typing import Any

from custody.datasets.registry import RegisteredDataset
from custody.home import Home, actor_name
from custody.policy import entry_types  # noqa: F401  registers policy.decision/v1 and review.recorded/v1
from custody.policy.evaluate import EVALUATOR, Decision, Reason, evaluate
from custody.policy.inputs import RunContext, document_bytes, gather
from custody.policy.schema import GATE_RECORDED, LoadedPolicy
from custody.trust.acting import Acting


@dataclass(frozen=True)
class GateResult:
    decision: Decision
    decision_id: str
    recorded: bool
    ledger_index: int | None
    policy: LoadedPolicy
    purpose: str
    evaluated_at: str
    input_digest: str | None = None
    error: str | None = None  # why the decision could not be recorded
    warning: str | None = None  # recorded, but the checkpoint after it could not be signed

    def as_json(self) -> dict[str, Any]:
        return {
            **self.decision.as_json(),
            "decision_id": self.decision_id,
            "recorded": self.recorded,
            "ledger_index": self.ledger_index,
            "policy": {"path": str(self.policy.path), "name": self.policy.policy.name, "digest": self.policy.digest},
            "purpose": self.purpose,
            "evaluated_at": self.evaluated_at,
            "input_digest": self.input_digest,
            "error": self.error,
            "warning": self.warning,
        }


def decision_subject(datasets: list[RegisteredDataset], run: RunContext | None) -> str:
    """The ledger subject: the run, else the one dataset, else every dataset."""
    if run is not None:
        return run.subject
    if len(datasets) == 1:
        return datasets[0].ref.subject
    return "datasets:" + ",".join(sorted(str(d.ref) for d in datasets))


def decision_body(
    doc: dict, decision: Decision, loaded: LoadedPolicy, input_digest: str, decision_id: str, requested_by: str
) -> dict[str, Any]:
    subjects: list[dict[str, Any]] = [
        {"name": f"dataset:{ds['dataset']}", "digest": {"sha256": ds["digest"]}} for ds in doc["datasets"]
    ]
    if doc.get("run"):
        subjects.append({"name": f"run:{doc['run']['name']}"})
    checks = [
        {
            "dataset": ds["dataset"],
            "name": name,
            "version": result["version"],
            "result_digest": {"sha256": result["result_digest"]},
            "summary_digest": {"sha256": result["summary_digest"]},
            "ledger_index": result["ledger_index"],
        }
        for ds in doc["datasets"]
        for name, result in sorted(ds["checks"].items())
    ]
    return {
        "decision_id": decision_id,
        "requested_by": requested_by,
        "purpose": doc["purpose"],
        "subjects": subjects,
        "policy": {
            "path": str(loaded.path),
            "name": loaded.policy.name,
            "digest": {"sha256": loaded.digest},
            "schema": loaded.policy.schema_version,
        },
        "input": {"digest": {"sha256": input_digest}, "artifact": f"sha256:{input_digest}"},
        "checks": checks,
        "reviews": [{"ledger_index": r["ledger_index"]} for r in doc["reviews"]],
        "result": decision.as_json(),
        "evaluated_at": doc["evaluated_at"],
        "evaluator": EVALUATOR,
    }


def _refs(doc: dict, loaded: LoadedPolicy, input_digest: str) -> list[str]:
    indices = {ds["ledger_index"] for ds in doc["datasets"]}
    indices |= {r["ledger_index"] for ds in doc["datasets"] for r in ds["checks"].values()}
    indices |= {r["ledger_index"] for r in doc["reviews"]}
    return [f"sha256:{loaded.digest}", f"sha256:{input_digest}"] + [f"ledger:{i}" for i in sorted(indices)]


def unrecorded(decision: Decision, error: str) -> Decision:
    """Fail closed: whatever the policy said, a decision the ledger does not hold is a deny."""
    reason = Reason(
        GATE_RECORDED,
        "deny",
        "gate",
        "gate/gate.recorded",
        f"the decision ({decision.decision}) could not be recorded in the ledger: {error}",
    )
    return replace(decision, decision="deny", reasons=(*decision.reasons, reason))


def run_gate(
    home: Home,
    datasets: list[RegisteredDataset],
    loaded: LoadedPolicy,
    purpose: str | None = None,
    run: RunContext | None = None,
    actor: Acting | str | None = None,
    now: dt.datetime | None = None,
) -> GateResult:
    """Evaluate and record (signed by the service, naming who asked). Bad input (unknown dataset,
    malformed policy) raises before this."""
    if not datasets:
        raise ValueError("the gate needs at least one dataset")
    requested_by = actor_name(actor)
    purpose = purpose or loaded.policy.purpose
    rules = loaded.policy.rules()
    freshness = rules.get("freshness.current")
    verify_bytes = bool(freshness is not None and getattr(freshness, "verify_bytes", False))
    doc = gather(home, datasets, purpose, now or dt.datetime.now(dt.UTC), run, verify_bytes)
    decision = evaluate(loaded.policy, doc)
    decision_id = uuid.uuid4().hex
    base = {"decision_id": decision_id, "policy": loaded, "purpose": purpose, "evaluated_at": doc["evaluated_at"]}
    input_digest = None
    try:
        home.store.put_bytes(loaded.raw)  # replay loads the policy by digest, whatever happens to the file
        input_digest = home.store.put_bytes(document_bytes(doc))
        body = decision_body(doc, decision, loaded, input_digest, decision_id, requested_by)
        index = home.record(
            "policy.decision/v1",
            decision_subject(datasets, run),
            body,
            refs=_refs(doc, loaded, input_digest),
            actor=actor if actor is not None else requested_by,
        )
    except Exception as exc:  # fail closed on any failure to record, expected or not
        error = f"{type(exc).__name__}: {exc}"
        return GateResult(unrecorded(decision, error), recorded=False, ledger_index=None, error=error, **base)
    warning = None
    try:
        home.checkpoint()
    except Exception as exc:  # the entry is committed; the next checkpoint will cover it
        warning = f"decision recorded, but the checkpoint after it failed: {exc}"
    return GateResult(decision, recorded=True, ledger_index=index, input_digest=input_digest, warning=warning, **base)
