"""Replay: evaluate a recorded decision again from the inputs its digests name.

The policy bytes (every policy a v2 decision evaluated) and the input document are loaded from
the artifact store by the digests in the `policy.decision` entry (a policy file serves when the
stored copy is gone and the file still has the recorded digest); the bound policy must be the
binding in force at the decision's index. The replayed result must equal the recorded one:
decision, every reason, every waiver and approval. Separately, replay compares the recorded
inputs with the home as it is now and names everything that changed since (drift): the policy
file, a dataset's digest, newer check results or check versions, later reviews, expired waivers.
Drift does not make a replay fail: the decision was right for its inputs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from custody.checks.results import latest_results
from custody.datasets.names import parse_ref
from custody.datasets.registry import DatasetRegistry
from custody.home import Home
from custody.ledger.entry import canonical_json
from custody.ledger.query import envelope
from custody.policy.evaluate import EVALUATOR, parse_instant
from custody.policy.gate import PolicyInForce, decision_body, judge
from custody.policy.inputs import current_check_versions, reviews_on
from custody.policy.reviews import DECISION_TYPE, ledger_subject
from custody.policy.schema import LoadedPolicy, PolicyError, parse_bytes
from custody.store import ArtifactError


class ReplayError(ValueError):
    """The ledger index does not hold a policy decision."""


@dataclass
class ReplayReport:
    index: int
    decision_id: str
    recorded: dict[str, Any]
    replayed: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)  # why the decision was not reproduced
    drift: list[str] = field(default_factory=list)  # what changed since the decision

    @property
    def reproduced(self) -> bool:
        return self.replayed is not None and not self.problems

    def as_json(self) -> dict[str, Any]:
        return {
            "ledger_index": self.index,
            "decision_id": self.decision_id,
            "reproduced": self.reproduced,
            "recorded": self.recorded,
            "replayed": self.replayed,
            "problems": self.problems,
            "drift": self.drift,
        }


def _short(digest: str) -> str:
    return digest[:12]


def _load_policy(home: Home, ref: dict, problems: list[str]) -> bytes | None:
    digest = ref["digest"]["sha256"]
    try:
        return home.store.read_bytes(digest)
    except ArtifactError as exc:
        path = Path(ref["path"])
        if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == digest:
            return path.read_bytes()
        problems.append(f"the recorded policy (sha256 {_short(digest)}) cannot be loaded: {exc}")
        return None


def _load_input(home: Home, ref: dict, problems: list[str]) -> dict | None:
    digest = ref["digest"]["sha256"]
    try:
        return json.loads(home.store.read_bytes(digest))
    except ArtifactError as exc:
        problems.append(f"the recorded input document (sha256 {_short(digest)}) cannot be loaded: {exc}")
        return None


def _keyed(items: list[dict], key: str) -> dict[str, str]:
    return {item[key]: canonical_json(item).decode() for item in items}


def differences(recorded: dict, replayed: dict) -> list[str]:
    """What differs between two results, reason by reason."""
    out = []
    if recorded["decision"] != replayed["decision"]:
        out.append(f"decision: recorded {recorded['decision']}, replayed {replayed['decision']}")
    for part in ("reasons", "waived", "approved"):
        old, new = _keyed(recorded.get(part, []), "finding"), _keyed(replayed.get(part, []), "finding")
        for finding in sorted(old.keys() - new.keys()):
            out.append(f"{part}: {finding} was recorded but is not reproduced")
        for finding in sorted(new.keys() - old.keys()):
            out.append(f"{part}: {finding} is reproduced but was not recorded")
        for finding in sorted(k for k in old.keys() & new.keys() if old[k] != new[k]):
            out.append(f"{part}: {finding} differs (recorded {old[finding]}, replayed {new[finding]})")
    old_na = sorted(canonical_json(x).decode() for x in recorded.get("not_applied", []))
    new_na = sorted(canonical_json(x).decode() for x in replayed.get("not_applied", []))
    if old_na != new_na:
        out.append("not_applied: the reviews and waivers that did not count differ")
    return out


def _recorded_policies(home: Home, body: dict, problems: list[str]) -> list[PolicyInForce] | None:
    """The policies the decision evaluated, loaded by digest (v1: the one given)."""
    uses = body.get("policies")
    if uses is None:  # policy.decision/v1
        uses = [{**body["policy"], "role": "given", "binding_index": None}]
    loaded = []
    for use in uses:
        raw = _load_policy(home, use, problems)
        if raw is None:
            return None
        try:
            policy = parse_bytes(raw, use["path"])
        except PolicyError as exc:
            problems.append(f"the recorded policy does not validate with this custody: {exc}")
            return None
        loaded.append(
            PolicyInForce(use["role"], LoadedPolicy(Path(use["path"]), raw, policy), use.get("binding_index"))
        )
    return loaded


def _check_bindings(home: Home, index: int, body: dict, problems: list[str]) -> None:
    """The bound policy must be the binding in force at the decision's index."""
    from custody.policy.bindings import binding_at

    if "policies" not in body:
        return
    bound = binding_at(home, body["purpose"], index)
    used = [p for p in body["policies"] if p["role"] == "bound"]
    if bound is None and used:
        problems.append(f"the decision used a binding, but none was in force for {body['purpose']} at index {index}")
    elif bound is not None and not used:
        problems.append(
            f"policy {bound.loaded.policy.name} was bound to {body['purpose']} at ledger index {bound.index}, "
            "but the decision did not evaluate it"
        )
    elif bound is not None and (used[0].get("binding_index"), used[0]["digest"]["sha256"]) != (
        bound.index,
        bound.digest,
    ):
        problems.append(
            f"the decision's bound policy is not the binding in force at index {index} "
            f"(ledger index {bound.index}, sha256 {_short(bound.digest)})"
        )


def replay(home: Home, index: int, now: dt.datetime | None = None) -> ReplayReport:
    row = home.ledger.entry(index)
    entry = envelope(row)
    if not entry["type"].startswith(DECISION_TYPE):
        raise ReplayError(f"ledger index {index} holds a {entry['type']} entry, not a policy decision")
    body = entry["body"]
    report = ReplayReport(index, body["decision_id"], body["result"])
    policies = _recorded_policies(home, body, report.problems)
    doc = _load_input(home, body["input"], report.problems)
    _check_bindings(home, index, body, report.problems)
    if policies is not None and doc is not None:
        decision = judge(policies, doc, signed_home="policies" in body)
        report.replayed = decision.as_json()
        report.problems += differences(body["result"], report.replayed)
        expected = decision_body(
            doc, decision, policies, body["input"]["digest"]["sha256"], body["decision_id"], body["requested_by"]
        )
        for key in ("subjects", "checks", "reviews", "purpose", "evaluated_at", "policy", "policies"):
            if expected.get(key) != body.get(key):
                report.problems.append(f"the entry's '{key}' does not match its input document")
    report.drift = drift(home, index, body, doc, now or dt.datetime.now(dt.UTC))
    return report


def drift(home: Home, index: int, body: dict, doc: dict | None, now: dt.datetime) -> list[str]:
    """Everything the decision depended on that is different now, named."""
    out = []
    for use in body.get("policies") or ([body["policy"]] if body.get("policy") else []):
        path, digest = Path(use["path"]), use["digest"]["sha256"]
        if not path.is_file():
            out.append(f"policy file {path} no longer exists")
            continue
        current = hashlib.sha256(path.read_bytes()).hexdigest()
        if current != digest:
            out.append(
                f"policy file {path} changed since the decision: sha256 {_short(digest)} then, {_short(current)} now"
            )
    if "policies" in body:
        from custody.policy.bindings import binding_at

        now_bound = binding_at(home, body["purpose"])
        then = [p for p in body["policies"] if p["role"] == "bound"]
        if now_bound is not None and (not then or then[0].get("binding_index") != now_bound.index):
            out.append(
                f"{body['purpose']} is bound to policy {now_bound.loaded.policy.name} "
                f"(sha256 {_short(now_bound.digest)}) since ledger index {now_bound.index}"
            )
    if body.get("evaluator") != EVALUATOR:
        out.append(f"the decision was evaluated by {body.get('evaluator')}; this custody evaluates with {EVALUATOR}")
    registry = DatasetRegistry(home)
    recorded = {ds["dataset"]: ds for ds in doc["datasets"]} if doc else {}
    for subject in body["subjects"]:
        if not subject["name"].startswith("dataset:"):
            continue
        ref = subject["name"].removeprefix("dataset:")
        dataset = registry.find(parse_ref(ref))
        if dataset is None:
            out.append(f"{ref} is no longer registered")
            continue
        if dataset.digest != subject["digest"]["sha256"]:
            out.append(
                f"{ref}: dataset digest {_short(subject['digest']['sha256'])} then, {_short(dataset.digest)} now"
            )
        then = recorded.get(ref, {}).get("checks", {}) if doc else {}
        for name, result in sorted(latest_results(home, dataset).items()):
            used = then.get(name)
            if used is None:
                out.append(
                    f"{ref}: a {name} result exists now (ledger index {result.entry_index}); the decision had none"
                )
            elif used["ledger_index"] != result.entry_index:
                changed = "" if used["result_digest"] != result.result_digest else " (same rows)"
                out.append(
                    f"{ref}: {name} has a newer result at ledger index {result.entry_index}{changed}; "
                    f"the decision used ledger index {used['ledger_index']}"
                )
    if doc:
        for name, version in sorted(current_check_versions().items()):
            then_version = doc["check_versions"].get(name)
            if then_version != version:
                out.append(f"check {name} is version {version} now, {then_version} at the decision")
    subjects = [ledger_subject(s["name"].removeprefix("dataset:")) for s in body["subjects"]]
    for review in reviews_on(home, subjects, after=index):
        out.append(
            f"review at ledger index {review['ledger_index']} since the decision: {review['action']} "
            f"{review['finding']} by {review['reviewer']}"
        )
    result = body["result"]
    for kind, lifted in [("waiver", w) for w in result.get("waived", [])] + [
        ("approval", a) for a in result.get("approved", [])
    ]:
        if lifted.get("expires") and parse_instant(lifted["expires"]) <= now:
            out.append(f"{kind} of {lifted['finding']} ({lifted['by']}) expired at {lifted['expires']}")
    return out
