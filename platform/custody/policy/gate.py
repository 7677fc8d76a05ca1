"""The gate: evaluate a policy over datasets (and optionally a run), record the decision, and
fail closed.

The decision is appended to the ledger as `policy.decision/v2` (v1 in a home made before
bindings) before the caller learns it. The policy judging it is the one an admin bound to the
purpose (`custody policy bind`); a policy the request names is evaluated too and can only add
reasons; an unbound purpose is a deny (`gate.unbound-purpose`).
The input document and the policy file's exact bytes go to the artifact store first, so the
entry's digests always name something replay can load. If anything on the way to the committed
entry fails, the gate answers deny (`gate.recorded`) whatever the policy said: an unrecorded
decision allows nothing.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, replace
from typing import Any, Literal

from custody.datasets.registry import RegisteredDataset
from custody.home import Home, actor_name
from custody.ledger.entry import canonical_json
from custody.policy import entry_types  # noqa: F401  registers policy.decision/v1 and review.recorded/v1
from custody.policy.evaluate import EVALUATOR, Decision, Reason, evaluate, verdict
from custody.policy.inputs import RunContext, document_bytes, gather
from custody.policy.schema import GATE_RECORDED, LoadedPolicy
from custody.trust.acting import Acting

GATE_UNBOUND = "gate.unbound-purpose"  # no policy is bound to the purpose: a deny no review lifts


@dataclass(frozen=True)
class PolicyInForce:
    """A policy a decision evaluates: the one bound to the purpose, the request's own (which can
    only add reasons), or, in a home made before bindings, the one given."""

    role: Literal["bound", "spec", "given"]
    loaded: LoadedPolicy
    binding_index: int | None = None

    def describe(self, purpose: str) -> str:
        name, short = self.loaded.policy.name, self.loaded.digest[:12]
        if self.role == "bound":
            return f"policy {name} (sha256 {short}, bound to {purpose} at ledger index {self.binding_index})"
        if self.role == "spec":
            return f"policy {name} (sha256 {short}, named by the request, NOT bound: it can only add reasons)"
        return f"policy {name} ({self.loaded.path}, sha256 {short}; this home has no bindings)"

    def as_json(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "path": str(self.loaded.path),
            "name": self.loaded.policy.name,
            "digest": self.loaded.digest,
            "bound": self.role == "bound",
            "binding_index": self.binding_index,
        }


@dataclass(frozen=True)
class GateResult:
    decision: Decision
    decision_id: str
    recorded: bool
    ledger_index: int | None
    policy: LoadedPolicy | None  # the governing policy: the bound one when there is one
    purpose: str
    evaluated_at: str
    input_digest: str | None = None
    error: str | None = None  # why the decision could not be recorded
    warning: str | None = None  # recorded, but the checkpoint after it could not be signed
    policies: tuple[PolicyInForce, ...] = ()
    notes: tuple[str, ...] = ()  # checks that flagged, yet no rule objected: say so, and why

    def as_json(self) -> dict[str, Any]:
        governing = (
            {"path": str(self.policy.path), "name": self.policy.policy.name, "digest": self.policy.digest}
            if self.policy
            else None
        )
        return {
            **self.decision.as_json(),
            "decision_id": self.decision_id,
            "recorded": self.recorded,
            "ledger_index": self.ledger_index,
            "policy": governing,
            "policies": [p.as_json() for p in self.policies],
            "purpose": self.purpose,
            "evaluated_at": self.evaluated_at,
            "input_digest": self.input_digest,
            "error": self.error,
            "warning": self.warning,
            "notes": list(self.notes),
        }

    def describe_policies(self) -> str:
        if not self.policies:
            return f"no policy is bound to {self.purpose}"
        return " + ".join(p.describe(self.purpose) for p in self.policies)


def policies_in_force(home: Home, purpose: str, given: LoadedPolicy | None) -> list[PolicyInForce]:
    """The binding for `purpose` now, plus the given policy when it differs from the bound one."""
    if not home.roster().signed:  # a home made before bindings: the given policy, as it always was
        if given is None:
            raise ValueError("this home has no policy bindings: name a policy (--policy FILE)")
        return [PolicyInForce("given", given)]
    from custody.policy.bindings import binding_at

    found: list[PolicyInForce] = []
    bound = binding_at(home, purpose)
    if bound is not None:
        found.append(PolicyInForce("bound", bound.loaded, bound.index))
    if given is not None and (bound is None or given.digest != bound.digest):
        found.append(PolicyInForce("spec", given))
    return found


def combine(decisions: list[Decision], extra: list[Reason] | None = None) -> Decision:
    """Several policies judge one request: every reason of each counts (the severer per finding)."""
    reasons: dict[str, Reason] = {}
    for reason in [r for d in decisions for r in d.reasons] + list(extra or []):
        kept = reasons.get(reason.finding)
        if kept is None or (kept.outcome == "review" and reason.outcome == "deny"):
            reasons[reason.finding] = reason
    ordered = tuple(sorted(reasons.values(), key=lambda r: (r.subject, r.rule, r.finding)))

    def union(part: str) -> tuple[dict, ...]:
        seen: dict[bytes, dict] = {}
        for decision in decisions:
            for item in getattr(decision, part):
                seen.setdefault(canonical_json(item), item)
        return tuple(seen.values())

    return Decision(verdict(ordered), ordered, union("waived"), union("approved"), union("not_applied"))


def judge(policies: list[PolicyInForce], doc: dict, signed_home: bool) -> Decision:
    """The decision: a pure function of the policies and the input document (replay calls it too)."""
    if not signed_home:
        return evaluate(policies[0].loaded.policy, doc)
    extra = []
    if not any(p.role == "bound" for p in policies):
        subjects = [f"run:{doc['run']['name']}"] if doc.get("run") else [ds["dataset"] for ds in doc["datasets"]]
        message = (
            f"no policy is bound to purpose {doc['purpose']}; an admin binds one with "
            f"`custody policy bind {doc['purpose']} POLICY_FILE` (a request's own policy can only add rules)"
        )
        extra = [Reason(GATE_UNBOUND, "deny", s, f"{s}/{GATE_UNBOUND}", message) for s in subjects]
    return combine([evaluate(p.loaded.policy, doc) for p in policies], extra)


def decision_subject(datasets: list[RegisteredDataset], run: RunContext | None) -> str:
    """The ledger subject: the run, else the one dataset, else every dataset."""
    if run is not None:
        return run.subject
    if len(datasets) == 1:
        return datasets[0].ref.subject
    return "datasets:" + ",".join(sorted(str(d.ref) for d in datasets))


def _policy_ref(loaded: LoadedPolicy) -> dict[str, Any]:
    return {
        "path": str(loaded.path),
        "name": loaded.policy.name,
        "digest": {"sha256": loaded.digest},
        "schema": loaded.policy.schema_version,
    }


def decision_type(policies: list[PolicyInForce]) -> str:
    """v1 in a home made before bindings (one given policy), v2 wherever bindings apply."""
    return "policy.decision/v1" if policies and policies[0].role == "given" else "policy.decision/v2"


def decision_body(
    doc: dict,
    decision: Decision,
    policies: list[PolicyInForce],
    input_digest: str,
    decision_id: str,
    requested_by: str,
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
    body: dict[str, Any] = {
        "decision_id": decision_id,
        "requested_by": requested_by,
        "purpose": doc["purpose"],
        "subjects": subjects,
        "policy": _policy_ref(policies[0].loaded) if policies else None,
        "input": {"digest": {"sha256": input_digest}, "artifact": f"sha256:{input_digest}"},
        "checks": checks,
        "reviews": [{"ledger_index": r["ledger_index"]} for r in doc["reviews"]],
        "result": decision.as_json(),
        "evaluated_at": doc["evaluated_at"],
        "evaluator": EVALUATOR,
    }
    if decision_type(policies).endswith("/v2"):
        body["policies"] = [
            {**_policy_ref(p.loaded), "role": p.role}
            | ({"binding_index": p.binding_index} if p.binding_index is not None else {})
            for p in policies
        ]
    return body


def _refs(doc: dict, policies: list[PolicyInForce], input_digest: str) -> list[str]:
    indices = {ds["ledger_index"] for ds in doc["datasets"]}
    indices |= {r["ledger_index"] for ds in doc["datasets"] for r in ds["checks"].values()}
    indices |= {r["ledger_index"] for r in doc["reviews"]}
    indices |= {p.binding_index for p in policies if p.binding_index is not None}
    indices |= {c["ledger_index"] for c in (doc.get("run") or {}).get("contamination", [])}  # measured before it
    digests = list(dict.fromkeys(f"sha256:{p.loaded.digest}" for p in policies))
    return [*digests, f"sha256:{input_digest}"] + [f"ledger:{i}" for i in sorted(indices)]


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


RULE_AREAS = {"provenance": ("provenance.", "findings."), "license": ("license.", "findings.")}


def within_limits(doc: dict, decision: Decision) -> tuple[str, ...]:
    """A check that flagged or failed although no reason names it: the policy let it through.

    Said aloud, so an allow after `pii: flag` (say, residual names after redaction, under the
    policy's limits) is never silent."""
    notes = []
    for ds in doc["datasets"]:
        for name, result in sorted(ds["checks"].items()):
            if result["status"] == "pass":
                continue
            areas = RULE_AREAS.get(name, (f"{name}.", "findings."))
            if any(r.subject == ds["dataset"] and r.rule.startswith(areas) for r in decision.reasons):
                continue  # a reason says it
            lifted = [*decision.waived, *decision.approved]
            if any(i["finding"].startswith(f"{ds['dataset']}/") and i["rule"].startswith(areas) for i in lifted):
                continue  # a waiver or approval says it

            counted = result["summary"].get("verdicts", {})
            flagged = sum(v for k, v in counted.items() if k != "pass")
            notes.append(
                f"{name} {result['status']} on {ds['dataset']} ({flagged:,} of {sum(counted.values()):,} records "
                "flagged): within what the policy allows, no rule objects"
            )
    return tuple(notes)


def _verify_bytes(policies: list[PolicyInForce]) -> bool:
    """Whether any policy's freshness rule asks to re-hash every shard at gate time."""
    for p in policies:
        freshness = p.loaded.policy.rules().get("freshness.current")
        if freshness is not None and getattr(freshness, "verify_bytes", False):
            return True
    return False


def run_gate(
    home: Home,
    datasets: list[RegisteredDataset],
    loaded: LoadedPolicy | None,
    purpose: str | None = None,
    run: RunContext | None = None,
    actor: Acting | str | None = None,
    now: dt.datetime | None = None,
) -> GateResult:
    """Evaluate the policy bound to the purpose (plus `loaded`, which can only add reasons) and
    record the decision, signed by the service and naming who asked. Bad input (unknown dataset,
    malformed policy, no purpose) raises before anything is recorded."""
    if not datasets:
        raise ValueError("the gate needs at least one dataset")
    requested_by = actor_name(actor)
    purpose = purpose or (loaded.policy.purpose if loaded is not None else None)
    if purpose is None:
        raise ValueError("the gate needs a purpose (--purpose) or a policy that names one")
    policies = policies_in_force(home, purpose, loaded)
    doc = gather(home, datasets, purpose, now or dt.datetime.now(dt.UTC), run, _verify_bytes(policies))
    decision = judge(policies, doc, signed_home=home.roster().signed)
    decision_id = uuid.uuid4().hex
    governing = policies[0].loaded if policies else None
    base = {
        "decision_id": decision_id,
        "policy": governing,
        "purpose": purpose,
        "evaluated_at": doc["evaluated_at"],
        "policies": tuple(policies),
    }
    input_digest = None
    try:
        for p in policies:  # replay loads each policy by digest, whatever happens to the files
            home.store.put_bytes(p.loaded.raw)
        input_digest = home.store.put_bytes(document_bytes(doc))
        body = decision_body(doc, decision, policies, input_digest, decision_id, requested_by)
        index = home.record(
            decision_type(policies),
            decision_subject(datasets, run),
            body,
            refs=_refs(doc, policies, input_digest),
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
    notes = within_limits(doc, decision)
    return GateResult(
        decision, recorded=True, ledger_index=index, input_digest=input_digest, warning=warning, notes=notes, **base
    )
