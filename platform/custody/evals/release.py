"""`custody release CHECKPOINT`: promote recorded weights, through the gate.

A release is a decision like a training run's: the gate judges the run's training datasets as they
stand now (a takedown since training denies them) and the weights' recorded evaluations against
the policy's `release.evaluation` rule (each required evaluation set, metric and slice, at or above
or at or below a bound, for exactly these weights). An allow is recorded as `model.released/v1`
(subject `model:SHA256`), naming the decision and the evaluations it relied on; a deny or a
needed review records the decision only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from custody.datasets.names import parse_ref
from custody.datasets.registry import DatasetRegistry, RegisteredDataset
from custody.evals import entry_types  # noqa: F401  registers eval.completed/v1 and model.released/v1
from custody.evals.run_eval import EvalError, Weights, evaluations_of, resolve
from custody.evalsets import contamination as overlap
from custody.evalsets.records import load_records
from custody.home import Home, actor_name
from custody.ledger import query
from custody.policy.gate import GateResult, run_gate
from custody.policy.inputs import RunContext
from custody.policy.schema import LoadedPolicy


@dataclass(frozen=True)
class Release:
    weights: Weights
    gate: GateResult
    ledger_index: int | None  # the model.released entry, when allowed
    contamination: list[dict[str, Any]]  # the overlap measured now, per evaluation set


def contamination(
    home: Home, weights: Weights, training: list[RegisteredDataset], actor: Any = None
) -> list[dict[str, Any]]:
    """Measure, and record as `eval.contamination/v2` (stage `release`), the overlap of every
    evaluation set these weights were evaluated on with the training data of the run that wrote them."""
    registry = DatasetRegistry(home)
    latest: dict[str, dict] = {}
    for _, body in evaluations_of(home, weights.digest):
        latest[body["evalset"]] = body
    sets = []
    for ref, body in sorted(latest.items()):
        dataset = registry.find(parse_ref(ref))
        if dataset is None or dataset.digest != body["evalset_digest"]:
            continue  # an evaluation set no longer registered with those bytes cannot be read again
        sets.append((dataset, load_records(dataset, body["task"])[1]))
    return overlap.record(
        home,
        sets,
        training,
        f"run:{weights.run_id}",
        "release",
        actor=actor_name(actor),
        run_id=weights.run_id,
        model_digest=weights.digest,
    )


def release_facts(home: Home, weights: Weights, training: list[RegisteredDataset], actor: Any = None) -> dict[str, Any]:
    """What the release rules read: the weights, every evaluation recorded for them, and how much of
    each evaluation set the training data holds (measured now)."""
    return {
        "contamination": overlap.facts(contamination(home, weights, training, actor)),
        "model_digest": weights.digest,
        "run_id": weights.run_id,
        "evaluations": [
            {
                "ledger_index": index,
                "evalset": body["evalset"],
                "evalset_digest": body["evalset_digest"],
                "task": body["task"],
                "results": body["results"],
            }
            for index, body in evaluations_of(home, weights.digest)
        ],
    }


def _training_data(home: Home, weights: Weights) -> tuple[list[RegisteredDataset], str]:
    started = query.first(home.storage, "run.started/", f"run:{weights.run_id}")
    if started is None:
        raise EvalError(f"run {weights.run_id} has no run.started entry: its training data is unknown")
    body = query.body(started)
    registry = DatasetRegistry(home)
    datasets = []
    for item in body["datasets"]:
        found = registry.find(parse_ref(item["ref"]))
        if found is None or found.digest != item["digest"]:
            raise EvalError(
                f"{item['ref']}, which run {weights.run_id} trained on, is not registered with its digest any more"
            )
        datasets.append(found)
    decision = query.body(home.ledger.entry(body["decision_index"]))
    return datasets, decision["purpose"]


def release(
    home: Home, target: str, actor: Any = None, purpose: str | None = None, policy: LoadedPolicy | None = None
) -> Release:
    """Gate the release of a run's model or a checkpoint; record it when allowed."""
    weights = resolve(home, target)
    datasets, trained_for = _training_data(home, weights)
    context = RunContext(
        f"release-{weights.digest[:12]}",
        actor_name(actor),
        requested_key=getattr(actor, "fingerprint", None),
        release=release_facts(home, weights, datasets, actor),
    )
    gate = run_gate(home, datasets, policy, purpose or trained_for, run=context, actor=actor)
    index = None
    if gate.decision.decision == "allow" and gate.ledger_index is not None:
        body = {
            "model_digest": weights.digest,
            "run_id": weights.run_id,
            "decision_index": gate.ledger_index,
            "evaluations": [e["ledger_index"] for e in context.release["evaluations"]],
        }
        refs = [f"ledger:{gate.ledger_index}"] + [f"ledger:{i}" for i in body["evaluations"]]
        index = home.record("model.released/v1", f"model:{weights.digest}", body, refs=refs, actor=actor)
    return Release(weights, gate, index, context.release["contamination"])
